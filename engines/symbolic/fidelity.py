"""One model, two encodings, kept honest: the symbolic transition relation against the
executable model, on concrete (state, action) pairs.

For a reachable world ``w``, an enabled action ``a`` and ``w' = apply(w, a)``, with the
configuration fixed to ``w``'s, :meth:`FidelityChecker.check` asserts:

1. guards: every concretely enabled instance is symbolically enabled on ``project(w)``, and for the
   groups whose guard is fully determined by tracked variables (``EXACT_GUARD_GROUPS``) the two
   sets of enabled instances are equal;
2. the step: ``project(w')`` is a symbolic successor of ``project(w)`` under ``a``'s instance. The
   encoding is evaluated on the known pre-state, where every term not touched by a free choice
   folds to a value; those values must equal ``project(w')`` and z3 must find values of the free
   choices (late timers, reply contents, ...) that produce the rest;
3. exactness: for an instance encoded exactly (:func:`~.encoding.is_exact`), nothing in the
   successor depends on a free choice, so the symbolic successor is unique;
4. outputs: a FIND_NODE or GET_PROVIDERS reply sent by the step has, symbolically, the same closer
   peers and providers as the concrete message.

Every ``relation_every``-th pair is also checked against the transition formula exactly as the
proofs build it, over z3 variables (guard, side conditions, post-state equalities, nothing
folded): satisfiable with pre- and post-state fixed, and, for exact instances, unsatisfiable with
the post-state different. A failure raises :class:`Divergence` naming the action, the check and
(for a step) the variables on which the two disagree.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import z3

from kadspec.engines.symbolic.encoding import (
    EXACT_EXCEPT,
    EXACT_GUARD_GROUPS,
    Encoding,
    Idx,
    Instance,
    Outputs,
    SymConfig,
    SymState,
    Values,
    instance_of,
    is_exact,
    project,
    shape_of,
)
from kadspec.engines.symbolic.terms import known, value, z
from kadspec.models.actions import Action, enabled
from kadspec.models.checks import sent_messages
from kadspec.models.config import Config
from kadspec.models.policy import Policy
from kadspec.models.state import Kind, World


class Divergence(AssertionError):
    """The symbolic encoding and the executable model disagree on a (state, action) pair."""


@attrs.define
class _Relation:
    solver: Any
    pre: SymState
    post: SymState
    outputs: dict[str, Any]


def _key(world: World, policy: Policy) -> tuple[Config, frozenset[str], int, Policy]:
    return (world.config, world.budget.fault_kinds, world.horizon, policy)


class FidelityChecker:
    """Checks (state, action) pairs; keeps one encoding per configuration and policy and one
    solver per action instance, so repeated checks are cheap."""

    def __init__(self, timeout_ms: int = 20_000, relation_every: int = 10) -> None:
        self.timeout_ms = timeout_ms
        self.relation_every = relation_every
        self._encodings: dict[Any, Encoding] = {}
        self._relations: dict[tuple[Any, Instance], _Relation] = {}
        self.pairs = 0
        self.relation_checks = 0
        self.by_group: Counter[str] = Counter()

    def encoding(self, world: World, policy: Policy) -> Encoding:
        key = _key(world, policy)
        enc = self._encodings.get(key)
        if enc is None:
            shape = shape_of(world)
            enc = self._encodings[key] = Encoding(shape, SymConfig.of(world, policy), policy)
        return enc

    def _relation(self, world: World, policy: Policy, inst: Instance) -> _Relation:
        key = (_key(world, policy), inst)
        rel = self._relations.get(key)
        if rel is not None:
            return rel
        enc = self.encoding(world, policy)
        pre = SymState.variables(enc.shape, "pre.")
        post = SymState.variables(enc.shape, "post.")
        step = enc.step(pre, inst, "fid")
        solver = z3.Solver()
        solver.set("timeout", self.timeout_ms)
        solver.add(z(step.guard), *step.side, *step.post.equals(post))
        outputs = _output_terms(step.out, inst)
        for name, term in outputs.items():
            solver.add(z3.Bool(f"out.{name}") == z(term))
        rel = self._relations[key] = _Relation(
            solver, pre, post, {name: z3.Bool(f"out.{name}") for name in outputs}
        )
        return rel

    def check(
        self,
        world: World,
        policy: Policy,
        action: Action,
        after: World | None = None,
        actions: list[Action] | None = None,
    ) -> Instance:
        """Check one pair; return the instance it exercised. Raises :class:`Divergence`."""
        from kadspec.models.actions import apply

        if after is None:
            after = apply(world, policy, action)
        try:
            inst = instance_of(world, action)
            pre_vals = project(world)
            post_vals = project(after)
        except ValueError as error:
            raise Divergence(
                f"{action.describe(world)}: outside the encoded shape: {error}"
            ) from None
        enc = self.encoding(world, policy)
        self._check_guards(world, policy, enc, pre_vals, actions)
        self._check_step(world, policy, action, after, inst, pre_vals, post_vals)
        if self.relation_every and self.pairs % self.relation_every == 0:
            self._check_relation(world, policy, action, after, inst, pre_vals, post_vals)
            self.relation_checks += 1
        self.pairs += 1
        self.by_group[inst.group] += 1
        return inst

    def _check_step(
        self,
        world: World,
        policy: Policy,
        action: Action,
        after: World,
        inst: Instance,
        pre_vals: Values,
        post_vals: Values,
    ) -> None:
        enc = self.encoding(world, policy)
        step = enc.step(SymState.literal(enc.shape, pre_vals), inst, "fid")
        where = f"{action.describe(world)} ({inst.label(enc.shape)})"
        if step.guard is not True and known(step.guard):
            raise Divergence(f"{where}: its symbolic guard is false")
        diffs: list[str] = []
        free: list[Any] = []
        undetermined: list[str] = []
        for f, i, t in step.post.items():
            if known(t):
                if value(t) != post_vals[f][i]:
                    diffs.append(
                        f"{f}[{','.join(map(str, i))}]: symbolic {value(t)}, "
                        f"executable {post_vals[f][i]}"
                    )
            else:
                free.append(z(t) == z(post_vals[f][i]))
                if f not in EXACT_EXCEPT:
                    undetermined.append(f"{f}[{','.join(map(str, i))}]")
        for name, term in _output_terms(step.out, inst).items():
            expected = _output_values(world, action, after)[name]
            if known(term):
                if value(term) != expected:
                    diffs.append(f"reply {name}: symbolic {value(term)}, executable {expected}")
            else:
                free.append(z(term) == expected)
        if diffs:
            raise Divergence(f"{where}: " + "; ".join(diffs[:12]))
        if is_exact(inst) and (undetermined or not known(step.guard)):
            raise Divergence(
                f"{where}: encoded as exact, but these depend on a choice: "
                + ", ".join(undetermined or ["the guard"])
            )
        if free or not known(step.guard):
            s = z3.Solver()
            s.set("timeout", self.timeout_ms)
            s.add(z(step.guard), *step.side, *free)
            answer = s.check()
            if answer != z3.sat:
                raise Divergence(
                    f"{where}: no choice of its free variables yields the executable model's "
                    f"successor (z3: {answer})"
                )

    def _check_relation(
        self,
        world: World,
        policy: Policy,
        action: Action,
        after: World,
        inst: Instance,
        pre_vals: Values,
        post_vals: Values,
    ) -> None:
        enc = self.encoding(world, policy)
        rel = self._relation(world, policy, inst)
        s = rel.solver
        outputs = _output_values(world, action, after)
        fixed = rel.pre.equals_values(pre_vals) + rel.post.equals_values(post_vals)
        fixed += [var == outputs[name] for name, var in rel.outputs.items()]
        s.push()
        s.add(*fixed)
        answer = s.check()
        s.pop()
        where = f"{action.describe(world)} ({inst.label(enc.shape)})"
        if answer != z3.sat:
            raise Divergence(
                f"{where}: the transition formula does not allow the executable model's "
                f"successor (z3: {answer})"
            )
        if is_exact(inst):
            determined = [
                z(eq_)
                for f, i, eq_ in _post_equalities(rel.post, post_vals)
                if f not in EXACT_EXCEPT
            ]
            s.push()
            s.add(*rel.pre.equals_values(pre_vals))
            s.add(z3.Not(z3.And(*determined)))
            answer = s.check()
            s.pop()
            if answer != z3.unsat:
                raise Divergence(
                    f"{where}: encoded as exact, but the transition formula allows another "
                    f"successor (z3: {answer})"
                )

    def _check_guards(
        self,
        world: World,
        policy: Policy,
        enc: Encoding,
        pre_vals: Values,
        actions: list[Action] | None,
    ) -> None:
        if actions is None:
            actions = enabled(world, policy)
        concrete = {instance_of(world, a) for a in actions}
        literal = SymState.literal(enc.shape, pre_vals)
        symbolic: set[Instance] = set()
        for inst in enc.instances:
            g = enc.guard(literal, inst)
            if not known(g):
                raise Divergence(f"guard of {inst.label(enc.shape)} is not determined: {g}")
            if g is True:
                symbolic.add(inst)
        missing = concrete - symbolic
        if missing:
            names = ", ".join(sorted(i.label(enc.shape) for i in missing))
            raise Divergence(f"enabled in the executable model, not symbolically: {names}")
        extra = {i for i in symbolic - concrete if i.group in EXACT_GUARD_GROUPS}
        if extra:
            names = ", ".join(sorted(i.label(enc.shape) for i in extra))
            raise Divergence(f"enabled symbolically, not in the executable model: {names}")


def _post_equalities(post: SymState, values: Values) -> list[tuple[str, Idx, Any]]:
    return [(f, i, z(t) == z(values[f][i])) for f, i, t in post.items()]


def _output_terms(out: Outputs, inst: Instance) -> dict[str, Any]:
    """The reply a delivered FIND_NODE / GET_PROVIDERS request produces, by name."""
    if not (inst.kind == "deliver" and inst.cls.startswith(("FN_", "GP"))):
        return {}
    terms: dict[str, Any] = {"sent": out.reply_sent}
    terms.update({f"closer{q}": t for q, t in out.reply_closer.items()})
    terms.update({f"provider{c}": t for c, t in out.reply_providers.items()})
    return terms


def _output_values(world: World, action: Action, after: World) -> dict[str, bool]:
    replies = [
        m
        for m in sent_messages(world, action, after)
        if m.kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY)
    ]
    if len(replies) > 1:
        raise Divergence(f"{action.describe(world)} sent {len(replies)} replies")
    out = {"sent": bool(replies)}
    for p in range(len(world.nodes)):
        out[f"closer{p}"] = bool(replies) and p in replies[0].closer
        out[f"provider{p}"] = bool(replies) and p in replies[0].providers
    return out


__all__ = ["Divergence", "FidelityChecker"]
