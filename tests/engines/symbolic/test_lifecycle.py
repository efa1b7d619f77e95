"""Tests for the symbolic lifecycle: obligations, counterexamples to induction, BMC, the CLI."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from kadspec.engines.reductions import shortest_counterexample
from kadspec.engines.symbolic import ProofReport, encoding, prove_lifecycle
from kadspec.engines.symbolic.bmc import bmc
from kadspec.engines.symbolic.encoding import GROUPS, Shape, SymConfig, SymState
from kadspec.engines.symbolic.invariants import (
    AUXILIARY_INVARIANTS,
    CHECKS_NOT_ENCODED,
    NOT_ENCODED,
    REQUIREMENT_INVARIANTS,
    STEP_PROPERTIES,
    Invariant,
    encoded_requirements,
)
from kadspec.engines.symbolic.obligations import Prover
from kadspec.engines.symbolic.terms import Term, all_, not_
from kadspec.models.checks import NODE_INVARIANTS, STEP_CHECKS, WORLD_INVARIANTS
from kadspec.models.mutants import MUTANTS, Mutant
from kadspec.models.policy import SPEC, Policy
from kadspec.models.requirements_registry import requirements_of
from kadspec.prove import prove
from kadspec.spec import requirements

SAFETY_CHECKS = {"invariant", "step"}
CHECKS: list[Callable[..., Any]] = [*NODE_INVARIANTS, *WORLD_INVARIANTS, *STEP_CHECKS]


def _safety_ids() -> set[str]:
    return {rid for rid, r in requirements().items() if r.check in SAFETY_CHECKS}


def _twinned_ids() -> set[str]:
    """Requirements with a state or step check in checks.py that has a symbolic twin."""
    return {
        rid
        for check in CHECKS
        if check.__name__ not in CHECKS_NOT_ENCODED
        for rid in requirements_of(check)
    }


@cache
def _spec_report(nodes: int) -> ProofReport:
    return prove_lifecycle(nodes, SPEC, lemmas=False)


#: The tests that read the 3-node proof (50-80 s) run in one worker process, so that it is
#: proved once per run, not once per worker that happens to get one of them.
THREE_NODE_PROOF = pytest.mark.xdist_group("three-node-proof")


@THREE_NODE_PROOF
def test_every_obligation_is_proved_for_three_nodes_under_the_spec() -> None:
    report = _spec_report(3)
    assert report.ok, "\n\n".join(f"{o.name}: {o.counterexample}" for o in report.failures)
    assert report.count("unknown") == 0 and report.count("refuted") == 0
    names = {o.name for o in report.obligations}
    for inv in REQUIREMENT_INVARIANTS:
        assert f"initiation: {inv.name}" in names
        for group in GROUPS:
            assert f"consecution: {inv.name} / {group}" in names
    for prop in STEP_PROPERTIES:
        for group in GROUPS:
            assert f"step: {prop.name} / {group}" in names


def test_every_safety_requirement_is_encoded_or_listed_as_not_encoded() -> None:
    # Encoded: exactly the requirements whose state or step checks have twins; every other
    # requirement, and every safety requirement of the spec without one, says why.
    assert encoded_requirements() == _twinned_ids()
    assert not set(NOT_ENCODED) & encoded_requirements()
    assert set(NOT_ENCODED) | encoded_requirements() == set(requirements())
    assert _safety_ids() <= encoded_requirements() | set(NOT_ENCODED)
    assert all(reason.strip() for reason in NOT_ENCODED.values())


def test_each_check_in_checks_py_has_a_symbolic_twin_with_its_name() -> None:
    twins = {i.name: i.requirements for i in REQUIREMENT_INVARIANTS}
    twins.update({p.name: p.requirements for p in STEP_PROPERTIES if p.requirements})
    for check in CHECKS:
        if check.__name__ in CHECKS_NOT_ENCODED:
            assert check.__name__ not in twins, check.__name__
            continue
        assert twins.get(check.__name__) == requirements_of(check), check.__name__
    # Every twin restates a check that exists, and every exception names one.
    names = {c.__name__ for c in CHECKS}
    assert set(twins) <= names
    assert set(CHECKS_NOT_ENCODED) <= names


def test_the_encoding_reads_every_policy_knob() -> None:
    source = inspect.getsource(encoding)
    for field in attrs.fields(Policy):
        assert f"policy.{field.name}" in source or field.name == "give_up_after", field.name
    assert "policy.give_up_after" in inspect.getsource(SymConfig)


@THREE_NODE_PROOF
def test_the_report_names_obligations_with_kinds_results_and_times() -> None:
    report = _spec_report(3)
    assert {o.kind for o in report.obligations} == {"initiation", "consecution"}
    data = report.to_json()
    assert data["ok"] is True and data["nodes"] == 3 and data["policy"] == "spec"
    assert set(data["requirements_proved"]) == encoded_requirements()
    assert all(o["seconds"] >= 0 and o["result"] == "proved" for o in data["obligations"])
    assert "proved" in report.summary()


def test_worker_processes_prove_the_same_obligations() -> None:
    alone = prove_lifecycle(2, SPEC, lemmas=False, jobs=1)
    shared = prove_lifecycle(2, SPEC, lemmas=False, jobs=2)
    assert shared.ok and alone.ok
    assert [o.name for o in shared.obligations] == [o.name for o in alone.obligations]


def _nobody_runs(st: SymState, cfg: SymConfig) -> Term:
    return all_(not_(st("up", n)) for n in range(st.shape.nodes))


def test_a_non_inductive_invariant_gets_a_counterexample_shown_as_states() -> None:
    # True initially, broken by the first start: initiation holds, consecution does not.
    false_claim = Invariant("nobody_runs", (), "No node is ever up.", _nobody_runs)
    prover = Prover(Shape(2), SPEC, invariants=(false_claim,), step_properties=())
    (init,) = prover.initiation()
    assert init.verdict == "proved"
    (result,) = prover.consecution("start")
    assert result.verdict == "refuted" and not result.ok
    cti = result.cti
    assert cti is not None and cti.instance is not None and cti.post is not None
    assert cti.instance.kind == "start"
    assert not any(cti.pre["up"].values()) and any(cti.post["up"].values())
    text = cti.describe()
    assert "state before (satisfies every invariant):" in text
    assert f"step: {cti.instance.label(cti.shape)}" in text
    assert "up[" in text and "False -> True" in text
    # Replayed through the executable model, which breaks the claim the same way.
    assert cti.confirmed, cti.replay
    assert "starts" in cti.replay


def test_a_claim_alone_is_not_inductive_and_its_cti_is_replayed() -> None:
    (claim,) = [i for i in AUXILIARY_INVARIANTS if i.name == "no_addressless_announcements"]
    (domains,) = [i for i in AUXILIARY_INVARIANTS if i.name == "value_domains"]
    prover = Prover(Shape(2), SPEC, invariants=(claim, domains), step_properties=())
    results = [r for g in ("query", "deliver_reply", "tick") for r in prover.consecution(g)]
    refuted = [r for r in results if r.verdict == "refuted"]
    assert refuted, "the claim without the other invariants should not be inductive"
    cti = refuted[0].cti
    assert cti is not None and cti.instance is not None
    assert cti.broken == "no_addressless_announcements"
    assert "AP_PRIV0]: 0 -> 1" in cti.describe()  # an ADD_PROVIDER without addresses is sent
    # The executable model was asked; the state may be unreachable (it only satisfies the
    # claim), so whether it agrees is reported, not assumed.
    assert cti.replay.startswith(("with IDs", "not replayed"))


def test_a_tiny_timeout_is_unknown_and_never_ok() -> None:
    report = prove_lifecycle(3, SPEC, timeout_ms=1, lemmas=False, groups=["deliver_request"])
    assert report.count("unknown") > 0
    assert not report.ok
    unknown = next(o for o in report.obligations if o.result == "unknown")
    assert unknown.name and unknown.counterexample  # z3's reason, with the obligation named


#: Mutants whose expected requirement is encoded, but whose bug only a check without a twin
#: (listed in CHECKS_NOT_ENCODED) or a progress check can see: bounded model checking of the
#: encoded properties cannot find it, the explorer does.
BEYOND_THE_ENCODING = {
    "provide-before-ready-error-dropped": "provides_answered_in_time",
    "nat-provide-waits-forever": "provides_answered_in_time",
}
SAFETY_MUTANTS = [
    m
    for m in MUTANTS.values()
    if m.expected in encoded_requirements() and m.name not in BEYOND_THE_ENCODING
]


def test_safety_mutants_are_exactly_those_expecting_an_encoded_requirement() -> None:
    expected = {m.name for m in MUTANTS.values() if m.expected in _twinned_ids()}
    assert {m.name for m in SAFETY_MUTANTS} == expected - set(BEYOND_THE_ENCODING)
    assert SAFETY_MUTANTS
    # Each exemption names a check of its mutant's requirement that has no twin, with a reason.
    for name, check in BEYOND_THE_ENCODING.items():
        assert check in CHECKS_NOT_ENCODED, name
        (found,) = [c for c in CHECKS if c.__name__ == check]
        assert MUTANTS[name].expected in requirements_of(found), name


@pytest.mark.parametrize("mutant", SAFETY_MUTANTS, ids=lambda m: m.name)
def test_bmc_finds_each_safety_mutant_and_the_executable_model_agrees(mutant: Mutant) -> None:
    world = mutant.scenario_spec.initial()
    # z3 searches as deep as the explorer's shortest counterexample: a real violation exists
    # there, and each step deeper multiplies the traces the encoding's unordered channels admit
    # but the executable model refuses (at depth 20, expired-records-served met 40 of them
    # before a real one; at its shortest length, 13, z3 needs 3 tries).
    shortest = shortest_counterexample(world, mutant.policy, mutant.expected)
    assert shortest is not None and len(shortest.steps) <= 20
    depth = len(shortest.steps)
    # z3's timeout is wall time: a generous one, so a loaded machine cannot turn a refutation
    # into "unknown" (pytest-timeout still bounds the test). A violation exists within depth,
    # so z3 is asked there only (a question covers every step so far), not first made to
    # prove each shorter depth violation-free.
    result = bmc(
        world,
        mutant.policy,
        mutant.expected,
        max_depth=depth,
        timeout_ms=600_000,
        first_check=depth,
    )
    assert result.verdict == "refuted", result.reason
    assert result.confirmed and result.replay is not None
    # The replay ran the executable model from the scenario's own initial world, and its last
    # step breaks the requirement the mutant is expected to break.
    last = result.replay.steps[-1]
    assert any(v.requirement == mutant.expected for v in last.violations)
    assert mutant.expected in result.broken
    assert len(result.replay.steps) <= len(result.instances) <= depth
    text = result.describe()
    assert f"violates {mutant.expected}" in text and "replay confirmed" in text


def test_the_spec_has_no_bounded_violation_in_a_short_trace() -> None:
    world = MUTANTS["client-mode-serves"].scenario_spec.initial()
    result = bmc(world, SPEC, None, max_depth=8)
    assert result.verdict == "unknown" and not result.confirmed


# --- the command --------------------------------------------------------------------------


def test_prove_rejects_a_node_count_out_of_range_in_one_line() -> None:
    result = CliRunner().invoke(prove, ["--nodes", "9"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--nodes" in lines[0] and "2..5" in lines[0]


def test_prove_rejects_an_unknown_policy_in_one_line() -> None:
    result = CliRunner().invoke(prove, ["--policy", "no-such-bug"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "no-such-bug" in lines[0] and "refresh-not-rearmed" in lines[0]


def test_prove_exits_zero_for_the_spec_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    result = CliRunner().invoke(prove, ["--nodes", "2", "--json", str(out), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["ok"] is True
    kinds = {o["kind"] for o in data["obligations"]}
    assert kinds == {"lemma", "initiation", "consecution"}
    assert all(o["result"] == "proved" for o in data["obligations"])
    assert "obligation" in result.output and "proved" in result.output


def test_prove_exits_one_for_a_mutant_with_a_confirmed_trace(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    args = ["--nodes", "2", "--policy", "refresh-not-rearmed", "--json", str(out), "--jobs", "1"]
    result = CliRunner().invoke(prove, args)
    assert result.exit_code == 1, result.output
    assert "violates BOOT-03" in result.output
    assert "replay confirmed the violation" in result.output
    data = json.loads(out.read_text())
    assert "BOOT-03" in data["requirements_broken"]
    (bmc_line,) = [o for o in data["obligations"] if o["kind"] == "bmc"]
    assert bmc_line["result"] == "refuted" and bmc_line["requirements"] == ["BOOT-03"]


def test_prove_exits_non_zero_on_a_timeout_and_names_the_obligation() -> None:
    result = CliRunner().invoke(prove, ["--nodes", "2", "--timeout-ms", "1", "--jobs", "1"])
    assert result.exit_code == 1
    assert "unknown" in result.output
