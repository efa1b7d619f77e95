"""``kadspec conform``: bad input, a broken adapter, SIGTERM, and the reference node end to end."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import psutil
import pytest

from kadspec.conformance.judge import Status
from kadspec.main import main

FAKE = Path(__file__).parent / "adapters" / "fake.py"


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def fake(fault: str) -> str:
    return shlex.join([sys.executable, str(FAKE), fault])


def descendants() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def test_help_teaches_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["conform", "--help"], capsys)
    assert code == 0
    assert "kadspec conform --impl reference --scenario provide-at-startup" in out
    assert "Exit status: 0 when every applicable MUST requirement passed" in " ".join(out.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["conform"], "give exactly one of --impl NAME or --adapter 'COMMAND'"),
        (["conform", "--impl", "reference", "--adapter", "x"], "give exactly one of"),
        (["conform", "--adapter", "no-such-adapter-program --x"], "'no-such-adapter-program'"),
        (["conform", "--adapter", "'unbalanced"], "No closing quotation"),
        (["conform", "--impl", "reference", "--scenario", "nope"], "'nope' is not a scenario"),
        (["conform", "--impl", "reference", "--nodes", "1"], "1 is not in the range"),
        (["conform", "--adapter", "true", "--break", "admit-client"], "--break applies"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1, err


def test_a_crashing_adapter_fails_the_run_and_every_report_is_still_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = descendants()
    report, junit, traces = tmp_path / "c.json", tmp_path / "c.xml", tmp_path / "traces"
    argv = ["conform", "--adapter", fake("crash"), "--scenario", "listener-side-join"]
    argv += ["--json", str(report), "--junit", str(junit), "--traces", str(traces)]
    code, out, _ = run_cli(argv, capsys)
    assert code == 1
    assert "ended early" in out and "exited (status 1)" in out
    data = json.loads(report.read_text())
    scenario = data["scenarios"][0]
    assert data["report"] == "conform" and data["provenance"]["tool"] == "kadspec"
    assert f"adapter {fake('crash')!r} exited (status 1)" in scenario["aborted"]
    assert "last request: #2 start" in scenario["aborted"]
    assert "RuntimeError: fake adapter crashed on purpose" in scenario["aborted"]
    assert scenario["entries"] >= 3 and scenario["results"], "what arrived is judged and kept"
    suite = ElementTree.parse(junit).getroot()
    assert suite.get("errors") == "1"
    assert (traces / "listener-side-join.run.json").exists()
    assert (traces / "listener-side-join--ended-early.svg").exists()
    assert not descendants() - before


def test_sigterm_stops_the_adapter_writes_the_reports_and_exits_130(tmp_path: Path) -> None:
    report = tmp_path / "c.json"
    command = [sys.executable, "-m", "kadspec", "conform", "--adapter", fake("hang")]
    command += ["--scenario", "listener-side-join", "--json", str(report)]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        adapters: list[psutil.Process] = []
        while not adapters and time.monotonic() < deadline:  # wait until the adapter runs
            time.sleep(0.1)
            adapters = [
                c for c in psutil.Process(runner.pid).children(recursive=True)
                if str(FAKE) in " ".join(c.cmdline())
            ]  # fmt: skip
        assert adapters, "the adapter never started"
        time.sleep(1.0)
        runner.send_signal(signal.SIGTERM)
        out, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 130, out.decode()
    assert json.loads(report.read_text())["interrupted"] is True
    for adapter in adapters:
        assert not adapter.is_running() or adapter.status() == psutil.STATUS_ZOMBIE


def test_the_reference_node_conforms_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = descendants()
    report = tmp_path / "c.json"
    argv = ["conform", "--impl", "reference", "--scenario", "listener-side-join"]
    code, out, _ = run_cli([*argv, "--json", str(report)], capsys)
    data = json.loads(report.read_text())
    scenario = data["scenarios"][0]
    assert scenario["aborted"] is None and scenario["error"] is None
    assert code == 0, out
    assert "conform: PASS kadspec-reference" in out
    statuses = {r["requirement"]: r["status"] for r in scenario["results"]}
    assert not [r for r in scenario["results"] if r["status"] == "fail"]
    # snapshot-judged ones pass whatever the load; progress ones need a late enough round
    assert statuses["RT-04"] == "pass" and statuses["RT-03"] == "pass"
    # every line the adapter wrote passed its schema, or the run would have ended early
    assert scenario["events"] > 10
    assert not descendants() - before


def test_verify_fails_its_conformance_part_when_py_libp2p_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kadspec.conform_command import conform_for_verify

    monkeypatch.setitem(sys.modules, "libp2p", None)  # import libp2p now raises ImportError
    notes: list[str] = []
    (part, code, details), data = conform_for_verify(notes.append)
    assert (part, code) == ("conform (reference)", 1)
    assert "py-libp2p cannot be imported" in details and data == {"skipped": details}


def test_verify_names_a_rejected_trace_and_keeps_its_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A bare "traces accepted 7/8" once left a CI's rejection impossible to chase: verify's
    line names the run and its first unexplained event, and --traces keeps the run."""
    import attrs

    from kadspec.conform_command import conform_for_verify
    from kadspec.conformance import runner
    from kadspec.conformance.trace_validation import Unexplained, Validation

    conformance = _conformance({"RT-01": ("MUST", "pass")})
    why = Unexplained(7, "b", "b kad_response_sent", 0, "", "", (), ("FIND-01",), "")
    rejected = Validation("listener-side-join", "impl", "rejected", 1, 2, 2, 1, {}, why)
    report = attrs.evolve(conformance.scenarios[0], validation=rejected)
    monkeypatch.setattr(
        runner, "conform", lambda *a, **k: attrs.evolve(conformance, scenarios=(report,))
    )
    (part, code, details), data = conform_for_verify(lambda _: None, tmp_path / "traces")
    assert (part, code) == ("conform (reference)", 0)
    assert "traces accepted 0/1; listener-side-join: rejected at #7 (breaks FIND-01)" in details
    assert (tmp_path / "traces" / "listener-side-join.run.json").is_file()
    written = data["scenarios"][0]["traces"]
    assert {"listener-side-join.run.json", "listener-side-join--trace-validation.itf.json"} <= set(
        written
    )


