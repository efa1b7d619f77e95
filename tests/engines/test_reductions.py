"""Tests for kadspec.engines.reductions: symmetry and partial order keep every verdict."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

from kadspec.engines.explorer import Counterexample, Exploration, explore
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
#: the reductions whose searches of islands-4 are small (under 11,000 states for every policy)
PARTIAL_ORDER_ONLY = {name: REDUCTIONS[name] for name in ("partial-order", "both")}
SLOW = {"join-crash", "trio-forgery", "expiry", "trio", "join-lossy"}


def _requirements(result: Exploration) -> tuple[str, ...]:
    return result.counterexample.requirements if result.counterexample else ()


def _searches(initial: World, policy: Policy, **common: Any) -> dict[str, Exploration]:
    """The search of ``initial`` with each reduction of REDUCTIONS, and the plain one.

    Each distinct search runs once. Where the configuration has no symmetry (every shipped
    scenario; asserted by test_scenarios_have_no_symmetry_so_symmetry_searches_plainly), explore
    never consults the empty group, so ``symmetry=True`` searches exactly as the plain search
    and ``both`` exactly as ``partial-order``: the runs with the symmetry flag set are made (so
    that code path still runs) and their results stand for the searches equal to them."""
    symmetric = bool(Symmetry.of(initial, policy).group)
    done: dict[tuple[bool, bool], Exploration] = {}
    found: dict[str, Exploration] = {}
    # the most flags first: "both" runs with both set, and "partial-order" reuses it
    runs = sorted([*REDUCTIONS.items(), ("plain", Reduction())], key=lambda run: -len(run[1]))
    for name, options in runs:
        same = (symmetric and options.get("symmetry", False), options.get("partial_order", False))
        if same not in done:
            done[same] = explore(initial, policy, **common, **options)
        found[name] = done[same]
    return found


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


def test_scenarios_have_no_symmetry_so_symmetry_searches_plainly() -> None:
    """Every shipped scenario and mutant scenario has distinct roles or key activity: no
    automorphism, so a symmetry search of it is the plain search (_searches relies on it only
    where it holds, and this says where it does)."""
    worlds = [(s.initial(), SPEC) for s in SCENARIOS.values()]
    worlds += [(m.scenario_spec.initial(), m.policy) for m in MUTANTS.values()]
    assert all(Symmetry.of(initial, policy).group == () for initial, policy in worlds)
    initial = SCENARIOS["two-bootstraps"].initial()
    plain, symmetric = explore(initial, SPEC), explore(initial, SPEC, symmetry=True)
    assert (symmetric.states, symmetric.levels) == (plain.states, plain.levels)


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


def assert_a_real_run_breaking(found: Counterexample, policy: Policy, rid: str) -> None:
    """The trace is a real run: replayed with the public functions, it ends in a world or a
    step that breaks ``rid``."""
    world = found.initial
    for step in found.steps:
        before, world = world, apply(world, policy, step.action)
        assert world == step.world
    seen = check_state(world, policy) + check_quiescent(world, policy)
    if found.steps:
        seen += check_step(before, found.steps[-1].action, world, policy)
    assert rid in {v.requirement for v in seen}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_reductions_detect_every_mutant(name: str) -> None:
    mutant = MUTANTS[name]
    searches = _searches(mutant.scenario_spec.initial(), mutant.policy, target=mutant.expected)
    for reduction in REDUCTIONS:
        found = searches[reduction].counterexample
        assert found is not None, f"{name} not detected with {reduction}"
        assert mutant.expected in found.requirements
        assert_a_real_run_breaking(found, mutant.policy, mutant.expected)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in SCENARIOS]
)
def test_reductions_find_no_violation_under_the_spec(name: str) -> None:
    """Each reduction searches every scenario completely and finds no violation; where the
    partial order acts, it keeps the plain search's verdicts, witnesses and premises too."""
    scenario = SCENARIOS[name]
    searches = _searches(scenario.initial(), SPEC, keep_going=True, witnesses=scenario.witnesses)
    for reduction in REDUCTIONS:
        result = searches[reduction]
        assert result.complete and result.counterexample is None, reduction
    if name in PARTIAL_ORDER_SCENARIOS:
        _keeps_verdicts_witnesses_and_premises(searches["plain"], searches["partial-order"])


def test_reductions_shrink_the_islands() -> None:
    searches = _searches(islands(4).initial(), SPEC)
    plain = searches["plain"]
    assert plain.complete and plain.counterexample is None
    for reduction in REDUCTIONS:
        reduced = searches[reduction]
        assert reduced.complete and reduced.counterexample is None, reduction
        assert reduced.states < plain.states / 3, reduction
        assert reduced.depth == plain.depth, reduction


#: the plain search of islands-4 stops here when no violation has turned up: a complete one
#: holds 1,359,556 states (13 s CPU, and as much again with symmetry alone, per policy)
ISLANDS_4_PLAIN_CAP = 100_000


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTANTS))
def test_reductions_agree_with_plain_search_where_they_apply(name: str) -> None:
    """On the islands both reductions are active; every mutant policy gets the same verdict
    (detected or not) with and without them.

    islands-2 (one pair: the pair swap and the one-node partial order act) is searched
    completely for every policy. On islands-4 (two pairs: a group of three, and the partial
    order's component rule) every policy the plain search condemns within its first
    ISLANDS_4_PLAIN_CAP states gets the full comparison; for the others, the partial-order
    searches (with and without symmetry) must complete without a violation either."""
    mutant = MUTANTS[name]
    pair = _searches(islands(2).initial(), mutant.policy, target=mutant.expected)
    assert pair["plain"].complete or pair["plain"].counterexample is not None
    for reduction in REDUCTIONS:
        reduced = pair[reduction]
        assert (reduced.counterexample is None) == (pair["plain"].counterexample is None), reduction
        assert reduced.complete == pair["plain"].complete, reduction
    initial = islands(4).initial()
    plain = explore(initial, mutant.policy, target=mutant.expected, max_states=ISLANDS_4_PLAIN_CAP)
    reductions = REDUCTIONS if plain.complete or plain.counterexample else PARTIAL_ORDER_ONLY
    for options in reductions.values():
        reduced = explore(initial, mutant.policy, target=mutant.expected, **options)
        assert (reduced.counterexample is None) == (plain.counterexample is None), options
        assert reduced.complete == (plain.complete or plain.counterexample is None), options


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
        assert_a_real_run_breaking(found, mutant.policy, rid)
        # a reduced trace may be longer than a shortest one, never shorter
        assert len(found.steps) >= len(plain.counterexamples[rid].steps)


def _keeps_verdicts_witnesses_and_premises(plain: Exploration, reduced: Exploration) -> None:
    """The partial order on one of PARTIAL_ORDER_SCENARIOS (both searches kept going, with the
    scenario's witnesses): the plain search's answers."""
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
