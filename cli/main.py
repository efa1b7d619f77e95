"""The ``kadspec`` command line.

Exit codes, the same for every command:

* 0: every checked requirement holds (every mutant caught, every obligation proved);
* 1: a violation: a MUST requirement (any, with ``--strict``) is violated, a witness is
  unreachable, a mutant escapes, or an obligation is refuted or unknown;
* 2: bad input: one line on stderr names the problem, found before any work starts;
* 3: incomplete: a state or time cap was hit, or a requirement went unchecked.

An internal error (a bug in kadspec) prints its traceback and exits 4.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from kadspec import __version__, options
from kadspec.conform_command import TracesFolder as _TracesFolder
from kadspec.conform_command import conform as conform_command
from kadspec.conform_command import conform_for_verify as _conform_for_verify
from kadspec.docs_command import docs as docs_command
from kadspec.engines.explorer import explore
from kadspec.engines.parallel import usable_cores
from kadspec.engines.trace import render
from kadspec.models.config import ConfigError
from kadspec.models.mutants import MUTANTS
from kadspec.models.scenario_file import load_scenario
from kadspec.models.scenarios import SCENARIOS, Scenario
from kadspec.node_command import node as node_command
from kadspec.options import OutputPath, json_option, write_report
from kadspec.prove import prove as prove_command
from kadspec.report_schema import REPORTS, schema_text
from kadspec.reports import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_STATES,
    ENGINES,
    EXIT_BAD_INPUT,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_VIOLATION,
    HYPOTHESIS_EXAMPLES,
    CheckReport,
    MutantRun,
    all_scenarios,
    default_jobs,
    mutants_json,
    mutants_ok,
    policy_named,
    run_check,
    run_mutants,
)
from kadspec.spec import requirements

EXIT_INTERNAL = 4

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns and cut mutant names.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)

#: a user network whose first PROBE_STATES states do not finish is announced as large
PROBE_STATES = 20_000
PROBE_SECONDS = 3.0

EXAMPLES = ("trio-provide", "mode-change", "faults-and-timing", "spec-timing")


def fail_usage(message: str) -> NoReturn:
    raise click.UsageError(message)


@contextmanager
def progress_reporter() -> Iterator[Callable[[str], None]]:
    """Progress on stderr: a live status line on a terminal, a line every 10 s otherwise."""
    if err.is_terminal:
        with err.status("starting") as status:
            yield lambda text: status.update(text)
        return
    last = [time.monotonic()]

    def note(text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 10:
            err.print(text)
            last[0] = now

    yield note


# --- parameter types: bad values fail at parse time, one line each ------------------------------


class PolicyName(click.ParamType[str]):
    name = "POLICY"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        name = str(value)
        if name != "spec" and name not in MUTANTS:
            self.fail(
                f"unknown policy {name!r}: use 'spec' or a mutant name "
                "(see 'kadspec list mutants')",
                param,
                ctx,
            )
        return name


class ScenarioName(click.ParamType[str]):
    name = "NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        name = str(value)
        if name not in SCENARIOS:
            self.fail(f"unknown scenario {name!r}: choose from {', '.join(SCENARIOS)}", param, ctx)
        return name


class MutantName(click.ParamType[str]):
    name = "MUTANT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        name = str(value)
        if name not in MUTANTS:
            self.fail(f"unknown mutant {name!r} (see 'kadspec list mutants')", param, ctx)
        return name


class NetworkFile(click.ParamType[Scenario]):
    """A network file, read, decoded and validated field by field when the option is parsed."""

    name = "FILE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Scenario:
        if isinstance(value, Scenario):
            return value
        try:
            return load_scenario(Path(str(value)))
        except ConfigError as error:
            self.fail(str(error), param, ctx)
        except (ValueError, OSError) as error:  # a path the OS rejects (NUL byte, too long)
            self.fail(f"{value!r}: cannot read ({error})", param, ctx)


def _cap_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--max-seconds",
        type=click.FloatRange(min=0, min_open=True, max=1e9),
        default=DEFAULT_MAX_SECONDS,
        show_default=True,
        help="Stop the whole run after this many seconds (reported; exit 3).",
    )(function)
    return click.option(
        "--max-states",
        type=click.IntRange(min=1, max=10**12),
        default=DEFAULT_MAX_STATES,
        show_default=True,
        help="Stop each scenario's exploration after this many distinct states (exit 3).",
    )(function)


# --- rendering -----------------------------------------------------------------------------------


RESULT_TEXT = {
    "complete": "ok",
    "violation": "violation",
    "state-cap": "state cap",
    "time-cap": "time cap",
}


def print_check(report: CheckReport) -> None:
    table = Table(title=f"kadspec check - policy {report.policy_name}", title_justify="left")
    numeric = ("nodes", "states", "quiescent", "depth", "seconds", "witnesses")
    for column in ("scenario", *numeric, "result"):
        table.add_column(column, justify="right" if column in numeric else "left")
    for run in report.runs:
        e = run.exploration
        result = RESULT_TEXT[e.stop_reason]
        if e.counterexamples:
            result = f"violated: {', '.join(sorted(e.counterexamples))}"
            if e.stop_reason == "violation":
                result += " (stopped there)"
            elif e.stop_reason != "complete":
                result += f" (then the {RESULT_TEXT[e.stop_reason]})"
        table.add_row(
            run.scenario.name,
            str(len(run.scenario.config.nodes)),
            f"{e.states:,}",
            f"{e.quiescent_states:,}",
            str(e.depth),
            f"{e.seconds:.1f}",
            f"{len(e.witnesses_reached)}/{len(run.witnesses)}" if run.witnesses else "-",
            result,
        )
    for name in report.not_run:
        table.add_row(name, "", "", "", "", "", "", "not run")
    out.print(table)
    status = report.status()
    counts = {s: [r for r, v in status.items() if v == s] for s in set(status.values())}
    failing, listed = report.violated()
    out.print(
        f"requirements ({len(status)}): {len(counts.get('holds', []))} hold, "
        f"{len(counts.get('violated', []))} violated, "
        f"{len(counts.get('not exercised', []))} not exercised, "
        f"{len(counts.get('unchecked', []))} unchecked"
    )
    if failing:
        out.print(f"violated: {', '.join(f'{r} ({_level(r)})' for r in failing)}")
    if listed:
        out.print(f"violated, SHOULD level (listed; fails only with --strict): {', '.join(listed)}")
    if counts.get("not exercised"):
        out.print(
            f"not exercised (no explored state reached the premise): "
            f"{', '.join(counts['not exercised'])}"
        )
    if counts.get("unchecked"):
        why = []
        if any(r.exploration.stop_reason == "violation" for r in report.runs):
            why.append("exploration stopped at the first violation; --keep-going explores on")
        if report.incomplete:
            why.append("a cap was hit")
        if not why:
            why.append("no reachable quiescent state to judge progress in")
        out.print(f"unchecked ({'; '.join(why)}): {', '.join(counts['unchecked'])}")
    for scenario, missed in report.witnesses_missed().items():
        out.print(f"witnesses not reached in {scenario}: {', '.join(missed)}")
    for problem in report.config_problems:
        out.print(f"configuration: {problem}")
    out.print(report.caps.describe())
    if report.incomplete:
        out.print(f"incomplete (a cap was hit): {', '.join(report.incomplete)}")
    if report.counterexample is not None:
        out.print(render(report.counterexample))
        more = len(report.counterexamples()) - 1
        if more > 0:
            what = "requirement" if more == 1 else "requirements"
            out.print(f"({more} more {what} violated; every counterexample is in --json)")


def _level(rid: str) -> str:
    return str(requirements()[rid].level)


def print_mutants(runs: list[MutantRun]) -> None:
    table = Table(title="kadspec mutants", title_justify="left")
    for column in ("mutant", "engine", "expected", "detected", "violated", "steps", "seconds"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.mutant.name,
            run.engine,
            run.mutant.expected,
            "yes" if run.caught else "NO",
            ",".join(run.violated) or "-",
            str(len(run.counterexample.steps)) if run.counterexample else "-",
            f"{run.seconds:.2f}",
        )
    out.print(table)
    for engine in sorted({r.engine for r in runs}):
        mine = [r for r in runs if r.engine == engine]
        out.print(
            f"mutants detected ({engine}): {sum(r.caught for r in mine)} of {len(mine)}"
            + (
                f"; missed: {', '.join(r.mutant.name for r in mine if not r.caught)}"
                if not all(r.caught for r in mine)
                else ""
            )
        )


def _verdict(code: int) -> str:
    return {
        EXIT_OK: "PASS",
        EXIT_VIOLATION: "FAIL",
        EXIT_INCOMPLETE: "INCOMPLETE",
    }.get(code, "ERROR")


# --- commands ------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kadspec")
def cli() -> None:
    """A formally-checked specification of the libp2p Kademlia DHT node lifecycle.

    The model (bootstrap, identify and address announcement, client/server mode, the
    routing table, provide and provider records) is checked against the requirements in
    spec/requirements.toml. Start with:

    \b
      kadspec verify            every check the suite has, one summary
      kadspec check             explore every scenario under the spec policy
      kadspec mutants           show each real bug is caught by its requirement
      kadspec prove             prove the safety requirements inductive with z3
      kadspec list requirements what is specified, with IDs and levels
      kadspec example-config    a commented network file to start your own from
      kadspec docs              build this documentation site

    \b
    Exit codes (every command):
      0 every checked requirement holds    1 a violation (MUST; SHOULD only with --strict)
      2 bad input (one line says which)    3 incomplete (a cap was hit, or something unchecked)

    Reports go where --json says; the README's commands write them under results/ (git
    ignores it).
    """


SCENARIO_HELP = "Explore only this scenario (repeatable). Default: all of them (listed above)."


def _scenario_lines() -> str:
    """The scenario names as an unwrapped help block ('kadspec list scenarios' says more)."""
    lines, line = [], ""
    for name in SCENARIOS:
        if line and len(line) + len(name) + 2 > 80:
            lines.append(line + ",")
            line = ""
        line = f"{line}, {name}" if line else name
    lines.append(line)
    return "\n".join(f"      {text}" for text in lines)


CHECK_HELP = """Explore the model exhaustively and check every requirement.

    Every reachable state of each scenario is checked against every invariant, every
    transition against every step check, and every quiescent state against every progress
    property. Each requirement ends as holds (checked to the end where its premise was
    live), violated (with a shortest counterexample), not exercised (its premise was never
    live) or unchecked (the run stopped early). A MUST violation exits 1; a SHOULD violation
    is listed and exits 1 only with --strict; a cap hit or an unchecked requirement exits 3.

    \b
    Scenarios (--scenario NAME; 'kadspec list scenarios' describes them):
