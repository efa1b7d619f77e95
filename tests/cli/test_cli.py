"""The command line as a user meets it: exit codes, one-line errors, honest JSON reports.

The tests named ``test_problem_N_...`` reproduce, as written, the eight problems of issue 7
("Reports a user can trust") and check that each now ends in the right status, exit code or
single line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kadspec.models.mutants import MUTANTS
from kadspec.models.scenario_file import parse_scenario
from kadspec.models.scenarios import SCENARIOS
from kadspec.report_schema import REPORTS, schema, schema_text
from kadspec.reports import is_must
from kadspec.spec import requirements

ROOT = Path(__file__).resolve().parents[2]
CONFIG_REQUIREMENTS = {"TIME-01", "TIME-02", "TIME-03"}


def kadspec(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kadspec", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0], lines[0]
    assert result.stdout == "", "bad input must be reported before any work starts"


def valid_report(path: Path, kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    jsonschema.Draft202012Validator(
        schema(kind), format_checker=jsonschema.FormatChecker()
    ).validate(data)
    assert data["report"] == kind
    prov = data["provenance"]
    assert prov["kadspec_version"] and prov["python_version"] and prov["cores"]
    assert prov["command"][0] == "kadspec" and prov["created_utc"].endswith("+00:00")
    return data


def statuses(data: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["status"] for r in data["requirements"]}


def agree(result: subprocess.CompletedProcess[str], data: dict[str, Any]) -> None:
    """Text, JSON and exit code say the same."""
    assert data["exit_code"] == result.returncode
    assert data["ok"] is (result.returncode == 0)
    assert f"(exit {result.returncode})" in result.stdout.splitlines()[-1]
    held = sum(1 for s in statuses(data).values() if s == "holds")
    assert f"{held} hold," in result.stdout


# --- problem 1: "holds" without a check ---------------------------------------------------------


def test_problem_1a_a_run_stopped_at_a_violation_claims_nothing_else(tmp_path: Path) -> None:
    """In one process the catalogue's first scenario breaks BOOT-05 and the run stops there."""
    report = tmp_path / "r.json"
    result = kadspec(
        "check",
        "--policy",
        "provide-before-ready-error-dropped",
        "--workers",
        "1",
        "--json",
        str(report),
    )
    data = valid_report(report, "check")
    agree(result, data)
    status = statuses(data)
    assert status["BOOT-05"] == "violated"
    if is_must("BOOT-05"):
        assert result.returncode == 1
        assert "BOOT-05" in result.stdout and "35 of 36 hold" not in result.stdout
        others = {r for r in status if r != "BOOT-05" and r not in CONFIG_REQUIREMENTS}
        # nothing else holds: it was not checked (or broke in the same trace)
        assert {status[r] for r in others} <= {"unchecked", "violated"}
        broken = {c["requirement"] for c in data["counterexamples"]}
        assert {r for r in others if status[r] == "violated"} <= broken
        assert data["not_run"], "the scenarios after the violation are reported as not run"
        assert "--keep-going" in result.stdout
    else:  # a SHOULD violation is listed and the run goes on
        assert result.returncode in (0, 3)
        assert "BOOT-05" in data["summary"]["violated_should"]


def test_problem_1a_side_by_side_a_stopped_run_claims_only_what_finished(tmp_path: Path) -> None:
    """With scenarios side by side (the default), the ones that finished before the violation
    stopped the run are reported; every "holds" is a finished scenario's, and every scenario
    not finished is reported as not run, with nothing claimed for it."""
    report = tmp_path / "r.json"
    result = kadspec(
        "check",
        "--policy",
        "provide-before-ready-error-dropped",
        "--jobs",
        "2",
        "--json",
        str(report),
    )
    data = valid_report(report, "check")
    agree(result, data)
    assert result.returncode == (1 if is_must("BOOT-05") else 0)
    finished = {s["name"]: s for s in data["scenarios"]}
    assert "join" in finished and "BOOT-05" in finished["join"]["violated"]
    assert set(data["not_run"]) == set(SCENARIOS) - set(finished)
    for rid, status in statuses(data).items():
        if status == "holds" and rid not in CONFIG_REQUIREMENTS:
            assert any(
                s["complete"] and s["statuses"].get(rid) == "holds" for s in finished.values()
            ), rid


