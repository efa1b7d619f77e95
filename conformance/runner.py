"""Run conformance scenarios against an adapter, then judge and replay what happened.

:func:`run_scenario` executes one :class:`~kadspec.conformance.scenarios.Scenario` through a
fresh adapter process (:class:`~kadspec.conformance.client.AdapterClient`): its steps are
requests (sent in order; a step without ``wait`` runs concurrently with the ones after it),
waits, and snapshot rounds. Everything the adapter says is recorded as a
:class:`~kadspec.conformance.protocol.Run`. When the adapter breaks (crashes, hangs, garbles),
or the user interrupts, the run ends there with one message in ``Run.aborted``, and what was
recorded so far is kept.

:func:`conform` runs a list of scenarios, one adapter process each, and gives each run to the
oracle (:func:`kadspec.conformance.judge.judge`, one result per requirement) and to trace
validation (:func:`kadspec.conformance.trace_validation.validate`). The :class:`Conformance` it
returns aggregates the results per requirement across scenarios and knows the exit status:
0 only when no applicable MUST requirement failed and every run completed; with ``strict``,
SHOULD failures and inconclusive results fail the run too.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any, Final, Literal

import attrs

from kadspec.conformance import protocol as p
from kadspec.conformance.client import (
    HELLO_TIMEOUT_S,
    REQUEST_TIMEOUT_S,
    AdapterClient,
    AdapterError,
    Pending,
)
from kadspec.conformance.judge import Deadlines, Result
from kadspec.conformance.observe import LOOPBACK, Profile
from kadspec.conformance.scenarios import Call, Scenario, Snapshot, Wait, start

#: the reference node's adapter, as ``--impl reference`` runs it
REFERENCE: Final = (sys.executable, "-m", "kadspec.conformance.adapters.reference")
#: requests whose reply may legitimately take long (an outcome): a missed deadline is evidence
#: for the judge, not a broken adapter
OUTCOME_OPS: Final = frozenset({"provide", "find_providers"})

#: how long trace validation may replay one run before it is stopped (inconclusive)
REPLAY_BUDGET_S: Final = 300.0

Status = Literal["pass", "fail", "not applicable", "inconclusive"]
#: how per-scenario statuses combine into one per requirement: the first that occurs wins
STATUS_ORDER: Final[tuple[Status, ...]] = ("fail", "pass", "inconclusive", "not applicable")


def reference_command(breakage: str | None = None) -> list[str]:
    """The command line of the reference adapter (``breakage``: test-only ``--break NAME``)."""
    return [*REFERENCE, *(("--break", breakage) if breakage else ())]


# --- one scenario --------------------------------------------------------------------------------


@attrs.define
class _Progress:
    """What the runner knows while a scenario runs."""

    addresses: dict[str, str] = attrs.Factory(dict)  # node -> dialable multiaddr with /p2p
    nodes: dict[str, p.NodeRecord] = attrs.Factory(dict)
    running: set[str] = attrs.Factory(set)
    open_calls: list[tuple[Call, Pending, float]] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)


def run_scenario(
    command: Sequence[str],
    scenario: Scenario,
    *,
    name: str | None = None,
    on_entry: Callable[[p.Entry], None] | None = None,
    stderr_log: IO[str] | None = None,
    hello_timeout: float | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[p.Run, tuple[str, ...]]:
    """Run ``scenario`` through a fresh adapter; the Run and the runner's notes (steps it
    skipped and why). Never raises for what the adapter does; Ctrl-C ends the run early too."""
    client = AdapterClient(
        command,
        name=name,
        on_entry=on_entry,
        stderr_log=stderr_log,
        hello_timeout=HELLO_TIMEOUT_S if hello_timeout is None else hello_timeout,
    )
    state = _Progress()
    aborted: str | None = None
    started = time.monotonic()
    try:
        client.start()
        for number, step in enumerate(scenario.steps, 1):
            _step(client, step, state)
            if on_step is not None:
                on_step(number)
        _collect_open_calls(client, state)
    except AdapterError as error:
        aborted = str(error)
    except KeyboardInterrupt:
        aborted = f"interrupted by the user while running scenario {scenario.name!r}"
    finally:
        try:
            client.close()
        except KeyboardInterrupt:  # a second Ctrl-C: close() must still finish
            client.close()
    hello = client.hello or p.Hello(p.PROTOCOL, client.name, "?", p.Capabilities())
    run = p.Run(
        hello=hello,
        scenario=scenario.name,
        nodes=tuple(state.nodes.values()),
        entries=tuple(client.entries),
        adapter=client.name,
        aborted=aborted,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return run, tuple(state.notes)


def _step(client: AdapterClient, step: Call | Wait | Snapshot, state: _Progress) -> None:
    if isinstance(step, Wait):
        _sleep(client, step.ms / 1000)
    elif isinstance(step, Snapshot):
        names = step.nodes or tuple(n for n in state.nodes if n in state.running)
        pending = [client.submit("snapshot", {"node": n}) for n in names]
        for one in pending:
            client.wait(one, REQUEST_TIMEOUT_S)
    else:
        _call(client, step, state)


def _call(client: AdapterClient, call: Call, state: _Progress) -> None:
    from kadspec.conformance.scenarios import resolve

    try:
        args = resolve(dict(call.args), state.addresses)
    except KeyError as error:
        state.notes.append(f"skipped {call.op} {dict(call.args)}: {error.args[0]}")
        return
    pending = client.submit(call.op, args)
    timeout = call.timeout_ms / 1000
    if call.op in OUTCOME_OPS and not call.wait:
        state.open_calls.append((call, pending, time.monotonic() + timeout))
        return
    # a control request that is not answered in time means the adapter hangs
    reply = client.wait(pending, max(timeout, REQUEST_TIMEOUT_S), hard=call.op not in OUTCOME_OPS)
    if reply is None:
        state.notes.append(f"{call.op} {args} had no reply within {call.timeout_ms} ms")
        return
    node = str(args.get("node", ""))
    if not reply.ok:
        assert reply.error is not None
        state.notes.append(f"{call.op} {node}: {reply.error.kind}: {reply.error.message}")
        return
    if call.op == "start":
        peer = str(reply.result["peer_id"])
        listen = list(reply.result["listen_addrs"])
        if listen:
            state.addresses[node] = f"{listen[0]}/p2p/{peer}"
        state.nodes[node] = p.NodeRecord(node, args, peer)
        state.running.add(node)
    elif call.op in ("stop", "crash"):
        state.running.discard(node)
    elif call.op == "restart":
        state.running.add(node)


def _collect_open_calls(client: AdapterClient, state: _Progress) -> None:
    for call, pending, deadline in state.open_calls:
        reply = client.wait(pending, max(0.0, deadline - time.monotonic()), hard=False)
        if reply is None:
            state.notes.append(f"{call.op} {dict(call.args)} had no reply in {call.timeout_ms} ms")


def _sleep(client: AdapterClient, seconds: float) -> None:
    """Let the network run; a broken adapter still ends the run at once."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))
        if client.broken is not None:
            raise client.broken


