"""Proof obligations in the style of mypyvy: initiation and consecution, each in its own frame.

For a shape and a policy, with the configuration symbolic (any IDs, reachability, bootstrap lists,
k, alpha, record lifetimes):

- initiation: ``axioms and init(s) and not inv(s)`` is unsatisfiable, for every invariant;
- consecution: for every transition group (an action kind; deliveries by message family),
  ``axioms and Inv(s) and step(s, s') and not inv(s')`` is unsatisfiable, for every invariant
  ``inv``, where ``Inv`` is the conjunction of all invariants (requirement and auxiliary) and the
  step is the disjunction of the group's instances, selected by one Boolean per instance;
- step properties: ``axioms and Inv(s) and step(s, s') and not prop(s, out, s')`` unsatisfiable.

Every (invariant, group) pair is checked inside its own ``push``/``pop`` frame of the group's
solver. ``sat`` yields a counterexample to induction (:class:`Cti`): the pre-state, the action
instance and the post-state, as values; ``unknown`` (a timeout) is reported as such and never
counts as proved.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

import attrs
import z3

from kadspec.engines.symbolic.concretize import concrete_config, concretize
from kadspec.engines.symbolic.encoding import (
    GROUPS,
    Encoding,
    Instance,
    NotRepresentable,
    Shape,
    Step,
    SymConfig,
    SymState,
    Values,
    instance_of,
    project,
)
from kadspec.engines.symbolic.invariants import (
    STEP_PROPERTIES,
    Invariant,
    StepProperty,
    all_invariants,
    encoded_requirements,
)
from kadspec.engines.symbolic.render import render_diff, render_state
from kadspec.engines.symbolic.terms import Term, ite, or_, z
from kadspec.models.actions import apply, enabled
from kadspec.models.checks import check_state, check_step
from kadspec.models.config import Config
from kadspec.models.policy import Policy

Verdict = Literal["proved", "refuted", "unknown"]
ObligationKind = Literal["initiation", "consecution"]


@attrs.frozen
class Cti:
    """A counterexample to induction: a state satisfying every invariant, a step, and the
    state after it, which breaks ``broken``. For initiation, ``instance`` and ``post`` are None
    and ``pre`` is the initial state that breaks it."""

    shape: Shape
    broken: str
    pre: Values
    instance: Instance | None
    post: Values | None
    config: str
    replay: str = ""  # what the executable model made of it
    confirmed: bool = False  # the executable model breaks the same property

    def describe(self) -> str:
        lines = [f"configuration: {self.config}"]
        if self.instance is None:
            lines.append(f"initial state breaking {self.broken}:")
            lines += ["  " + line for line in render_state(self.pre, self.shape)]
        else:
            assert self.post is not None
            lines.append("state before (satisfies every invariant):")
            lines += ["  " + line for line in render_state(self.pre, self.shape)]
            lines.append(f"step: {self.instance.label(self.shape)}")
            lines.append(f"changes, after which {self.broken} fails:")
            lines += ["  " + line for line in render_diff(self.pre, self.post, self.shape)]
        if self.replay:
            lines.append(f"executable model: {self.replay}")
        return "\n".join(lines)


@attrs.frozen
class ObligationResult:
    """One obligation's verdict and timing."""

    name: str
    requirements: tuple[str, ...]
    kind: ObligationKind
    verdict: Verdict
    seconds: float
    cti: Cti | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "proved"


class Selector:
    """Which of ``count`` action instances a step takes: one Boolean per instance, exactly one
    true (Boolean case splits suit z3's SAT core better than an integer compared with each
    index)."""

    def __init__(self, name: str, count: int) -> None:
        self.bits = [z3.Bool(f"{name}={i}") for i in range(count)]

    def is_(self, i: int) -> Any:
        return self.bits[i]

    def any_of(self, indices: list[int]) -> Any:
        return (
            self.bits[indices[0]] if len(indices) == 1 else z3.Or(*(self.bits[i] for i in indices))
        )

    def exactly_one(self) -> Any:
        if not self.bits:
            return z3.BoolVal(False)
        return z3.PbEq([(b, 1) for b in self.bits], 1)

    def value(self, model: Any) -> int:
        for i, b in enumerate(self.bits):
            if z3.is_true(model.eval(b, model_completion=True)):
                return i
        raise ValueError("no instance selected in the model")

    def differs(self, model_choice: int) -> Any:
        return z3.Not(self.bits[model_choice])