# --- the runner's aggregation and the report files, on a run built in the test ------------------


def _conformance(statuses: dict[str, tuple[str, Status]], strict: bool = False) -> Any:
    """A Conformance of one scenario whose results are ``{requirement: (level, status)}``."""
    from kadspec.conformance import protocol as p
    from kadspec.conformance.judge import Result
    from kadspec.conformance.observe import LOOPBACK
    from kadspec.conformance.runner import Conformance, ScenarioReport
    from kadspec.conformance.scenarios import SCENARIOS

    hello = p.Hello(p.PROTOCOL, "impl", "1", p.Capabilities())
    peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
    other = "12D3KooWJjrERfEgwhL22XW46YEB5z6adKophcmdH6ax2yV3hGxW"
    sent = {"event": "kad_request_sent", "kad_type": "FIND_NODE", "peer": other}
    received = {"event": "kad_request_received", "kad_type": "FIND_NODE", "peer": peer}
    entries = (
        p.Entry(0, 0, "request", "a", {"type": "request", "id": 1, "op": "start", "args": {}}),
        p.Entry(1, 5, "event", "a", {"type": "event", "node": "a", "time_ms": 5, **sent}),
        p.Entry(2, 6, "event", "b", {"type": "event", "node": "b", "time_ms": 6, **received}),
    )
    run = p.Run(
        hello,
        "listener-side-join",
        (p.NodeRecord("a", {}, peer), p.NodeRecord("b", {}, other)),
        entries,
    )
    results = tuple(
        Result(rid, level, status, f"{rid} {status}", (2,) if status == "fail" else ())
        for rid, (level, status) in statuses.items()
    )
    report = ScenarioReport(SCENARIOS["listener-side-join"], run, results, None, 1.0)
    return Conformance("fake", "impl", "1", LOOPBACK, strict, (report,), 1.0)


def test_exit_status_follows_must_failures_and_strict_adds_should_and_inconclusive() -> None:
    assert _conformance({"RT-01": ("MUST", "pass"), "BOOT-01": ("SHOULD", "fail")}).exit_code() == 0
    assert _conformance({"RT-02": ("MUST NOT", "fail")}).exit_code() == 1
    assert _conformance({"RT-05": ("MUST", "inconclusive")}).exit_code() == 0
    assert _conformance({"RT-05": ("MUST", "inconclusive")}, strict=True).exit_code() == 1
    assert _conformance({"BOOT-01": ("SHOULD", "fail")}, strict=True).exit_code() == 1
    line = _conformance({"RT-02": ("MUST NOT", "fail")}).summary_line()
    assert line.startswith("conform: FAIL impl 1; 1 requirements: 0 pass, 1 fail")


