"""Tests for kadspec.engines.reductions: symmetry and partial order keep every verdict."""

from __future__ import annotations

from typing import TypedDict

import pytest

from kadspec.engines.explorer import Exploration, explore
from kadspec.engines.reductions import (
    Automorphism,
    Symmetry,
    automorphisms,
    components,
    shortest_counterexample,
    symmetry_conditions,
)
from kadspec.models.actions import apply, enabled, quiescent
from kadspec.models.checks import check_quiescent, check_state, check_step
from kadspec.models.configurations import islands, star
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC, Policy
from kadspec.models.scenarios import SCENARIOS
from kadspec.models.state import World


class Reduction(TypedDict, total=False):
    symmetry: bool
    partial_order: bool


REDUCTIONS: dict[str, Reduction] = {
    "symmetry": {"symmetry": True},
    "partial-order": {"partial_order": True},
    "both": {"symmetry": True, "partial_order": True},
}
SLOW = {"join-crash", "trio-forgery", "expiry", "trio", "join-lossy"}


def _requirements(result: Exploration) -> tuple[str, ...]:
    return result.counterexample.requirements if result.counterexample else ()


def _reachable(initial: World, policy: Policy, limit: int) -> list[World]:
    """Up to ``limit`` reachable worlds, breadth first, by the public functions."""
    order = [initial]
    seen = {initial}
    for world in order:
        for action in enabled(world, policy):
            after = apply(world, policy, action)
            if after not in seen:
                seen.add(after)
                order.append(after)
                if len(order) >= limit:
                    return order
    return order


# --- which configurations are symmetric ----------------------------------------------------------


def test_islands_have_the_translations_of_their_id_block() -> None:
    found = automorphisms(islands(4).config)
    assert sorted(g.mask for g in found) == [1, 2, 3]
    assert {g.order for g in found} == {(1, 0, 3, 2), (2, 3, 0, 1), (3, 2, 1, 0)}
    assert len(Symmetry.of(islands(4).initial(), SPEC).group) == 3


@pytest.mark.parametrize("name", ["trio", "join", "trio-forgery"])
def test_scenarios_with_distinct_roles_have_no_symmetry(name: str) -> None:
    assert Symmetry.of(SCENARIOS[name].initial(), SPEC).group == ()


def test_symmetry_names_what_rules_it_out() -> None:
    conditions = symmetry_conditions(SCENARIOS["expiry"].initial(), SPEC)
    assert any("key activity" in c for c in conditions)
    assert any("timers" in c for c in conditions)
    policy = Policy(remove_failed_peers=False)
    assert any("bucket eviction" in c for c in symmetry_conditions(islands(4).initial(), policy))
    assert Symmetry.of(islands(4).initial(), policy).group == ()


@pytest.mark.parametrize(("count", "limit"), [(2, 1000), (4, 1500)])
def test_automorphisms_map_transitions_to_transitions(count: int, limit: int) -> None:
    """The soundness premise, checked directly: on every state visited, the successors of an
    image are the images of the successors, and images break the same requirements."""
    initial = islands(count).initial()
    group = Symmetry.of(initial, SPEC).group
    assert group
    for world in _reachable(initial, SPEC, limit):
        successors = {apply(world, SPEC, a) for a in enabled(world, SPEC)}
        for g in group:
            image = g.world(world)
            assert {g.world(s) for s in successors} == {
                apply(image, SPEC, a) for a in enabled(image, SPEC)
            }
            assert _broken(world) == _broken(image)
            assert quiescent(world, SPEC) == quiescent(image, SPEC)


def _broken(world: World) -> set[str]:
    found = {v.requirement for v in check_state(world, SPEC)}
    return found | {v.requirement for v in check_quiescent(world, SPEC)}


def test_an_automorphism_is_an_involution_or_composes_within_the_group() -> None:
    group = automorphisms(islands(4).config)
    world = _reachable(islands(4).initial(), SPEC, 400)[-1]
    masks = {g.mask: g for g in group}
    for g in group:
        for h in group:
            composed = h.world(g.world(world))
            mask = g.mask ^ h.mask
            assert composed == (world if mask == 0 else masks[mask].world(world))
    assert isinstance(group[0], Automorphism)


# --- which nodes can ever interact -------------------------------------------------------------


def test_components_follow_who_knows_whom() -> None:
    assert components(islands(4).initial()) == [0, 0, 2, 2]
    assert components(star(3).initial()) == [0, 0, 0]
    for world in _reachable(islands(4).initial(), SPEC, 2000):
        assert components(world) == [0, 0, 2, 2]  # the pairs never learn of each other


# --- verdicts are kept --------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", list(REDUCTIONS))
@pytest.mark.parametrize("name", list(MUTANTS))
def test_reductions_detect_every_mutant(name: str, reduction: str) -> None:
    mutant = MUTANTS[name]
    result = explore(
        mutant.scenario_spec.initial(),
        mutant.policy,
        target=mutant.expected,
        **REDUCTIONS[reduction],
    )
    found = result.counterexample
    assert found is not None, f"{name} not detected with {reduction}"
    assert mutant.expected in found.requirements
    # The trace is a real run: replay it with the public functions.
    world = found.initial
    for step in found.steps:
        before, world = world, apply(world, mutant.policy, step.action)
        assert world == step.world
    seen = check_state(world, mutant.policy) + check_quiescent(world, mutant.policy)
    if found.steps:
        seen += check_step(before, found.steps[-1].action, world, mutant.policy)
    assert mutant.expected in {v.requirement for v in seen}


