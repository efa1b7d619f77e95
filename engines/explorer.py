"""Exhaustive bounded exploration, breadth first, so the first counterexample is a shortest one.

Every reachable state is checked against every invariant, every transition against every step
check, and every quiescent state against every progress property.

Successors come from :class:`~kadspec.engines.successors.Successors`, which memoizes each local
step and returns exactly what ``apply`` and the checks would, and names each state by an
integer key. The search keeps the set of keys seen and, per state, the index of its parent and
the action that reached it (a counterexample is rebuilt by replaying those actions with the
public functions), so memory goes to states, not to bookkeeping: about 125 bytes a state
on the 4-node star, against some 500 for a set of worlds with parent and depth maps.

Two reductions can be switched on; both are off by default, and the default search is the
plain one whose counts the regression tests pin:

* ``symmetry=True`` stores one state per orbit of the configuration's automorphisms
  (:class:`~kadspec.engines.reductions.Symmetry`);
* ``partial_order=True`` expands only an ample subset of the enabled actions where that is
  sound (:class:`~kadspec.engines.reductions.PartialOrder`).

With either, states and transitions count the reduced graph, and a counterexample is a real
trace but no longer necessarily a shortest one. See ``reductions.py`` for what each preserves.

A run also says how far it got, so that a report never claims more than was checked: why it
stopped (``stop_reason``), per requirement how many states, transitions and quiescent states
had its premise live (``exercised``: a requirement whose premise was never live was checked
vacuously), how many quiescent states progress was judged in, and which of the scenario's
witnesses (outcomes the spec must reach) some explored state reached. With ``keep_going`` the
search goes on past violations and keeps the first (so a shortest) counterexample of each
requirement; ``stop_at`` names the requirements whose violation ends the search, so that a
SHOULD-level violation can be recorded while the MUST-level ones are still searched for.
"""

from __future__ import annotations

import gc
import os
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Literal, Protocol

import attrs

from kadspec.engines.reductions import PartialOrder, Symmetry
from kadspec.engines.successors import Successors
from kadspec.models.actions import Action, apply, enabled
from kadspec.models.checks import Violation, check_quiescent, check_state, check_step
from kadspec.models.policy import Policy
from kadspec.models.state import World


@attrs.frozen
class Step:
    """One step of a trace: the action taken and the state it led to."""

    action: Action
    world: World


@attrs.frozen
class Counterexample:
    """A trace from the initial state to a violation: a shortest one unless a reduction was
    on."""

    initial: World
    steps: tuple[Step, ...]
    violations: tuple[Violation, ...]

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(sorted({v.requirement for v in self.violations}))


StopReason = Literal["complete", "violation", "state-cap", "time-cap"]


class Witness(Protocol):
    """An outcome the spec must reach in some explored state (``scenarios.Witness``)."""

    @property
    def name(self) -> str: ...

    def holds(self, world: World, /) -> bool: ...


