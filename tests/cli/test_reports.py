"""Requirement statuses and exit codes, from explorations built by hand (kadspec.reports).

A status is honest: *holds* only where a run ended and the premise was live, *violated* with a
counterexample, *not exercised*, or *unchecked*; MUST and SHOULD violations are kept apart.
The last test runs every scenario and is the vacuity report's own check (issue 6 item 4).
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest

from kadspec.engines.explorer import Counterexample, Exploration, explore
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC
from kadspec.models.scenarios import SCENARIOS, Scenario
from kadspec.reports import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_VIOLATION,
    SIZING_STATES,
    CheckReport,
    ScenarioRun,
    checks_by_requirement,
    combine,
    is_must,
    run_check,
    work_ahead,
)
from kadspec.spec import requirements

SCENARIO = SCENARIOS["client-joins"]
MUST = next(
    r for r in requirements() if is_must(r) and "progress:" not in str(checks_by_requirement()[r])
)
SHOULD = next(r for r in requirements() if not is_must(r) and checks_by_requirement()[r])
PROGRESS = next(
    r for r, c in checks_by_requirement().items() if any(n.startswith("progress:") for n in c)
)


def _trace() -> Counterexample:
    return Counterexample(SCENARIO.initial(), (), ())


def _run(scenario: Scenario = SCENARIO, **fields: Any) -> ScenarioRun:
    base = Exploration(
        states=10,
        transitions=20,
        depth=3,
        seconds=0.1,
        complete=True,
        counterexample=None,
        exercised={rid: 1 for rid in requirements()},
        quiescent_states=2,
        witnesses_reached=frozenset(w.name for w in getattr(scenario, "witnesses", ())),
    )
    if fields.get("stop_reason", "complete") != "complete":
        fields["complete"] = False
    return ScenarioRun(scenario, attrs.evolve(base, **fields))


def _report(*runs: ScenarioRun, strict: bool = False) -> CheckReport:
    return CheckReport("spec", runs, (), 0.1, strict=strict)


def test_combine_prefers_violated_then_holds_then_unchecked() -> None:
    assert combine(["holds", "violated"]) == "violated"
    assert combine(["not exercised", "holds", "unchecked"]) == "holds"
    assert combine(["not exercised", "unchecked"]) == "unchecked"
    assert combine(["not exercised"]) == "not exercised"
    assert combine([]) == "unchecked"


def test_a_complete_exercised_run_holds_and_exits_0() -> None:
    report = _report(_run())
    assert set(report.status().values()) == {"holds"}
    assert report.exit_code == EXIT_OK


def test_a_premise_never_live_is_not_exercised_and_still_exits_0() -> None:
    exercised = {rid: 1 for rid in requirements() if rid != MUST}
    report = _report(_run(exercised=exercised))
    assert report.status()[MUST] == "not exercised"
    assert report.exit_code == EXIT_OK


def test_a_capped_run_leaves_everything_unchecked_and_exits_3() -> None:
    report = _report(_run(stop_reason="state-cap"))
    config_only = {
        r
        for r, c in checks_by_requirement().items()
        if c and all(n.startswith("config:") for n in c)
    }
    assert {s for r, s in report.status().items() if r not in config_only} == {"unchecked"}
    assert report.exit_code == EXIT_INCOMPLETE and report.incomplete == (SCENARIO.name,)


def test_progress_without_a_quiescent_state_is_unchecked() -> None:
    report = _report(_run(quiescent_states=0))
    assert report.status()[PROGRESS] == "unchecked"
    assert report.exit_code == EXIT_INCOMPLETE


def test_a_must_violation_exits_1_and_the_rest_is_unchecked() -> None:
    report = _report(_run(stop_reason="violation", counterexamples={MUST: _trace()}))
    status = report.status()
    assert status[MUST] == "violated"
    assert report.violated() == ([MUST], [])
    assert report.exit_code == EXIT_VIOLATION
    assert status[PROGRESS] == "unchecked"


@pytest.mark.parametrize(("strict", "code"), [(False, EXIT_OK), (True, EXIT_VIOLATION)])
def test_a_should_violation_is_listed_and_fails_only_when_strict(strict: bool, code: int) -> None:
    report = _report(_run(counterexamples={SHOULD: _trace()}), strict=strict)
    assert report.status()[SHOULD] == "violated"
    assert report.exit_code == code
    summary = report.to_json()["summary"]
    assert summary["violated_should"] == [SHOULD] and summary["violated_must"] == []


def test_holding_in_one_scenario_is_enough() -> None:
    other = attrs.evolve(SCENARIO, name="other")
    report = _report(_run(), _run(other, exercised={}))
    assert set(report.status().values()) == {"holds"}


def test_an_unreached_witness_fails_a_complete_run() -> None:
    @attrs.frozen
    class Never:
        name: str = "never"

        def holds(self, world: object) -> bool:
            return False

    scenario = _with_witnesses(SCENARIO, (Never(),))
    assert _report(_run(scenario, witnesses_reached=frozenset())).exit_code == EXIT_VIOLATION
    reached = _run(scenario, witnesses_reached=frozenset({"never"}))
    assert _report(reached).exit_code == EXIT_OK
    capped = _run(scenario, stop_reason="time-cap", witnesses_reached=frozenset())
    assert _report(capped).witnesses_missed() == {}


def _with_witnesses(scenario: Scenario, witnesses: tuple[Any, ...]) -> Any:
    if "witnesses" in attrs.fields_dict(Scenario):
        changes: dict[str, Any] = {"witnesses": witnesses}
        return attrs.evolve(scenario, **changes)

    @attrs.frozen
    class WithWitnesses(Scenario):  # until scenarios carry witnesses of their own
        witnesses: tuple[Any, ...] = ()

    return WithWitnesses(**attrs.asdict(scenario, recurse=False), witnesses=witnesses)


@pytest.mark.slow
def test_every_requirement_is_exercised_and_every_witness_reached_under_the_spec() -> None:
    """The vacuity report over every scenario: no requirement checked vacuously."""
    report = run_check(SPEC, list(SCENARIOS.values()), keep_going=True)
    status = report.status()
    assert [r for r, s in status.items() if s == "not exercised"] == []
    assert report.witnesses_missed() == {}
    assert report.exit_code == EXIT_OK, report.to_json()["summary"]


def test_progress_names_states_depth_rate_and_memory() -> None:
    notes: list[str] = []
    run_check(SPEC, [SCENARIOS["mode-change"]], progress=notes.append)
    assert notes
    shape = r"exploring mode-change: [\d,]+ states, depth \d+, frontier [\d,]+, [\d,]+ states/s, "
    assert re.fullmatch(shape + r"[\d,]+ MB", notes[-1])


def test_caps_are_reported_and_a_time_cap_ends_the_run() -> None:
    report = run_check(
        SPEC, [SCENARIOS["join"], SCENARIOS["trio"]], max_states=50, max_seconds=1e-9
    )
    assert report.caps.to_json() == {"max_states": 50, "max_seconds": 1e-9}
    assert report.runs[0].exploration.stop_reason in ("time-cap", "state-cap")
    assert report.exit_code == EXIT_INCOMPLETE
    if report.runs[0].exploration.stop_reason == "time-cap":
        assert report.not_run == ("trio",)


def test_workers_give_the_same_report_as_one_process() -> None:
    chosen = [SCENARIOS[n] for n in ("client-joins", "nat-joins", "mode-change")]
    alone = run_check(SPEC, chosen, keep_going=True)
    shared = run_check(SPEC, chosen, keep_going=True, jobs=2)
    assert [r.scenario.name for r in shared.runs] == [s.name for s in chosen]
    assert [r.exploration.states for r in shared.runs] == [r.exploration.states for r in alone.runs]
    assert shared.status() == alone.status() and shared.exit_code == alone.exit_code


def test_jobs_finish_small_scenarios_in_the_sizing_pass_and_run_the_rest_after() -> None:
    """client-joins (118 states) and mode-change (3,893) end within the sizing pass; trio
    (35,522) outgrows it and is explored again in full, after them: it reports last, and its
    worker's progress is relayed live while it runs."""
    chosen = [SCENARIOS[n] for n in ("client-joins", "trio", "mode-change")]
    notes: list[str] = []
    shared = run_check(SPEC, chosen, keep_going=True, jobs=2, progress=notes.append)
    alone = run_check(SPEC, chosen, keep_going=True)
    done = [n for n in notes if n.startswith("explored ")]
    assert len(done) == 3 and "last: trio" in done[-1]
    assert [n for n in notes if "scenarios ended within" in n] == [
        "2 of 3 scenarios ended within 5,000 states; exploring the other 1 in full, the most "
        "work ahead first: trio"
    ]
    live = r"exploring trio: [\d,]+ states, depth \d+, frontier [\d,]+, [\d,]+ states/s, "
    live += r"[\d,]+ MB \(2 of 3 scenarios done, 2 workers\)"
    assert any(re.fullmatch(live, n) for n in notes), notes
    assert [r.exploration.levels for r in shared.runs] == [r.exploration.levels for r in alone.runs]
    assert all(r.exploration.complete for r in shared.runs)
    assert shared.status() == alone.status()