@pytest.mark.parametrize("reduction", list(REDUCTIONS))
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in SCENARIOS]
)
def test_reductions_find_no_violation_under_the_spec(name: str, reduction: str) -> None:
    result = explore(SCENARIOS[name].initial(), SPEC, **REDUCTIONS[reduction])
    assert result.complete and result.counterexample is None


@pytest.mark.parametrize("reduction", list(REDUCTIONS))
def test_reductions_shrink_the_islands(reduction: str) -> None:
    plain = explore(islands(4).initial(), SPEC)
    reduced = explore(islands(4).initial(), SPEC, **REDUCTIONS[reduction])
    assert plain.complete and reduced.complete
    assert plain.counterexample is None and reduced.counterexample is None
    assert reduced.states < plain.states / 3
    assert reduced.depth == plain.depth


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTANTS))
def test_reductions_agree_with_plain_search_where_they_apply(name: str) -> None:
    """On the islands both reductions are active; every mutant policy gets the same verdict
    (detected or not) with and without them."""
    mutant = MUTANTS[name]
    initial = islands(4).initial()
    plain = explore(initial, mutant.policy, target=mutant.expected)
    for options in REDUCTIONS.values():
        reduced = explore(initial, mutant.policy, target=mutant.expected, **options)
        assert (reduced.counterexample is None) == (plain.counterexample is None), options
        assert reduced.complete == plain.complete


# --- partial order on one node's moves: the same answers as the plain search -----------------

#: check scenarios where the partial order acts (no fault budget left or none, no timer past the
#: horizon at some point); the faulty and timed ones it leaves alone are covered above
PARTIAL_ORDER_SCENARIOS = (
    "trio",
    "two-bootstraps",
    "crowd",
    "five",
    "five-find",
    "mode-change",
    "join",
    "join-disconnect",
    "client-joins",
    "republish",
)


def _live_premises(result: Exploration) -> frozenset[str]:
    return frozenset(rid for rid, times in result.exercised.items() if times)


@pytest.mark.parametrize("name", list(MUTANTS))
def test_partial_order_reports_the_same_violations_on_every_mutant(name: str) -> None:
    """Both searches go on past violations over the whole space: the same requirement IDs are
    violated, and each reduced counterexample is a real run that breaks its requirement."""
    mutant = MUTANTS[name]
    initial = mutant.scenario_spec.initial()
    plain = explore(initial, mutant.policy, keep_going=True, max_seconds=300)
    reduced = explore(initial, mutant.policy, keep_going=True, partial_order=True, max_seconds=300)
    assert plain.complete and reduced.complete
    assert mutant.expected in plain.violated
    assert reduced.violated == plain.violated
    assert reduced.states <= plain.states
    for rid, found in reduced.counterexamples.items():
        world = found.initial
        for step in found.steps:
            before, world = world, apply(world, mutant.policy, step.action)
            assert world == step.world
        seen = check_state(world, mutant.policy) + check_quiescent(world, mutant.policy)
        if found.steps:
            seen += check_step(before, found.steps[-1].action, world, mutant.policy)
        assert rid in {v.requirement for v in seen}
        # a reduced trace may be longer than a shortest one, never shorter
        assert len(found.steps) >= len(plain.counterexamples[rid].steps)


@pytest.mark.parametrize("name", PARTIAL_ORDER_SCENARIOS)
def test_partial_order_keeps_verdicts_witnesses_and_premises(name: str) -> None:
    scenario = SCENARIOS[name]
    initial = scenario.initial()
    runs = [
        explore(
            initial,
            SPEC,
            keep_going=True,
            witnesses=scenario.witnesses,
            partial_order=partial_order,
            max_seconds=300,
        )
        for partial_order in (False, True)
    ]
    plain, reduced = runs
    assert plain.complete and reduced.complete
    assert reduced.violated == plain.violated
    assert reduced.witnesses_reached == plain.witnesses_reached
    assert _live_premises(reduced) == _live_premises(plain)
    assert reduced.quiescent_states == plain.quiescent_states  # the same quiescent worlds
    assert reduced.states <= plain.states


def test_partial_order_cuts_the_stars() -> None:
    """star-3 complete: fewer states, the same depth. star-4 under a cap: at every depth both
    searches completed, the reduced one holds fewer states."""
    initial = star(3).initial()
    plain = explore(initial, SPEC)
    reduced = explore(initial, SPEC, partial_order=True)
    assert plain.complete and reduced.complete
    assert reduced.states < 0.95 * plain.states
    assert reduced.depth == plain.depth
    initial = star(4).initial()
    plain = explore(initial, SPEC, max_states=40_000)
    reduced = explore(initial, SPEC, partial_order=True, max_states=40_000)
    common = min(len(plain.levels), len(reduced.levels)) - 1  # the last level may be partial
    assert common >= 12
    assert sum(reduced.levels[:common]) < 0.9 * sum(plain.levels[:common])


def test_shortest_counterexample_rebuilds_the_plain_length() -> None:
    mutant = MUTANTS["client-mode-serves"]
    initial = mutant.scenario_spec.initial()
    plain = explore(initial, mutant.policy, target=mutant.expected)
    assert plain.counterexample is not None
    found = shortest_counterexample(initial, mutant.policy, mutant.expected)
    assert found is not None
    assert len(found.steps) == len(plain.counterexample.steps)
    assert mutant.expected in found.requirements