def with_nodes(scenario: Scenario, nodes: int) -> Scenario:
    """``scenario`` in a network of at least ``nodes`` nodes: extra servers ``x1``, ``x2`` ...
    join right after the scenario's first node (through it and the extra node before), so the
    scenario's own steps run in a bigger table. A scenario with as many nodes is unchanged."""
    own = scenario.nodes()
    extra = nodes - len(own)
    if extra <= 0 or not own:
        return scenario
    first, first_start = next(
        (i, s) for i, s in enumerate(scenario.steps) if isinstance(s, Call) and s.op == "start"
    )
    anchor = str(first_start.args["node"])
    timings = dict(first_start.args.get("timings") or {})
    joins = [
        start(f"x{i}", bootstrap=[anchor] if i == 1 else [anchor, f"x{i - 1}"], timings=timings)
        for i in range(1, extra + 1)
    ]
    steps = (*scenario.steps[: first + 1], *joins, *scenario.steps[first + 1 :])
    return attrs.evolve(scenario, steps=steps, text=f"{scenario.text} (with {extra} extra nodes)")


# --- judging and aggregation ---------------------------------------------------------------------


@attrs.frozen
class ScenarioReport:
    """One scenario's run, its results per requirement, and its trace validation."""

    scenario: Scenario
    run: p.Run
    results: tuple[Result, ...]
    validation: Any  # trace_validation.Validation, or None when not run
    seconds: float
    notes: tuple[str, ...] = ()
    #: a judge or validator crash (a kadspec bug, reported rather than hidden)
    error: str | None = None


@attrs.frozen
class RequirementRow:
    """One requirement across all scenarios: the combined status and each scenario's."""

    requirement: str
    level: str
    status: Status
    by_scenario: Mapping[str, Result]

    @property
    def evidence(self) -> str:
        for status in STATUS_ORDER:
            for name, result in self.by_scenario.items():
                if result.status == status and result.evidence:
                    return (
                        f"{name}: {result.evidence}"
                        if status != "not applicable"
                        else (result.evidence)
                    )
        return ""


