"""Tests for kadspec.conformance.scenarios: the named scenarios are well formed and runnable, the
generated command sequences are valid, and a failing generated sequence shrinks to a minimal one;
one live run of the correct reference node through the runner passes every applicable
requirement."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import pytest
from hypothesis import given, settings
from test_observe import simulated

from kadspec.conformance.judge import Result, judge, must_failures
from kadspec.conformance.observe import LOOPBACK
from kadspec.conformance.protocol import CAPABILITIES, OPS
from kadspec.conformance.scenarios import (
    SCENARIOS,
    Call,
    Scenario,
    Snapshot,
    Wait,
    command_sequences,
    explore,
    resolve,
)
from kadspec.conformance.simulate import simulate
from kadspec.spec import requirements

REQUIRED = {
    "provide-at-startup",
    "listener-side-join",
    "client-requests",
    "mode-switch",
    "bootstrap-restart",
    "churn",
    "several-keys",
}


def test_the_issue_s_scenarios_are_all_there() -> None:
    assert set(SCENARIOS) >= REQUIRED


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_are_well_formed(name: str) -> None:
    scenario = SCENARIOS[name]
    assert scenario.text and scenario.name == name
    assert set(scenario.exercises) <= set(requirements())
    assert scenario.needs <= set(OPS) | set(CAPABILITIES)
    started: dict[str, str] = {}
    for step in scenario.steps:
        if isinstance(step, Call):
            assert step.op in OPS
            resolve(dict(step.args), started)  # names only nodes started before
            if step.op == "start":
                started[str(step.args["node"])] = "/ip4/127.0.0.1/tcp/1/p2p/x"
    # ends in a settled round: a wait of at least the progress deadline, then a snapshot
    *_, wait, last = scenario.steps
    assert isinstance(last, Snapshot) and isinstance(wait, Wait)
    assert wait.ms >= scenario.deadlines.progress_ms


def test_resolve_replaces_node_references_in_lists_and_names_unknown_ones() -> None:
    addresses = {"boot": "/ip4/127.0.0.1/tcp/4001/p2p/Qm"}
    assert resolve({"bootstrap": ["@boot"], "node": "a"}, addresses) == {
        "bootstrap": ["/ip4/127.0.0.1/tcp/4001/p2p/Qm"],
        "node": "a",
    }
    with pytest.raises(KeyError, match="later"):
        resolve(["@later"], addresses)


def _unknown_nodes(scenario: Scenario) -> list[str]:
    run = simulated(scenario.name) if scenario.name in SCENARIOS else simulate(scenario)
    return [
        str(e.payload["error"]["message"])
        for e in run.entries
        if e.kind == "reply"
        and not e.payload.get("ok")
        and e.payload["error"]["kind"] in ("unknown-node", "bad-request")
    ]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_run_on_simulated_nodes_without_bad_requests(name: str) -> None:
    assert _unknown_nodes(SCENARIOS[name]) == []


@settings(max_examples=6, deadline=None, database=None, derandomize=True)
@given(command_sequences(nodes=3, max_commands=5, crash_restart=True))
def test_generated_sequences_are_valid_and_the_reference_conforms(scenario: Scenario) -> None:
    assert _unknown_nodes(scenario) == []
    results = judge(simulate(scenario), LOOPBACK, scenario.deadlines)
    assert not must_failures(results)


def test_explore_shrinks_a_failing_sequence_to_a_minimal_one() -> None:
    """A fake implementation that breaks once any node was stopped: Hypothesis finds it and
    shrinks the scenario to the single command that matters."""

    def run_and_judge(scenario: Scenario) -> list[Result]:
        stopped = any(isinstance(s, Call) and s.op == "stop" for s in scenario.steps)
        if not stopped:
            return []
        return [Result("RT-01", "MUST", "fail", "a stopped node breaks it", (1,))]

    found = explore(run_and_judge, max_examples=60, max_commands=8)
    assert found is not None
    assert found.text.endswith(": stop")
    assert sum(1 for s in found.steps if isinstance(s, Call) and s.op == "stop") == 1


def test_explore_returns_none_when_every_example_conforms() -> None:
    def run_and_judge(scenario: Scenario) -> list[Result]:
        results: list[Result] = judge(simulate(scenario), LOOPBACK, scenario.deadlines)
        return results

    assert explore(run_and_judge, nodes=3, max_commands=4, max_examples=3) is None


def test_live_reference_passes_every_applicable_requirement() -> None:
    """One scenario on real py-libp2p hosts through the runner: nothing fails, MUST or
    SHOULD."""
    if importlib.util.find_spec("libp2p") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("py-libp2p is missing in CI: the live conformance run cannot run")
        pytest.skip("py-libp2p is not installed (the reference adapter needs it)")
    from kadspec.conformance.runner import reference_command, run_scenario

    scenario = SCENARIOS["listener-side-join"]
    wanted = {"ADDR-06", "RT-04", "BOOT-05", "RT-01"}
    # Under heavy load a premise may not arise in time (inconclusive): one more try then. A
    # failure is never retried.
    for _ in range(2):
        run, notes = run_scenario(reference_command(), scenario)
        assert run.aborted is None, run.aborted
        results = judge(run, LOOPBACK, scenario.deadlines)
        assert [r for r in results if r.status == "fail"] == []
        passed = {r.requirement for r in results if r.status == "pass"}
        if wanted <= passed:
            break
    assert wanted <= passed, [(r.requirement, r.status, r.evidence, notes) for r in results]


def test_explore_adapter_runs_generated_scenarios_through_the_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runner is replaced by the simulation (same Run, no processes): the adapter passes
    command after command, so nothing is found."""
    from kadspec.conformance import runner
    from kadspec.conformance.scenarios import explore_adapter

    commands: list[tuple[str, ...]] = []

    def fake_run_scenario(command: Any, scenario: Scenario) -> Any:
        commands.append(tuple(command))
        return simulate(scenario), ()

    monkeypatch.setattr(runner, "run_scenario", fake_run_scenario)
    assert explore_adapter(["adapter", "--flag"], max_examples=2, max_commands=3) is None
    assert commands and set(commands) == {("adapter", "--flag")}
