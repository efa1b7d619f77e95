"""Every mutant is caught by the explorer, violating the requirement it is expected to break."""

from __future__ import annotations

import pytest

from kadspec.models.actions import apply
from kadspec.models.checks import check_quiescent, check_state, check_step
from kadspec.models.explorer import explore
from kadspec.models.mutants import MUTANTS, NO_MUTANT
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