SCENARIO_LINES

    A network file (--config, TOML) describes your own network; 'kadspec example-config'
    prints a commented one and docs/network-file.rst is the reference. Its fields:

    \b
      [[node]]       one per node: id, mode (auto|client|server), reach (public|nat),
                     bootstrap (indexes of other nodes)
      keys, id_bits  the keys (small IDs) and the ID width in bits
      provides       [node, key] pairs: that node's user calls provide(key) once
      finds          [node, key] pairs: that node's user calls find_providers(key) once
      mode_changes   [node, "client"] pairs: the operator switches the mode once
      faults         how many faults may happen (0..4), of fault_kinds:
                     crash, restart, disconnect, lose, forge_add_provider
      horizon        the last value of the model clock (ms): timers due later never fire,
                     so it bounds how much time (timeouts, refreshes, retries, expiry) is
                     explored; each timer event it lets fire can multiply the state space
      [timing]       protocol constants: k, alpha, durations in integer ms;
                     defaults = "model" (small, the default) or "spec" (the real values)

    A network whose size looks large is announced before the run; every run is capped
    (--max-states per scenario, --max-seconds for the run) and shows live progress.

    \b
    Examples:
      kadspec check --json results/check.json
      kadspec check --scenario join --scenario trio
      kadspec check --policy identify-addresses-not-routed --scenario join
      kadspec check --policy no-republish --keep-going
      kadspec example-config -o results/net.toml
      kadspec check --config results/net.toml
    """


CHECK_HELP = CHECK_HELP.replace("SCENARIO_LINES", _scenario_lines())


@cli.command(help=CHECK_HELP)
@click.option(
    "--policy",
    "policy_name",
    type=PolicyName(),
    default="spec",
    show_default=True,
    help="The policy set to check: 'spec', or a mutant name to see its bug.",
)
@click.option(
    "--scenario", "scenario_names", type=ScenarioName(), multiple=True, help=SCENARIO_HELP
)
@click.option(
    "--config",
    "networks",
    type=NetworkFile(),
    multiple=True,
    metavar="FILE",
    help="Also explore the network a TOML file describes (repeatable; see above).",
)
@_cap_options
@click.option(
    "--keep-going",
    is_flag=True,
    help="Explore on past violations, so every requirement gets a status.",
)
@click.option("--strict", is_flag=True, help="A SHOULD-level violation fails the run too.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Explore whole scenarios side by side in this many worker processes, the largest "
    "first (progress shows each scenario under way). Default: every usable core when several "
    "scenarios are checked and --workers and --ray are not given.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=1024),
    default=None,
    help="Partition each scenario's states over this many processes (1 explores in this "
    "process). Default: every usable core when one scenario is checked.",
)
@click.option(
    "--fingerprints",
    is_flag=True,
    help="Keep 64-bit fingerprints instead of states (less memory; the report gives the "
    "probability that a hash collision hid a state).",
)
@click.option(
    "--ray",
    metavar="ADDRESS|local",
    default=None,
    help="Partition over Ray actors: a cluster's address, or 'local' to start one here "
    "(needs the 'ray' extra: pip install 'kadspec[ray]').",
)
@json_option("Write the report (every requirement with its status and premise count) as JSON.")
def check(
    policy_name: str,
    scenario_names: tuple[str, ...],
    networks: tuple[Scenario, ...],
    max_states: int,
    max_seconds: float,
    keep_going: bool,
    strict: bool,
    jobs: int | None,
    workers: int | None,
    fingerprints: bool,
    ray: str | None,
    json_path: Path | None,
) -> None:
    scenarios = [SCENARIOS[n] for n in dict.fromkeys(scenario_names)] + list(networks)
    if not scenarios:
        scenarios = all_scenarios()
    jobs, workers = _parallelism(len(scenarios), jobs, workers, ray)
    if max_states > PROBE_STATES:  # under a smaller cap the run itself is the probe
        for network in networks:
            _warn_if_large(network, max_states, max_seconds)
    if ray is not None:
        try:
            import ray as _ray  # noqa: F401
        except ImportError:
            fail_usage("--ray needs Ray: pip install 'kadspec[ray]'")
    with progress_reporter() as note:
        report = run_check(
            policy_named(policy_name),
            scenarios,
            policy_name=policy_name,
            max_states=max_states,
            max_seconds=max_seconds,
            keep_going=keep_going,
            strict=strict,
            progress=note,
            jobs=jobs,
            workers=workers,
            fingerprints=fingerprints,
            ray=ray,
        )
    print_check(report)
    write_report(json_path, "check", report.to_json())
    out.print(f"check: {_verdict(report.exit_code)} (exit {report.exit_code})")
    sys.exit(report.exit_code)


def _parallelism(
    scenarios: int, jobs: int | None, workers: int | None, ray: str | None
) -> tuple[int, int]:
    """``check``'s (jobs, workers). Several scenarios run side by side by default, one per
    core: whole scenarios need no exchange between processes, so two cores finish the
    catalogue close to twice as fast, where partitioning each one gains about 1.4x. A single
    scenario is partitioned over every core. Asking for both is a usage error, not a silent
    choice."""
    if jobs is not None and jobs > 1 and ray is not None:
        fail_usage(
            f"--jobs {jobs} runs whole scenarios side by side; --ray partitions each one over "
            "Ray actors: give one of them"
        )
    if jobs is not None and jobs > 1 and workers is not None and workers > 1:
        fail_usage(
            f"--jobs {jobs} runs whole scenarios side by side; --workers {workers} partitions "
            "each one over processes: give one of them"
        )
    if jobs is None:
        several = scenarios > 1 and workers is None and ray is None
        jobs = usable_cores() if several else 1
    return jobs, 1 if jobs > 1 else workers or usable_cores()


def _warn_if_large(scenario: Scenario, max_states: int, max_seconds: float) -> None:
    """Explore a user network briefly; if its breadth-first frontier is still growing fast
    when the probe ends, say so before the real run (the probe is the estimate: the built-in
    scenarios all end with a frontier growing by less than GROWTH a level at this point)."""
    probe = explore(
        scenario.initial(),
        policy_named("spec"),
        max_states=PROBE_STATES,
        max_seconds=min(PROBE_SECONDS, max_seconds),
        keep_going=True,
    )
    if probe.stop_reason == "complete":
        return
    widths = probe.levels
    growth = widths[-1] / widths[-2] if len(widths) >= 2 and widths[-2] else float("inf")
    if growth < GROWTH:
        return
    err.print(
        f"warning: {scenario.name} looks large: after {probe.states:,} states at depth "
        f"{probe.depth} the frontier still grows x{growth:.2f} a level, so the run may reach "
        f"millions of states. It stops at {max_states:,} states or {max_seconds:g} s (exit 3); "
        f"a smaller horizon ({scenario.horizon} now), fewer faults, calls or nodes shrink it."
    )


#: frontier growth per level at the end of the probe above which a network is called large
GROWTH = 1.35


MUTANTS_HELP = """Run every mutant (a real bug as a policy set) and demand it is caught.

    Each mutant must violate the requirement it is expected to violate, with every engine
    asked for: the explorer (exhaustive, shortest counterexample) and Hypothesis (random runs
    of the stateful machine, shrunk). Exits 0 only when every mutant is caught by every
    engine, 1 otherwise.

    \b
    Examples:
      kadspec mutants --json results/mutants.json
      kadspec mutants --only no-republish --show
      kadspec mutants --engine explorer --engine hypothesis
    """


@cli.command(help=MUTANTS_HELP)
@click.option(
    "--only", "names", type=MutantName(), multiple=True, help="Run only this mutant (repeatable)."
)
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Choice(list(ENGINES)),
    help="Engine to hunt with (repeatable). Default: explorer.",
)
@click.option(
    "--hypothesis-examples",
    type=click.IntRange(min=1, max=10**6),
    default=HYPOTHESIS_EXAMPLES,
    show_default=True,
    help="Hypothesis's example budget per mutant.",
)
@click.option("--show", is_flag=True, help="Print every mutant's counterexample.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Worker processes for the scenarios and mutant hunts (default: the cores, at most 4).",
)
@json_option("Write one entry per mutant and engine as JSON.")
def mutants(
    names: tuple[str, ...],
    engines: tuple[str, ...],
    hypothesis_examples: int,
    show: bool,
    jobs: int | None,
    json_path: Path | None,
) -> None:
    chosen = [MUTANTS[n] for n in dict.fromkeys(names)] if names else list(MUTANTS.values())
    with progress_reporter() as note:
        runs = run_mutants(
            chosen,
            tuple(dict.fromkeys(engines)) or ("explorer",),
            progress=note,
            hypothesis_examples=hypothesis_examples,
            jobs=jobs or default_jobs(),
        )
    print_mutants(runs)
    if show:
        for run in runs:
            if run.counterexample is not None:
                out.print(render(run.counterexample, title=f"{run.mutant.name} ({run.engine})"))
    write_report(json_path, "mutants", mutants_json(runs))
    code = EXIT_OK if mutants_ok(runs) else EXIT_VIOLATION
    out.print(f"mutants: {_verdict(code)} (exit {code})")
    sys.exit(code)


VERIFY_EXAMPLES = HYPOTHESIS_EXAMPLES

VERIFY_HELP = """Run every check the suite has and print one summary.

    The exhaustive check of the spec policy over every scenario (capped as check is), every
    mutant with both engines (Hypothesis with --hypothesis-examples per mutant), the z3
    proofs for 3 nodes, and the conformance of the reference node on loopback (every
    scenario of kadspec conform --impl reference). Exits 0 only when all pass, 1 on a
    violation, 3 when the check was incomplete and nothing failed.

    \b
    Examples:
      kadspec verify
      kadspec verify --json results/verify.json --traces results/traces
      kadspec verify --hypothesis-examples 100 --max-seconds 120
    """


@cli.command(help=VERIFY_HELP)
@_cap_options
@click.option(
    "--hypothesis-examples",
    type=click.IntRange(min=1, max=10**6),
    default=VERIFY_EXAMPLES,
    show_default=True,
    help="Hypothesis's example budget per mutant.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Worker processes for the scenarios and mutant hunts (default: the cores, at most 4).",
)
@json_option("Write every part's report as one JSON document.")
@click.option(
    "--traces",
    "traces_dir",
    type=_TracesFolder(),
    metavar="DIR",
    default=None,
    help="Write the conformance part's runs, and each failure's trace, here.",
)
def verify(
    max_states: int,
    max_seconds: float,
    hypothesis_examples: int,
    jobs: int | None,
    json_path: Path | None,
    traces_dir: Path | None,
) -> None:
    started = time.perf_counter()
    parts: dict[str, Any] = {}
    results: list[tuple[str, int, str]] = []
    with progress_reporter() as note:
        report = run_check(
            policy_named("spec"),
            all_scenarios(),
            max_states=max_states,
            max_seconds=max_seconds,
            progress=note,
            jobs=jobs or default_jobs(),
        )
        states = sum(r.exploration.states for r in report.runs)
        held = sum(1 for s in report.status().values() if s == "holds")
        results.append(
            (
                "check",
                report.exit_code,
                f"{held}/{len(requirements())} requirements hold "
                f"over {states:,} states in {len(report.runs)} scenarios",
            )
        )
        parts["check"] = report.to_json()
        runs = run_mutants(
            list(MUTANTS.values()),
            ("explorer", "hypothesis"),
            progress=note,
            hypothesis_examples=hypothesis_examples,
            jobs=jobs or default_jobs(),
        )
        for engine in ("explorer", "hypothesis"):
            mine = [r for r in runs if r.engine == engine]
            results.append(
                (
                    f"mutants ({engine})",
                    EXIT_OK if mutants_ok(mine) else EXIT_VIOLATION,
                    f"{sum(r.caught for r in mine)}/{len(mine)} mutants caught by the "
                    "requirement they break",
                )
            )
        parts["mutants"] = mutants_json(runs)
        proof_line, proof_json = _prove_for_verify(note)
        results.append(proof_line)
        parts["prove"] = proof_json
        conform_line, conform_json = _conform_for_verify(note, traces_dir)
        results.append(conform_line)
        parts["conform"] = conform_json
    print_check(report)
    print_mutants(runs)
    table = Table(title="kadspec verify", title_justify="left")
    for column in ("part", "result", "details"):
        table.add_column(column)
    for part, code, details in results:
        table.add_row(
            part, {EXIT_OK: "pass", EXIT_INCOMPLETE: "incomplete"}.get(code, "FAIL"), details
        )
    out.print(table)
    codes = {code for _, code, _ in results}
    code = EXIT_VIOLATION if EXIT_VIOLATION in codes else max(codes)
    write_report(
        json_path,
        "verify",
        {
            "ok": code == EXIT_OK,
            "exit_code": code,
            "seconds": round(time.perf_counter() - started, 3),
            "parts": parts,
        },
    )
    out.print(f"verify: {_verdict(code)} in {time.perf_counter() - started:.1f} s (exit {code})")
    sys.exit(code)


def _prove_for_verify(note: Callable[[str], None]) -> tuple[tuple[str, int, str], dict[str, Any]]:
    from kadspec.engines.symbolic import prove_lifecycle  # z3 is imported only when proving
    from kadspec.models.policy import SPEC

    note("proving the lifecycle invariants with z3")
    proof = prove_lifecycle(3, SPEC, timeout_ms=60_000)
    proved = sum(1 for o in proof.obligations if o.result == "proved")
    data: dict[str, Any] = proof.to_json()
    return (
        "prove",
        EXIT_OK if proof.ok else EXIT_VIOLATION,
        f"{proved}/{len(proof.obligations)} obligations proved (3 nodes)",
    ), data


LIST_HELP = """List the requirements (with level and check kind), the mutants or the scenarios.

    \b
    Examples:
      kadspec list requirements
      kadspec list scenarios
    """


@cli.command(name="list", help=LIST_HELP)
@click.argument("what", type=click.Choice(["requirements", "mutants", "scenarios"]))
def list_(what: str) -> None:
    if what == "requirements":
        for req in requirements().values():
            out.print(f"{req.id:8} {req.level:10} {req.check:9} {req.title}")
    elif what == "mutants":
        for m in MUTANTS.values():
            out.print(f"{m.name:36} breaks {m.expected:8} ({m.source})")
    else:
        for s in SCENARIOS.values():
            out.print(f"{s.name:18} {len(s.config.nodes)} nodes  {s.summary}")


EXAMPLE_HELP = f"""Print a commented example network file, to start your own from.

    NAME is one of: {", ".join(EXAMPLES)} (default {EXAMPLES[0]}). The format's reference is
    docs/network-file.rst.

    \b
    Examples:
      kadspec example-config
      kadspec example-config mode-change -o results/mode-change.toml
      kadspec check --config results/mode-change.toml
    """


@cli.command(name="example-config", help=EXAMPLE_HELP)
@click.argument("name", type=click.Choice(EXAMPLES), default=EXAMPLES[0], required=False)
@click.option(
    "-o",
    "--output",
    type=OutputPath(),
    default=None,
    help="Write the file here (folders are created) instead of printing it.",
)
def example_config(name: str, output: Path | None) -> None:
    if output is None:
        click.echo(example_text(name), nl=False)
        return
    try:
        output.write_text(example_text(name), "utf-8")
    except OSError as error:
        raise click.UsageError(f"--output {output}: cannot write ({error.strerror})") from None
    err.print(f"wrote {output}; check it with: kadspec check --config {output}")


def example_text(name: str) -> str:
    """The text of a shipped example network file."""
    return resources.files("kadspec").joinpath("examples", f"{name}.toml").read_text("utf-8")


SCHEMA_HELP = """Print the JSON Schema of kadspec's reports (of one, given its name).

    Every --json report names its kind in "report" (check, mutants, verify or prove),
    carries its provenance and validates against this schema. Without REPORT the whole
    schema is printed: each part once, and one entry per report.

    \b
    Examples:
      kadspec schema
      kadspec schema check
    """


@cli.command(help=SCHEMA_HELP)
@click.argument("report", type=click.Choice(REPORTS), required=False)
def schema(report: str | None) -> None:
    click.echo(schema_text(report), nl=False)


cli.add_command(prove_command)
cli.add_command(docs_command)
cli.add_command(node_command)
cli.add_command(conform_command)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: bad input is one line on stderr and exit code 2; a bug exits 4."""
    options.ARGUMENTS = list(argv) if argv is not None else sys.argv[1:]
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="kadspec",
            standalone_mode=False,
        )
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx else str(error))
        sys.exit(EXIT_OK)
    except click.UsageError as error:
        click.echo(f"kadspec: error: {_one_line(error.format_message())}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except click.ClickException as error:
        click.echo(f"kadspec: error: {_one_line(error.format_message())}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("kadspec: aborted", err=True)
        sys.exit(130)
    except ConfigError as error:
        click.echo(f"kadspec: error: {_one_line(str(error))}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    except SystemExit:
        raise
    except Exception:
        traceback.print_exc()
        click.echo("kadspec: internal error (a bug in kadspec; please report it)", err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(EXIT_OK)


def _one_line(text: str) -> str:
    return " ".join(text.split())