@attrs.frozen
class Exploration:
    """What a run found: counterexamples or none, how much it explored and why it stopped."""

    states: int
    transitions: int
    depth: int
    seconds: float
    complete: bool  # every reachable state was explored (no violation stopped it, no cap hit)
    counterexample: Counterexample | None  # the one that stopped the search (or, going on, the
    # first found)
    also_violated: frozenset[str] = frozenset()  # with a target: other requirements broken
    stop_reason: StopReason = "complete"
    #: requirement ID -> explored states, transitions and quiescent states with its premise live
    exercised: Mapping[str, int] = attrs.field(factory=dict)
    quiescent_states: int = 0
    #: requirement ID -> its first (shortest, without reductions) counterexample
    counterexamples: Mapping[str, Counterexample] = attrs.field(factory=dict)
    witnesses_reached: frozenset[str] = frozenset()
    #: states discovered at each depth (the breadth-first levels' widths), for size estimates
    levels: tuple[int, ...] = ()
    #: how it ran: worker processes (1: in this process), fingerprints instead of states
    workers: int = 1
    fingerprints: bool = False
    #: with fingerprints: the probability that a hash collision made the search skip a state
    omission_probability: float | None = None
    #: the largest resident memory seen (MB; the workers' together in a partitioned run)
    peak_memory_mb: float = 0.0
    #: CPU seconds spent (this process's, plus every worker's in a partitioned run)
    cpu_seconds: float = 0.0
    #: in a run partitioned over processes: each worker's CPU seconds (the busiest one bounds
    #: the wall time the run could take with a core per worker)
    worker_cpu_seconds: tuple[float, ...] = ()

    @property
    def states_per_second(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else 0.0

    @property
    def violated(self) -> frozenset[str]:
        """Every requirement a counterexample was found for."""
        return frozenset(self.counterexamples)


@attrs.frozen
class Snapshot:
    """How far a run has got: reported about every thousand states (every level in a
    partitioned run) to ``explore``'s ``progress``."""

    states: int
    transitions: int
    depth: int
    frontier: int  # states found and not yet expanded
    seconds: float
    memory_mb: float  # resident memory (the workers' together in a partitioned run)

    @property
    def states_per_second(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[Snapshot], None]


def memory_mb() -> float:
    """This process's resident memory in MB (its peak where the current one is unknown)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def explore(
    initial: World,
    policy: Policy,
    *,
    max_states: int | None = None,
    max_seconds: float | None = None,
    keep_going: bool = False,
    stop_at: Iterable[str] | None = None,
    witnesses: Iterable[Witness] = (),
    progress: Progress | None = None,
    target: str | None = None,
    symmetry: bool = False,
    partial_order: bool = False,
) -> Exploration:
    """Breadth-first search from ``initial``; stop at the first violation, a cap, or when done.

    ``max_states`` and ``max_seconds`` cap the run (``stop_reason`` says which one ended it).
    A violation of a requirement in ``stop_at`` (default: every requirement) stops the search
    unless ``keep_going``; other violations are recorded, the first per requirement in
    ``counterexamples``, and the search goes on. ``witnesses`` are checked on every new state
    until each is reached.

    With ``target`` (a requirement ID) only a violation of that requirement stops the search;
    other violations are recorded in ``also_violated`` and the search goes on past them, as a
    mutant run must find the requirement its bug is expected to break.

    ``symmetry`` and ``partial_order`` switch the reductions of ``reductions.py`` on; each
    does nothing where its conditions do not hold. ``progress`` is called with (states,
    transitions, depth, frontier, memory) as a :class:`Snapshot` about every thousand states.
    """
    # The search allocates millions of small objects that are never garbage (the model makes
    # no reference cycles); the cyclic collector would rescan all of them again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _explore(
            initial,
            policy,
            _Limits(
                max_states,
                max_seconds,
                keep_going,
                None if stop_at is None else frozenset(stop_at),
                target,
            ),
            tuple(witnesses),
            progress,
            symmetry,
            partial_order,
        )
    finally:
        if collecting:
            gc.enable()


@attrs.frozen
class _Limits:
    max_states: int | None
    max_seconds: float | None
    keep_going: bool
    stop_at: frozenset[str] | None
    target: str | None


def _explore(
    initial: World,
    policy: Policy,
    limits: _Limits,
    witnesses: tuple[Witness, ...],
    progress: Progress | None,
    symmetry: bool,
    partial_order: bool,
) -> Exploration:
    started = time.perf_counter()
    deadline = None if limits.max_seconds is None else started + limits.max_seconds
    max_states = limits.max_states
    target = limits.target
    engine = Successors(initial, policy)
    # Premise sets recur (most states exercise the same few requirements): count each set
    # once per occurrence, expand to requirements at the end.
    state_sets: dict[frozenset[str], int] = {}
    step_sets: dict[frozenset[str], int] = {}
    counterexamples: dict[str, Counterexample] = {}
    first: list[Counterexample] = []
    quiescent_states = 0
    waiting = list(witnesses)  # not reached yet
    reached: set[str] = set()
    widths = [1]
    group = Symmetry.of(initial, policy) if symmetry else None
    orbit = partial(group.canonical, engine=engine) if group is not None and group.group else None
    reduction = PartialOrder(initial, policy) if partial_order else None
    # States are held as integer keys (see Successors.key); a world is rebuilt from its key when
    # it is checked and when it is expanded. Per state, in discovery order (which is also the
    # order states are expanded in): the index of its parent and the action taken from it.
    # A trace is rebuilt from these.
    root_key = engine.key(initial) if orbit is None else orbit(engine.key(initial))
    seen = {root_key}
    parent = array("q", [-1])
    taken: list[Action | None] = [None]
    transitions = 0
    depth = 0
    also: set[str] = set()

    cpu_started = time.process_time()
    peak_memory = memory_mb()

    def done(found: Counterexample | None, reason: StopReason) -> Exploration:
        exercised: dict[str, int] = {}
        for sets in (state_sets, step_sets):
            for ids, times in sets.items():
                for rid in ids:
                    exercised[rid] = exercised.get(rid, 0) + times
        return Exploration(
            len(seen),
            transitions,
            depth,
            time.perf_counter() - started,
            reason == "complete",
            found if found is not None else (first[0] if first else None),
            frozenset(also),
            reason,
            exercised,
            quiescent_states,
            dict(counterexamples),
            frozenset(reached),
            tuple(widths),
            peak_memory_mb=max(peak_memory, memory_mb()),
            cpu_seconds=time.process_time() - cpu_started,
        )

    def stops(
        violations: list[Violation] | tuple[Violation, ...],
        index: int,
        last: Action | None,
        kind: str,
    ) -> Counterexample | None:
        """The counterexample that ends the search, if these violations end it; records the
        first counterexample of every requirement on the way."""
        if target is not None:
            also.update(v.requirement for v in violations if v.requirement != target)
            if any(v.requirement == target for v in violations):
                return trace(index, last, kind, target)
            return None
        new = sorted({v.requirement for v in violations} - counterexamples.keys())
        if new:
            found = trace(index, last, kind, new[0])
            for rid in new:
                counterexamples[rid] = found
            if not first:
                first.append(found)
        if limits.keep_going:
            return None
        stop_at = limits.stop_at
        for v in violations:
            if stop_at is None or v.requirement in stop_at:
                return counterexamples[v.requirement]
        return None

    def witness(world: World) -> None:
        for w in [w for w in waiting if w.holds(world)]:
            waiting.remove(w)
            reached.add(w.name)

    def count(sets: dict[frozenset[str], int], ids: frozenset[str]) -> None:
        if ids:
            sets[ids] = sets.get(ids, 0) + 1

    def trace(index: int, last: Action | None, kind: str, wanted: str | None) -> Counterexample:
        actions: list[Action] = []
        while index > 0:
            action = taken[index]
            assert action is not None
            actions.append(action)
            index = parent[index]
        actions.reverse()
        if last is not None:
            actions.append(last)
        return _rebuild(initial, policy, actions, kind, wanted, engine, orbit)

    root = engine.world(root_key)
    violations, live = engine.invariants_and_premises(root, root_key)
    count(state_sets, live)
    if waiting:
        witness(root)
    if violations:
        stop = stops(violations, 0, None, "state")
        if stop is not None:
            return done(stop, "violation")
    level = [root_key]
    next_report = _REPORT_EVERY
    worlds = [root]  # decoded worlds of the level's first states (only the root's is kept)
    expanded = 0  # the index of the next state to expand: BFS expands in discovery order
    discovered: set[int] = set()  # the keys of the level being discovered (for the proviso)

    def old(key: int) -> bool:
        """Seen before this level began (the partial order's cycle proviso asks)."""
        if orbit is not None:
            key = orbit(key)  # the proviso is about the graph actually searched: of orbits
        return key in seen and key not in discovered

    # The hot loop works on keys: a world is decoded only where a memo misses, a witness is
    # still waited for, a quiescent state is judged, or the partial order needs it.
    expand = engine.expand
    successor = engine.successor
    state_checks = engine.state_checks
    decode = engine.world
    while level:
        following: list[int] = []
        discovered.clear()
        for position, key in enumerate(level):
            world: World | None = worlds[position] if position < len(worlds) else None
            index = expanded
            expanded += 1
            moves, quiet = expand(key, world)
            if quiet:
                world = world or decode(key)
                quiescent_states += 1
                count(state_sets, engine.exercised_at_quiescence(world, key))
                stalled = check_quiescent(world, policy)
                if stalled:
                    stop = stops(stalled, index, None, "quiescent")
                    if stop is not None:
                        return done(stop, "violation")
            if reduction is not None:
                world = world or decode(key)
                moves = reduction.ample(world, key, moves, engine, old)
            for move in moves:
                after, step_violations, step_premises = successor(key, move, world)
                transitions += 1
                if step_premises:
                    step_sets[step_premises] = step_sets.get(step_premises, 0) + 1
                if orbit is not None:
                    after = orbit(after)
                if after in seen:
                    if step_violations:
                        # A step violation on a transition into a known state: trace through it.
                        stop = stops(step_violations, index, move.action, "step")
                        if stop is not None:
                            return done(stop, "violation")
                    continue
                seen.add(after)
                if reduction is not None:
                    discovered.add(after)
                parent.append(index)
                taken.append(move.action)
                following.append(after)
                successor_world = None
                if waiting:
                    successor_world = decode(after)
                    witness(successor_world)
                found, live = state_checks(after, successor_world)
                if live:
                    state_sets[live] = state_sets.get(live, 0) + 1
                if step_violations or found:
                    found = list(step_violations) + list(found)
                    stop = stops(found, len(seen) - 1, None, "state")
                    if stop is not None:
                        return done(stop, "violation")
            if progress is not None and len(seen) >= next_report:
                next_report = len(seen) + _REPORT_EVERY
                memory = memory_mb()
                peak_memory = max(peak_memory, memory)
                progress(
                    Snapshot(
                        len(seen),
                        transitions,
                        depth,
                        len(level) - position - 1 + len(following),
                        time.perf_counter() - started,
                        memory,
                    )
                )
            if max_states is not None and len(seen) >= max_states:
                return done(None, "state-cap")
            if deadline is not None and not expanded & 255 and time.perf_counter() > deadline:
                return done(None, "time-cap")
        level, worlds = following, []
        if level:
            depth += 1
            widths.append(len(level))
    return done(None, "complete")


#: states between two progress reports
_REPORT_EVERY = 1000


def rebuild_trace(
    initial: World, policy: Policy, actions: list[Action], kind: str, wanted: str | None
) -> Counterexample:
    """The counterexample of taking ``actions`` from ``initial``, replayed with the public
    functions, ending in a violation found by the checks of ``kind`` ("state", "step" or
    "quiescent"); for engines that keep their own parent links (``parallel.py``)."""
    worlds = [initial]
    for action in actions:
        worlds.append(apply(worlds[-1], policy, action))
    steps = [Step(a, w) for a, w in zip(actions, worlds[1:], strict=True)]
    return Counterexample(initial, tuple(steps), tuple(_found(initial, policy, steps, kind)))


def _rebuild(
    initial: World,
    policy: Policy,
    actions: list[Action],
    kind: str,
    target: str | None,
    engine: Successors,
    orbit: Callable[[int], int] | None,
) -> Counterexample:
    """Replay ``actions`` from ``initial`` with the public functions and re-check the end.

    ``kind`` says which checks found the violation: "state" (the step into a new state and the
    state's invariants), "step" (a step into a state already seen) or "quiescent".

    Without symmetry the replay retraces the stored states exactly. With symmetry the stored
    states are orbit representatives and each action was taken from a representative: each
    step is replayed as an action of the real state that leads into the same orbit (one exists
    because the symmetry maps transitions to transitions), so the trace shows real states.
    """
    if orbit is None:
        worlds = [initial]
        for action in actions:
            worlds.append(apply(worlds[-1], policy, action))
        steps = [Step(a, w) for a, w in zip(actions, worlds[1:], strict=True)]
    else:

        def orbit_of(world: World) -> int:
            return orbit(engine.key(world))

        representative = initial
        wanted = []
        for action in actions:
            wanted.append(orbit_of(apply(representative, policy, action)))
            representative = engine.world(wanted[-1])  # the explorer went on from this one
        steps = []
        world = initial
        for number, want in enumerate(wanted, start=1):
            last = kind if number == len(wanted) else None
            action, world = _into_orbit(world, policy, want, orbit_of, last, target)
            steps.append(Step(action, world))
    return Counterexample(initial, tuple(steps), tuple(_found(initial, policy, steps, kind)))


def _found(initial: World, policy: Policy, steps: list[Step], kind: str) -> list[Violation]:
    """The violations at the end of a trace, by the checks of ``kind``."""
    end = steps[-1].world if steps else initial
    if kind == "quiescent":
        return check_quiescent(end, policy)
    if not steps:
        return check_state(end, policy)
    before = steps[-2].world if len(steps) > 1 else initial
    found = check_step(before, steps[-1].action, end, policy)
    return found if kind == "step" else found + check_state(end, policy)


def _into_orbit(
    world: World,
    policy: Policy,
    want: int,
    orbit: Callable[[World], int],
    kind: str | None,
    target: str | None,
) -> tuple[Action, World]:
    """An enabled action of ``world`` whose successor lies in orbit ``want``; on the last
    step (``kind`` given) one whose checks break the requirement searched for."""
    fallback = None
    for action in enabled(world, policy):
        after = apply(world, policy, action)
        if orbit(after) != want:
            continue
        if kind is None:
            return action, after
        fallback = fallback or (action, after)
        broken = {v.requirement for v in _found(world, policy, [Step(action, after)], kind)}
        if broken and (target is None or target in broken):
            return action, after
    assert fallback is not None, "the symmetry does not map transitions to transitions"
    return fallback
