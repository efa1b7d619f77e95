"""Exhaustive bounded exploration, breadth first, so the first counterexample is a shortest one.

Every reachable state is checked against every invariant, every transition against every step
check, and every quiescent state against every progress property.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import attrs

from kadspec.models.actions import Action, apply, enabled, quiescent
from kadspec.models.checks import Violation, check_quiescent, check_state, check_step
from kadspec.models.policy import Policy
from kadspec.models.state import World, replace


@attrs.frozen
class Step:
    """One step of a trace: the action taken and the state it led to."""

    action: Action
    world: World


@attrs.frozen
class Counterexample:
    """A shortest trace from the initial state to a violation."""

    initial: World
    steps: tuple[Step, ...]
    violations: tuple[Violation, ...]

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(sorted({v.requirement for v in self.violations}))


@attrs.frozen
class Exploration:
    """What a run found: a counterexample or none, and how much it explored."""

    states: int
    transitions: int
    depth: int
    seconds: float
    complete: bool  # every reachable state was explored (no limit was hit)
    counterexample: Counterexample | None
    also_violated: frozenset[str] = frozenset()  # with a target: other requirements broken

    @property
    def states_per_second(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int, int, int], None]  # states, transitions, depth


def explore(
    initial: World,
    policy: Policy,
    *,
    max_states: int | None = None,
    progress: Progress | None = None,
    target: str | None = None,
) -> Exploration:
    """Breadth-first search from ``initial``; stop at the first violation or when done.

    With ``target`` (a requirement ID) only a violation of that requirement stops the search;
    other violations are recorded in ``also_violated`` and the search goes on past them, as a
    mutant run must find the requirement its bug is expected to break.
    """
    started = time.perf_counter()
    parent: dict[World, tuple[World, Action] | None] = {initial: None}
    depth_of = {initial: 0}
    frontier: deque[World] = deque([initial])
    transitions = 0
    depth = 0

    also: set[str] = set()

    def done(found: Counterexample | None, complete: bool) -> Exploration:
        return Exploration(
            len(parent),
            transitions,
            depth,
            time.perf_counter() - started,
            complete,
            found,
            frozenset(also),
        )

    def stops(violations: list[Violation]) -> bool:
        if target is None:
            return bool(violations)
        also.update(v.requirement for v in violations if v.requirement != target)
        return any(v.requirement == target for v in violations)

    def trace(world: World, violations: list[Violation]) -> Counterexample:
        steps: list[Step] = []
        cursor: World = world
        while (link := parent[cursor]) is not None:
            before, action = link
            steps.append(Step(action, cursor))
            cursor = before
        return Counterexample(initial, tuple(reversed(steps)), tuple(violations))

    violations = check_state(initial, policy)
    if stops(violations):
        return done(trace(initial, violations), False)
    while frontier:
        world = frontier.popleft()
        depth = max(depth, depth_of[world])
        actions = enabled(world, policy)
        if quiescent(world, policy):
            violations = check_quiescent(world, policy)
            if stops(violations):
                return done(trace(world, violations), False)
        for action in actions:
            after = apply(world, policy, action)
            transitions += 1
            violations = check_step(world, action, after, policy)
            if after not in parent:
                parent[after] = (world, action)
                depth_of[after] = depth_of[world] + 1
                violations += check_state(after, policy)
                frontier.append(after)
            if stops(violations):
                if parent[after] != (world, action):
                    # A step violation on a transition into a known state: trace through it.
                    return done(_via(trace(world, []), action, after, violations), False)
                return done(trace(after, violations), False)
        if progress is not None and len(parent) % 1000 < len(actions):
            progress(len(parent), transitions, depth)
        if max_states is not None and len(parent) >= max_states:
            return done(None, False)
    return done(None, True)


def _via(
    prefix: Counterexample, action: Action, after: World, violations: list[Violation]
) -> Counterexample:
    return replace(prefix, steps=(*prefix.steps, Step(action, after)), violations=tuple(violations))
