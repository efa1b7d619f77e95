"""Tests for the fingerprint mode of kadspec.engines.parallel (``--fingerprints``).

A run that keeps 64-bit fingerprints instead of states must find what the serial explorer
finds (a collision is possible, and the report says how likely; on these sizes it is below
one in a billion billion), and rebuild each counterexample's trace by exploring again: a real
trace, replayed by the public functions, as short as the serial explorer's.
"""

from __future__ import annotations

from typing import Any

import pytest

from kadspec.engines.explorer import Exploration, explore
from kadspec.engines.parallel import (
    LocalTransport,
    SearchOptions,
    Worker,
    coordinate,
    explore_parallel,
    omission_probability,
    rebuild_by_reexploration,
)
from kadspec.models.actions import apply, enabled
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC
from kadspec.models.scenarios import SCENARIOS


def agreement(result: Exploration) -> dict[str, Any]:
    """What two engines must agree on after a complete run (as in test_parallel.py)."""
    return {
        "states": result.states,
        "transitions": result.transitions,
        "levels": result.levels,
        "quiescent": result.quiescent_states,
        "exercised": dict(result.exercised),
        "violated": sorted(result.counterexamples),
        "lengths": {rid: len(ce.steps) for rid, ce in result.counterexamples.items()},
    }


@pytest.mark.parametrize("name", ["join", "mode-change", "nat-provides", "two-bootstraps"])
def test_fingerprints_count_the_states_of_the_serial_explorer(name: str) -> None:
    initial = SCENARIOS[name].initial()
    serial = explore(initial, SPEC, keep_going=True)
    found = explore_parallel(initial, SPEC, workers=1, fingerprints=True, keep_going=True)
    assert found.fingerprints and found.complete
    assert agreement(found) == agreement(serial)
    assert found.omission_probability is not None and 0 < found.omission_probability < 1e-9


@pytest.mark.parametrize(
    ("name", "workers"),
    [("admit-on-inbound-request", 1), ("mode-change-not-pushed", 2), ("no-dial-back", 2)],
)
def test_traces_are_rebuilt_by_exploring_again(name: str, workers: int) -> None:
    mutant = MUTANTS[name]
    initial = mutant.scenario_spec.initial()
    serial = explore(initial, mutant.policy, keep_going=True)
    found = explore_parallel(
        initial, mutant.policy, workers=workers, fingerprints=True, keep_going=True
    )
    assert serial.counterexamples and agreement(found) == agreement(serial)
    for rid, ce in found.counterexamples.items():
        world = ce.initial
        for step in ce.steps:  # a real trace of the model
            assert step.action in enabled(world, mutant.policy)
            world = apply(world, mutant.policy, step.action)
            assert world == step.world
        assert rid in ce.requirements


def test_a_worker_keeps_fingerprints_not_states() -> None:
    initial = SCENARIOS["join"].initial()
    worker = Worker(0, 1, initial, SPEC, fingerprints=True)
    transport = LocalTransport([worker])
    result = coordinate(transport, initial, SPEC, SearchOptions(fingerprints=True))
    seen = worker._seen  # the visited set: one 64-bit value per state
    assert len(seen) == result.states and all(0 <= f < 2**64 for f in seen)
    assert len(worker._parent_index) == 0  # no parent links: traces come from re-exploration


def test_re_exploration_finds_a_shortest_path() -> None:
    initial = SCENARIOS["join"].initial()
    world = initial
    for _ in range(6):  # some state at depth 6 or less
        world = apply(world, SPEC, enabled(world, SPEC)[-1])
    depth = explore(initial, SPEC).depth
    positions = rebuild_by_reexploration(initial, SPEC, world, depth)
    assert len(positions) <= 6
    replayed = initial
    for position in positions:
        replayed = apply(replayed, SPEC, enabled(replayed, SPEC)[position])
    assert replayed == world


def test_the_omission_probability_is_the_birthday_bound() -> None:
    assert omission_probability(1) == 0.0
    assert omission_probability(2) == pytest.approx(2.0**-64)
    assert omission_probability(10**9) == pytest.approx(10**9 * (10**9 - 1) / 2 / 2.0**64)
    assert omission_probability(10**12) == 1.0  # past ~6e9 states a collision is likely