@attrs.frozen
class Conformance:
    """Everything one ``kadspec conform`` found."""

    adapter: str
    implementation: str
    version: str
    profile: Profile
    strict: bool
    scenarios: tuple[ScenarioReport, ...]
    seconds: float
    interrupted: bool = False

    def rows(self) -> list[RequirementRow]:
        order: list[str] = []
        levels: dict[str, str] = {}
        found: dict[str, dict[str, Result]] = {}
        for report in self.scenarios:
            for result in report.results:
                if result.requirement not in found:
                    order.append(result.requirement)
                    found[result.requirement] = {}
                    levels[result.requirement] = result.level
                found[result.requirement][report.scenario.name] = result
        rows = []
        for rid in order:
            statuses = {r.status for r in found[rid].values()}
            status = next(s for s in STATUS_ORDER if s in statuses)
            rows.append(RequirementRow(rid, levels[rid], status, found[rid]))
        return rows

    def counts(self) -> dict[str, int]:
        rows = self.rows()
        return {s: sum(1 for r in rows if r.status == s) for s in STATUS_ORDER}

    def aborted(self) -> list[ScenarioReport]:
        return [s for s in self.scenarios if s.run.aborted or s.error]

    def failing_rows(self) -> list[RequirementRow]:
        """The rows that make the exit status non-zero."""
        bad = []
        for row in self.rows():
            must = row.level.startswith("MUST")
            counted = row.status == "fail" and must
            if self.strict:  # SHOULD failures and inconclusive results count too
                counted = row.status in ("fail", "inconclusive")
            if counted:
                bad.append(row)
        return bad

    def exit_code(self) -> int:
        return 1 if self.failing_rows() or self.aborted() or self.interrupted else 0

    def verdict(self) -> str:
        return "PASS" if self.exit_code() == 0 else "FAIL"

    def summary_line(self) -> str:
        counts = self.counts()
        rejected = [
            s.scenario.name
            for s in self.scenarios
            if s.validation is not None and not s.validation.accepted
        ]
        validated = len([s for s in self.scenarios if s.validation is not None])
        parts = [
            f"conform: {self.verdict()} {self.implementation} {self.version}",
            f"{len(self.rows())} requirements: {counts['pass']} pass, {counts['fail']} fail, "
            f"{counts['inconclusive']} inconclusive, {counts['not applicable']} not applicable",
            f"{len(self.scenarios)} scenarios, "
            + (
                f"trace validation accepted {validated - len(rejected)}/{validated}"
                if validated
                else "trace validation not run"
            ),
        ]
        if self.aborted():
            parts.append(f"{len(self.aborted())} runs ended early")
        parts.append(f"{self.seconds:.1f} s (exit {self.exit_code()})")
        return "; ".join(parts)


def judge_run(
    scenario: Scenario,
    run: p.Run,
    profile: Profile,
    validate: bool = True,
    *,
    replay_budget_s: float | None = None,
) -> tuple[tuple[Result, ...], Any, str | None]:
    """The oracle's results and trace validation for one run; a crash in either is returned
    as text (and the other still runs). With ``replay_budget_s`` the replay runs in a child
    process stopped after that many seconds: the validation is then "inconclusive", saying so,
    and a run can never hang in it."""
    from kadspec.conformance.judge import judge

    error = None
    results: tuple[Result, ...] = ()
    validation = None
    deadlines: Deadlines = scenario.deadlines
    try:
        results = tuple(judge(run, profile, deadlines))
    except Exception:
        error = "judge failed: " + traceback.format_exc(limit=4).strip().splitlines()[-1]
    if validate:
        try:
            validation = _replay(run, replay_budget_s)
        except Exception:
            tail = traceback.format_exc(limit=4).strip().splitlines()[-1]
            error = (error + "; " if error else "") + "trace validation failed: " + tail
    return results, validation, error


