"""The model as a Hypothesis rule-based state machine, and a mutant hunt built on it.

The explorer walks every state of a scenario breadth first; this machine samples long, random
runs of the same transition table instead, and Hypothesis shrinks a failing run to a short one.
The machine applies only actions that :func:`~kadspec.models.actions.enabled` lists, so it
cannot reach a state the model's guards forbid. After every action it runs the step checks on
the transition and every invariant on the new state; every quiescent state it reaches gets the
progress properties, and its ``settle`` rule drives the protocol to quiescence to get there.

A violation raises :class:`ViolationFound`, an ``AssertionError`` whose message is the run as
numbered steps and which carries the run as the explorer's :class:`Counterexample`.
:func:`hunt` runs the machine under a policy (a mutant) and returns the shrunk counterexample,
cut further by :func:`minimize`, which deletes steps while a :func:`replay` of the run through
the model still breaks the requirement. Settings profiles for the tests: :func:`register_profiles`.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import attrs
import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from kadspec.engines.explorer import Counterexample, Step
from kadspec.models.actions import ACTIONS, Action, apply, enabled, is_protocol, quiescent
from kadspec.models.checks import Violation, check_quiescent, check_state, check_step
from kadspec.models.config import ModeSetting
from kadspec.models.lookup import next_candidate
from kadspec.models.policy import Policy
from kadspec.models.scenarios import Scenario
from kadspec.models.state import Kind, World

__all__ = [
    "HUNT_EXAMPLES",
    "HUNT_STEPS",
    "NO_QUIESCENCE",
    "PROFILES",
    "RULE_FOR_KIND",
    "SETTLE_BOUND",
    "HuntResult",
    "KademliaMachine",
    "ViolationFound",
    "describe_counterexample",
    "hunt",
    "machine_for",
    "minimize",
    "register_profiles",
    "replay",
]

#: protocol steps one ``settle`` may take before the run counts as not settling
SETTLE_BOUND = 500
#: the default budget of :func:`hunt`: runs, and rule steps per run. Every mutant is found
#: within it (tests/engines/test_stateful.py); its targeted rules, not the number of runs, are
#: what reaches the deep interleavings
HUNT_EXAMPLES = 300
HUNT_STEPS = 20
#: the pseudo-requirement reported when ``settle`` hits its bound. Time stops at the scenario's
#: horizon, so an endless run of protocol steps is the protocol looping without time passing:
#: a livelock, a liveness bug. (The longest run to quiescence in the shipped scenarios, spec
#: and mutants, is under 50 steps, so the bound is not what stops it.)
NO_QUIESCENCE = "no-quiescence"


class ViolationFound(AssertionError):
    """A requirement broken in a run of the machine; the message is the run, for people."""

    def __init__(self, counterexample: Counterexample, scenario: str) -> None:
        super().__init__(describe_counterexample(counterexample, scenario=scenario))
        self.counterexample = counterexample


def describe_counterexample(counterexample: Counterexample, *, scenario: str = "") -> str:
    """The run as numbered steps, then each requirement broken and how."""
    where = f" in scenario {scenario}" if scenario else ""
    ids = ", ".join(counterexample.requirements)
    lines = [f"{ids} violated{where} after {len(counterexample.steps)} steps:"]
    before = counterexample.initial
    for number, step in enumerate(counterexample.steps, 1):
        said = step.action.describe(before)
        if step.action.kind == "tick":
            said += f" (now t={step.world.clock})"
        lines.append(f"  {number:>2}. {said}")
        before = step.world
    lines += [f"  {v.requirement}: {v.detail}" for v in counterexample.violations]
    return "\n".join(lines)


def _can(kind: str) -> Callable[[KademliaMachine], bool]:
    """A precondition: some instance of ``kind`` is enabled."""

    def can(machine: KademliaMachine) -> bool:
        return any(action.kind == kind for action in machine.enabled_actions())

    can.__name__ = f"can_{kind}"
    return can


class KademliaMachine(RuleBasedStateMachine):
    """Random runs of the model, one rule per action kind (see :func:`machine_for`).

    Rules that name nodes or keys draw them from the ``nodes`` and ``keys`` bundles and take the
    enabled action that matches; when the drawn node has none (another node does, which is what
    the precondition saw), the step does nothing and is left out of the trace.
    """

    scenario: ClassVar[Scenario]
    policy: ClassVar[Policy]
    #: a requirement ID: only its violations fail a run; others are noted and the run goes on
    target: ClassVar[str | None] = None
    #: the hunt's bookkeeping, shared by every run of one class (None outside a hunt)
    recorder: ClassVar[_Recorder | None] = None

    nodes = Bundle[int]("nodes")
    keys = Bundle[int]("keys")

    def __init__(self) -> None:
        super().__init__()
        self.initial = self.world = self.scenario.initial()
        self.steps: list[Step] = []
        self._enabled: tuple[World, list[Action]] | None = None
        self._progress_checked: World | None = None
        if self.recorder is not None:
            self.recorder.examples += 1

    # --- the model, guarded ---------------------------------------------------------------------

    def enabled_actions(self) -> list[Action]:
        """``enabled(world, policy)``, computed once per state."""
        if self._enabled is None or self._enabled[0] is not self.world:
            self._enabled = (self.world, enabled(self.world, self.policy))
        return self._enabled[1]

    def _take_first(self, kind: str, matches: Callable[[Action], bool]) -> None:
        """Apply the first enabled ``kind`` action that ``matches``; none: do nothing."""
        for action in self.enabled_actions():
            if action.kind == kind and matches(action):
                self._apply(action)
                return

    def _take_nth(self, kind: str, matches: Callable[[Action], bool], pick: int) -> None:
        candidates = [a for a in self.enabled_actions() if a.kind == kind and matches(a)]
        if candidates:
            self._apply(candidates[pick % len(candidates)])

    def _apply(self, action: Action) -> None:
        before = self.world
        after = apply(before, self.policy, action)
        self.world = after
        self.steps.append(Step(action, after))
        self._judge(check_step(before, action, after, self.policy))

    def _judge(self, violations: Iterable[Violation]) -> None:
        """Raise ViolationFound for the violations that count; note the others."""
        found = list(violations)
        if not found:
            return
        counted = [v for v in found if self.target in (None, v.requirement)]
        if self.recorder is not None:
            self.recorder.note(found, counted)
        if counted:
            raise ViolationFound(
                Counterexample(self.initial, tuple(self.steps), tuple(counted)), self.scenario.name
            )

    def _check_progress(self) -> None:
        if self._progress_checked is self.world:
            return
        self._progress_checked = self.world
        self._judge(check_quiescent(self.world, self.policy))

    # --- bundles --------------------------------------------------------------------------------

    @initialize(target=nodes)
    def name_nodes(self) -> Any:
        return multiple(*range(len(self.world.nodes)))

    @initialize(target=keys)
    def name_keys(self) -> Any:
        return multiple(*range(len(self.world.config.keys)))

    # --- environment: the user, the operator, time ----------------------------------------------

    @precondition(_can("start"))
    @rule(node=nodes)
    def start_node(self, node: int) -> None:
        self._take_first("start", lambda a: a.node == node)

    @precondition(lambda self: bool(self.world.budget.starts))
    @rule()
    def start_everyone(self) -> None:
        """Start every node not started yet, in order (one draw instead of one per node)."""
        for node in sorted(self.world.budget.starts):
            self._take_first("start", lambda a, node=node: a.node == node)  # type: ignore[misc]

    @precondition(_can("provide"))
    @rule(node=nodes, key=keys)
    def user_provides(self, node: int, key: int) -> None:
        self._take_first("provide", lambda a: (a.node, a.key) == (node, key))

    @precondition(_can("find_providers"))
    @rule(node=nodes, key=keys)
    def user_finds_providers(self, node: int, key: int) -> None:
        self._take_first("find_providers", lambda a: (a.node, a.key) == (node, key))

    @precondition(_can("set_mode"))
    @rule(node=nodes, setting=st.sampled_from(ModeSetting))
    def operator_sets_mode(self, node: int, setting: ModeSetting) -> None:
        self._take_first("set_mode", lambda a: (a.node, a.setting) == (node, setting))

    @precondition(_can("tick"))
    @rule()
    def time_passes(self) -> None:
        self._take_first("tick", lambda a: True)

    # --- environment: faults, each spending the scenario's budget -------------------------------

    @precondition(_can("crash"))
    @rule(node=nodes)
    def crash_node(self, node: int) -> None:
        self._take_first("crash", lambda a: a.node == node)

    @precondition(_can("restart"))
    @rule(node=nodes)
    def restart_node(self, node: int) -> None:
        self._take_first("restart", lambda a: a.node == node)

    @precondition(_can("disconnect"))
    @rule(node=nodes, peer=nodes)
    def close_connection(self, node: int, peer: int) -> None:
        self._take_first("disconnect", lambda a: {a.node, a.peer} == {node, peer})

    @precondition(_can("lose"))
    @rule(pick=st.integers(0, 7))
    def lose_message(self, pick: int) -> None:
        """Lose the head of one channel: drawn by position among the channels that have one, so
        every draw loses something (a drawn (src, dst) pair mostly named an empty channel)."""
        self._take_nth("lose", lambda a: True, pick)

    @precondition(_can("forge_add_provider"))
    @rule(node=nodes, peer=nodes, provider=nodes, key=keys)
    def forge_add_provider(self, node: int, peer: int, provider: int, key: int) -> None:
        self._take_first(
            "forge_add_provider",
            lambda a: (
                (a.node, a.peer, a.key) == (node, peer, key)
                and a.message is not None
                and a.message.provider == provider
            ),
        )

    # --- protocol: what nodes do on their own ---------------------------------------------------

    @precondition(_can("deliver"))
    @rule(pick=st.integers(0, 7))
    def deliver_message(self, pick: int) -> None:
        """Deliver the head of one channel, drawn by position among the non-empty ones."""
        self._take_nth("deliver", lambda a: True, pick)

    @precondition(_can("dial_bootstrap"))
    @rule(node=nodes, peer=nodes)
    def dial_bootstrap_peer(self, node: int, peer: int) -> None:
        self._take_first("dial_bootstrap", lambda a: (a.node, a.peer) == (node, peer))

    @precondition(_can("query"))
    @rule(node=nodes, pick=st.integers(0, 3))
    def send_lookup_request(self, node: int, pick: int) -> None:
        self._take_nth("query", lambda a: a.node == node, pick)

    @precondition(_can("dial_back"))
    @rule(node=nodes)
    def dial_back(self, node: int) -> None:
        self._take_first("dial_back", lambda a: a.node == node)

    # --- targeted: a slow network while time passes -----------------------------------------------

    def _next_expiry(self) -> int | None:
        live = [
            r.expires for s in self.world.nodes for r in s.records if r.expires > self.world.clock
        ]
        return min(live) if live else None

    @precondition(lambda self: self._next_expiry() is not None and _can("tick")(self))
    @rule()
    def time_passes_past_an_expiry(self) -> None:
        """Hold every message in flight while time runs to just past the next record's expiry:
        the network stalls, nodes keep acting on their own. This is how a republish comes too
        late and a record is asked for after it lapsed (PROV-04, PROV-05), a rare interleaving
        for uniformly random steps."""
        self._run_local_and_time(until=self._next_expiry())

    @precondition(_can("tick"))
    @rule(ticks=st.integers(1, 3))
    def network_stalls(self, ticks: int) -> None:
        """Hold every message in flight for ``ticks`` timer events: requests miss their
        deadlines (PROV-08), lookups fail over to other peers, refreshes run on a quiet net."""
        self._run_local_and_time(ticks=ticks)

    def _budget_allows(self, kind: str) -> bool:
        budget = self.world.budget
        return budget.faults > 0 and kind in budget.fault_kinds

    def _drive_until(self, wanted: Callable[[], bool]) -> bool:
        """Take protocol steps, time standing still, until ``wanted()`` holds (True) or the
        protocol has nothing left to do (False)."""
        for _ in range(SETTLE_BOUND):
            if wanted():
                return True
            move = next((a for a in self.enabled_actions() if is_protocol(a)), None)
            if move is None:
                return wanted()
            self._apply(move)
            self._judge(check_state(self.world, self.policy))
        return wanted()

    @precondition(lambda self: self._budget_allows("lose"))
    @rule(
        pick=st.integers(0, 7),
        skip=st.integers(0, 8),
        kind=st.sampled_from((None, Kind.FIND_NODE, Kind.GET_PROVIDERS, Kind.ADD_PROVIDER)),
    )
    def lose_the_next_request(self, pick: int, skip: int, kind: Kind | None) -> None:
        """Run the protocol until a request or reply (of ``kind``, if given) is in flight, let
        ``skip`` more protocol steps happen, then lose one: each kind of lookup and the
        ADD_PROVIDER round can then be made to time out (PROV-08, PROV-02)."""

        def wanted(a: Action) -> bool:
            return kind is None or (a.message is not None and a.message.kind is kind)

        def can_lose() -> bool:
            return any(a.kind == "lose" and wanted(a) for a in self.enabled_actions())

        while self._drive_until(can_lose):
            if skip <= 0:
                self._take_nth("lose", wanted, pick)
                return
            skip -= 1
            move = next((a for a in self.enabled_actions() if is_protocol(a)), None)
            if move is None:
                return
            self._apply(move)
            self._judge(check_state(self.world, self.policy))

    @precondition(lambda self: bool(self.world.budget.mode_changes))
    @rule()
    def mode_changes_while_asked(self) -> None:
        """Run the protocol until a kad request is on its way to a node whose operator may
        change its mode, change it then, and deliver: the request meets the new mode (ADDR-01,
        ADDR-02)."""
        changing = {node for node, _ in self.world.budget.mode_changes}

        def asked() -> int | None:
            for m in self.world.messages():
                if m.dst in changing and m.kind in _REQUESTS:
                    return m.dst
            return None

        if self._drive_until(lambda: asked() is not None):
            self._take_first("set_mode", lambda a: a.node == asked())
        self._drive_until(lambda: False)

    @precondition(lambda self: self._budget_allows("crash"))
    @rule()
    def crash_the_peer_being_asked(self) -> None:
        """Run the protocol until a lookup is about to ask a peer, crash that peer, and let the
        lookup ask it: an unresponsive peer among the closest (RT-06, RT-07)."""

        def asked() -> int | None:
            for action in self.enabled_actions():
                if action.kind == "query":
                    lookup = self.world.nodes[action.node].lookups[action.key]
                    peer = next_candidate(self.world, lookup)
                    if peer is not None and peer != action.node and self.world.nodes[peer].up:
                        return peer
            return None

        if not self._drive_until(lambda: asked() is not None):
            return
        self._take_first("crash", lambda a: a.node == asked())
        self._take_first("query", lambda a: True)

    @precondition(lambda self: bool(self.world.budget.finds) and _can("find_providers")(self))
    @rule()
    def find_after_an_expiry(self) -> None:
        """Provide (if the user still may), let the network settle with time standing still,
        ask for the providers, and hold those requests in flight while time runs past the
        next record expiry before delivering them: a record asked for just after it lapsed,
        served or not (PROV-04, PROV-07)."""
        self._take_first("provide", lambda a: True)
        self._drive_until(lambda: False)
        self._take_first("find_providers", lambda a: True)
        expiry = self._next_expiry()
        if expiry is not None:
            self._run_local_and_time(until=expiry)
        self._drive_until(lambda: False)

    def _run_local_and_time(self, *, until: int | None = None, ticks: int = 0) -> None:
        for _ in range(SETTLE_BOUND):
            if until is not None and self.world.clock >= until:
                return
            moves = self.enabled_actions()
            local = next((a for a in moves if a.kind in _LOCAL), None)
            if local is not None:
                self._apply(local)
            else:
                tick = next((a for a in moves if a.kind == "tick"), None)
                if tick is None or (until is None and ticks <= 0):
                    return
                self._apply(tick)
                ticks -= 1
            self._judge(check_state(self.world, self.policy))

    @rule(schedule=st.integers(0, 2**16 - 1))
    def settle(self, schedule: int) -> None:
        """Run the protocol (and time, up to the horizon) until it is quiescent, then check
        progress. Schedule 0 lets time pass only when nothing else can happen; any other value
        seeds a random interleaving. Always enabled, so a spent budget never leaves a run with
        no rule to take."""
        chooser = random.Random(schedule) if schedule else None
        for _ in range(SETTLE_BOUND):
            if quiescent(self.world, self.policy):
                self._check_progress()
                return
            moves = [a for a in self.enabled_actions() if is_protocol(a) or a.kind == "tick"]
            if chooser is not None:
                move = chooser.choice(moves)
            else:
                move = next((a for a in moves if a.kind != "tick"), moves[0])
            self._apply(move)
            self._judge(check_state(self.world, self.policy))
        self._judge(
            [
                Violation(
                    NO_QUIESCENCE,
                    f"the protocol took {SETTLE_BOUND} steps without becoming quiescent: "
                    "it loops without time passing (a livelock)",
                )
            ]
        )

    # --- properties -----------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        self._judge(check_state(self.world, self.policy))

    @invariant()
    def quiescent_states_make_progress(self) -> None:
        if quiescent(self.world, self.policy):
            self._check_progress()


#: kad requests (what a client must refuse)
_REQUESTS = frozenset({Kind.FIND_NODE, Kind.GET_PROVIDERS, Kind.ADD_PROVIDER})
#: a node's own protocol steps (no message delivered)
_LOCAL = frozenset({"dial_bootstrap", "query", "dial_back"})


#: which rule takes each action kind; a kind added to ACTIONS without a rule fails at import
RULE_FOR_KIND: dict[str, str] = {
    "start": "start_node",
    "restart": "restart_node",
    "provide": "user_provides",
    "find_providers": "user_finds_providers",
    "set_mode": "operator_sets_mode",
    "tick": "time_passes",
    "crash": "crash_node",
    "disconnect": "close_connection",
    "lose": "lose_message",
    "forge_add_provider": "forge_add_provider",
    "deliver": "deliver_message",
    "dial_bootstrap": "dial_bootstrap_peer",
    "query": "send_lookup_request",
    "dial_back": "dial_back",
}
if set(RULE_FOR_KIND) != set(ACTIONS) or not all(
    hasattr(KademliaMachine, name) for name in RULE_FOR_KIND.values()
):
    raise TypeError(
        "kadspec.engines.stateful.RULE_FOR_KIND: action kinds without a rule: "
        f"{sorted(set(ACTIONS) - set(RULE_FOR_KIND))}; unknown kinds: "
        f"{sorted(set(RULE_FOR_KIND) - set(ACTIONS))}; unknown rules: "
        f"{sorted(n for n in RULE_FOR_KIND.values() if not hasattr(KademliaMachine, n))}"
    )


def machine_for(
    scenario: Scenario, policy: Policy, *, target: str | None = None
) -> type[KademliaMachine]:
    """A machine class running ``scenario`` under ``policy``.

    With ``target`` only a violation of that requirement fails a run; the class is new on every
    call, so Hypothesis keeps its settings, seed and statistics apart.
    """
    name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", scenario.name))

    class Machine(KademliaMachine):
        pass

    Machine.__name__ = Machine.__qualname__ = f"{name}Machine"
    Machine.scenario = scenario
    Machine.policy = policy
    Machine.target = target
    return Machine


# --- hunting a mutant ---------------------------------------------------------------------------


@attrs.define
class _Recorder:
    """What a hunt saw across all its runs."""

    target: str | None
    started: float = attrs.field(factory=time.perf_counter)
    examples: int = 0
    seen: set[str] = attrs.field(factory=set)
    first_example: int | None = None
    first_seconds: float | None = None

    def note(self, found: list[Violation], counted: list[Violation]) -> None:
        self.seen.update(v.requirement for v in found)
        if counted and self.first_example is None:
            self.first_example = self.examples
            self.first_seconds = time.perf_counter() - self.started


@attrs.frozen
class HuntResult:
    """What a Hypothesis hunt found.

    ``violated`` is every requirement seen broken in any run (the target and others).
    ``seconds`` and ``examples`` cover the whole hunt, shrinking included; ``examples_to_detect``
    and ``seconds_to_detect`` say when the first failing run came. ``counterexample`` is the
    shrunk run after :func:`minimize`; ``shrunk_steps`` is its length before that.
    """

    detected: bool
    violated: tuple[str, ...]
    counterexample: Counterexample | None
    seconds: float
    examples: int
    examples_to_detect: int | None = None
    seconds_to_detect: float | None = None
    shrunk_steps: int | None = None


def hunt(
    scenario: Scenario,
    policy: Policy,
    target: str | None,
    *,
    max_examples: int = HUNT_EXAMPLES,
    seed: int | None = 0,
    stateful_step_count: int = HUNT_STEPS,
    minimize_trace: bool = True,
    shrink: bool = False,
) -> HuntResult:
    """Search random runs of ``scenario`` under ``policy`` for a violation of ``target``.

    With ``target`` None any violation counts. Hypothesis shrinks the first failing run; the
    result carries it as a :class:`Counterexample`, further cut down by :func:`minimize` unless
    ``minimize_trace`` is false. Hypothesis's own shrinking is off unless ``shrink``: it cannot
    reach inside one ``settle`` and costs minutes on a long run, while :func:`minimize` cuts the
    run itself by replay in well under a second. ``seed`` fixes the search (None: a fresh
    random one). Nothing is printed and no example database is kept.
    """
    machine = machine_for(scenario, policy, target=target)
    recorder = machine.recorder = _Recorder(target)
    if seed is not None:
        machine = _seeded(seed, machine)
    shrunk: Counterexample | None = None
    try:
        run_state_machine_as_test(  # type: ignore[no-untyped-call,unused-ignore]  # annotated only in newer Hypothesis
            machine,
            settings=settings(
                max_examples=max_examples,
                stateful_step_count=stateful_step_count,
                database=None,
                derandomize=False,
                deadline=None,
                phases=(Phase.generate, Phase.shrink) if shrink else (Phase.generate,),
                verbosity=Verbosity.quiet,
                report_multiple_bugs=False,
                print_blob=False,
                suppress_health_check=list(HealthCheck),
            ),
        )
    except ViolationFound as found:
        shrunk = found.counterexample
    counterexample = shrunk
    if shrunk is not None and minimize_trace:
        counterexample = minimize(shrunk, policy, target)
    return HuntResult(
        detected=counterexample is not None,
        violated=tuple(sorted(recorder.seen)),
        counterexample=counterexample,
        seconds=time.perf_counter() - recorder.started,
        examples=recorder.examples,
        examples_to_detect=recorder.first_example,
        seconds_to_detect=recorder.first_seconds,
        shrunk_steps=None if shrunk is None else len(shrunk.steps),
    )


def replay(
    initial: World, policy: Policy, actions: Iterable[Action], target: str | None
) -> Counterexample | None:
    """Apply ``actions`` from ``initial`` and judge each step as the machine does.

    Returns the run up to its first counted violation (of ``target``, or any when None), or
    None when an action is not enabled where it is taken or no counted violation occurs.
    """

    def counted(found: list[Violation]) -> tuple[Violation, ...]:
        return tuple(v for v in found if target in (None, v.requirement))

    world = initial
    broken = counted(check_state(world, policy))
    steps: list[Step] = []
    for action in actions:
        if broken:
            break
        if action not in enabled(world, policy):
            return None
        after = apply(world, policy, action)
        found = check_step(world, action, after, policy) + check_state(after, policy)
        if quiescent(after, policy):
            found += check_quiescent(after, policy)
        steps.append(Step(action, after))
        broken = counted(found)
        world = after
    return Counterexample(initial, tuple(steps), broken) if broken else None


def minimize(
    counterexample: Counterexample, policy: Policy, target: str | None, *, budget: int = 3000
) -> Counterexample:
    """Cut steps out of a counterexample while its replay still breaks ``target``.

    Hypothesis shrinks the choices that drove the machine, which cannot reach inside one
    ``settle``; this cuts the run itself, windows of halving size, from the end backwards.
    Every candidate is replayed with :func:`replay`, so what comes back is a real run of the
    model (each action enabled where taken) that breaks the requirement. ``budget`` bounds
    the number of replays.
    """
    best = replay(counterexample.initial, policy, _actions(counterexample), target)
    if best is None:
        return counterexample  # not reproducible by replay: keep what the machine saw
    tries = 0
    size = max(1, len(best.steps) // 2)
    while tries < budget:
        actions = _actions(best)
        start = len(actions) - size
        improved = False
        while start >= 0 and tries < budget:
            tries += 1
            found = replay(best.initial, policy, actions[:start] + actions[start + size :], target)
            if found is not None and len(found.steps) < len(best.steps):
                best, improved = found, True
                actions = _actions(best)
                start = min(start, len(actions)) - size
            else:
                start -= 1
        if not improved:
            if size == 1:
                break
            size //= 2
    return best


def _actions(counterexample: Counterexample) -> list[Action]:
    return [step.action for step in counterexample.steps]


def _seeded(value: int, machine: type[KademliaMachine]) -> type[KademliaMachine]:
    return hypothesis.seed(value)(machine)


# --- settings profiles --------------------------------------------------------------------------

_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}
#: name -> settings; ``ci`` keeps tests/engines/test_stateful.py well under a minute on two cores
PROFILES: dict[str, dict[str, Any]] = {
    "ci": {**_COMMON, "max_examples": 50, "stateful_step_count": 50, "derandomize": True},
    "dev": {**_COMMON, "max_examples": 200, "stateful_step_count": 60},
    "thorough": {**_COMMON, "max_examples": 2000, "stateful_step_count": 100},
}


def register_profiles(default: str = "ci") -> str:
    """Register the ``ci``, ``dev`` and ``thorough`` profiles and load the one named by the
    ``HYPOTHESIS_PROFILE`` environment variable (``default`` when unset); return its name."""
    for name, values in PROFILES.items():
        settings.register_profile(name, **values)
    name = os.environ.get("HYPOTHESIS_PROFILE", default)
    settings.load_profile(name)
    return name
