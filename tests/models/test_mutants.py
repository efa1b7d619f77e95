"""Every mutant is caught by the explorer, violating the requirement it is expected to break."""

from __future__ import annotations

import pytest

from kadspec.engines.explorer import explore
from kadspec.models.actions import apply
from kadspec.models.checks import check_quiescent, check_state, check_step
from kadspec.models.mutants import MUTANTS, NO_MUTANT, SHARED_CATCH
from kadspec.models.policy import SPEC
from kadspec.models.scenarios import SCENARIOS
from kadspec.reports import hunt_with_explorer
from kadspec.spec import requirement, requirements


def test_at_least_fifteen_mutants_with_sources_and_real_requirements() -> None:
    assert len(MUTANTS) >= 15
    for mutant in MUTANTS.values():
        assert mutant.source and mutant.expected in requirements()
        assert mutant.policy != SPEC, f"{mutant.name} does not differ from the spec"
        assert mutant.kind in ("bug", "robustness")


def test_every_requirement_has_a_mutant_or_a_stated_reason() -> None:
    shown = {m.expected for m in MUTANTS.values()}
    assert set(requirements()) == shown | set(NO_MUTANT)
    assert not shown & set(NO_MUTANT), "a requirement with a mutant needs no excuse"
    assert all(len(reason) > 40 for reason in NO_MUTANT.values())


def test_designs_of_maintained_implementations_are_robustness_mutants_of_shoulds() -> None:
    for name in ("ready-without-self-lookup", "failed-peers-kept"):
        mutant = MUTANTS[name]
        assert mutant.kind == "robustness"
        assert requirement(mutant.expected).level == "SHOULD"


def test_a_mutant_forms_its_starting_network_under_its_own_policy() -> None:
    mutant = MUTANTS["bucket-overfilled"]
    assert mutant.scenario_spec.prelude_policy is mutant.policy
    assert SCENARIOS[mutant.scenario].prelude_policy is None


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_detected_and_its_trace_replays(name: str) -> None:
    mutant = MUTANTS[name]
    run = hunt_with_explorer(mutant, max_states=400_000)
    assert run.detected, f"{name} was not detected"
    assert mutant.expected in run.violated
    counterexample = run.counterexample
    assert counterexample is not None
    # Replay the trace through the model from scratch: the same states, the same violation.
    world = mutant.scenario_spec.initial()
    seen: set[str] = set()
    for step in counterexample.steps:
        after = apply(world, mutant.policy, step.action)
        assert after == step.world
        seen |= {v.requirement for v in check_step(world, step.action, after, mutant.policy)}
        world = after
    seen |= {v.requirement for v in check_state(world, mutant.policy)}
    seen |= {v.requirement for v in check_quiescent(world, mutant.policy)}
    assert mutant.expected in seen


@pytest.mark.parametrize(
    "scenario",
    [
        "client-joins",
        "nat-joins",
        "nat-provides",
        "nat-server-joins",
        "mode-change",
        "join",
        "crowd",
    ],
)
def test_the_spec_survives_the_mutants_scenarios_and_reaches_their_witnesses(scenario: str) -> None:
    chosen = SCENARIOS[scenario]
    result = explore(chosen.initial(), SPEC, keep_going=True, witnesses=chosen.witnesses)
    assert result.complete
    assert not result.counterexamples
    assert {w.name for w in chosen.witnesses} <= result.witnesses_reached


@pytest.mark.slow
def test_switching_off_a_requirements_checks_lets_some_mutant_escape() -> None:
    """Each requirement's checks are necessary: switched off (the requirement's violations
    ignored), some mutant is caught by nothing else. Each mutant's scenario is explored in full
    (``keep_going``), so a mutant's violated set is everything any check finds in it; a mutant
    escapes when R's checks are off exactly when that set is {R}. The requirements for which no
    mutant is caught by them alone are SHARED_CATCH's, each with its reason, and that list is
    recomputed here so it cannot go stale."""
    violated = {}
    for name, mutant in MUTANTS.items():
        run = explore(mutant.scenario_spec.initial(), mutant.policy, keep_going=True)
        assert run.stop_reason == "complete", f"{name}: {run.stop_reason}"
        violated[name] = frozenset(run.counterexamples)
    sole = {next(iter(found)) for found in violated.values() if len(found) == 1}
    shown = {m.expected for m in MUTANTS.values()}
    assert shown - sole == set(SHARED_CATCH), "SHARED_CATCH no longer matches the mutants"
    for rid in SHARED_CATCH:
        catchers = [n for n, m in MUTANTS.items() if m.expected == rid]
        assert all(rid in violated[n] for n in catchers), f"{rid}'s mutant does not break it"
