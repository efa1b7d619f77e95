"""The ``kadspec`` command line.

Exit codes: 0 every requirement holds (or every mutant was caught), 1 a requirement is
violated (a counterexample is printed), 2 the command was given bad input (one line says which).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from kadspec import __version__
from kadspec.models.config import ConfigError
from kadspec.models.mutants import MUTANTS
from kadspec.models.scenario_file import load_scenario
from kadspec.models.scenarios import SCENARIOS, Scenario
from kadspec.models.trace import render
from kadspec.prove import prove as prove_command
from kadspec.reports import (
    ENGINES,
    CheckReport,
    MutantRun,
    all_scenarios,
    mutants_ok,
    policy_named,
    run_check,
    run_mutants,
)
from kadspec.spec import requirements

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns and cut mutant names.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)


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


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is None:
        return
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    except OSError as error:
        fail_usage(f"--json {path}: cannot write ({error.strerror})")


def _policy_choice(name: str) -> str:
    if name != "spec" and name not in MUTANTS:
        fail_usage(
            f"unknown policy {name!r}: use 'spec' or a mutant name (see 'kadspec list mutants')"
        )
    return name


def _scenarios(names: Sequence[str], config: Path | None) -> list[Scenario]:
    chosen: list[Scenario] = []
    for name in names:
        if name not in SCENARIOS:
            fail_usage(f"unknown scenario {name!r}: choose from {', '.join(SCENARIOS)}")
        chosen.append(SCENARIOS[name])
    if config is not None:
        try:
            chosen.append(load_scenario(config))
        except ConfigError as error:
            fail_usage(f"--config {config}: {error}")
    return chosen or all_scenarios()


def print_check(report: CheckReport) -> None:
    table = Table(title=f"kadspec check - policy {report.policy_name}", title_justify="left")
    for column in ("scenario", "nodes", "states", "depth", "seconds", "result"):
        table.add_column(
            column, justify="right" if column in ("nodes", "states", "depth", "seconds") else "left"
        )
    for run in report.runs:
        e = run.exploration
        result = "violation" if e.counterexample else "ok" if e.complete else "incomplete"
        table.add_row(
            run.scenario.name,
            str(len(run.scenario.config.nodes)),
            f"{e.states:,}",
            str(e.depth),
            f"{e.seconds:.1f}",
            result,
        )
    out.print(table)
    status = report.status()
    held = sum(1 for s in status.values() if s == "holds")
    out.print(
        f"requirements: {held} of {len(status)} hold"
        + (
            f"; violated: {', '.join(r for r, s in status.items() if s == 'violated')}"
            if any(s == "violated" for s in status.values())
            else ""
        )
    )
    if report.config_problems:
        for problem in report.config_problems:
            out.print(f"configuration: {problem}")
    if report.incomplete:
        out.print(f"incomplete (state limit reached): {', '.join(report.incomplete)}")
    if report.counterexample is not None:
        out.print(render(report.counterexample))


def print_mutants(runs: list[MutantRun]) -> None:
    table = Table(title="kadspec mutants", title_justify="left")
    for column in ("mutant", "engine", "expected", "detected", "violated", "steps", "seconds"):
        table.add_column(column)
    for run in runs:
        hit = run.detected and run.mutant.expected in run.violated
        table.add_row(
            run.mutant.name,
            run.engine,
            run.mutant.expected,
            "yes" if hit else "NO",
            ",".join(run.violated) or "-",
            str(len(run.counterexample.steps)) if run.counterexample else "-",
            f"{run.seconds:.2f}",
        )
    out.print(table)
    caught = {r.mutant.name for r in runs if r.detected and r.mutant.expected in r.violated}
    names = {r.mutant.name for r in runs}
    out.print(f"mutants detected: {len(caught)} of {len(names)}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
      kadspec list requirements what is specified, with IDs
    """


@cli.command()
@click.option(
    "--policy",
    "policy_name",
    default="spec",
    show_default=True,
    help="The policy set to check: 'spec', or a mutant name to see its bug.",
)
@click.option(
    "--scenario",
    "scenario_names",
    multiple=True,
    metavar="NAME",
    help="Explore only this scenario (repeatable). Default: all of them.",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also explore a network described in a TOML file (see docs).",
)
@click.option(
    "--max-states",
    type=click.IntRange(min=1),
    default=None,
    help="Stop each exploration after this many distinct states.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report (every requirement with its status) as JSON.",
)
def check(
    policy_name: str,
    scenario_names: tuple[str, ...],
    config: Path | None,
    max_states: int | None,
    json_path: Path | None,
) -> None:
    """Explore the model exhaustively and check every requirement.

    Every reachable state of each scenario is checked against every invariant, every
    transition against every step check, and every quiescent state against every progress
    property. Exits 0 when all hold, 1 with a shortest counterexample otherwise.

    \b
    Examples:
      kadspec check --json check.json
      kadspec check --policy identify-addresses-not-routed --scenario join
    """
    name = _policy_choice(policy_name)
    scenarios = _scenarios(scenario_names, config)
    with progress_reporter() as note:
        report = run_check(
            policy_named(name), scenarios, policy_name=name, max_states=max_states, progress=note
        )
    print_check(report)
    write_json(json_path, report.to_json())
    sys.exit(0 if report.ok else 1)


