"""Tests for kadspec.engines.explorer.

The explorer is held to an independent reference: a plain breadth-first search that calls only
the public functions (``enabled``, ``apply``, the checks). Its state, transition and depth
counts, and the length of every counterexample (a shortest one), must equal the reference's.
Numbers are never pinned: the model changes, the agreement must not (issue 6: a pinned count
is an alarm, not evidence).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from kadspec.engines.explorer import Counterexample, Snapshot, explore
from kadspec.models.actions import apply, enabled, quiescent
from kadspec.models.checks import check_quiescent, check_state, check_step
from kadspec.models.config import MODEL_TIMING, Config, ModeSetting, NodeConfig
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC, Policy, Retry
from kadspec.models.scenarios import SCENARIOS
from kadspec.models.state import World

#: scenarios small enough for the reference search in every test run
SMALL = ("client-joins", "nat-joins", "nat-server-joins", "mode-change", "join")


@attrs.frozen
class Reference:
    states: int
    transitions: int
    depth: int


def _reference(initial: World, policy: Policy) -> Reference:
    """Every reachable state by a plain level-by-level search over the public functions."""
    seen = {initial}
    level = [initial]
    transitions = depth = 0
    while level:
        following: list[World] = []
        for world in level:
            for action in enabled(world, policy):
                transitions += 1
                after = apply(world, policy, action)
                if after not in seen:
                    seen.add(after)
                    following.append(after)
        level = following
        depth += 1 if level else 0
    return Reference(len(seen), transitions, depth)


def _replay(found: Counterexample, policy: Policy) -> World:
    """Re-run a counterexample with the public transition function; return its last state."""
    world = found.initial
    for step in found.steps:
        assert step.action in enabled(world, policy), step.action
        world = apply(world, policy, step.action)
        assert world == step.world
    return world


# --- agreement with the reference search -------------------------------------------------------


@pytest.mark.parametrize("name", SMALL)
def test_counts_equal_the_reference_search(name: str) -> None:
    initial = SCENARIOS[name].initial()
    result = explore(initial, SPEC, keep_going=True)
    expected = _reference(initial, SPEC)
    assert (result.states, result.transitions, result.depth) == (
        expected.states,
        expected.transitions,
        expected.depth,
    )
    assert result.complete and sum(result.levels) == result.states


def _mutant_marks(name: str) -> list[pytest.MarkDecorator]:
    return [] if MUTANTS[name].scenario in SMALL else [pytest.mark.slow]


@pytest.mark.parametrize("name", [pytest.param(n, marks=_mutant_marks(n)) for n in MUTANTS])
def test_every_mutant_trace_is_shortest_and_replays(name: str) -> None:
    """The explorer's counterexample for a mutant replays with the public functions, breaks
    the expected requirement at its end, and no shorter trace breaks it (reference search)."""
    mutant = MUTANTS[name]
    initial = mutant.scenario_spec.initial()
    result = explore(initial, mutant.policy, target=mutant.expected)
    found = result.counterexample
    if found is None:
        pytest.skip(f"{name} is not caught by the explorer today (see kadspec mutants)")
    assert mutant.expected in found.requirements and not result.complete
    _replay(found, mutant.policy)
    shortest = _shortest_violation(initial, mutant.policy, mutant.expected, len(found.steps))
    assert shortest == len(found.steps)


@pytest.mark.parametrize(
    "name", ["identify-addresses-not-routed", "find-node-own-id-empty", "client-mode-serves"]
)
def test_counterexamples_replay_with_the_public_functions(name: str) -> None:
    mutant = MUTANTS[name]
    found = explore(
        mutant.scenario_spec.initial(), mutant.policy, target=mutant.expected
    ).counterexample
    assert found is not None
    last = _replay(found, mutant.policy)
    before = found.steps[-2].world if len(found.steps) > 1 else found.initial
    seen = check_state(last, mutant.policy) + check_step(
        before, found.steps[-1].action, last, mutant.policy
    )
    seen += check_quiescent(last, mutant.policy)
    assert mutant.expected in {v.requirement for v in seen}


# --- breadth first: shortest counterexamples ----------------------------------------------------


def _shortest_violation(initial: World, policy: Policy, target: str, limit: int) -> int | None:
    """The fewest steps to a violation of ``target``, by a plain level-by-level search that
    uses only the public functions (an independent reference for the explorer)."""
    level = [initial]
    seen = {initial}
    for depth in range(limit + 1):
        following: list[World] = []
        for world in level:
            if depth == 0 and any(v.requirement == target for v in check_state(world, policy)):
                return 0
            actions = enabled(world, policy)
            if quiescent(world, policy) and any(
                v.requirement == target for v in check_quiescent(world, policy)
            ):
                return depth
            for action in actions:
                after = apply(world, policy, action)
                seen_now = check_step(world, action, after, policy)
                if after not in seen:
                    seen_now += check_state(after, policy)
                if any(v.requirement == target for v in seen_now):
                    return depth + 1
                if after not in seen:
                    seen.add(after)
                    following.append(after)
        level = following
    return None


def _tiny() -> World:
    """A bootstrap server and one joiner that may provide: a handmade two-node network."""
    config = Config(
        nodes=(
            NodeConfig(id=0b1000, mode=ModeSetting.SERVER),
            NodeConfig(id=0b0011, bootstrap=(0,)),
        ),
        keys=(0b0110,),
        timing=MODEL_TIMING,
    ).validate()
    # horizon 5: a provide asked at 0 must have its outcome by the bound, 3 + 2 * 1 (BOOT-05)
    return World.initial(config, horizon=5, provides=((1, 0),))


@pytest.mark.parametrize(
    ("policy", "target"),
    [
        (Policy(rearm_refresh_when_empty=False), "BOOT-03"),
        (Policy(ready_requires_self_lookup=False), "BOOT-02"),
        (Policy(feed_identify_addresses=False), "ADDR-06"),
        (Policy(queue_provide_until_ready=False, retry=Retry.DROP_ERROR), "BOOT-05"),
    ],
)
def test_counterexamples_are_shortest(policy: Policy, target: str) -> None:
    initial = _tiny()
    result = explore(initial, policy, target=target)
    assert result.counterexample is not None
    assert len(result.counterexample.steps) == _shortest_violation(initial, policy, target, 40)
    _replay(result.counterexample, policy)


# --- limits and progress ------------------------------------------------------------------------


def test_max_states_stops_incomplete() -> None:
    full = explore(SCENARIOS["join"].initial(), SPEC)
    result = explore(SCENARIOS["join"].initial(), SPEC, max_states=1000)
    # the cap is checked after each expansion: it may be passed by one state's successors
    assert 1000 <= result.states < 1000 + 50 and result.states < full.states
    assert result.depth <= full.depth and result.transitions < full.transitions
    assert not result.complete and result.counterexample is None


def test_progress_is_reported() -> None:
    calls: list[Snapshot] = []
    result = explore(SCENARIOS["mode-change"].initial(), SPEC, progress=calls.append)
    assert calls and [c.states for c in calls] == sorted(c.states for c in calls)
    assert all(c.states <= result.states and c.depth <= result.depth for c in calls)
    # the frontier is what is found and not yet expanded: never more than the states found
    assert all(0 <= c.frontier <= c.states and c.memory_mb > 0 for c in calls)
    assert all(c.transitions <= result.transitions for c in calls)
    assert result.peak_memory_mb > 0 and result.cpu_seconds > 0


# --- honest results: why a run stopped, what it exercised, what it reached ----------------------


def test_a_state_cap_is_the_stop_reason() -> None:
    result = explore(SCENARIOS["join"].initial(), SPEC, max_states=500)
    assert result.stop_reason == "state-cap" and not result.complete


def test_a_time_cap_is_the_stop_reason() -> None:
    result = explore(SCENARIOS["join"].initial(), SPEC, max_seconds=1e-9)
    assert result.stop_reason == "time-cap" and not result.complete
    assert result.states < explore(SCENARIOS["join"].initial(), SPEC, max_states=10**9).states


def test_a_complete_run_counts_quiescent_states_and_levels() -> None:
    result = explore(SCENARIOS["mode-change"].initial(), SPEC)
    assert result.stop_reason == "complete" and result.complete
    assert result.quiescent_states > 0
    assert sum(result.levels) == result.states and len(result.levels) == result.depth + 1


def test_premises_are_counted_per_requirement() -> None:
    """Each count is how many states, transitions and quiescent states had the premise live;
    none exceeds what was explored, and a run with a provide exercises provide requirements
    that a run without one cannot."""
    join = explore(SCENARIOS["join"].initial(), SPEC)
    client = explore(SCENARIOS["client-joins"].initial(), SPEC)
    ceiling = join.states + join.transitions + join.quiescent_states
    assert join.exercised and all(0 < n <= ceiling for n in join.exercised.values())
    provide_only = {"PROV-01", "PROV-02"}
    assert provide_only & set(join.exercised)
    assert not provide_only & set(client.exercised)


def test_the_first_violation_stops_the_search_by_default() -> None:
    mutant = MUTANTS["provide-before-ready-error-dropped"]
    result = explore(mutant.scenario_spec.initial(), mutant.policy)
    assert result.stop_reason == "violation" and not result.complete
    assert result.counterexample is not None
    assert set(result.counterexamples) == set(result.counterexample.requirements)


def test_keep_going_explores_everything_and_keeps_a_shortest_trace_per_requirement() -> None:
    mutant = MUTANTS["provide-before-ready-error-dropped"]
    initial = mutant.scenario_spec.initial()
    stopped = explore(initial, mutant.policy)
    going = explore(initial, mutant.policy, keep_going=True)
    assert going.stop_reason == "complete" and going.complete
    assert going.states > stopped.states
    assert mutant.expected in going.counterexamples
    for rid, found in going.counterexamples.items():
        assert rid in found.requirements
        _replay(found, mutant.policy)
    first = going.counterexamples[mutant.expected]
    assert stopped.counterexample is not None
    assert len(first.steps) == len(stopped.counterexample.steps)


def test_stop_at_records_other_violations_and_goes_on() -> None:
    """A violation outside ``stop_at`` (a SHOULD, say) is recorded; the search goes on."""
    mutant = MUTANTS["provide-before-ready-error-dropped"]
    initial = mutant.scenario_spec.initial()
    result = explore(initial, mutant.policy, stop_at=frozenset({"NO-SUCH"}))
    assert result.stop_reason == "complete"
    assert mutant.expected in result.counterexamples
    stopping = explore(initial, mutant.policy, stop_at=frozenset({mutant.expected}))
    assert stopping.stop_reason == "violation"


@attrs.frozen
class _Reached:
    name: str
    test: Callable[[World], bool]

    def holds(self, world: World) -> bool:
        return self.test(world)


def test_witnesses_are_reached_or_not() -> None:
    always = _Reached("anything", lambda world: True)
    later = _Reached("a node is up", lambda world: any(n.up for n in world.nodes))
    never = _Reached("the clock runs backwards", lambda world: world.clock < 0)
    result = explore(SCENARIOS["client-joins"].initial(), SPEC, witnesses=(always, later, never))
    assert result.witnesses_reached == frozenset({"anything", "a node is up"})
