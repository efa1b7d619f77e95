"""What ``kadspec conform`` shows and writes: a terminal table, JSON, JUnit XML and traces.

- :class:`LiveProgress`: one rich progress line per scenario while it runs (entries and events
  so far, then judging), for the runner's ``progress`` callback;
- :func:`print_report`: the table by requirement (combined status, each scenario's, the
  evidence), one line per scenario (time, entries, trace validation, why it ended early),
  the failures with their evidence, and the summary line ``conform: PASS|FAIL ...``;
- :func:`report_json`: the same as data, with the provenance block every kadspec report
  carries (``kadspec.provenance``);
- :func:`junit_xml`: one test suite per scenario, one test case per requirement, for CI;
- :func:`write_traces`: for every failure a minimal trace as ITF JSON (the trace format of
  Quint and Apalache) and a sequence diagram (SVG, drawn by :mod:`kadspec.diagrams`), plus
  each scenario's whole run as ``<scenario>.run.json``.

A failure's minimal trace keeps the entries of the nodes its evidence involves, up to the last
entry of the evidence (at most :data:`TRACE_ENTRIES` of them, the evidence always kept).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from kadspec.conformance import protocol as p
from kadspec.conformance.runner import Conformance, RequirementRow, ScenarioReport
from kadspec.conformance.scenarios import Scenario

FORMAT: Final = "kadspec-conform/1"
#: the most entries a failure's trace keeps
TRACE_ENTRIES: Final = 60
STYLE: Final[Mapping[str, str]] = {
    "pass": "green",
    "fail": "bold red",
    "inconclusive": "yellow",
    "not applicable": "dim",
}
MARK: Final[Mapping[str, str]] = {
    "pass": "✓",
    "fail": "✗",
    "inconclusive": "?",
    "not applicable": "·",
}


# --- live progress -------------------------------------------------------------------------------


class LiveProgress:
    """The runner's ``progress`` callback drawing one rich line per scenario."""

    def __init__(self, console: Console, total: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.total = total
        self.done = 0
        self._task: TaskID | None = None
        self._entries = 0
        self._events = 0
        self._steps = 1

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, what: str, scenario: Scenario, payload: Any) -> None:
        if what == "scenario":
            self._entries = self._events = 0
            self._steps = max(1, len(scenario.steps))
            self._task = self.progress.add_task(
                f"[{self.done + 1}/{self.total}] {scenario.name}",
                total=self._steps + 1,  # the last unit is judging, so the clock runs on
                status="starting the adapter",
            )
        elif self._task is None:
            return
        elif what == "entry":
            entry: p.Entry = payload
            self._entries += 1
            self._events += entry.kind == "event"
            self.progress.update(
                self._task, status=f"{self._entries} entries, {self._events} events"
            )
        elif what == "step":
            self.progress.update(self._task, completed=int(payload))
        elif what == "judging":
            self.progress.update(
                self._task, completed=self._steps, status=f"{self._entries} entries; judging"
            )
        elif what == "done":
            report: ScenarioReport = payload
            self.done += 1
            counts = _counts(report.results)
            ended = " ENDED EARLY" if report.run.aborted or report.error else ""
            self.progress.update(
                self._task,
                completed=self._steps + 1,
                status=f"{counts['pass']} pass, {counts['fail']} fail{ended}",
            )


def _counts(results: Iterable[Any]) -> dict[str, int]:
    counts = dict.fromkeys(MARK, 0)
    for result in results:
        counts[result.status] += 1
    return counts


# --- the terminal report -------------------------------------------------------------------------