@cli.command()
@click.option(
    "--only", "names", multiple=True, metavar="MUTANT", help="Run only this mutant (repeatable)."
)
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Choice(list(ENGINES)),
    help="Engine to hunt with (repeatable). Default: explorer.",
)
@click.option("--show", is_flag=True, help="Print every mutant's counterexample.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write one entry per mutant and engine as JSON.",
)
def mutants(
    names: tuple[str, ...], engines: tuple[str, ...], show: bool, json_path: Path | None
) -> None:
    """Run every mutant (a real bug as a policy set) and demand it is caught.

    Each mutant must violate the requirement it is expected to violate. Exits 0 only when
    every mutant is detected that way, 1 otherwise.
    """
    for name in names:
        if name not in MUTANTS:
            fail_usage(f"unknown mutant {name!r} (see 'kadspec list mutants')")
    chosen = [MUTANTS[n] for n in names] if names else list(MUTANTS.values())
    with progress_reporter() as note:
        runs = run_mutants(chosen, engines or ("explorer",), progress=note)
    print_mutants(runs)
    if show:
        for run in runs:
            if run.counterexample is not None:
                out.print(render(run.counterexample, title=f"{run.mutant.name} ({run.engine})"))
    write_json(json_path, {"ok": mutants_ok(runs), "mutants": [r.to_json() for r in runs]})
    sys.exit(0 if mutants_ok(runs) else 1)


@cli.command()
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write every part's report as one JSON document.",
)
def verify(json_path: Path | None) -> None:
    """Run every check the suite has and print one summary.

    The exhaustive check of the spec policy, every mutant, and (when the symbolic layer is
    installed) the z3 proofs. Exits 0 only when all pass.
    """
    started = time.perf_counter()
    parts: dict[str, Any] = {}
    results: list[tuple[str, bool, str]] = []
    with progress_reporter() as note:
        report = run_check(policy_named("spec"), all_scenarios(), progress=note)
        states = sum(r.exploration.states for r in report.runs)
        held = sum(1 for s in report.status().values() if s == "holds")
        results.append(
            (
                "check",
                report.ok,
                f"{held}/{len(requirements())} requirements hold "
                f"over {states:,} states in {len(report.runs)} scenarios",
            )
        )
        parts["check"] = report.to_json()
        runs = run_mutants(list(MUTANTS.values()), ("explorer",), progress=note)
        caught = sum(1 for r in runs if r.detected and r.mutant.expected in r.violated)
        results.append(
            (
                "mutants",
                mutants_ok(runs),
                f"{caught}/{len(runs)} mutants caught by the requirement they break",
            )
        )
        parts["mutants"] = [r.to_json() for r in runs]
        prove_result = _prove_for_verify(note)
        if prove_result is not None:
            results.append(prove_result[0])
            parts["prove"] = prove_result[1]
    print_check(report)
    print_mutants(runs)
    table = Table(title="kadspec verify", title_justify="left")
    for column in ("part", "result", "details"):
        table.add_column(column)
    for part, ok, details in results:
        table.add_row(part, "pass" if ok else "FAIL", details)
    out.print(table)
    ok = all(ok for _, ok, _ in results)
    out.print(f"verify: {'PASS' if ok else 'FAIL'} in {time.perf_counter() - started:.1f} s")
    write_json(json_path, {"ok": ok, **parts})
    sys.exit(0 if ok else 1)


def _prove_for_verify(
    note: Callable[[str], None],
) -> tuple[tuple[str, bool, str], dict[str, Any]] | None:
    from kadspec.models.policy import SPEC
    from kadspec.models.symbolic import prove_lifecycle  # z3 is imported only when proving

    note("proving the lifecycle invariants with z3")
    proof = prove_lifecycle(3, SPEC, timeout_ms=60_000)
    proved = sum(1 for o in proof.obligations if o.result == "proved")
    data: dict[str, Any] = proof.to_json() if hasattr(proof, "to_json") else {"ok": proof.ok}
    return (
        "prove",
        bool(proof.ok),
        f"{proved}/{len(proof.obligations)} obligations proved (3 nodes)",
    ), data


@cli.command(name="list")
@click.argument("what", type=click.Choice(["requirements", "mutants", "scenarios"]))
def list_(what: str) -> None:
    """List the requirements, the mutants or the scenarios."""
    if what == "requirements":
        for req in requirements().values():
            out.print(f"{req.id:8} {req.level:9} {req.check:9} {req.title}")
    elif what == "mutants":
        for m in MUTANTS.values():
            out.print(f"{m.name:36} breaks {m.expected:8} ({m.source})")
    else:
        for s in SCENARIOS.values():
            out.print(f"{s.name:18} {len(s.config.nodes)} nodes  {s.summary}")


cli.add_command(prove_command)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: click's errors become one line on stderr and exit code 2."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="kadspec",
            standalone_mode=False,
        )
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx else str(error))
        sys.exit(0)
    except click.UsageError as error:
        click.echo(f"kadspec: error: {error.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("kadspec: aborted", err=True)
        sys.exit(130)
    except ConfigError as error:
        click.echo(f"kadspec: error: {error}", err=True)
        sys.exit(2)
    sys.exit(0)
