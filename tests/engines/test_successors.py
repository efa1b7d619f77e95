"""Tests for kadspec.engines.successors: memoized steps equal the public functions' steps."""

from __future__ import annotations

import attrs
import pytest

from kadspec.engines.successors import Successors
from kadspec.models.actions import apply, enabled
from kadspec.models.checks import check_state
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC, Policy
from kadspec.models.scenarios import SCENARIOS
from kadspec.models.state import World


def _explore_verified(
    initial: World, policy: Policy, limit: int | None = None
) -> tuple[int, Successors]:
    """Breadth-first search with ``verify=True``, through the same calls the explorer makes
    (keys in, keys out; worlds decoded only on a miss): every memoized guard, step and check
    is recomputed by the public functions and compared (the engine asserts on a difference).
    ``limit`` stops after that many states."""
    engine = Successors(initial, policy, verify=True)
    root = engine.key(initial)
    order = [root]
    seen = {root}
    engine.state_checks(root)
    for key in order:
        moves, _ = engine.expand(key)
        for move in moves:
            after, _, _ = engine.successor(key, move)
            if after not in seen:
                seen.add(after)
                order.append(after)
                engine.state_checks(after)
        if limit is not None and len(seen) >= limit:
            break
    return len(seen), engine


def _explore_public(initial: World, policy: Policy) -> int:
    """The number of reachable worlds, by the public functions alone (no memo, no keys)."""
    seen = {initial}
    order = [initial]
    for world in order:
        for action in enabled(world, policy):
            after = apply(world, policy, action)
            if after not in seen:
                seen.add(after)
                order.append(after)
    return len(seen)


@pytest.mark.parametrize("name", ["mode-change", "client-joins", "join-disconnect"])
def test_memoized_search_equals_the_public_functions(name: str) -> None:
    initial = SCENARIOS[name].initial()
    count, engine = _explore_verified(initial, SPEC)
    # The same reachable set as a search through the public functions (no pinned count: the
    # model changes; that the two engines agree does not).
    assert count == _explore_public(initial, SPEC)
    assert engine.replayed > 0  # the memo was used, and every use was checked


@pytest.mark.parametrize(
    "name",
    [
        # a delivery that admits its sender, a refused request, probing every candidate
        "admit-on-inbound-request",
        "client-mode-serves",
        "lookup-check-deadlock",
        pytest.param("failed-peers-kept", marks=pytest.mark.slow),  # crashes and restarts
        pytest.param("no-per-request-deadline", marks=pytest.mark.slow),  # lost messages
        pytest.param("foreign-provider-accepted", marks=pytest.mark.slow),  # forgeries
        pytest.param("expired-records-served", marks=pytest.mark.slow),  # timers
    ],
)
def test_memoized_search_equals_the_public_functions_for_mutants(name: str) -> None:
    mutant = MUTANTS[name]
    _explore_verified(mutant.scenario_spec.initial(), mutant.policy)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_fast_path_equals_the_public_functions_on_every_scenario(name: str) -> None:
    """Every scenario's first states, each memoized answer recomputed and compared."""
    count, engine = _explore_verified(SCENARIOS[name].initial(), SPEC, limit=400)
    assert engine.replayed > 0 and count >= min(400, 100)


def test_keys_identify_worlds() -> None:
    initial = SCENARIOS["join"].initial()
    engine = Successors(initial, SPEC)
    worlds = [initial]
    for world in list(worlds):
        worlds.extend(apply(world, SPEC, a) for a in enabled(world, SPEC))
    for world in worlds:
        key = engine.key(world)
        assert engine.world(key) == world
        assert engine.fields(key)[0] == world.clock
        assert engine.compose(*engine.fields(key)[:3], list(engine.fields(key)[3])) == key
    assert len({engine.key(w) for w in worlds}) == len(set(worlds))


def test_a_step_outside_its_situation_is_not_memoized() -> None:
    """A crash clears channels and touches every peer: it is recorded with every node as a
    party, so a replay is only ever used for exactly the same node states."""
    mutant = MUTANTS["failed-peers-kept"]
    initial = mutant.scenario_spec.initial()
    engine = Successors(initial, mutant.policy)
    root = engine.key(initial)
    world = engine.world(root)
    moves, _ = engine.enabled(world)
    crash_moves = [m for m in moves if m.action.kind == "crash"]
    assert all(m.parties is None for m in crash_moves)


def test_the_per_node_share_of_a_world_invariant_equals_the_whole() -> None:
    """BOOT-05's bounded check is memoized per (node, state, clock): on worlds where users
    asked and the clock is moved past the bound (so that it fires), the engine's invariants
    equal check_state's, violations and their order included."""
    fired = 0
    for name in ("expiry", "republish", "nat-provides", "trio"):
        initial = SCENARIOS[name].initial()
        worlds = [initial]
        for world in worlds:
            worlds.extend(apply(world, SPEC, a) for a in enabled(world, SPEC))
            if len(worlds) > 300:
                break
        engine = Successors(initial, SPEC)
        for world in worlds:
            if not any(s.ghost.asked for s in world.nodes):
                continue
            for clock in (world.clock, world.clock + 50, world.clock + 10_000):
                moved = attrs.evolve(world, clock=clock)
                found, _ = engine.state_checks(engine.key(moved))
                expected = check_state(moved, SPEC)
                assert list(found) == expected, (name, clock)
                fired += any(v.requirement == "BOOT-05" for v in expected)
    assert fired > 0  # the shares were not all empty