def test_problem_1b_a_capped_run_is_incomplete_not_holding(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = kadspec("check", "--scenario", "join", "--max-states", "100", "--json", str(report))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "36 of 36 hold" not in result.stdout
    assert "state cap" in result.stdout and "incomplete" in result.stdout.lower()
    data = valid_report(report, "check")
    agree(result, data)
    status = statuses(data)
    assert {status[r] for r in status if r not in CONFIG_REQUIREMENTS} == {"unchecked"}
    assert data["scenarios"][0]["stop_reason"] == "state-cap"
    assert data["caps"]["max_states"] == 100


def test_problem_1c_requirements_without_their_premise_are_not_exercised(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = kadspec("check", "--scenario", "client-joins", "--json", str(report))
    assert result.returncode in (0, 3), result.stdout + result.stderr
    data = valid_report(report, "check")
    agree(result, data)
    status = statuses(data)
    # no provide happens: what a provide or a stored record must do is checked vacuously
    provide = {r: status[r] for r in ("PROV-01", "PROV-02", "PROV-03", "PROV-05", "PROV-06")}
    assert set(provide.values()) == {"not exercised"}, provide
    assert "not exercised" in result.stdout


def test_keep_going_gives_every_requirement_a_status(tmp_path: Path) -> None:
    name = "provide-before-ready-error-dropped"
    report = tmp_path / "r.json"
    result = kadspec(
        "check",
        "--policy",
        name,
        "--scenario",
        MUTANTS[name].scenario,
        "--keep-going",
        "--json",
        str(report),
    )
    data = valid_report(report, "check")
    assert data["keep_going"] is True
    assert data["scenarios"][0]["stop_reason"] == "complete"
    assert "unchecked" not in statuses(data).values() or result.returncode != 0
    assert MUTANTS[name].expected in {c["requirement"] for c in data["counterexamples"]}


def test_a_mutant_run_exits_1_with_a_counterexample(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = kadspec(
        "check",
        "--policy",
        "identify-addresses-not-routed",
        "--scenario",
        "join",
        "--json",
        str(report),
    )
    data = valid_report(report, "check")
    assert "ADDR-06" in result.stdout and "UnroutablePeer" in result.stdout
    assert "  1. n0 starts" in result.stdout
    assert data["counterexamples"][0]["requirement"] == "ADDR-06"
    assert data["counterexamples"][0]["itf"]["states"][0]["action"] == "init"
    assert result.returncode == (1 if is_must("ADDR-06") else 3)


def test_the_vacuity_report_counts_premises_per_requirement(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    kadspec("check", "--scenario", "mode-change", "--json", str(report))
    data = valid_report(report, "check")
    for entry in data["requirements"]:
        held = entry["status"] == "holds" and entry["id"] not in CONFIG_REQUIREMENTS
        assert not held or entry["exercised"] > 0, entry
    run = data["scenarios"][0]
    assert run["quiescent_states"] > 0 and run["exercised"]


# --- problem 2: a first network file runs away --------------------------------------------------

RUNAWAY = """
keys = [8]
provides = [[1, 0]]
[[node]]
id = 8
mode = "server"
[[node]]
id = 3
bootstrap = [0]
[[node]]
id = 5
bootstrap = [0]
"""


def test_problem_2_a_large_network_is_announced_and_bounded(tmp_path: Path) -> None:
    config = tmp_path / "net.toml"
    config.write_text(RUNAWAY)  # three nodes, one providing a key, the default horizon
    report = tmp_path / "r.json"
    result = kadspec(
        "check", "--config", str(config), "--max-states", "30000", "--json", str(report)
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "warning: net looks large" in " ".join(result.stderr.split())
    assert "state cap" in result.stdout and "caps: 30,000 states" in result.stdout
    data = valid_report(report, "check")
    assert data["scenarios"][0]["stop_reason"] == "state-cap"


def test_problem_2_caps_are_on_by_default_and_horizon_is_explained() -> None:
    result = kadspec("check", "--help")
    text = " ".join(result.stdout.split())
    assert re.search(r"--max-states .*default: 2000000", text)
    assert re.search(r"--max-seconds .*default: 600", text)
    assert "horizon the last value of the model clock (ms)" in text
    for field in ("finds", "mode_changes", "fault_kinds", "[timing]", "id_bits", "keys"):
        assert field in text


def test_a_time_cap_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "net.toml"
    config.write_text(RUNAWAY)
    report = tmp_path / "r.json"
    result = kadspec(
        "check", "--config", str(config), "--max-seconds", "0.5", "--json", str(report)
    )
    assert result.returncode == 3
    data = valid_report(report, "check")
    assert data["scenarios"][0]["stop_reason"] == "time-cap"
    assert "time cap" in result.stdout


# --- problem 3: five bad inputs ended in a traceback --------------------------------------------

NETWORK = '[[node]]\nid = 8\nmode = "server"\n[[node]]\nid = 3\nbootstrap = [0]\n'


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        ('[[node]]\nid = 8\nmode = ["server"]\n', "node[0].mode: expected one of auto"),
        ("node = [1, 2]\n", "node[0]: expected a table, got 1"),
        ('fault_kinds = [["crash"]]\n' + NETWORK, "fault_kinds[0]: expected one of crash"),
        ("horizon = 3\n[[node]]\nid = 99\n[[node]]\nid = 3\nbootstrap = [0]\n", "nodes[0].id: 99"),
        ("horizon = -1\n[[node]]\nid = 9\n", "horizon: -1 is outside 0.."),
        ('[timing]\ndefaults = "real"\n' + NETWORK, "timing.defaults: expected one of model, spec"),
        ("[timing]\nk = 1.5\n" + NETWORK, "timing.k: expected an integer"),
        ("[timing]\nspeed = 1\n" + NETWORK, "timing.speed: unknown field"),
        ('mode_changes = [[1, "fast"]]\n' + NETWORK, "mode_changes[0] mode"),
        ("finds = [[0, 3]]\n" + NETWORK, "finds[0] key: 3 is outside 0..0"),
        ("[[node]]\nid = 8\nbootstrap = 0\n", "node[0].bootstrap: expected a list"),
        ("horizon = \n", "not valid TOML"),
    ],
)
def test_problem_3_bad_network_files_are_one_line(
    tmp_path: Path, document: str, needle: str
) -> None:
    config = tmp_path / "net.toml"
    config.write_text(document)
    one_line_error(kadspec("check", "--config", str(config)), needle)


def test_problem_3_a_network_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "net.toml"
    config.write_bytes(b'[[node]]\nid = 8\nmode = "\xff\xfe"\n')
    one_line_error(kadspec("check", "--config", str(config)), "not UTF-8 text (byte 24, line 3")


def test_problem_3_a_missing_network_file_is_one_line(tmp_path: Path) -> None:
    one_line_error(kadspec("check", "--config", str(tmp_path / "none.toml")), "cannot read")


def test_problem_3_prove_json_into_an_impossible_folder_fails_before_the_proof(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(
        kadspec("prove", "--nodes", "2", "--json", str(blocker / "sub" / "p.json")),
        "file, not a folder",
    )


def test_problem_3_prove_json_into_a_missing_folder_creates_it(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "p.json"
    result = kadspec("prove", "--nodes", "2", "--json", str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    assert valid_report(target, "prove")["ok"] is True


# --- problem 4: a bad --json path was found only after the work ---------------------------------


@pytest.mark.parametrize("command", ["check", "verify", "mutants"])
def test_problem_4_a_bad_json_path_is_found_before_any_work(tmp_path: Path, command: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = kadspec(command, "--json", str(blocker / "r.json"), timeout=30)
    one_line_error(result, "file, not a folder")
    assert "PASS" not in result.stdout


def test_problem_4_a_folder_as_json_path_is_one_line(tmp_path: Path) -> None:
    one_line_error(kadspec("check", "--json", str(tmp_path)), "is a folder, not a file")


# --- problem 5: the Hypothesis engine offered by --help ------------------------------------------


def test_problem_5_hypothesis_catches_expired_records_served(tmp_path: Path) -> None:
    report = tmp_path / "m.json"
    result = kadspec(
        "mutants",
        "--engine",
        "hypothesis",
        "--only",
        "expired-records-served",
        "--json",
        str(report),
    )
    data = valid_report(report, "mutants")
    assert result.returncode == 0, result.stdout + result.stderr
    assert data["mutants"][0]["caught"] is True


# --- problem 6: provenance, and one shape for a part wherever it appears ------------------------


def test_problem_6_mutants_report_has_provenance_and_one_entry_per_mutant(tmp_path: Path) -> None:
    report = tmp_path / "m.json"
    names = ["provide-before-ready-error-dropped", "observed-address-promoted"]
    result = kadspec("mutants", "--only", names[0], "--only", names[1], "--json", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    data = valid_report(report, "mutants")
    assert [e["name"] for e in data["mutants"]] == names
    for entry in data["mutants"]:
        assert entry["caught"] and entry["expected"] in entry["violated"]


def test_problem_6_verify_report_holds_the_same_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify's parts are the check and mutants reports' bodies (run cheaply in-process)."""
    from kadspec import main as cli_main
    from kadspec import reports

    def small_check(policy: Any, scenarios: Any, **options: Any) -> reports.CheckReport:
        return reports.run_check(policy, [SCENARIOS["client-joins"]], **options)

    def small_mutants(mutants: Any, engines: Any, **options: Any) -> list[reports.MutantRun]:
        return reports.run_mutants(
            [MUTANTS["provide-before-ready-error-dropped"]], ("explorer",), **options
        )

    def no_proof(note: Any) -> tuple[tuple[str, int, str], dict[str, Any]]:
        proof = {
            "nodes": 3,
            "policy": "spec",
            "ok": True,
            "seconds": 0.0,
            "counts": {"proved": 0, "refuted": 0, "unknown": 0},
            "obligations": [],
        }
        return ("prove", 0, "skipped in this test"), proof

    monkeypatch.setattr(cli_main, "run_check", small_check)
    monkeypatch.setattr(cli_main, "run_mutants", small_mutants)
    monkeypatch.setattr(cli_main, "_prove_for_verify", no_proof)
    # the live conformance part starts real nodes; its own tests are in tests/conformance
    monkeypatch.setattr(
        cli_main,
        "_conform_for_verify",
        lambda note, traces_dir: (("conform (reference)", 0, "skipped in this test"), {}),
    )
    report = tmp_path / "v.json"
    with pytest.raises(SystemExit):
        cli_main.main(["verify", "--json", str(report)])
    data = valid_report(report, "verify")
    assert data["provenance"]["command"] == ["kadspec", "verify", "--json", str(report)]
    assert isinstance(data["parts"]["mutants"], dict)
    assert data["parts"]["mutants"]["mutants"][0]["name"] == "provide-before-ready-error-dropped"
    assert {"requirements", "scenarios", "caps"} <= set(data["parts"]["check"])


def test_the_schema_is_one_valid_document_with_one_entry_per_report() -> None:
    whole = schema()
    jsonschema.Draft202012Validator.check_schema(whole)
    defs = whole["$defs"]
    for kind in REPORTS:
        assert f"{kind}_report" in defs
        jsonschema.Draft202012Validator.check_schema(schema(kind))
        assert json.loads(kadspec("schema", kind).stdout) == schema(kind)
    assert kadspec("schema").stdout == schema_text()
    # every part is used: no definition left behind
    text = json.dumps(whole)
    for name in defs:
        assert f'"#/$defs/{name}"' in text, f"$defs/{name} is never referenced"


def test_a_report_validates_against_the_whole_schema_too(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    kadspec("check", "--scenario", "client-joins", "--json", str(report))
    data = json.loads(report.read_text("utf-8"))
    jsonschema.Draft202012Validator(schema()).validate(data)
    data["report"] = "mutants"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema()).validate(data)


def test_a_conform_report_validates_and_a_broken_one_does_not(tmp_path: Path) -> None:
    """kadspec conform --json writes a report of the same family: the body of a (simulated)
    reference run, with its provenance, validates; one without its requirements does not."""
    from kadspec.conformance.observe import LOOPBACK
    from kadspec.conformance.reports import report_json
    from kadspec.conformance.runner import Conformance, ScenarioReport, judge_run
    from kadspec.conformance.scenarios import SCENARIOS as LIVE_SCENARIOS
    from kadspec.conformance.simulate import HELLO, simulate
    from kadspec.options import write_report

    scenario = LIVE_SCENARIOS["listener-side-join"]
    run = simulate(scenario)
    results, validation, error = judge_run(scenario, run, LOOPBACK)
    conformance = Conformance(
        adapter="in-process simulation",
        implementation=HELLO.implementation,
        version=HELLO.version,
        profile=LOOPBACK,
        strict=False,
        scenarios=(ScenarioReport(scenario, run, results, validation, 0.1, error=error),),
        seconds=0.1,
    )
    path = tmp_path / "conform.json"
    write_report(path, "conform", report_json(conformance))
    data = valid_report(path, "conform")
    jsonschema.Draft202012Validator(schema()).validate(data)
    assert data["verdict"] == "PASS" and data["requirements"]

    del data["requirements"]
    with pytest.raises(jsonschema.ValidationError, match="requirements"):
        jsonschema.Draft202012Validator(schema("conform")).validate(data)


# --- problem 7: documented commands leave no stray files ----------------------------------------


def test_problem_7_readme_commands_write_under_the_ignored_results_folder() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    targets = re.findall(r"kadspec [^\n`#]*(?:--json|-o|--output|>) (\S+)", readme)
    assert len(targets) >= 3, "the README shows --json and -o"
    for target in targets:
        assert target.startswith("results/"), target
    assert "results/" in (ROOT / ".gitignore").read_text("utf-8").splitlines()


# --- problem 8: help and docs -------------------------------------------------------------------

COMMANDS = ("check", "mutants", "verify", "prove", "list", "example-config", "schema", "docs")


def test_problem_8_top_level_help_names_every_command() -> None:
    result = kadspec("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    assert "Exit codes" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_problem_8_every_command_has_an_example(command: str) -> None:
    result = kadspec(command, "--help")
    assert result.returncode == 0
    assert "Examples:" in result.stdout
    assert f"kadspec {command}" in result.stdout


def test_problem_8_scenario_help_lists_valid_names() -> None:
    text = " ".join(kadspec("check", "--help").stdout.split())
    for name in SCENARIOS:
        assert name in text


def test_problem_8_the_network_file_reference_covers_every_field() -> None:
    page = (ROOT / "docs" / "network-file.rst").read_text("utf-8")
    for field in (
        "horizon",
        "faults",
        "fault_kinds",
        "keys",
        "id_bits",
        "provides",
        "finds",
        "mode_changes",
        "[timing]",
        "[[node]]",
        "bootstrap",
        "reach",
        "crash",
        "restart",
        "disconnect",
        "lose",
        "forge_add_provider",
        "kadspec example-config",
    ):
        assert field in page, field


@pytest.mark.parametrize(
    "name", ["trio-provide", "mode-change", "faults-and-timing", "spec-timing"]
)
def test_problem_8_shipped_examples_parse_and_express_the_model(name: str) -> None:
    result = kadspec("example-config", name)
    assert result.returncode == 0
    scenario = parse_scenario(result.stdout, name)
    assert scenario.name == name
    if name == "mode-change":
        assert scenario.mode_changes
    if name == "faults-and-timing":
        assert scenario.faults and scenario.config.timing.alpha == 1
    if name == "trio-provide":
        assert scenario.finds and scenario.provides
    if name == "spec-timing":
        timing = scenario.config.timing
        assert timing.k == 20 and scenario.horizon >= 2 * timing.refresh_interval


def test_a_small_example_network_is_explored(tmp_path: Path) -> None:
    config = tmp_path / "net.toml"
    config.write_text(kadspec("example-config", "mode-change").stdout)
    report = tmp_path / "r.json"
    result = kadspec("check", "--config", str(config), "--json", str(report))
    assert result.returncode in (0, 3), result.stdout + result.stderr
    assert valid_report(report, "check")["scenarios"][0]["name"] == "mode-change"


# --- one-line errors on the command line itself -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["check", "--policy", "nope"], "unknown policy 'nope'"),
        (["check", "--scenario", "nope"], "unknown scenario 'nope'"),
        (["check", "--max-states", "0"], "--max-states"),
        (["check", "--max-seconds", "-1"], "--max-seconds"),
        (["mutants", "--only", "nope"], "unknown mutant 'nope'"),
        (["check", "--bogus"], "No such option"),
        (["check", "--jobs", "2", "--workers", "2"], "--jobs 2 runs whole scenarios side by"),
        (["check", "--jobs", "2", "--ray", "local"], "give one of them"),
        (["prove", "--nodes", "9"], "outside"),
        (["example-config", "nope"], "nope"),
        (["nope"], "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    one_line_error(kadspec(*args), needle)


def test_check_runs_several_scenarios_side_by_side_and_partitions_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(jobs, workers) for (scenarios, --jobs, --workers, --ray) on a 2-core machine."""
    from kadspec import main as cli_main

    monkeypatch.setattr(cli_main, "usable_cores", lambda: 2)
    assert cli_main._parallelism(20, None, None, None) == (2, 1)
    assert cli_main._parallelism(1, None, None, None) == (1, 2)
    assert cli_main._parallelism(20, None, 3, None) == (1, 3)
    assert cli_main._parallelism(20, None, None, "local") == (1, 2)
    assert cli_main._parallelism(20, 3, None, None) == (3, 1)
    assert cli_main._parallelism(20, 1, 1, None) == (1, 1)


def test_requirement_levels_are_listed() -> None:
    text = kadspec("list", "requirements").stdout
    for rid, req in requirements().items():
        assert re.search(rf"{rid}\s+{req.level}", text)
