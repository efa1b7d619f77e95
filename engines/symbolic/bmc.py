"""Bounded model checking from a concrete initial world, with every trace replayed concretely.

The configuration is the world's own (IDs, reachability, bootstrap lists, timing, fault kinds,
horizon), the initial state is ``project(world)``, and the transition relation is the encoding's:
at each depth an integer ``sel`` picks one action instance, every instance's guard and effect are
built over that depth's state variables, and ``react`` is applied once to the merged effect. At
each depth z3 is asked for a state (or, for a step check, a step) that violates the target
requirement.

A symbolic trace is only a claim until the executable model agrees: :func:`replay` applies the
trace's instances, one enabled concrete action each, from the same initial world and runs the
concrete checks (``checks.check_state`` / ``check_step``) after every step. Because some actions
are over-approximated (tick, reply contents, ...), a trace may be spurious; it is then blocked
(the prefix that could not be replayed, or the whole trace) and z3 is asked again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal

import attrs
import z3

from kadspec.engines.symbolic.encoding import (
    Encoding,
    Instance,
    SymConfig,
    SymState,
    Values,
    instance_of,
    project,
    shape_of,
)
from kadspec.engines.symbolic.invariants import (
    REQUIREMENT_INVARIANTS,
    STEP_PROPERTIES,
    encoded_requirements,
)
from kadspec.engines.symbolic.obligations import Selector, successor
from kadspec.engines.symbolic.terms import eq, known, or_, z
from kadspec.models.actions import Action, apply, enabled
from kadspec.models.checks import Violation, check_state, check_step
from kadspec.models.policy import Policy
from kadspec.models.state import Purpose, World

BmcVerdict = Literal["refuted", "unknown"]


@attrs.frozen
class ReplayStep:
    action: Action
    text: str  # the action, described in the protocol's vocabulary
    world: World
    violations: tuple[Violation, ...]


@attrs.frozen
class Replay:
    """What the executable model did with a symbolic trace."""

    confirmed: bool
    steps: tuple[ReplayStep, ...]
    note: str

    def violated(self, target: str | None) -> tuple[Violation, ...]:
        if not self.steps:
            return ()
        found = self.steps[-1].violations
        return tuple(v for v in found if target is None or v.requirement == target)


@attrs.frozen
class BmcResult:
    """The outcome of a bounded search for a violation of ``target`` (any requirement the
    symbolic layer encodes, when None)."""

    target: str | None
    verdict: BmcVerdict
    depth: int
    seconds: float
    instances: tuple[Instance, ...] = ()
    states: tuple[Values, ...] = ()
    broken: str = ""
    replay: Replay | None = None
    attempts: int = 0
    reason: str = ""

    @property
    def confirmed(self) -> bool:
        return self.replay is not None and self.replay.confirmed

    def describe(self, world: World | None = None) -> str:
        """The trace for people: numbered steps, what broke, and whether the replay agreed."""
        if self.verdict != "refuted" or self.replay is None:
            return (
                f"no violation of {self.target or 'any encoded requirement'} found up to "
                f"depth {self.depth}: {self.reason}"
            )
        lines = [
            f"symbolic trace of {len(self.instances)} steps breaks {self.broken}; "
            f"replayed through the executable model:"
        ]
        for number, step in enumerate(self.replay.steps, start=1):
            lines.append(f"  {number}. {step.text}")
        for v in self.replay.violated(self.target):
            lines.append(f"  violates {v.requirement}: {v.detail}")
        lines.append(
            "  replay confirmed the violation"
            if self.replay.confirmed
            else f"  replay did NOT confirm it: {self.replay.note}"
        )
        return "\n".join(lines)


def replay(world: World, policy: Policy, trace: tuple[Instance, ...], target: str | None) -> Replay:
    """Apply ``trace`` to ``world`` in the executable model, checking after every step."""
    wanted = encoded_requirements() if target is None else frozenset({target})
    steps: list[ReplayStep] = []
    for number, inst in enumerate(trace, start=1):
        match = [a for a in enabled(world, policy) if instance_of(world, a) == inst]
        if not match:
            return Replay(
                False,
                tuple(steps),
                f"step {number} ({inst.label(shape_of(world))}) is not enabled in the "
                "executable model",
            )
        action = match[0]
        after = apply(world, policy, action)
        found = tuple(check_step(world, action, after, policy) + check_state(after, policy))
        steps.append(ReplayStep(action, action.describe(world), after, found))
        world = after
        if any(v.requirement in wanted for v in found):
            return Replay(True, tuple(steps), "")
    return Replay(False, tuple(steps), "the executable model reached no violation")


def _properties(target: str | None) -> tuple[list[Any], list[Any]]:
    invs = [i for i in REQUIREMENT_INVARIANTS if target is None or target in i.requirements]
    props = [
        p
        for p in STEP_PROPERTIES
        if p.requirements and (target is None or target in p.requirements)
    ]
    return invs, props


def _static_instances(enc: Encoding, init: Values, world: World) -> list[Instance]:
    """Instances that can ever be enabled from ``init``: budgets only shrink, so an action
    whose budget is empty at the start (or whose fault kind is off) never runs; a forged
    ADD_PROVIDER exists only if forging is possible, GET_PROVIDERS traffic only if some find is
    in the budget, and no timer fires once the clock has reached the horizon."""
    probe = SymState.variables(enc.shape, "probe.")
    faults = int(init["faults"][()])
    forging = faults > 0 and "forge_add_provider" in world.budget.fault_kinds
    finding = any(init["find_left"].values())
    keep = []
    for inst in enc.instances:
        if enc.guard(probe, inst) is False:
            continue
        if inst.cls.startswith("AP_FORGED") and not forging:
            continue
        if inst.cls.startswith("GP") and not finding:
            continue
        finds = enc.shape.slot_purpose(inst.slot)[0] is Purpose.FIND_PROVIDERS
        if inst.kind == "query" and finds and not finding:
            continue
        if inst.kind == "tick" and world.horizon <= world.clock:
            continue
        n = inst.node
        if inst.kind == "start" and not init["starts"][n,]:
            continue
        if inst.kind == "provide" and not init["prov_left"][n, inst.key]:
            continue
        if inst.kind == "find_providers" and not init["find_left"][n, inst.key]:
            continue
        if inst.kind == "set_mode" and not init["mode_left"][n, inst.setting]:
            continue
        if inst.kind in ("crash", "restart", "disconnect", "lose", "forge_add_provider") and (
            faults <= 0
        ):
            continue
        keep.append(inst)
    return keep


def bmc(
    world: World,
    policy: Policy,
    target: str | None,
    *,
    max_depth: int = 20,
    timeout_ms: int = 120_000,
    max_attempts: int = 40,
    every: int = 0,
    shrink: bool = True,
    first_check: int = 1,
) -> BmcResult:
    """Search up to ``max_depth`` steps from ``world`` for a violation of ``target``.

    z3 is asked at every depth up to 8 for a violation at any step so far, then (``every`` = 0)
    once more at ``max_depth``, or every ``every`` depths (1: every depth, which finds a
    shortest trace but must prove each shorter depth violation-free, the expensive part). A
    trace found is replayed, stopping at the first step where the executable model breaks the
    requirement, and then shrunk: steps are dropped while the replay still breaks it.
    ``first_check`` skips the questions before that depth: a caller that knows a violation
    exists within ``max_depth`` (the explorer's shortest counterexample) need not have z3
    prove each shorter depth violation-free, since a question covers every step so far.
    """
    started = time.perf_counter()
    shape = shape_of(world)
    cfg = SymConfig.of(world, policy)
    enc = Encoding(shape, cfg, policy)
    init = project(world)
    candidates = _static_instances(enc, init, world)
    invs, props = _properties(target)
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    states = [SymState.literal(shape, init)]
    sels: list[Any] = []
    bads: list[Any] = []
    names: list[list[tuple[str, Any]]] = []
    attempts = 0
    for depth in range(1, max_depth + 1):
        pre = states[-1]
        steps = [enc.effect(pre, inst, f"t{depth}#{j}") for j, inst in enumerate(candidates)]
        sel = Selector(f"sel{depth}", len(steps))
        post, collision, observed = successor(enc, pre, steps, sel, f"t{depth}")
        nxt = _next_state(pre, post, f"s{depth}.")
        solver.add(sel.exactly_one(), *observed)
        solver.add(
            *(z3.Implies(sel.is_(j), z3.And(z(st.guard), *st.side)) for j, st in enumerate(steps))
        )
        solver.add(
            *(z(eq(t, post.terms[f][i])) for f, i, t in nxt.items() if t is not post.terms[f][i])
        )
        sels.append(sel)
        states.append(nxt)
        named: list[tuple[str, Any]] = [
            (_label(inv), z3.Not(z(inv.formula(nxt, cfg)))) for inv in invs
        ]
        for prop in props:
            cases = []
            for j, st in enumerate(steps):
                out = attrs.evolve(st.out, collision=or_(st.out.collision, collision))
                holds = prop.formula(pre, st.instance, out, nxt, cfg)
                if holds is not True:
                    cases.append(z3.And(sel.is_(j), z3.Not(z(holds))))
            if cases:
                named.append((_label(prop), z3.Or(*cases)))
        if named:
            step_bad = z3.Bool(f"bad{depth}")
            solver.add(step_bad == z3.Or(*(term for _, term in named)))
            bads.append(step_bad)
            names.append(named)
        if not bads or (depth > 8 and (every == 0 or depth % every) and depth != max_depth):
            continue
        if depth < min(first_check, max_depth):
            continue
        bad = [z3.Or(*bads)]
        solver.push()
        solver.add(z3.Or(*bad))
        while True:
            answer = solver.check()
            if answer == z3.unknown:
                solver.pop()
                return BmcResult(
                    target,
                    "unknown",
                    depth,
                    time.perf_counter() - started,
                    attempts=attempts,
                    reason=f"z3 gave up at depth {depth}: {solver.reason_unknown()}",
                )
            if answer == z3.unsat:
                break
            attempts += 1
            m = solver.model()
            chosen = [s.value(m) for s in sels]
            trace = tuple(candidates[c] for c in chosen)
            values = tuple(st.evaluate(m) for st in states[1:])
            broken = next(
                (
                    name
                    for named_at in names
                    for name, term in named_at
                    if z3.is_true(m.eval(term, model_completion=True))
                ),
                "?",
            )
            result = replay(world, policy, trace, target)
            if result.confirmed:
                solver.pop()
                if shrink:
                    trace, result = _shrink(world, policy, trace[: len(result.steps)], target)
                return BmcResult(
                    target,
                    "refuted",
                    depth,
                    time.perf_counter() - started,
                    trace,
                    values,
                    broken,
                    result,
                    attempts,
                )
            if attempts >= max_attempts:
                solver.pop()
                return BmcResult(
                    target,
                    "unknown",
                    depth,
                    time.perf_counter() - started,
                    trace,
                    values,
                    broken,
                    result,
                    attempts,
                    reason=f"{attempts} symbolic traces, none replayed concretely",
                )
            # Block what the executable model refused: the prefix up to the step it could not
            # take (for every depth), or this whole trace.
            upto = len(result.steps) + 1 if len(result.steps) < len(trace) else len(trace)
            clause = z3.Or(*(sels[i].differs(chosen[i]) for i in range(upto)))
            if upto < len(trace):
                solver.pop()
                solver.add(clause)
                solver.push()
                solver.add(z3.Or(*bad))
            else:
                solver.add(clause)
        solver.pop()
    return BmcResult(
        target,
        "unknown",
        max_depth,
        time.perf_counter() - started,
        attempts=attempts,
        reason=f"no violation within {max_depth} steps",
    )


def _shrink(
    world: World, policy: Policy, trace: tuple[Instance, ...], target: str | None
) -> tuple[tuple[Instance, ...], Replay]:
    """Drop steps, one or two at a time (a request goes with its delivery), while the
    executable model still breaks ``target``."""
    best = replay(world, policy, trace, target)
    while True:
        for drop in _drops(len(trace)):
            shorter = tuple(inst for i, inst in enumerate(trace) if i not in drop)
            attempt = replay(world, policy, shorter, target)
            if attempt.confirmed:
                trace, best = shorter[: len(attempt.steps)], attempt
                break
        else:
            return trace, best


def _drops(length: int) -> Iterator[frozenset[int]]:
    for i in reversed(range(length)):
        yield frozenset({i})
    for i in reversed(range(length)):
        for j in reversed(range(i)):
            yield frozenset({i, j})


def _next_state(pre: SymState, post: SymState, prefix: str) -> SymState:
    """The state after a step: a fresh variable for each entry some instance may change; an
    entry no instance changes, or that every instance sets to a known value, keeps its term, so
    constants stay constants down the unrolling and keep folding."""
    nxt = SymState.variables(pre.shape, prefix)
    for f, i, after in post.items():
        if known(after) or after is pre.terms[f][i]:
            nxt.terms[f][i] = after
    return nxt


def _label(prop: Any) -> str:
    return f"{prop.name} ({', '.join(prop.requirements)})"


__all__ = ["BmcResult", "Replay", "ReplayStep", "bmc", "replay"]
