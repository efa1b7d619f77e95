"""Tests for kadspec.engines.stateful: the spec survives random runs, and hunts catch mutants.

The spec machines run under the settings profile named by HYPOTHESIS_PROFILE (default ``ci``).
The hunts use fixed seeds and budgets; each counterexample is replayed here through the model,
independently of the machine, to show it is a real run that breaks the expected requirement.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from kadspec.engines import stateful
from kadspec.engines.explorer import Counterexample
from kadspec.engines.stateful import (
    NO_QUIESCENCE,
    RULE_FOR_KIND,
    KademliaMachine,
    ViolationFound,
    describe_counterexample,
    hunt,
    machine_for,
    minimize,
    register_profiles,
)
from kadspec.models.actions import ACTIONS, apply, enabled, quiescent
from kadspec.models.checks import check_quiescent, check_state, check_step
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC, Policy
from kadspec.models.scenarios import SCENARIOS, Scenario

PROFILE = register_profiles()

TestSpecJoin = machine_for(SCENARIOS["join"], SPEC).TestCase
TestSpecModeChange = machine_for(SCENARIOS["mode-change"], SPEC).TestCase
TestSpecTrio = machine_for(SCENARIOS["trio"], SPEC).TestCase
TestSpecNatJoins = machine_for(SCENARIOS["nat-joins"], SPEC).TestCase

#: every mutant is found by a seeded hunt with the budget verify uses (stateful.HUNT_EXAMPLES
#: runs of stateful.HUNT_STEPS steps): targeted rules, not more examples, reach the deep ones
FOUND_BY_HUNTING = sorted(MUTANTS)


def replayed_violations(
    scenario: Scenario, policy: Policy, counterexample: Counterexample
) -> set[str]:
    """Re-apply the counterexample's actions from the scenario's start; return what breaks at
    its last step (state, transition and, when quiescent, progress)."""
    world = scenario.initial()
    assert world == counterexample.initial
    assert counterexample.steps, "a hunt's counterexample has at least one step"
    broken: set[str] = set()
    for number, step in enumerate(counterexample.steps, 1):
        assert step.action in enabled(world, policy), f"step {number} was not enabled"
        after = apply(world, policy, step.action)
        assert after == step.world, f"step {number} does not lead where the trace says"
        broken = {v.requirement for v in check_step(world, step.action, after, policy)}
        world = after
    broken |= {v.requirement for v in check_state(world, policy)}
    if quiescent(world, policy):
        broken |= {v.requirement for v in check_quiescent(world, policy)}
    return broken


def test_every_action_kind_has_a_rule() -> None:
    assert set(RULE_FOR_KIND) == set(ACTIONS)
    setup = KademliaMachine.setup_state()  # type: ignore[no-untyped-call,unused-ignore]
    rules = {r.function.__name__ for r in setup.rules}
    assert set(RULE_FOR_KIND.values()) <= rules
    assert "settle" in rules


def test_profiles_are_registered_and_one_is_loaded() -> None:
    for name in ("ci", "dev", "thorough"):
        assert settings.get_profile(name).deadline is None
    assert settings.get_current_profile_name() == PROFILE


def test_rules_take_only_enabled_actions() -> None:
    machine = machine_for(SCENARIOS["join"], SPEC)()
    machine.user_provides(node=1, key=0)  # n1 is down: providing is not enabled yet
    assert machine.steps == []
    machine.start_node(node=1)
    machine.user_provides(node=1, key=0)
    assert [step.action.describe(machine.initial) for step in machine.steps] == [
        "n1 starts",
        "the user asks n1 to provide key0",
    ]


def test_a_settle_that_never_settles_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stateful, "SETTLE_BOUND", 1)
    machine = machine_for(SCENARIOS["join"], SPEC)()
    machine.start_node(node=0)
    machine.start_node(node=1)
    with pytest.raises(ViolationFound) as failure:
        machine.settle(schedule=0)
    assert failure.value.counterexample.requirements == (NO_QUIESCENCE,)
    assert "without becoming quiescent" in str(failure.value)


@pytest.mark.parametrize("name", FOUND_BY_HUNTING)
def test_hunting_finds_the_mutant_and_its_counterexample_replays(name: str) -> None:
    mutant = MUTANTS[name]
    found = hunt(mutant.scenario_spec, mutant.policy, mutant.expected, seed=0)
    assert found.detected, f"{name}: no violation of {mutant.expected} in {found.examples} runs"
    assert found.counterexample is not None
    assert mutant.expected in found.violated
    assert found.counterexample.requirements == (mutant.expected,)
    assert found.examples_to_detect is not None and found.examples_to_detect <= found.examples
    assert mutant.expected in replayed_violations(
        mutant.scenario_spec, mutant.policy, found.counterexample
    )


def test_hunting_the_spec_finds_nothing() -> None:
    # The control for the test above: the same search, with the same seed and budget, under
    # the specification instead of a mutant.
    scenario = SCENARIOS["join"]
    found = hunt(scenario, SPEC, "BOOT-05", max_examples=200, seed=0, stateful_step_count=10)
    assert not found.detected
    assert found.counterexample is None
    assert found.violated == ()
    assert found.examples >= 200


def test_a_mutant_machine_fails_with_a_counterexample_for_people() -> None:
    mutant = MUTANTS["refresh-not-rearmed"]
    machine = machine_for(mutant.scenario_spec, mutant.policy)
    with pytest.raises(ViolationFound) as failure:
        run_state_machine_as_test(  # type: ignore[no-untyped-call,unused-ignore]
            machine,
            settings=settings(
                max_examples=100,
                stateful_step_count=20,
                derandomize=True,
                database=None,
                deadline=None,
                phases=(Phase.generate, Phase.shrink),
                suppress_health_check=list(HealthCheck),
            ),
        )
    message = str(failure.value)
    assert message.startswith("BOOT-03 violated in scenario join after ")
    assert "\n   1. n0 starts\n" in message or "\n   1. n1 starts\n" in message
    assert "time passes to the next timer (now t=3)\n" in message
    assert "runs with no refresh timer armed" in message
    shrunk = failure.value.counterexample
    assert "BOOT-03" in replayed_violations(mutant.scenario_spec, mutant.policy, shrunk)
    # Composite rules take several steps in one draw, which Hypothesis cannot cut inside;
    # minimize() cuts the run itself, and what it keeps still breaks BOOT-03 at the refresh.
    short = minimize(shrunk, mutant.policy, "BOOT-03")
    assert len(short.steps) <= len(shrunk.steps)
    assert short.steps[-1].action.kind == "tick" and short.steps[-1].world.clock == 3
    assert "BOOT-03" in replayed_violations(mutant.scenario_spec, mutant.policy, short)
    assert describe_counterexample(short, scenario="join").startswith("BOOT-03 violated")