def _replay(run: p.Run, budget_s: float | None) -> Any:
    from kadspec.conformance.trace_validation import Validation, validate

    if budget_s is None:
        return validate(run)
    import multiprocessing

    # fork: the child has every module loaded already and needs nothing pickled but the result
    context = multiprocessing.get_context("fork")
    # leaving the block terminates the worker, finished or not
    with context.Pool(1, initializer=_quiet_replay_worker) as pool:
        pending = pool.apply_async(validate, (run,))
        try:
            return pending.get(timeout=budget_s)
        except multiprocessing.TimeoutError:
            events = sum(1 for _ in run.events())
            return Validation(
                run.scenario, run.hello.implementation, "inconclusive", 0, 0, events, 0, {},
                None, notes=(f"the replay was stopped after its budget of {budget_s:g} s",),
            )  # fmt: skip


def _quiet_replay_worker() -> None:
    """A replay worker leaves Ctrl-C to the runner and ends silently when the pool ends it.

    Forked, it inherited the runner's signal handlers: Ctrl-C reaches every process of the
    terminal's foreground group, and the runner's SIGTERM-as-Ctrl-C handler turned the pool's
    terminate() into a KeyboardInterrupt too, so each interrupted run printed the worker's
    traceback under the report. The runner alone decides what Ctrl-C means (it stops the
    adapter, writes the reports and exits 130), then terminates the worker.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


#: callbacks for live progress: (what, scenario, payload)
Progress = Callable[[str, Scenario, Any], None]


def conform(
    command: Sequence[str],
    scenarios: Iterable[Scenario],
    *,
    name: str | None = None,
    profile: Profile = LOOPBACK,
    strict: bool = False,
    validate: bool = True,
    progress: Progress | None = None,
    stderr_log: IO[str] | None = None,
    replay_budget_s: float | None = REPLAY_BUDGET_S,
) -> Conformance:
    """Run, judge and validate each scenario against the adapter ``command``.

    ``progress`` hears ``("scenario", s, None)`` when a scenario starts, ``("entry", s, entry)``
    for every entry recorded, ``("step", s, number)`` after each step, ``("judging", s, run)``
    and ``("done", s, ScenarioReport)``.
    Ctrl-C stops after the scenario in progress (which is kept, marked as interrupted).
    """
    started = time.monotonic()
    reports: list[ScenarioReport] = []
    implementation, version = name or " ".join(command), "?"
    interrupted = False

    def tell(what: str, scenario: Scenario, payload: Any) -> None:
        if progress is not None:
            progress(what, scenario, payload)

    for scenario in scenarios:
        tell("scenario", scenario, None)
        began = time.monotonic()
        run, notes = run_scenario(
            command,
            scenario,
            name=name,
            on_entry=lambda entry, s=scenario: tell("entry", s, entry),  # type: ignore[misc]
            stderr_log=stderr_log,
            on_step=lambda number, s=scenario: tell("step", s, number),  # type: ignore[misc]
        )
        if run.hello.version != "?":
            implementation, version = run.hello.implementation, run.hello.version
        try:
            tell("judging", scenario, run)
            results, validation, error = judge_run(
                scenario, run, profile, validate, replay_budget_s=replay_budget_s
            )
        except KeyboardInterrupt:
            results, validation, error = (), None, "interrupted while judging"
            interrupted = True
        report = ScenarioReport(
            scenario, run, results, validation, time.monotonic() - began, notes, error
        )
        reports.append(report)
        tell("done", scenario, report)
        if interrupted or (run.aborted or "").startswith("interrupted by the user"):
            interrupted = True
            break
    return Conformance(
        adapter=name or " ".join(command),
        implementation=implementation,
        version=version,
        profile=profile,
        strict=strict,
        scenarios=tuple(reports),
        seconds=time.monotonic() - started,
        interrupted=interrupted,
    )


def describe_steps(scenario: Scenario) -> list[str]:
    """A scenario's steps, one readable line each (for a shrunk generated scenario)."""
    lines = []
    for number, step in enumerate(scenario.steps, 1):
        if isinstance(step, Wait):
            lines.append(f"{number}. wait {step.ms} ms")
        elif isinstance(step, Snapshot):
            lines.append(f"{number}. snapshot {', '.join(step.nodes) or 'every running node'}")
        else:
            args = {k: v for k, v in step.args.items() if k not in ("node", "listen", "timings")}
            shown = " ".join(f"{k}={v}" for k, v in args.items() if v not in ([], None, ""))
            wait = "" if step.wait else " (not awaited)"
            lines.append(f"{number}. {step.op} {step.args.get('node', '')} {shown}{wait}".strip())
    return lines


__all__ = [
    "REFERENCE",
    "Conformance",
    "RequirementRow",
    "ScenarioReport",
    "conform",
    "describe_steps",
    "judge_run",
    "reference_command",
    "run_scenario",
    "with_nodes",
]