def test_reports_carry_every_result_and_each_failure_gets_an_itf_trace_and_a_diagram(
    tmp_path: Path,
) -> None:
    from kadspec.conformance.reports import junit_xml, report_json, write_traces

    conformance = _conformance({"RT-01": ("MUST", "pass"), "RT-02": ("MUST NOT", "fail")})
    suite = ElementTree.fromstring(junit_xml(conformance))
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    failure = suite.find(".//testcase[@name='RT-02 MUST NOT']/failure")
    assert failure is not None and failure.get("message") == "RT-02 fail"
    body = report_json(conformance)
    assert [r["status"] for r in body["requirements"]] == ["pass", "fail"]
    files = write_traces(conformance, tmp_path)["listener-side-join"]
    assert "listener-side-join--RT-02.itf.json" in files
    itf = json.loads((tmp_path / "listener-side-join--RT-02.itf.json").read_text())
    assert itf["#meta"]["format"] == "ITF" and itf["vars"][0] == "seq"
    assert [s["seq"] for s in itf["states"]] == [0, 1, 2]
    svg = (tmp_path / "listener-side-join--RT-02.svg").read_text()
    assert svg.startswith("<svg") and "FIND_NODE request" in svg and "broken: RT-02" in svg


def test_with_nodes_grows_a_scenario_by_joining_servers_after_its_first_node() -> None:
    from kadspec.conformance.runner import with_nodes
    from kadspec.conformance.scenarios import SCENARIOS, Call

    grown = with_nodes(SCENARIOS["listener-side-join"], 5)
    assert grown.nodes() == ("boot", "x1", "x2", "x3", "joiner")
    start = grown.steps[2]
    assert isinstance(start, Call) and start.args["bootstrap"] == ["@boot", "@x1"]
    assert with_nodes(SCENARIOS["churn"], 3) is SCENARIOS["churn"]


def _endless_replay(run: Any) -> Any:
    time.sleep(60)  # stands for a replay whose search never ends


def test_a_replay_over_its_budget_is_stopped_and_inconclusive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kadspec.conformance import trace_validation
    from kadspec.conformance.observe import LOOPBACK
    from kadspec.conformance.runner import judge_run

    report = _conformance({"RT-01": ("MUST", "pass")}).scenarios[0]
    before = descendants()
    monkeypatch.setattr(trace_validation, "validate", _endless_replay)
    started = time.monotonic()
    _, validation, error = judge_run(report.scenario, report.run, LOOPBACK, replay_budget_s=1)
    assert time.monotonic() - started < 20
    assert error is None and validation.verdict == "inconclusive"
    assert validation.notes == ("the replay was stopped after its budget of 1 s",)
    deadline = time.monotonic() + 5
    while descendants() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not descendants() - before


#: ``kadspec`` with a replay that never ends, so Ctrl-C can come while the replay worker runs
ENDLESS_REPLAY = """
import sys, time
from kadspec.conformance import trace_validation

def endless(run):
    time.sleep(60)

trace_validation.validate = endless
from kadspec.main import main
main(sys.argv[1:])
"""


def test_ctrl_c_during_a_replay_is_quiet_stops_every_process_and_exits_130(
    tmp_path: Path,
) -> None:
    report = tmp_path / "c.json"
    command = [sys.executable, "-c", ENDLESS_REPLAY, "conform", "--adapter", fake("none")]
    command += ["--scenario", "listener-side-join", "--json", str(report)]
    # its own process group, as a terminal's foreground job: Ctrl-C reaches every process in it
    runner = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[psutil.Process] = []
        while not workers and time.monotonic() < deadline:  # the forked replay worker
            time.sleep(0.1)
            workers = [
                c
                for c in psutil.Process(runner.pid).children(recursive=True)
                if c.cmdline() == psutil.Process(runner.pid).cmdline()
            ]
        assert workers, "the replay never started"
        everyone = psutil.Process(runner.pid).children(recursive=True)
        time.sleep(0.5)
        os.killpg(runner.pid, signal.SIGINT)
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert runner.returncode == 130, out.decode() + err.decode()
    assert "Traceback" not in err.decode() and "KeyboardInterrupt" not in err.decode()
    assert json.loads(report.read_text())["interrupted"] is True
    for process in everyone:
        assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
