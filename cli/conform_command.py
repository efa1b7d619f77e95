"""``kadspec conform``: hold a libp2p implementation to the model's requirements on loopback.

The command runs named scenarios (:mod:`kadspec.conformance.scenarios`) against an adapter
process (:mod:`kadspec.conformance.protocol`), judges every run with the model's own checks
and replays it through the model (trace validation), then prints a table by requirement and
writes the reports asked for. :func:`conform_for_verify` is the part ``kadspec verify`` runs.

Exit status: 0 when every applicable MUST requirement held in every scenario and every run
completed (with ``--strict``: every SHOULD too, no inconclusive result and every trace
accepted); 1 when one failed or the adapter broke (the message names it); 2 for bad input;
130 when interrupted (Ctrl-C or SIGTERM), after writing what was gathered.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
from rich.console import Console

from kadspec import options
from kadspec.options import OutputPath, write_report

#: ``--impl NAME``: the adapters kadspec ships, as command lines
IMPLEMENTATIONS: dict[str, list[str]] = {
    "reference": [sys.executable, "-m", "kadspec.conformance.adapters.reference"],
    "py-libp2p": [sys.executable, "-m", "kadspec.conformance.adapters.py_libp2p"],
    "js-libp2p": [
        "node",
        str(Path(__file__).resolve().parent.parent / "conformance/adapters/js-libp2p/adapter.mjs"),
    ],
}
EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

CONFORM_HELP = """Check a libp2p Kademlia implementation against the spec's requirements.

    Runs named scenarios (start nodes on 127.0.0.1, provide, find, crash, restart ...)
    through an adapter process that speaks the kadspec adapter protocol on its standard
    input and output, judges every snapshot and event with the model's own checks, and
    replays the events through the model (trace validation). Prints one row per
    requirement: pass, fail (with evidence), inconclusive, or not applicable.

    Give exactly one of --impl (an adapter kadspec ships) or --adapter (any command,
    quoted as one argument; see docs/guides/write-an-adapter.rst).

    Exit status: 0 when every applicable MUST requirement passed and every run
    completed; 1 when one failed or the adapter broke; 2 on bad input; 130 when
    interrupted (reports are still written). --strict also fails on SHOULD failures,
    inconclusive results and rejected traces.

    \b
    Examples:
      kadspec conform --impl reference
      kadspec conform --impl reference --scenario provide-at-startup
      kadspec conform --impl reference --json results/conform.json --junit results/conform.xml
      kadspec conform --impl reference --traces results/traces --strict
      kadspec conform --adapter 'node my-adapter.mjs' --scenario churn --nodes 10
      kadspec conform --impl reference --scenario churn --explore 5
      kadspec conform --list-scenarios
    """


def _scenario_names() -> list[str]:
    from kadspec.conformance.scenarios import SCENARIOS

    return list(SCENARIOS)


class ScenarioName(click.ParamType[str]):
    name = "NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        names = _scenario_names()
        if value not in names:
            self.fail(f"{value!r} is not a scenario; one of: {', '.join(names)}", param, ctx)
        return str(value)


class TracesFolder(click.ParamType[Path]):
    """A folder for trace files: created if missing, checked writable before any work."""

    name = "DIR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        path = Path(value)
        problem = options.writable_problem(path / ".kadspec-traces")
        if problem is not None:
            self.fail(f"{path}: {problem}", param, ctx)
        return path


@click.command("conform", help=CONFORM_HELP)
@click.option(
    "--impl",
    type=click.Choice(list(IMPLEMENTATIONS)),
    help="An adapter kadspec ships (reference: kadspec's own node on py-libp2p).",
)
@click.option(
    "--adapter",
    metavar="'COMMAND'",
    help="Any adapter: a command line, split as a POSIX shell would (quote it as one argument).",
)
@click.option(
    "--scenario",
    "scenario_names",
    type=ScenarioName(),
    multiple=True,
    help="Run only this scenario (repeatable; default: every scenario).",
)
@click.option(
    "--nodes",
    type=click.IntRange(min=2, max=200),
    default=None,
    help="Run each scenario in a network of at least N nodes (extra servers join first).",
)
@click.option(
    "--profile",
    type=click.Choice(["loopback", "public"]),
    default="loopback",
    show_default=True,
    help="How addresses are classified (stated in the report).",
)
@click.option("--json", "json_path", type=OutputPath(), metavar="FILE", help="Write JSON here.")
@click.option("--junit", "junit_path", type=OutputPath(), metavar="FILE", help="JUnit XML here.")
@click.option(
    "--traces",
    "traces_dir",
    type=TracesFolder(),
    metavar="DIR",
    help="Write each failure's trace (ITF JSON and an SVG sequence diagram) and every run here.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="SHOULD failures, inconclusive results and rejected traces fail the run too.",
)
@click.option(
    "--no-trace-validation",
    "no_replay",
    is_flag=True,
    help="Skip replaying the runs through the model (faster; the judge still runs).",
)
@click.option(
    "--replay-budget",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="Stop one run's trace validation after this long (it is then inconclusive).",
)
@click.option(
    "--explore",
    "explore_examples",
    type=click.IntRange(min=1, max=1000),
    default=None,
    metavar="N",
    help="Also run N generated command sequences (Hypothesis); a failing one is shrunk.",
)
@click.option("--list-scenarios", is_flag=True, help="List the scenarios and exit.")
@click.option("--break", "breakage", metavar="NAME", hidden=True, help="Test only.")
def conform(
    impl: str | None,
    adapter: str | None,
    scenario_names: Sequence[str],
    nodes: int | None,
    profile: str,
    json_path: Path | None,
    junit_path: Path | None,
    traces_dir: Path | None,
    strict: bool,
    no_replay: bool,
    replay_budget: float,
    explore_examples: int | None,
    list_scenarios: bool,
    breakage: str | None,
) -> None:
    from kadspec.conformance.observe import PROFILES
    from kadspec.conformance.reports import LiveProgress, junit_xml, print_report, report_json
    from kadspec.conformance.reports import write_traces as write_trace_files
    from kadspec.conformance.runner import conform as run_conformance
    from kadspec.conformance.runner import with_nodes
    from kadspec.conformance.scenarios import SCENARIOS

    out = _console()
    if list_scenarios:
        for scenario in SCENARIOS.values():
            out.print(f"[bold]{scenario.name}[/]: {scenario.text}")
        sys.exit(EXIT_OK)
    command = _command(impl, adapter, breakage)
    chosen = [SCENARIOS[n] for n in (scenario_names or list(SCENARIOS))]
    if nodes is not None:
        chosen = [with_nodes(s, nodes) for s in chosen]
    name = f"--impl {impl}" if impl else shlex.join(command)
    with sigterm_as_interrupt(), LiveProgress(out, len(chosen)) as live:
        result = run_conformance(
            command,
            chosen,
            name=name,
            profile=PROFILES[profile],
            strict=strict,
            validate=not no_replay,
            progress=live,
            replay_budget_s=replay_budget,
        )
    print_report(out, result)
    generated = None
    if explore_examples is not None and not result.interrupted:
        generated = _explore(out, command, PROFILES[profile], explore_examples, result)
    traces: dict[str, list[str]] = {}
    if traces_dir is not None:
        traces = write_trace_files(result, traces_dir)
        count = sum(len(files) for files in traces.values())
        out.print(f"traces: {count} files in {traces_dir}", highlight=False)
    if json_path is not None:
        body = report_json(result, traces=traces)
        if generated is not None:
            body["generated"] = generated
        write_report(json_path, "conform", body)
    if junit_path is not None:
        junit_path.write_text(junit_xml(result), "utf-8")
    code = result.exit_code()
    if generated is not None and generated["failing"] is not None:
        code = EXIT_FAIL
    if strict and any(
        s.validation is not None and s.validation.verdict == "rejected" for s in result.scenarios
    ):
        code = EXIT_FAIL
    sys.exit(EXIT_INTERRUPTED if result.interrupted else code)


def _explore(
    out: Console,
    command: list[str],
    profile: Any,
    examples: int,
    result: Any,
) -> dict[str, Any]:
    """Generated command sequences against the adapter; the shrunk failing one, if any."""
    from kadspec.conformance.runner import describe_steps
    from kadspec.conformance.scenarios import explore_adapter

    crash_restart = any(
        s.run.hello.capabilities.crash_restart for s in result.scenarios if s.run.hello
    )
    out.print(f"exploring {examples} generated command sequences ...", highlight=False)
    found = explore_adapter(
        command, profile=profile, max_examples=examples, crash_restart=crash_restart
    )
    if found is None:
        out.print(f"generated: {examples} command sequences, none broke a MUST requirement")
        return {"examples": examples, "failing": None}
    steps = describe_steps(found)
    out.print("[bold red]generated: a command sequence breaks a MUST requirement[/] (shrunk):")
    for line in steps:
        out.print(f"  {line}", highlight=False)
    return {"examples": examples, "failing": {"text": found.text, "steps": steps}}


def _console() -> Console:
    # Off a terminal rich would wrap the table at 80 columns; CI logs read better wider.
    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def _command(impl: str | None, adapter: str | None, breakage: str | None) -> list[str]:
    """The adapter's command line, or a usage error (exit 2) saying what is wrong."""
    if (impl is None) == (adapter is None):
        raise click.UsageError("give exactly one of --impl NAME or --adapter 'COMMAND'")
    if breakage is not None and impl != "reference":
        raise click.UsageError("--break applies to --impl reference only")
    if impl is not None:
        command = list(IMPLEMENTATIONS[impl])
        if breakage is not None:
            command += ["--break", breakage]
    else:
        assert adapter is not None
        try:
            command = shlex.split(adapter)
        except ValueError as error:
            raise click.BadParameter(f"{adapter!r}: {error}", param_hint="--adapter") from None
        if not command:
            raise click.BadParameter("the command is empty", param_hint="--adapter")
    if shutil.which(command[0]) is None and not Path(command[0]).is_file():
        hint = "--adapter" if adapter is not None else "--impl"
        raise click.BadParameter(f"{command[0]!r} is not a program on PATH", param_hint=hint)
    return command


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves as Ctrl-C while the runner works: the adapter is stopped, the reports
    are written, the exit status is 130."""

    def interrupt(number: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def conform_for_verify(
    note: Callable[[str], None],
    traces_dir: Path | None = None,
) -> tuple[tuple[str, int, str], dict[str, Any]]:
    """``kadspec verify``'s conformance part: every scenario against the reference node on
    loopback. (part, exit code as verify counts them, details) and the JSON part. py-libp2p is
    one of kadspec's dependencies; if it cannot be imported the part fails (1) saying why,
    never a silent pass. Each run (and each failure's trace) goes to ``traces_dir`` if given:
    a trace the model did not explain can be looked at again."""
    try:
        import libp2p  # noqa: F401
    except ImportError as error:
        details = f"not run: py-libp2p cannot be imported ({error}); reinstall kadspec"
        return ("conform (reference)", 1, details), {"skipped": details}
    from kadspec.conformance.reports import report_json
    from kadspec.conformance.reports import write_traces as write_trace_files
    from kadspec.conformance.runner import conform as run_conformance
    from kadspec.conformance.runner import reference_command
    from kadspec.conformance.scenarios import SCENARIOS

    def progress(what: str, scenario: Any, payload: Any) -> None:
        if what == "scenario":
            note(f"conformance of the reference node: {scenario.name}")

    result = run_conformance(
        reference_command(), list(SCENARIOS.values()), name="--impl reference", progress=progress
    )
    counts = result.counts()
    accepted = sum(
        1 for s in result.scenarios if s.validation is not None and s.validation.accepted
    )
    details = (
        f"{counts['pass']} pass, {counts['fail']} fail, {counts['inconclusive']} inconclusive "
        f"over {len(result.scenarios)} scenarios on loopback; traces accepted "
        f"{accepted}/{len(result.scenarios)}"
    )
    for s in result.scenarios:
        v = s.validation
        if v is not None and not v.accepted:
            # name the run the model did not explain, and where: a bare "7/8" cannot be chased
            where = v.first_unexplained
            details += f"; {s.scenario.name}: {v.verdict}" + (
                f" at #{where.seq} (breaks {', '.join(where.requirements) or 'no requirement'})"
                if where is not None
                else ""
            )
    if result.aborted():
        details += f"; {len(result.aborted())} runs ended early"
    traces: dict[str, list[str]] = {}
    if traces_dir is not None:
        traces = write_trace_files(result, traces_dir)
        details += f"; runs in {traces_dir}"
    code = 1 if result.exit_code() != 0 else 0
    return ("conform (reference)", code, details), report_json(result, traces=traces)


__all__ = ["IMPLEMENTATIONS", "conform", "conform_for_verify"]
