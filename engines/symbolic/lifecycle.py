"""``prove_lifecycle``: every obligation of the symbolic layer for one shape and policy.

The report gathers, each with its verdict and time:

- the XOR-metric lemmas over 256-bit keys (:mod:`.metric`), for the specification's policy set;
- initiation and consecution of every requirement invariant and auxiliary invariant, and every
  step property, for ``nodes`` nodes with the configuration symbolic (:mod:`.obligations`);
- for a mutant's policy, bounded model checking on the mutant's own scenario, the trace replayed
  through the executable model (:mod:`.bmc`).

A report is ``ok`` only when every obligation is proved; an ``unknown`` (a solver timeout, say)
is never a pass. Consecution groups run in ``jobs`` worker processes, each with its own z3
context.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Literal

import attrs

from kadspec.engines.symbolic.bmc import BmcResult, bmc
from kadspec.engines.symbolic.encoding import GROUPS, Shape
from kadspec.engines.symbolic.invariants import (
    CHECKS_NOT_ENCODED,
    NOT_ENCODED,
    encoded_requirements,
)
from kadspec.engines.symbolic.metric import DEFAULT_BITS, LemmaResult, prove_all
from kadspec.engines.symbolic.obligations import ObligationResult, Prover
from kadspec.models.checks import NODE_INVARIANTS, STEP_CHECKS, WORLD_INVARIANTS
from kadspec.models.config import SYMBOLIC_MAX_NODES as MAX_NODES
from kadspec.models.mutants import MUTANTS, Mutant
from kadspec.models.policy import SPEC, Policy
from kadspec.models.requirements_registry import requirements_of

Kind = Literal["lemma", "initiation", "consecution", "bmc"]
Result = Literal["proved", "refuted", "unknown"]

MIN_NODES = 2
DEFAULT_TIMEOUT_MS = 60_000

# Rough relative cost of each group (measured at 4 nodes), so the slowest start first.
_COST = {
    "deliver_request": 9,
    "deliver_reply": 9,
    "query": 7,
    "lose": 6,
    "deliver_add_provider": 5,
    "deliver_identify": 4,
    "tick": 4,
    "forge_add_provider": 3,
    "dial_bootstrap": 2,
    "set_mode": 2,
}


@attrs.frozen
class Obligation:
    """One line of the report."""

    name: str
    requirements: tuple[str, ...]
    kind: Kind
    result: Result
    seconds: float
    counterexample: str | None = None

    @property
    def ok(self) -> bool:
        return self.result == "proved"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requirements": list(self.requirements),
            "kind": self.kind,
            "result": self.result,
            "seconds": round(self.seconds, 4),
            "counterexample": self.counterexample,
        }


@attrs.frozen
class ProofReport:
    """Every obligation for one shape and policy set. ``ok`` only when all are proved."""

    nodes: int
    policy: str
    obligations: tuple[Obligation, ...]
    seconds: float
    jobs: int = 1
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.obligations) and all(o.ok for o in self.obligations)

    def count(self, result: Result) -> int:
        return sum(1 for o in self.obligations if o.result == result)

    @property
    def failures(self) -> tuple[Obligation, ...]:
        return tuple(o for o in self.obligations if not o.ok)

    def broken_requirements(self) -> tuple[str, ...]:
        """Requirement IDs with a refuted obligation (a CTI or a confirmed trace)."""
        ids = {r for o in self.obligations if o.result == "refuted" for r in o.requirements}
        return tuple(sorted(ids))

    def proved_requirements(self) -> tuple[str, ...]:
        """The safety requirements proved inductive: all of them when every initiation and
        consecution obligation is proved, none otherwise (each consecution assumes the whole
        conjunction of invariants, so one failure leaves every induction step open)."""
        induction = [o for o in self.obligations if o.kind in ("initiation", "consecution")]
        if induction and all(o.ok for o in induction):
            return tuple(sorted(encoded_requirements()))
        return ()

    def summary(self) -> str:
        text = (
            f"{len(self.obligations)} obligations for {self.nodes} nodes under policy "
            f"{self.policy}: {self.count('proved')} proved, {self.count('refuted')} refuted, "
            f"{self.count('unknown')} unknown in {self.seconds:.1f} s"
        )
        broken = self.broken_requirements()
        if broken:
            text += f"; requirements broken: {', '.join(broken)}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "policy": self.policy,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "jobs": self.jobs,
            "counts": {r: self.count(r) for r in ("proved", "refuted", "unknown")},
            "requirements_proved": list(self.proved_requirements()),
            "requirements_broken": list(self.broken_requirements()),
            "not_encoded": dict(NOT_ENCODED),
            "checks_not_encoded": dict(CHECKS_NOT_ENCODED),
            "notes": list(self.notes),
            "obligations": [o.to_json() for o in self.obligations],
        }


def policy_name(policy: Policy) -> str:
    """``spec``, the name of the mutant whose policy this is, or ``custom``."""
    if policy == SPEC:
        return "spec"
    for mutant in MUTANTS.values():
        if mutant.policy == policy:
            return mutant.name
    return "custom"


def _from_obligation(r: ObligationResult) -> Obligation:
    text = r.cti.describe() if r.cti is not None else (r.reason or None)
    return Obligation(r.name, r.requirements, r.kind, r.verdict, r.seconds, text)


def _from_lemma(r: LemmaResult) -> Obligation:
    text = r.describe() if not r.ok else None
    return Obligation(
        f"lemma: {r.lemma.name} ({r.bits} bits)",
        r.lemma.supports,
        "lemma",
        r.verdict,
        r.seconds,
        text,
    )


def _from_bmc(mutant: Mutant, r: BmcResult) -> Obligation:
    target = r.target or "any encoded requirement"
    name = f"bmc: {mutant.name} on scenario {mutant.scenario} breaks {target}"
    result: Result = "refuted" if r.confirmed else "unknown"
    requirements: tuple[str, ...] = (r.target,) if r.target else ()
    if r.confirmed and r.replay is not None and not requirements:
        requirements = tuple(sorted({v.requirement for v in r.replay.violated(None)}))
    return Obligation(name, requirements, "bmc", result, r.seconds, r.describe())


# Worker processes keep one Prover per (shape, policy, timeout) between tasks.
_PROVERS: dict[tuple[Shape, Policy, int], Prover] = {}


def _prover(shape: Shape, policy: Policy, timeout_ms: int) -> Prover:
    key = (shape, policy, timeout_ms)
    prover = _PROVERS.get(key)
    if prover is None:
        prover = _PROVERS[key] = Prover(shape, policy, timeout_ms=timeout_ms)
    return prover


def _run(task: str, shape: Shape, policy: Policy, timeout_ms: int) -> list[ObligationResult]:
    prover = _prover(shape, policy, timeout_ms)
    return prover.initiation() if task == "initiation" else prover.consecution(task)


def _obligations(
    shape: Shape, policy: Policy, timeout_ms: int, jobs: int
) -> list[ObligationResult]:
    tasks = ["initiation", *sorted(GROUPS, key=lambda g: -_COST.get(g, 1))]
    if jobs <= 1:
        results = {t: _run(t, shape, policy, timeout_ms) for t in tasks}
    else:
        context = multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        )
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {t: pool.submit(_run, t, shape, policy, timeout_ms) for t in tasks}
            results = {t: f.result() for t, f in futures.items()}
    order = ["initiation", *GROUPS]
    return [r for t in order for r in results[t]]


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def prove_lifecycle(
    nodes: int,
    policy: Policy,
    *,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    keys: int = 1,
    lemmas: bool | None = None,
    mutant: Mutant | None = None,
    bmc_depth: int = 20,
    jobs: int = 1,
    groups: Sequence[str] | None = None,
) -> ProofReport:
    """Discharge every obligation for ``nodes`` nodes under ``policy``.

    ``lemmas`` (default: for the spec policy only) adds the metric lemmas at 256 bits. For a
    mutant's policy (found by equality in ``MUTANTS`` unless ``mutant`` is given), bounded model
    checking runs on the mutant's scenario, targeting its expected requirement when the symbolic
    layer encodes it, or any encoded requirement when the induction found one broken.
    """
    if not MIN_NODES <= nodes <= MAX_NODES:
        raise ValueError(f"nodes: {nodes} is outside {MIN_NODES}..{MAX_NODES}")
    started = time.perf_counter()
    name = policy_name(policy)
    out: list[Obligation] = []
    if lemmas if lemmas is not None else policy == SPEC:
        out += [_from_lemma(r) for r in prove_all(timeout_ms, DEFAULT_BITS)]
    shape = Shape(nodes, keys)
    if groups is None:
        found = _obligations(shape, policy, timeout_ms, jobs)
    else:
        prover = Prover(shape, policy, timeout_ms=timeout_ms)
        found = prover.initiation()
        for group in groups:
            found += prover.consecution(group)
    out += [_from_obligation(r) for r in found]
    notes: list[str] = []
    if mutant is None and name not in ("spec", "custom"):
        mutant = MUTANTS[name]
    if mutant is not None:
        target: str | None = mutant.expected
        if target not in encoded_requirements():
            notes.append(
                f"{mutant.name} is expected to break {target}, which the symbolic layer does not "
                f"encode ({NOT_ENCODED.get(target or '', 'not a safety requirement')}); "
                "`kadspec check` and the explorer find it"
            )
            target = None
        elif target is not None:
            every = (*NODE_INVARIANTS, *WORLD_INVARIANTS, *STEP_CHECKS)
            untwinned = [
                c.__name__
                for c in every
                if c.__name__ in CHECKS_NOT_ENCODED and target in requirements_of(c)
            ]
            if untwinned:
                notes.append(
                    f"{target} is only partly encoded ({', '.join(untwinned)} has no symbolic "
                    "twin); bounded model checking finds only what the encoded checks see"
                )
        broken = {r for o in out if o.result == "refuted" for r in o.requirements}
        if target is not None or broken:
            result = bmc(
                mutant.scenario_spec.initial(),
                mutant.policy,
                target,
                max_depth=bmc_depth,
                timeout_ms=max(timeout_ms, 120_000),
            )
            out.append(_from_bmc(mutant, result))
    return ProofReport(nodes, name, tuple(out), time.perf_counter() - started, jobs, tuple(notes))


__all__ = [
    "MIN_NODES",
    "Obligation",
    "ProofReport",
    "default_jobs",
    "policy_name",
    "prove_lifecycle",
]
