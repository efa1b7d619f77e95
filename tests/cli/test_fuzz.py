"""Fuzzing the command line and the network-file parser: whatever comes in, kadspec ends with
exit 0, 1, 2 or 3 and never a traceback (issue 7, "bad input anywhere is one line").

The engines are real but kept cheap: every exploration is capped at a few hundred states, and
the mutant hunt and the z3 proof (each tested elsewhere) are replaced by instant stand-ins, so
the fuzz exercises parsing, validation and reporting in a few seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kadspec import main as cli_main
from kadspec import reports
from kadspec.models.config import ConfigError
from kadspec.models.mutants import MUTANTS
from kadspec.models.scenario_file import FIELDS, NODE_FIELDS, decode, parse_scenario, timing_fields
from kadspec.models.scenarios import SCENARIOS

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EXITS = {0, 1, 2, 3}
MAX_STATES = 300

# --- TOML documents -----------------------------------------------------------------------------

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-2, max_value=20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["auto", "client", "server", "public", "nat", "crash", "lose", "restart"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from([*NODE_FIELDS, *timing_fields(), "x"]), inner, max_size=4),
    ),
    max_leaves=12,
)
node_tables = st.dictionaries(st.sampled_from([*NODE_FIELDS, "extra"]), values, max_size=5)
documents = st.dictionaries(
    st.sampled_from([*FIELDS, "bogus"]),
    values,
    max_size=8,
).flatmap(
    lambda top: st.one_of(
        st.just(top),
        st.lists(node_tables, min_size=1, max_size=6).map(lambda nodes: {**top, "node": nodes}),
    )
)


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _toml(value: Any) -> str:
    """A TOML value (inline form) for what the strategies above make."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def toml_document(data: dict[str, Any]) -> str:
    return "".join(f"{_key(k)} = {_toml(v)}\n" for k, v in data.items())


@FUZZ
@given(documents)
def test_random_toml_documents_parse_or_name_the_field(data: dict[str, Any]) -> None:
    text = toml_document(data)
    try:
        scenario = parse_scenario(text)
    except ConfigError as error:
        message = str(error)
        assert message and "\n" not in message.strip()
        return
    assert 1 <= len(scenario.config.nodes) <= 5
    scenario.initial()  # a validated network always builds its initial state


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_are_decoded_or_rejected_in_one_line(raw: bytes) -> None:
    try:
        parse_scenario(decode(raw, "net.toml"))
    except ConfigError as error:
        assert "\n" not in str(error).strip()


# --- command lines ------------------------------------------------------------------------------


class _Proof:
    ok = True
    obligations: tuple[Any, ...] = ()
    notes: tuple[str, ...] = ()
    failures: tuple[Any, ...] = ()

    def summary(self) -> str:
        return "0 obligations (a stand-in for the fuzz test)"

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": 3,
            "policy": "spec",
            "ok": True,
            "seconds": 0.0,
            "counts": {"proved": 0, "refuted": 0, "unknown": 0},
            "obligations": [],
        }


@pytest.fixture
def cheap_engines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Real parsing and reporting, tiny explorations, no mutant hunts or proofs, verify's live
    conformance part on one scenario (all eight took about 80 s of a 2-core CI); run in a
    scratch folder so that any file a random command line names lands there."""
    real_check = reports.run_check

    def small_check(policy: Any, scenarios: Any, **options: Any) -> reports.CheckReport:
        options["max_states"] = min(options.get("max_states") or MAX_STATES, MAX_STATES)
        options["max_seconds"] = min(options.get("max_seconds") or 2.0, 2.0)
        return real_check(policy, scenarios, **options)

    def no_hunt(mutants: Any, engines: Any, **options: Any) -> list[reports.MutantRun]:
        return []

    def no_proof(note: Any) -> tuple[tuple[str, int, str], dict[str, Any]]:
        return ("prove", 0, "stand-in"), _Proof().to_json()

    from kadspec.conformance import scenarios as conformance_scenarios
    from kadspec.engines.symbolic import lifecycle

    first = next(iter(conformance_scenarios.SCENARIOS.values()))
    monkeypatch.setattr(conformance_scenarios, "SCENARIOS", {first.name: first})
    monkeypatch.setattr(cli_main, "run_check", small_check)
    monkeypatch.setattr(cli_main, "run_mutants", no_hunt)
    monkeypatch.setattr(cli_main, "_prove_for_verify", no_proof)
    monkeypatch.setattr(cli_main, "PROBE_STATES", 100)
    monkeypatch.setattr(lifecycle, "prove_lifecycle", lambda *a, **k: _Proof())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.toml").write_text(
        '[[node]]\nid = 8\nmode = "server"\n[[node]]\nid = 3\nbootstrap = [0]\n'
    )
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfenode = [1, 2]\n")
    (tmp_path / "afile").write_text("")
    return tmp_path


COMMANDS = ["check", "mutants", "verify", "prove", "list", "example-config", "schema", "bogus"]
OPTIONS = [
    "--policy",
    "--scenario",
    "--config",
    "--max-states",
    "--max-seconds",
    "--keep-going",
    "--strict",
    "--json",
    "--only",
    "--engine",
    "--hypothesis-examples",
    "--show",
    "--nodes",
    "--timeout-ms",
    "--jobs",
    "-o",
    "--help",
    "--version",
    "-h",
]
WORDS = [
    "spec",
    "requirements",
    "mutants",
    "scenarios",
    "check",
    "explorer",
    "hypothesis",
    "trio-provide",
    "mode-change",
    "net.toml",
    "bad.toml",
    "missing.toml",
    "afile/x.json",
    "out/r.json",
    "r.json",
    ".",
    "0",
    "1",
    "2",
    "3",
    "-1",
    "1e9",
    "nan",
    "",
    *SCENARIOS,
    *list(MUTANTS)[:4],
]
tokens = st.one_of(
    st.sampled_from(OPTIONS),
    st.sampled_from(WORDS),
    st.text(max_size=8).filter(lambda t: "\0" not in t),
)
command_lines = st.tuples(st.sampled_from(COMMANDS), st.lists(tokens, max_size=6)).map(
    lambda c: [c[0], *c[1]]
)


def run(argv: list[str]) -> int:
    try:
        cli_main.main(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0
    raise AssertionError("main() returned without exiting")


@FUZZ
@given(argv=command_lines)
def test_random_command_lines_exit_0_to_3_without_a_traceback(
    cheap_engines: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code = run(argv)
    captured = capsys.readouterr()
    assert code in EXITS, (argv, code, captured.err)
    assert "Traceback" not in captured.err, (argv, captured.err)
    if code == 2:
        assert len(captured.err.strip().splitlines()) == 1, (argv, captured.err)


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--config", "bad.toml"],
        ["check", "--config", "net.toml", "--json", "afile/x.json"],
        ["check", "--scenario", "trio", "--max-states", "50", "--json", "out/r.json"],
        ["verify", "--json", "out/v.json"],
        ["prove", "--json", "out/deep/p.json"],
        ["mutants", "--only", next(iter(MUTANTS)), "--engine", "hypothesis"],
    ],
)
def test_known_command_lines_through_the_fuzz_harness(
    cheap_engines: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code = run(argv)
    captured = capsys.readouterr()
    assert code in EXITS and "Traceback" not in captured.err, (code, captured.err)