def _merge(pre: SymState, posts: list[SymState], sel: Selector) -> SymState:
    """One post-state for a group: each variable is an If-chain over the instances that change
    it, selected by ``sel``."""
    merged = pre.copy()
    for field, idx, base in pre.items():
        # Instances that leave the variable alone, or set it to the same term (z3 shares equal
        # terms, so equal AST ids mean equal terms), share one branch.
        # (A term left alone is the very object of the pre-state: no AST id is needed, and
        # building z3 values for Python ones to compare them was most of a BMC run's time.)
        branches: dict[object, tuple[Any, list[int]]] = {}
        base_key = _term_key(base)
        for i, post in enumerate(posts):
            after = post.terms[field][idx]
            if after is base:
                continue
            key = _term_key(after)
            if key != base_key:
                branches.setdefault(key, (after, []))[1].append(i)
        term = base
        for after, chosen in branches.values():
            term = ite(sel.any_of(chosen), after, term)
        merged.terms[field][idx] = term
    return merged


def successor(
    enc: Encoding, pre: SymState, steps: list[Step], sel: Selector, tag: str
) -> tuple[SymState, Term, list[Any]]:
    """The state after a step of one of ``steps`` (effects before react), as ``actions.apply``
    builds it: the effects merged by ``sel``, ``react`` once on the merged state, then the
    ghost's ``observe`` per instance (its parties, its message), merged again. Also returns
    whether react started a lookup in a busy slot, and the constraints on the ghost's fresh
    variables."""
    reacted, collision = enc.react(_merge(pre, [st.post for st in steps], sel))
    observed: list[SymState] = []
    side: list[Any] = []
    for i, st in enumerate(steps):
        # Each instance's fresh ghost variables are its own (a unique tag), so their
        # constraints, always satisfiable, may hold whichever instance is selected.
        post, constraints = enc.observe(pre, st.instance, st.out, reacted, f"{tag}#{i}/observe")
        observed.append(post)
        side += constraints
    return _merge(reacted, observed, sel), collision, side


def _value(m: Any, term: Any) -> Any:
    v = m.eval(z(term), model_completion=True)
    return bool(z3.is_true(v)) if z3.is_bool(v) else int(v.as_long())


def replay_cti(
    cti: Cti,
    prop: Invariant | StepProperty,
    config: Config,
    faults: frozenset[str],
    policy: Policy,
    cfg: SymConfig,
) -> tuple[str, bool]:
    """Build the CTI's pre-state as a World, take its step in the executable model and judge
    the result with ``checks.py`` (or, for an auxiliary invariant, with its formula evaluated on
    the projection of the executable model's successor). Returns (what happened, confirmed)."""
    try:
        world = concretize(cti.pre, cti.shape, config, policy, faults, head=cti.instance)
    except ValueError as error:  # e.g. an enumeration out of range: no world has this state
        return f"not replayed: the state is no World ({error})", False
    ids = ", ".join(f"n{i}={v:0{config.id_bits}b}" for i, v in enumerate(config.ids))
    where = f"with IDs {ids} and key(s) {[f'{k:0{config.id_bits}b}' for k in config.keys]}"
    wanted = set(prop.requirements)
    before = [v for v in check_state(world, policy) if v.requirement in encoded_requirements()]
    if cti.instance is None:
        found = [v for v in before if v.requirement in wanted]
        if found:
            return (
                f"{where}, the initial world violates {found[0].requirement}: {found[0].detail}",
                True,
            )
        return f"{where}, the initial world breaks no checked requirement", False
    label = cti.instance.label(cti.shape)
    match = [a for a in enabled(world, policy) if instance_of(world, a) == cti.instance]
    if not match:
        return f"{where}, the executable model does not enable {label} in this state", False
    action = match[0]
    after = apply(world, policy, action)
    prefix = f"{where}: {action.describe(world)}"
    if before:
        prefix += f" (the state before already violates {before[0].requirement})"
    if wanted:
        found = [
            v
            for v in check_step(world, action, after, policy) + check_state(after, policy)
            if v.requirement in wanted
        ]
        if found:
            return f"{prefix}; confirmed, {found[0].requirement}: {found[0].detail}", True
        return f"{prefix}; the executable model breaks no {'/'.join(sorted(wanted))} here", False
    try:
        values = project(after, cti.shape)
    except NotRepresentable as error:
        return f"{prefix}; the successor leaves the encoded shape: {error}", False
    holds = (
        prop.formula(SymState.literal(cti.shape, values), cfg)
        if isinstance(prop, Invariant)
        else True
    )
    if holds is False:
        return f"{prefix}; confirmed, the successor breaks {prop.name}", True
    return f"{prefix}; the executable model's successor satisfies {prop.name}", False