def test_jobs_honour_a_state_cap_below_the_sizing_pass_as_one_process_does() -> None:
    chosen = [SCENARIOS["join"], SCENARIOS["trio"]]
    report = run_check(SPEC, chosen, max_states=100, jobs=2)
    alone = run_check(SPEC, chosen, max_states=100)
    assert [r.exploration.stop_reason for r in report.runs] == ["state-cap", "state-cap"]
    assert [r.exploration.levels for r in report.runs] == [r.exploration.levels for r in alone.runs]
    assert report.exit_code == EXIT_INCOMPLETE


def test_jobs_keep_fingerprints_and_refuse_a_second_way_to_partition() -> None:
    chosen = [SCENARIOS["client-joins"], SCENARIOS["nat-joins"]]
    report = run_check(SPEC, chosen, jobs=2, fingerprints=True)
    assert [r.exploration.fingerprints for r in report.runs] == [True, True]
    with pytest.raises(ValueError, match="workers=2"):
        run_check(SPEC, chosen, jobs=2, workers=2)
    with pytest.raises(ValueError, match="ray='local'"):
        run_check(SPEC, chosen, jobs=2, ray="local")


def test_the_largest_scenario_scores_the_most_work_ahead_at_the_sizing_cap() -> None:
    """crowd-unresponsive-find (414,533 states) against trio (35,522), both cut at the
    sizing cap: the order of the full runs starts the larger one first."""
    cut = {
        name: explore(SCENARIOS[name].initial(), SPEC, max_states=SIZING_STATES, keep_going=True)
        for name in ("trio", "crowd-unresponsive-find")
    }
    assert all(e.stop_reason == "state-cap" for e in cut.values())
    assert work_ahead(cut["crowd-unresponsive-find"]) > work_ahead(cut["trio"])
    assert work_ahead(explore(SCENARIOS["client-joins"].initial(), SPEC, max_states=3)) == float(
        "inf"
    )


def test_a_violation_in_a_worker_fails_the_run() -> None:
    mutant = MUTANTS["identify-addresses-not-routed"]
    chosen = [SCENARIOS[mutant.scenario], SCENARIOS["client-joins"]]
    report = run_check(mutant.policy, chosen, jobs=2)
    assert mutant.expected in report.counterexamples()
    assert report.exit_code == (EXIT_VIOLATION if is_must(mutant.expected) else EXIT_OK)
