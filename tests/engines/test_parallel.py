"""Tests for kadspec.engines.parallel: the partitioned explorer agrees with the serial one.

The serial explorer is itself held to the reference search over the public functions
(``test_explorer.py``); here the partitioned search, in worker processes, must find what it
finds on every scenario: the same distinct states level by level, transitions, quiescent
states, premise counts, witnesses, violated requirements and counterexample lengths.
Numbers are never pinned: the two engines must agree, whatever the model says today.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kadspec.engines.explorer import Exploration, Snapshot, explore
from kadspec.engines.parallel import (
    LocalTransport,
    SearchOptions,
    Worker,
    choose_owner_nodes,
    coordinate,
    explore_parallel,
    stable_hash,
    usable_cores,
)
from kadspec.main import cli
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC
from kadspec.models.scenarios import SCENARIOS

#: scenarios too large to explore twice in every test run: compared capped, level by level
LARGE = ("trio-forgery", "crowd-unresponsive-find")
#: mutants whose bugs are caught by state, step and quiescent checks, over several scenarios
MUTANT_SAMPLE = (
    "provide-before-ready-error-dropped",
    "identify-addresses-not-routed",
    "admit-on-inbound-request",
    "lookup-check-deadlock",
    "mode-change-not-pushed",
    "nat-provide-waits-forever",
    "refresh-not-rearmed",
    "closer-peers-admitted",
)


def agreement(result: Exploration) -> dict[str, Any]:
    """Everything two engines must agree on after a complete run."""
    return {
        "states": result.states,
        "transitions": result.transitions,
        "depth": result.depth,
        "levels": result.levels,
        "quiescent": result.quiescent_states,
        "exercised": dict(result.exercised),
        "witnesses": result.witnesses_reached,
        "violated": sorted(result.counterexamples),
        "lengths": {rid: len(ce.steps) for rid, ce in result.counterexamples.items()},
    }


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n not in LARGE])
def test_two_workers_agree_with_the_serial_explorer(name: str) -> None:
    scenario = SCENARIOS[name]
    initial = scenario.initial()
    serial = explore(initial, SPEC, keep_going=True, witnesses=getattr(scenario, "witnesses", ()))
    parallel = explore_parallel(
        initial, SPEC, workers=2, keep_going=True, witnesses=getattr(scenario, "witnesses", ())
    )
    assert serial.complete and parallel.complete and parallel.workers == 2
    assert agreement(parallel) == agreement(serial)


@pytest.mark.parametrize("name", LARGE)
def test_a_capped_run_agrees_level_by_level(name: str) -> None:
    """A state cap ends the serial search inside a level and the partitioned one after it:
    every level both completed must hold the same number of states."""
    initial = SCENARIOS[name].initial()
    serial = explore(initial, SPEC, keep_going=True, max_states=CAP)
    parallel = explore_parallel(initial, SPEC, workers=2, keep_going=True, max_states=CAP)
    assert_capped_levels_agree(serial, parallel)


#: the state cap of the level-by-level comparisons
CAP = 15_000


def assert_capped_levels_agree(serial: Exploration, partitioned: Exploration) -> None:
    """Both stopped at the cap (the serial search inside a level, the partitioned one after
    it), and every level both completed holds the same number of states."""
    assert serial.stop_reason == partitioned.stop_reason == "state-cap"
    assert partitioned.states >= CAP and len(serial.levels) > 5
    assert partitioned.levels[: len(serial.levels)] == serial.levels


@pytest.mark.parametrize("name", MUTANT_SAMPLE)
def test_mutants_break_the_same_requirements_with_traces_as_short(name: str) -> None:
    mutant = MUTANTS[name]
    initial = mutant.scenario_spec.initial()
    serial = explore(initial, mutant.policy, keep_going=True)
    parallel = explore_parallel(initial, mutant.policy, workers=2, keep_going=True)
    assert serial.counterexamples, "a mutant the serial explorer does not catch proves nothing"
    assert agreement(parallel) == agreement(serial)
    for ce in parallel.counterexamples.values():  # real traces, replayed by the public functions
        assert ce.violations


@pytest.mark.parametrize("name", ["identify-addresses-not-routed", "client-mode-serves"])
def test_a_target_stops_at_a_shortest_counterexample(name: str) -> None:
    mutant = MUTANTS[name]
    initial = mutant.scenario_spec.initial()
    serial = explore(initial, mutant.policy, target=mutant.expected)
    parallel = explore_parallel(initial, mutant.policy, workers=2, target=mutant.expected)
    assert serial.counterexample is not None and parallel.counterexample is not None
    assert parallel.stop_reason == "violation" and mutant.expected in parallel.violated | {
        v.requirement for v in parallel.counterexample.violations
    }
    assert len(parallel.counterexample.steps) == len(serial.counterexample.steps)


def test_the_first_violation_stops_the_search_by_default() -> None:
    mutant = MUTANTS["admit-on-inbound-request"]
    initial = mutant.scenario_spec.initial()
    serial = explore(initial, mutant.policy)
    parallel = explore_parallel(initial, mutant.policy, workers=2)
    assert parallel.stop_reason == "violation" and not parallel.complete
    assert parallel.counterexample is not None and serial.counterexample is not None
    assert len(parallel.counterexample.steps) == len(serial.counterexample.steps)


def test_caps_are_the_stop_reason() -> None:
    initial = SCENARIOS["join"].initial()
    capped = explore_parallel(initial, SPEC, workers=2, max_states=500)
    assert capped.stop_reason == "state-cap" and not capped.complete and capped.states >= 500
    timed = explore_parallel(initial, SPEC, workers=2, max_seconds=1e-9)
    assert timed.stop_reason == "time-cap" and not timed.complete


def test_progress_reports_each_level() -> None:
    snapshots: list[Snapshot] = []
    result = explore_parallel(
        SCENARIOS["mode-change"].initial(), SPEC, workers=2, progress=snapshots.append
    )
    assert len(snapshots) >= result.depth
    assert [s.states for s in snapshots] == sorted(s.states for s in snapshots)
    assert snapshots[-1].states == result.states and snapshots[-1].frontier == 0
    assert max(s.frontier for s in snapshots) == max(result.levels)
    assert all(s.memory_mb > 0 for s in snapshots)
    assert result.cpu_seconds > 0 and result.peak_memory_mb > 0


def test_workers_split_the_states_and_share_effects() -> None:
    """In one process, to look inside: each state is kept by exactly one worker, and an
    effect computed by one worker is adopted by the other instead of computed again."""
    initial = SCENARIOS["trio"].initial()
    workers = [Worker(n, 2, initial, SPEC) for n in range(2)]
    result = coordinate(LocalTransport(workers), initial, SPEC)
    alone = Worker(0, 1, initial, SPEC)
    coordinate(LocalTransport([alone]), initial, SPEC)
    owned = [w.totals().states for w in workers]
    assert sum(owned) == result.states == alone.totals().states
    assert all(n > result.states // 4 for n in owned)  # a spread, not one worker doing it all
    assert sum(w.engine.adopted for w in workers) > 0
    assert sum(w.engine.computed for w in workers) < 1.2 * alone.engine.computed


@pytest.mark.parametrize("name", ["join-crash", "mode-change", "crowd-lossy-find"])
def test_adopted_effects_equal_the_models_own_steps(name: str) -> None:
    """Effects travel between workers by id (situation, node states, budgets mapped onto the
    receiver's ids): with both engines in verify mode, every step replayed from an adopted
    effect is recomputed with the model's own functions and compared. The scenarios cover
    every way a situation is packed: a crash (every node, spending), a mode change (one node,
    spending), losses (a pair, spending) and deliveries (a pair, or the receiver alone)."""
    initial = SCENARIOS[name].initial()
    workers = [Worker(n, 2, initial, SPEC) for n in range(2)]
    for worker in workers:
        worker.engine.verify = True
    # join-crash in full takes 20 s in verify mode; its first crashes come early
    result = coordinate(LocalTransport(workers), initial, SPEC, SearchOptions(max_states=6_000))
    assert result.complete or result.states >= 6_000
    # the comparison ran: some effect was adopted (crowd-lossy-find's 193 states are too few
    # for both workers to adopt one under every hash seed; under seeds 0, 2, 4 and 6 one adopts
    # none)
    assert sum(w.engine.adopted for w in workers) > 0


def test_owner_nodes_leave_out_the_hub_and_keep_successors_local() -> None:
    """The owner is chosen by every node but the one that changes most (the star's hub,
    node 0, in trio); with that choice fewer successors travel between workers than with
    every node deciding, and the states found are the same."""
    initial = SCENARIOS["trio"].initial()
    owners = choose_owner_nodes(initial, SPEC)
    assert owners == (1, 2)
    travelled = []
    for chosen in (None, owners):
        workers = [Worker(n, 2, initial, SPEC, owner_nodes=chosen) for n in range(2)]
        result = coordinate(LocalTransport(workers), initial, SPEC)
        assert result.states == sum(w.totals().states for w in workers)
        travelled.append((result.states, sum(len(w._sent_states) for w in workers)))
    assert travelled[0][0] == travelled[1][0]
    assert travelled[1][1] < 0.9 * travelled[0][1]


def test_the_owner_hash_is_by_content() -> None:
    """Equal states built apart hash alike (None, enums and sets included), so every worker
    sends a state to the same owner."""
    first, second = SCENARIOS["trio"].initial(), SCENARIOS["trio"].initial()
    assert first is not second and first == second
    assert [stable_hash(s) for s in first.nodes] == [stable_hash(s) for s in second.nodes]
    assert stable_hash((None, frozenset({1, 2}))) == stable_hash((None, frozenset({2, 1})))
    assert stable_hash((1, None)) != stable_hash((None, 1))
    with pytest.raises(TypeError):
        stable_hash(object())


def test_the_default_is_every_usable_core() -> None:
    assert usable_cores() >= 1
    result = explore_parallel(SCENARIOS["client-joins"].initial(), SPEC)
    assert result.workers == usable_cores() and result.complete


def test_check_takes_workers_and_fingerprints(tmp_path: Path) -> None:
    """``kadspec check --workers 2`` and ``--fingerprints``: the serial run's counts, and the
    engine that ran named in the JSON report."""
    runs = {}
    for label, options in {
        "serial": ["--workers", "1"],
        "workers": ["--workers", "2"],
        "fingerprints": ["--workers", "1", "--fingerprints"],
    }.items():
        out = tmp_path / f"{label}.json"
        result = CliRunner().invoke(
            cli, ["check", "--scenario", "client-joins", *options, "--json", str(out)]
        )
        assert result.exit_code == 0, result.output
        runs[label] = json.loads(out.read_text())["scenarios"][0]
    assert runs["serial"]["states"] == runs["workers"]["states"] == runs["fingerprints"]["states"]
    assert runs["workers"]["engine"]["workers"] == 2
    assert runs["serial"]["engine"]["workers"] == 1
    assert runs["fingerprints"]["engine"]["fingerprints"] is True
    assert 0 < runs["fingerprints"]["engine"]["omission_probability"] < 1e-9
