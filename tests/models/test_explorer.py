"""Tests for kadspec.models.explorer.

The numbers below were measured on the unoptimized explorer (commit e26d955) and pin the model's
semantics: every scenario's reachable state and transition counts, and every mutant's shortest
counterexample. An optimization that changes any of them changed behaviour, not just speed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import attrs
import pytest

from kadspec.models.actions import apply, enabled
from kadspec.models.checks import check_quiescent, check_state, check_step
from kadspec.models.config import MODEL_TIMING, Config, ModeSetting, NodeConfig
from kadspec.models.explorer import Counterexample, explore
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC, Policy, Retry
from kadspec.models.scenarios import SCENARIOS
from kadspec.models.state import World

#: scenario -> (states, transitions, depth, complete, violated requirements) under SPEC
SCENARIO_BASELINE: dict[str, tuple[int, int, int, bool, tuple[str, ...]]] = {
    "join": (15247, 37750, 36, True, ()),
    "join-lossy": (24083, 72630, 36, True, ()),
    "join-disconnect": (13325, 36813, 27, True, ()),
    "join-crash": (26544, 128897, 32, True, ()),
    "client-joins": (139, 315, 13, True, ()),
    "nat-joins": (139, 315, 13, True, ()),
    "nat-server-joins": (139, 315, 13, True, ()),
    "mode-change": (3243, 10557, 20, True, ()),
    "trio": (35522, 133157, 39, True, ()),
    "trio-forgery": (81047, 350139, 34, True, ()),
    "expiry": (95432, 432380, 43, True, ()),
}
#: the scenarios that took more than five seconds on the unoptimized explorer
SLOW = {"join-crash", "trio-forgery", "expiry", "trio"}

#: mutant -> (trace length, states, transitions, depth, also violated, digest of the trace text)
MUTANT_BASELINE: dict[str, tuple[int, int, int, int, tuple[str, ...], str]] = {
    "provide-before-ready-error-dropped": (2, 6, 6, 1, (), "947f1f437160"),
    "fixed-retry-gives-up": (5, 102, 145, 5, ("BOOT-02",), "fc92f0badac4"),
    "identify-addresses-not-routed": (12, 880, 2090, 12, (), "65c1609798db"),
    "listener-address-dialable": (4, 16, 18, 3, (), "a2aeb0397550"),
    "admit-on-inbound-request": (7, 51, 83, 6, (), "48d89c36dc0b"),
    "admit-unknown-protocols": (3, 9, 9, 2, ("RT-02",), "feb3c13a4cd9"),
    "identify-after-disconnect": (5, 26, 32, 4, (), "7235e6d72a49"),
    "lookup-check-deadlock": (9, 142, 292, 9, ("ADDR-06",), "61bc2fb9d60f"),
    "find-node-own-id-empty": (17, 3506, 11396, 16, (), "3700c78ebc39"),
    "observed-address-promoted": (4, 15, 17, 3, (), "1eddd420a17b"),
    "mode-change-not-pushed": (14, 1896, 5750, 14, ("ADDR-01",), "e6ed6940fb4f"),
    "provide-success-without-acks": (13, 1582, 3766, 12, (), "0d8f0013a67d"),
    "foreign-provider-accepted": (6, 90, 144, 5, (), "c114465385ca"),
    "expired-records-served": (18, 14415, 52668, 17, (), "c31a1c16c39b"),
    "no-republish": (13, 1246, 2731, 12, (), "fb356c23ff43"),
    "no-per-request-deadline": (14, 1240, 3297, 14, (), "7a3f6086d469"),
    "client-mode-serves": (8, 208, 399, 7, (), "e4582ada1dc1"),
    "refresh-not-rearmed": (2, 5, 4, 1, (), "040f7fbf106b"),
    "empty-lookup-waits": (2, 5, 4, 1, (), "040f7fbf106b"),
    "ready-without-self-lookup": (5, 34, 45, 4, (), "ec96f76759c0"),
    "failed-peers-kept": (6, 94, 169, 5, (), "b668c480d0d8"),
    "provider-record-without-addresses": (12, 814, 1777, 11, (), "fec6262cfa8b"),
}


#: mutant -> digest of its counterexample's violations (requirement and detail, in order)
VIOLATION_DIGESTS: dict[str, str] = {
    "provide-before-ready-error-dropped": "83c65661ddca",
    "fixed-retry-gives-up": "7954a88e8867",
    "identify-addresses-not-routed": "0bf006af477f",
    "listener-address-dialable": "40c4268f136b",
    "admit-on-inbound-request": "5df6f311662a",
    "admit-unknown-protocols": "e3c04f113064",
    "identify-after-disconnect": "2b232c066205",
    "lookup-check-deadlock": "6df0d564c8d6",
    "find-node-own-id-empty": "8f227076bb65",
    "observed-address-promoted": "5540ea5b46fb",
    "mode-change-not-pushed": "69fc0db317f0",
    "provide-success-without-acks": "f36854a0f265",
    "foreign-provider-accepted": "42b25407d94d",
    "expired-records-served": "5714a81bed3f",
    "no-republish": "74d5a2cfcb9a",
    "no-per-request-deadline": "ea59ea2252f8",
    "client-mode-serves": "1cf3bd401e3c",
    "refresh-not-rearmed": "e96e5e942156",
    "empty-lookup-waits": "ec1b98e65a64",
    "ready-without-self-lookup": "88d9a176edf2",
    "failed-peers-kept": "204c55f9f783",
    "provider-record-without-addresses": "f6543bb3e375",
}


def _trace_digest(found: Counterexample) -> str:
    text = "\n".join(step.action.describe(step.world) for step in found.steps)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _violations_digest(found: Counterexample) -> str:
    text = "\n".join(f"{v.requirement}: {v.detail}" for v in found.violations)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _replay(found: Counterexample, policy: Policy) -> World:
    """Re-run a counterexample with the public transition function; return its last state."""
    world = found.initial
    for step in found.steps:
        assert step.action in enabled(world, policy), step.action
        world = apply(world, policy, step.action)
        assert world == step.world
    return world


def _marks(name: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] if name in SLOW else []


# --- the semantic baseline -----------------------------------------------------------------------


def test_baseline_covers_every_scenario_and_mutant() -> None:
    assert set(SCENARIO_BASELINE) == set(SCENARIOS)
    assert set(MUTANT_BASELINE) == set(MUTANTS) == set(VIOLATION_DIGESTS)


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in SCENARIO_BASELINE])
def test_scenario_baseline(name: str) -> None:
    result = explore(SCENARIOS[name].initial(), SPEC)
    found = result.counterexample.requirements if result.counterexample else ()
    assert (
        result.states,
        result.transitions,
        result.depth,
        result.complete,
        found,
    ) == SCENARIO_BASELINE[name]


@pytest.mark.parametrize("name", list(MUTANT_BASELINE))
def test_mutant_baseline(name: str) -> None:
    mutant = MUTANTS[name]
    result = explore(mutant.scenario_spec.initial(), mutant.policy, target=mutant.expected)
    found = result.counterexample
    assert found is not None, f"{name} not detected"
    assert mutant.expected in found.requirements
    length, states, transitions, depth, also, digest = MUTANT_BASELINE[name]
    assert (
        len(found.steps),
        result.states,
        result.transitions,
        result.depth,
        tuple(sorted(result.also_violated)),
        _trace_digest(found),
    ) == (length, states, transitions, depth, also, digest)
    assert _violations_digest(found) == VIOLATION_DIGESTS[name]
    assert not result.complete


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
            quiet = not any(world.network) and not any(
                a.kind in ("dial_bootstrap", "query", "dial_back", "tick") for a in actions
            )
            if quiet and any(v.requirement == target for v in check_quiescent(world, policy)):
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
    return World.initial(config, horizon=3, provides=((1, 0),))


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
    result = explore(SCENARIOS["join"].initial(), SPEC, max_states=1000)
    assert (result.states, result.transitions, result.depth) == (1000, 2211, 11)
    assert not result.complete
    assert result.counterexample is None


def test_progress_is_reported() -> None:
    calls: list[tuple[int, int, int]] = []
    result = explore(SCENARIOS["mode-change"].initial(), SPEC, progress=lambda *a: calls.append(a))
    assert calls == [
        (1001, 2385, 10),
        (1002, 2389, 10),
        (1002, 2393, 10),
        (1002, 2397, 10),
        (2000, 5689, 12),
        (2001, 5692, 12),
        (2001, 5695, 12),
        (3000, 9436, 15),
        (3001, 9439, 15),
        (3001, 9442, 15),
    ]
    assert calls[-1][0] <= result.states


# --- honest results: why a run stopped, what it exercised, what it reached ----------------------


def test_a_state_cap_is_the_stop_reason() -> None:
    result = explore(SCENARIOS["join"].initial(), SPEC, max_states=500)
    assert result.stop_reason == "state-cap" and not result.complete


def test_a_time_cap_is_the_stop_reason() -> None:
    result = explore(SCENARIOS["join"].initial(), SPEC, max_seconds=1e-9)
    assert result.stop_reason == "time-cap" and not result.complete
    assert result.states < SCENARIO_BASELINE["join"][0]


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