PARTED_GROUPS = frozenset(
    {"deliver_identify", "deliver_request", "deliver_reply", "deliver_add_provider", "lose"}
)
"""Groups proved part by part, one part per node receiving the message."""

_WORST: dict[Verdict, int] = {"refuted": 0, "unknown": 1, "proved": 2}


def _worst(results: tuple[ObligationResult, ...]) -> ObligationResult:
    """One obligation's result over the parts of its group: the worst verdict (its reason and
    counterexample), the time of all parts."""
    worst = min(results, key=lambda r: _WORST[r.verdict])
    if worst.verdict == "proved":
        unchanged = all(r.reason == "unchanged by the step" for r in results)
        worst = attrs.evolve(worst, reason="unchanged by the step" if unchanged else "")
    return attrs.evolve(worst, seconds=sum(r.seconds for r in results))


def _ast_id(term: Any) -> int:
    return int(z(term).get_id())


def _term_key(term: Any) -> object:
    """Equal for equal terms: a Python value (a folded term) by its type and value, a z3 term
    by its AST id (z3 shares equal terms)."""
    if isinstance(term, bool | int):
        return (type(term), term)
    return _ast_id(term)


class Prover:
    """Builds the encoding once for a shape and policy and discharges obligations."""

    def __init__(
        self,
        shape: Shape,
        policy: Policy,
        *,
        invariants: tuple[Invariant, ...] | None = None,
        step_properties: tuple[StepProperty, ...] | None = None,
        timeout_ms: int = 60_000,
    ) -> None:
        self.shape = shape
        self.policy = policy
        self.cfg = SymConfig.symbolic(shape, policy)
        self.enc = Encoding(shape, self.cfg, policy)
        self.invariants = all_invariants() if invariants is None else invariants
        self.step_properties = STEP_PROPERTIES if step_properties is None else step_properties
        self.timeout_ms = timeout_ms
        self.pre = SymState.variables(shape, "pre.")
        self._before: dict[str, Any] = {}

    def _solver(self) -> Any:
        s = z3.Solver()
        s.set("timeout", self.timeout_ms)
        s.add(*self.cfg.axioms())
        return s

    def _check(self, s: Any) -> tuple[Verdict, str]:
        answer = s.check()
        if answer == z3.unsat:
            return "proved", ""
        if answer == z3.sat:
            return "refuted", ""
        return "unknown", str(s.reason_unknown())

    def initiation(self) -> list[ObligationResult]:
        s = self._solver()
        s.add(self.enc.initial(self.pre))
        started = time.perf_counter()
        if s.check() == z3.unsat:  # nothing would be proved: refuse to call it proved
            return [
                ObligationResult(
                    f"initiation: {inv.name}",
                    inv.requirements,
                    "initiation",
                    "unknown",
                    time.perf_counter() - started,
                    None,
                    "vacuous: the initial states contradict the configuration axioms",
                )
                for inv in self.invariants
            ]
        out = []
        for inv in self.invariants:
            started = time.perf_counter()
            s.push()
            s.add(z(z3.Not(z(inv.formula(self.pre, self.cfg)))))
            verdict, reason = self._check(s)
            cti = self._cti(s, None, None, inv) if verdict == "refuted" else None
            s.pop()
            out.append(
                ObligationResult(
                    f"initiation: {inv.name}",
                    inv.requirements,
                    "initiation",
                    verdict,
                    time.perf_counter() - started,
                    cti,
                    reason,
                )
            )
        return out

    def _formula_before(self, inv: Invariant) -> Any:
        """``inv`` over the pre-state, built once per invariant for every group."""
        found = self._before.get(inv.name)
        if found is None:
            found = self._before[inv.name] = z(inv.formula(self.pre, self.cfg))
        return found

    def group_steps(self, group: str) -> list[Step]:
        """The instances of a group, each with its effect before ``react``."""
        return [
            self.enc.effect(self.pre, inst, f"{group}#{i}")
            for i, inst in enumerate(x for x in self.enc.instances if x.group == group)
        ]

    def consecution(
        self, group: str, *, assume: Iterable[Invariant] | None = None
    ) -> list[ObligationResult]:
        """Every invariant and step property for one transition group, one frame each.

        The message groups (deliveries and losses) are proved part by part, one part per
        receiving node: the group's step is the disjunction of its instances, so an obligation
        holds for the group exactly when it holds for each part, and z3 meets a merged
        successor of a third of the size (with 16 refresh classes a channel carries 30 and
        more classes). An obligation's verdict is its worst over the parts: refuted (with that
        part's counterexample) before unknown before proved; its time is their sum.
        """
        steps = self.group_steps(group)
        if not steps:
            return []  # no instance in this shape (forging needs a third node to name)
        if group not in PARTED_GROUPS or self.shape.nodes < 3:
            whole = self._consecution(group, steps, assume)
            assert whole is not None  # only a part is ever left out
            return whole
        parts = [
            self._consecution(f"{group}@n{d}", chosen, assume, name=group)
            for d in range(self.shape.nodes)
            if (chosen := [st for st in steps if st.instance.peer == d])
        ]
        enabled = [part for part in parts if part is not None]
        if not enabled:  # no part is enabled in any state satisfying the invariants
            vacuous = self._consecution(group, steps, assume)
            assert vacuous is not None
            return vacuous
        return [_worst(results) for results in zip(*enabled, strict=True)]

    def _consecution(
        self,
        group: str,
        steps: list[Step],
        assume: Iterable[Invariant] | None,
        *,
        name: str | None = None,
    ) -> list[ObligationResult] | None:
        """The obligations of ``steps`` (a group, or the part of one named ``group``; results
        are named after ``name``, the group). For a part no invariant state enables, None: it
        adds no transition (whether the group as a whole is vacuous is judged by the caller)."""
        started = time.perf_counter()
        part = name is not None
        group = name if name is not None else group
        sel = Selector(f"sel.{group}", len(steps))
        post, collision, observed = successor(self.enc, self.pre, steps, sel, group)
        outs = [attrs.evolve(st.out, collision=or_(st.out.collision, collision)) for st in steps]
        s = self._solver()
        hypotheses = self.invariants if assume is None else tuple(assume)
        assumed = {inv.name: self._formula_before(inv) for inv in hypotheses}
        s.add(*assumed.values())
        s.add(sel.exactly_one())
        s.add(
            *(z3.Implies(sel.is_(i), z3.And(z(st.guard), *st.side)) for i, st in enumerate(steps))
        )
        s.add(*observed)
        setup = time.perf_counter() - started
        vacuous = self._vacuous(s, group)
        if vacuous is not None:
            if part and vacuous[0].reason.startswith("vacuous"):
                return None
            return vacuous
        out: list[ObligationResult] = []
        for inv in self.invariants:
            t0 = time.perf_counter()
            after = z(inv.formula(post, self.cfg))
            before = assumed.get(inv.name)
            if before is not None and after.eq(before):
                # No instance of the group changes what the invariant reads: its formula after
                # the step is, term for term, the one assumed before it (z3 shares equal terms).
                verdict: Verdict = "proved"
                reason, cti = "unchanged by the step", None
            else:
                s.push()
                s.add(z3.Not(after))
                verdict, reason = self._check(s)
                cti = self._cti(s, steps, sel, inv, post) if verdict == "refuted" else None
                s.pop()
            out.append(
                ObligationResult(
                    f"consecution: {inv.name} / {group}",
                    inv.requirements,
                    "consecution",
                    verdict,
                    time.perf_counter() - t0 + setup / (len(self.invariants) + 1),
                    cti,
                    reason,
                )
            )
        for prop in self.step_properties:
            t0 = time.perf_counter()
            s.push()
            broken = [
                z3.And(
                    sel.is_(i), z3.Not(z(prop.formula(self.pre, st.instance, o, post, self.cfg)))
                )
                for i, (st, o) in enumerate(zip(steps, outs, strict=True))
            ]
            s.add(z3.Or(*broken) if broken else z3.BoolVal(False))
            verdict, reason = self._check(s)
            cti = self._cti(s, steps, sel, prop, post) if verdict == "refuted" else None
            s.pop()
            out.append(
                ObligationResult(
                    f"step: {prop.name} / {group}",
                    prop.requirements,
                    "consecution",
                    verdict,
                    time.perf_counter() - t0,
                    cti,
                    reason,
                )
            )
        return out

    def _vacuous(self, s: Any, group: str) -> list[ObligationResult] | None:
        """Refuse to call a group's obligations proved when no state satisfying the invariants
        enables it: that would prove nothing (and usually means contradictory invariants)."""
        started = time.perf_counter()
        verdict, reason = self._check(s)
        if verdict == "refuted":  # satisfiable: some invariant state enables the group
            return None
        if verdict == "proved":
            reason = "vacuous: no state satisfying the invariants enables this transition"
        return [
            ObligationResult(
                f"{'consecution' if i < len(self.invariants) else 'step'}: {name} / {group}",
                reqs,
                "consecution",
                "unknown",
                time.perf_counter() - started,
                None,
                reason,
            )
            for i, (name, reqs) in enumerate(
                [(x.name, x.requirements) for x in self.invariants]
                + [(x.name, x.requirements) for x in self.step_properties]
            )
        ]

    def _cti(
        self,
        s: Any,
        steps: list[Step] | None,
        sel: Selector | None,
        prop: Invariant | StepProperty,
        post: SymState | None = None,
    ) -> Cti:
        """The counterexample, preferably one with a concrete configuration (canonical node
        IDs), replayed through the executable model."""
        m = s.model()
        config, faults = concrete_config(self.cfg, lambda t: _value(m, t))
        pinned = SymConfig.concrete(config, faults, self.policy, shape=self.shape)
        s.push()
        s.add(*self.cfg.pinned_to(pinned))
        answer = s.check()
        note = ""
        if answer == z3.sat:
            m = s.model()
        else:
            note = (
                f"not replayed: with node IDs {list(config.ids)} and keys {list(config.keys)} "
                f"z3 finds no such counterexample ({answer}); it needs another ID geometry"
            )
        s.pop()
        pre = self.pre.evaluate(m)
        inst = None if sel is None or steps is None else steps[sel.value(m)].instance
        after = None if post is None else post.evaluate(m)
        cti = Cti(self.shape, prop.name, pre, inst, after, self.cfg.describe(m), note)
        if answer != z3.sat:
            return cti
        text, confirmed = replay_cti(cti, prop, config, faults, self.policy, pinned)
        return attrs.evolve(cti, replay=text, confirmed=confirmed)

    def all(self, groups: Iterable[str] = GROUPS) -> list[ObligationResult]:
        out = self.initiation()
        for group in groups:
            out += self.consecution(group)
        return out


__all__ = ["Cti", "ObligationResult", "Prover", "Verdict", "successor"]