def requirements_table(conformance: Conformance) -> Table:
    names = [s.scenario.name for s in conformance.scenarios]
    table = Table(
        title=f"kadspec conform: {conformance.implementation} {conformance.version}",
        title_justify="left",
        caption=(
            f"profile {conformance.profile.describe()}; per scenario: "
            + "  ".join(f"{MARK[s]} {s}" for s in MARK)
        ),
        caption_justify="left",
    )
    table.add_column("requirement", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("scenarios", no_wrap=True)
    table.add_column("evidence", overflow="fold")
    for row in conformance.rows():
        marks = "".join(
            MARK[row.by_scenario[n].status] if n in row.by_scenario else " " for n in names
        )
        table.add_row(
            row.requirement,
            row.level,
            f"[{STYLE[row.status]}]{row.status}[/]",
            marks,
            _clip(row.evidence, 160),
        )
    return table


def print_report(console: Console, conformance: Conformance) -> None:
    console.print(requirements_table(conformance))
    console.print("scenarios (columns above, left to right):")
    for index, report in enumerate(conformance.scenarios, 1):
        console.print(f"  {index}. {scenario_line(report)}", highlight=False)
    counted = {row.requirement for row in conformance.failing_rows()}
    shown = [r for r in conformance.rows() if r.status == "fail" or r.requirement in counted]
    if shown:
        console.print("[bold red]failures:[/]")
        for row in shown:
            note = "" if row.requirement in counted else " (fails the run only with --strict)"
            for name, result in row.by_scenario.items():
                if result.status == row.status:
                    entries = ", ".join(f"#{s}" for s in result.entries[:8])
                    console.print(
                        f"  {row.requirement} {row.level} in {name}: {result.evidence}"
                        + (f" (entries {entries})" if entries else "")
                        + note,
                        highlight=False,
                    )
    for report in conformance.aborted():
        why = report.run.aborted or report.error
        console.print(f"[bold red]{report.scenario.name} ended early:[/] {why}", highlight=False)
    style = "bold green" if conformance.exit_code() == 0 else "bold red"
    console.print(f"[{style}]{conformance.summary_line()}[/]", highlight=False)


def scenario_line(report: ScenarioReport) -> str:
    run = report.run
    events = sum(1 for e in run.entries if e.kind == "event")
    parts = [
        f"{report.scenario.name}: {report.seconds:.1f} s, {len(run.nodes)} nodes, "
        f"{len(run.entries)} entries ({events} events)"
    ]
    if report.validation is not None:
        parts.append(report.validation.summary())
    if run.aborted:
        parts.append(f"ENDED EARLY: {run.aborted}")
    if report.error:
        parts.append(f"ERROR: {report.error}")
    parts += [f"note: {note}" for note in report.notes]
    return "; ".join(parts)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- JSON ----------------------------------------------------------------------------------------


def report_json(
    conformance: Conformance,
    traces: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The JSON report's body (``traces``: scenario -> the trace files written for it); the
    command adds ``report``, ``schema_version`` and the provenance block as every kadspec
    report has them (:func:`kadspec.options.write_report`)."""
    return {
        "format": FORMAT,
        "verdict": conformance.verdict(),
        "exit_code": conformance.exit_code(),
        "summary_line": conformance.summary_line(),
        "adapter": conformance.adapter,
        "implementation": conformance.implementation,
        "version": conformance.version,
        "profile": {"name": conformance.profile.name, "text": conformance.profile.describe()},
        "strict": conformance.strict,
        "interrupted": conformance.interrupted,
        "seconds": round(conformance.seconds, 3),
        "summary": conformance.counts(),
        "requirements": [_row_json(row) for row in conformance.rows()],
        "scenarios": [
            _scenario_json(report, (traces or {}).get(report.scenario.name, ()))
            for report in conformance.scenarios
        ],
    }


def _row_json(row: RequirementRow) -> dict[str, Any]:
    return {
        "requirement": row.requirement,
        "level": row.level,
        "status": row.status,
        "evidence": row.evidence,
        "by_scenario": {name: r.status for name, r in row.by_scenario.items()},
    }


def _scenario_json(report: ScenarioReport, traces: Sequence[str]) -> dict[str, Any]:
    run = report.run
    return {
        "name": report.scenario.name,
        "text": report.scenario.text,
        "exercises": list(report.scenario.exercises),
        "deadlines": {
            "progress_ms": report.scenario.deadlines.progress_ms,
            "outcome_ms": report.scenario.deadlines.outcome_ms,
            "grace_ms": report.scenario.deadlines.grace_ms,
            "expiry_tolerance_ms": report.scenario.deadlines.expiry_tolerance_ms,
        },
        "seconds": round(report.seconds, 3),
        "nodes": [{"name": n.name, "peer_id": n.peer_id} for n in run.nodes],
        "entries": len(run.entries),
        "events": sum(1 for e in run.entries if e.kind == "event"),
        "aborted": run.aborted,
        "error": report.error,
        "notes": list(report.notes),
        "summary": _counts(report.results),
        "results": [r.to_json() for r in report.results],
        "trace_validation": None if report.validation is None else report.validation.to_json(),
        "traces": list(traces),
    }


def dumps(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n"


# --- JUnit XML -----------------------------------------------------------------------------------


def junit_xml(conformance: Conformance) -> str:
    """One ``testsuite`` per scenario; a ``testcase`` per requirement (``fail`` is a failure,
    ``not applicable`` and ``inconclusive`` are skipped with the reason), one for trace
    validation, and one for the adapter itself (an error when the run ended early)."""
    suites = ElementTree.Element("testsuites", name=f"kadspec conform {conformance.adapter}")
    total = failures = errors = skipped = 0
    for report in conformance.scenarios:
        suite = ElementTree.SubElement(
            suites, "testsuite", name=report.scenario.name, time=f"{report.seconds:.3f}"
        )
        cases = failed = erred = skips = 0
        adapter_case = ElementTree.SubElement(
            suite, "testcase", classname=f"conform.{report.scenario.name}", name="adapter run"
        )
        cases += 1
        if report.run.aborted or report.error:
            error = ElementTree.SubElement(
                adapter_case, "error", message=_clip(report.run.aborted or report.error or "", 300)
            )
            error.text = report.run.aborted or report.error
            erred += 1
        for result in report.results:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=f"conform.{report.scenario.name}",
                name=f"{result.requirement} {result.level}",
            )
            cases += 1
            if result.status == "fail":
                failure = ElementTree.SubElement(
                    case, "failure", message=_clip(result.evidence, 300), type=result.level
                )
                failure.text = result.evidence + (
                    f"\nentries: {', '.join(map(str, result.entries))}" if result.entries else ""
                )
                failed += 1
            elif result.status != "pass":
                ElementTree.SubElement(
                    case, "skipped", message=f"{result.status}: {_clip(result.evidence, 300)}"
                )
                skips += 1
        if report.validation is not None:
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"conform.{report.scenario.name}",
                name="trace validation",
            )  # fmt: skip
            cases += 1
            if report.validation.verdict == "rejected":
                failure = ElementTree.SubElement(
                    case, "failure", message=_clip(report.validation.summary(), 300)
                )
                failure.text = report.validation.summary()
                failed += 1
            elif not report.validation.accepted:
                ElementTree.SubElement(case, "skipped", message=report.validation.summary())
                skips += 1
        suite.set("tests", str(cases))
        suite.set("failures", str(failed))
        suite.set("errors", str(erred))
        suite.set("skipped", str(skips))
        total, failures, errors, skipped = (
            total + cases, failures + failed, errors + erred, skipped + skips,
        )  # fmt: skip
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    suites.set("skipped", str(skipped))
    suites.set("time", f"{conformance.seconds:.3f}")
    ElementTree.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + ElementTree.tostring(suites, encoding="unicode")
        + "\n"
    )


# --- traces --------------------------------------------------------------------------------------


def write_traces(conformance: Conformance, folder: Path) -> dict[str, list[str]]:
    """Write every failure's trace (ITF JSON and SVG) and each run; scenario -> file names."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[str]] = {}
    for report in conformance.scenarios:
        name = report.scenario.name
        files = written.setdefault(name, [])
        run_file = folder / f"{_slug(name)}.run.json"
        run_file.write_text(json.dumps(report.run.to_json(), indent=1) + "\n", "utf-8")
        files.append(run_file.name)
        for result in report.results:
            if result.status != "fail":
                continue
            title = f"{name}: {result.requirement} {result.level} failed"
            verdict = (f"broken: {result.requirement} {result.level}", result.evidence)
            files += _write_trace(
                folder, f"{_slug(name)}--{result.requirement}", report.run, result.entries,
                title, verdict,
            )  # fmt: skip
        unexplained = getattr(report.validation, "first_unexplained", None)
        if unexplained is not None:
            rids = ", ".join(unexplained.requirements) or "no single requirement"
            verdict = (
                f"first unexplained event #{unexplained.seq} (breaks {rids})",
                unexplained.why,
            )
            files += _write_trace(
                folder, f"{_slug(name)}--trace-validation", report.run, (unexplained.seq,),
                f"{name}: trace validation rejected", verdict,
            )  # fmt: skip
        if report.run.aborted:
            last = (report.run.entries[-1].seq,) if report.run.entries else ()
            files += _write_trace(
                folder, f"{_slug(name)}--ended-early", report.run, last,
                f"{name}: the run ended early", ("the run ended early", report.run.aborted),
            )  # fmt: skip
    return written


def _write_trace(
    folder: Path,
    stem: str,
    run: p.Run,
    evidence: Sequence[int],
    title: str,
    verdict: tuple[str, str],
) -> list[str]:
    entries = minimal_trace(run, evidence)
    itf = folder / f"{stem}.itf.json"
    itf.write_text(json.dumps(itf_trace(run, entries, title, verdict), indent=1) + "\n", "utf-8")
    svg = folder / f"{stem}.svg"
    svg.write_text(trace_svg(run, entries, evidence, title, verdict), "utf-8")
    return [itf.name, svg.name]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def minimal_trace(run: p.Run, evidence: Sequence[int]) -> list[p.Entry]:
    """The entries a person needs to see a failure: those of the nodes the evidence involves
    (and the runner's requests to them), up to the evidence's last entry, at most
    :data:`TRACE_ENTRIES`, the evidence itself always kept."""
    by_seq = {e.seq: e for e in run.entries}
    shown = [by_seq[s] for s in evidence if s in by_seq]
    if not shown:
        return list(run.entries[-TRACE_ENTRIES // 2 :])
    names = run.peer_names()
    involved = {e.node for e in shown if e.node}
    for entry in shown:
        for peer in _peers_in(entry.payload):
            if peer in names:
                involved.add(names[peer])
    last = max(e.seq for e in shown)
    keep = [e for e in run.entries if e.seq <= last and (e.node in involved or not e.node)]
    wanted = {e.seq for e in shown}
    if len(keep) > TRACE_ENTRIES:
        tail = keep[-TRACE_ENTRIES:]
        keep = sorted(
            {e.seq: e for e in [*tail, *(e for e in keep if e.seq in wanted)]}.values(),
            key=lambda e: e.seq,
        )
    return keep


def _peers_in(payload: Mapping[str, Any]) -> list[str]:
    found = []
    for field in ("peer", "peer_id", "provider"):
        value = payload.get(field)
        if isinstance(value, str):
            found.append(value)
    return found


def _itf_value(value: Any) -> Any:
    """A JSON value as ITF (Apalache ADR-015): big integers as #bigint, null as unserializable."""
    if value is None:
        return {"#unserializable": "null"}
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else {"#bigint": str(value)}
    if isinstance(value, float):
        return {"#unserializable": repr(value)}
    if isinstance(value, Mapping):
        return {str(k): _itf_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_itf_value(v) for v in value]
    return {"#unserializable": str(value)}


def itf_trace(
    run: p.Run, entries: Sequence[p.Entry], title: str, verdict: tuple[str, str]
) -> dict[str, Any]:
    """A run's entries as an ITF trace: one state per entry, its variables the entry's fields
    (``seq``, ``time_ms``, ``kind``, ``node``, ``message``)."""
    return {
        "#meta": {
            "format": "ITF",
            "format-description": "https://apalache-mc.org/docs/adr/015adr-trace.html",
            "source": f"kadspec conform, scenario {run.scenario}",
            "description": f"{title}. {verdict[0]}: {verdict[1]}",
            "implementation": f"{run.hello.implementation} {run.hello.version}",
            "nodes": {n.name: n.peer_id or "" for n in run.nodes},
        },
        "vars": ["seq", "time_ms", "kind", "node", "message"],
        "states": [
            {
                "#meta": {"index": index},
                "seq": entry.seq,
                "time_ms": entry.time_ms,
                "kind": entry.kind,
                "node": entry.node,
                "message": _itf_value(dict(entry.payload)),
            }
            for index, entry in enumerate(entries)
        ],
    }


_ARROWS: Final = {
    "kad_request_sent": ("kad_request_received", "request"),
    "kad_response_sent": ("kad_response_received", "response"),
}


def trace_svg(
    run: p.Run,
    entries: Sequence[p.Entry],
    evidence: Sequence[int],
    title: str,
    verdict: tuple[str, str],
) -> str:
    """The trace as a sequence diagram, drawn by :func:`kadspec.diagrams.sequence_svg`: the
    runner and the nodes as lifelines, kad messages as arrows from the sender's event to the
    receiver's (FIFO per sender, receiver and message type)."""
    from kadspec.diagrams import Arrow, Sequence, sequence_svg

    names = run.peer_names()
    lifelines: list[str] = ["runner"]
    for entry in entries:
        if entry.node and entry.node not in lifelines:
            lifelines.append(entry.node)
    steps: list[str] = []
    actors: list[str | None] = []
    arrows: list[Arrow] = []
    in_flight: dict[tuple[str, str, str, str], list[int]] = {}
    broken: int | None = None
    for number, entry in enumerate(entries, 1):
        steps.append(describe_entry(entry, names))
        actors.append(entry.node or None)
        if entry.seq in evidence and broken is None:
            broken = number  # the first moment that shows the failure
        kind = entry.payload.get("event") if entry.kind == "event" else None
        peer = names.get(str(entry.payload.get("peer", "")))
        if kind in _ARROWS and peer in lifelines:
            _, label = _ARROWS[kind]
            key = (entry.node, peer, str(entry.payload.get("kad_type")), label)
            in_flight.setdefault(key, []).append(number)
        elif kind in ("kad_request_received", "kad_response_received") and peer:
            label = "request" if kind == "kad_request_received" else "response"
            key = (peer, entry.node, str(entry.payload.get("kad_type")), label)
            queue = in_flight.get(key)
            sent = queue.pop(0) if queue else number
            if peer in lifelines:
                arrows.append(Arrow(peer, entry.node, f"{key[2]} {label}", sent, number))
        elif entry.kind == "request" and entry.node in lifelines:
            arrows.append(Arrow("runner", entry.node, str(entry.payload.get("op")), number, number))
    for (src, dst, kad_type, label), queue in in_flight.items():
        arrows += [Arrow(src, dst, f"{kad_type} {label}", sent, None) for sent in queue]
    sequence = Sequence(
        title=title,
        lifelines=tuple(lifelines),
        steps=tuple(steps),
        actors=tuple(actors),
        arrows=tuple(sorted(arrows, key=lambda a: (a.sent, a.received or 0))),
        broken_step=broken,
        verdict=verdict,
    )
    return sequence_svg(sequence)


def describe_entry(entry: p.Entry, names: Mapping[str, str] | None = None) -> str:
    """One short line for an entry, peers by node name where known."""
    names = names or {}
    payload = entry.payload

    def who(peer: Any) -> str:
        text = str(peer)
        return names.get(text, text[-8:])

    if entry.kind == "request":
        args = {k: v for k, v in dict(payload.get("args", {})).items() if k != "node"}
        shown = ", ".join(f"{k}={_clip(json.dumps(v), 40)}" for k, v in args.items() if v)
        return f"#{entry.seq} runner → {entry.node or 'adapter'}: {payload.get('op')}({shown})"
    if entry.kind == "reply":
        if payload.get("ok"):
            result = payload.get("result") or {}
            detail = ", ".join(f"{k}={_clip(json.dumps(v), 30)}" for k, v in result.items())
            return f"#{entry.seq} {entry.node} replies ok {detail}".rstrip()
        error = payload.get("error") or {}
        return f"#{entry.seq} {entry.node} replies {error.get('kind')}: {error.get('message')}"
    if entry.kind == "snapshot":
        return (
            f"#{entry.seq} {entry.node} snapshot: {payload.get('mode')}, "
            f"{len(payload.get('routing_table', []))} in table, "
            f"{len(payload.get('connections', []))} connections, "
            f"{len(payload.get('provider_records', []))} records"
        )
    event = payload.get("event")
    detail = ""
    if "peer" in payload:
        detail += f" {who(payload['peer'])}"
    if "kad_type" in payload:
        detail += f" {payload['kad_type']}"
    for field in ("direction", "mode", "outcome", "count", "reason"):
        if payload.get(field) is not None:
            detail += f" {field}={payload[field]}"
    for field in ("closer_peers", "provider_peers", "providers"):
        peers = payload.get(field)
        if peers:
            detail += f" {field}=[{', '.join(who(i.get('peer_id')) for i in peers)}]"
    return f"#{entry.seq} {entry.node} {event}{detail}"
