"""``kadspec prove``: every proof obligation of the symbolic layer, as a table and JSON.

Exit status: 0 when every obligation is proved, 1 when one is refuted or unknown (a timeout is
unknown, never a pass), 2 for bad input (a node count out of range, an unknown policy).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table

from kadspec.models.config import SYMBOLIC_MAX_NODES as MAX_NODES
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC, Policy
from kadspec.options import json_option, write_report

MIN_NODES = 2  # kadspec.engines.symbolic.lifecycle.MIN_NODES, without importing z3 at start-up
SHOWN_COUNTEREXAMPLES = 3


class BadInput(click.BadParameter):
    """A bad option value, reported on one line (exit status 2)."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True, file=file)


class NodeCount(click.ParamType[int]):
    name = "N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            count = int(value)
        except (TypeError, ValueError):
            raise BadInput(f"{value!r} is not a whole number", ctx, param) from None
        if not MIN_NODES <= count <= MAX_NODES:
            raise BadInput(
                f"{count} is outside {MIN_NODES}..{MAX_NODES} (the symbolic layer encodes "
                f"{MIN_NODES} to {MAX_NODES} nodes)",
                ctx,
                param,
            )
        return count


class PositiveInt(click.ParamType[int]):
    def __init__(self, metavar: str) -> None:
        self.name = metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise BadInput(f"{value!r} is not a whole number", ctx, param) from None
        if number < 1:
            raise BadInput(f"{number} is not positive", ctx, param)
        return number


class PolicyName(click.ParamType[str]):
    name = "NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        name = str(value)
        if name != "spec" and name not in MUTANTS:
            raise BadInput(
                f"unknown policy {name!r}; valid: spec, {', '.join(sorted(MUTANTS))}", ctx, param
            )
        return name


def _policy(name: str) -> Policy:
    return SPEC if name == "spec" else MUTANTS[name].policy


@click.command("prove")
@click.option(
    "--nodes",
    type=NodeCount(),
    default=3,
    show_default=True,
    help=f"Number of nodes of the symbolic encoding ({MIN_NODES}..{MAX_NODES}).",
)
@click.option(
    "--policy",
    "policy_name",
    type=PolicyName(),
    default="spec",
    show_default=True,
    help="spec, or a mutant's name (see kadspec.models.mutants).",
)
@json_option("Also write the report as JSON to this file.")
@click.option(
    "--timeout-ms",
    type=PositiveInt("MS"),
    default=60_000,
    show_default=True,
    help="z3 time limit per obligation; a timeout is reported as unknown.",
)
@click.option(
    "--jobs",
    type=PositiveInt("N"),
    default=None,
    help="Worker processes for the consecution obligations (default: CPU count, at most 4).",
)
def prove(
    nodes: int, policy_name: str, json_path: Path | None, timeout_ms: int, jobs: int | None
) -> None:
    """Prove the lifecycle's safety requirements inductive (and, for a mutant, find its bug).

    For the spec policy: the XOR-metric lemmas at 256 bits, then initiation and consecution of
    every encoded safety requirement and auxiliary invariant, and every step property, for NODES
    nodes and any configuration. For a mutant: the same obligations under its policy (refuted
    ones come with a counterexample to induction replayed in the executable model) and bounded
    model checking on the mutant's scenario, the trace replayed through the executable model.

    Exits 0 when every obligation is proved, 1 when one is refuted or unknown (a timeout is
    unknown, never a pass), 2 for bad input.

    \b
    Examples:
      kadspec prove
      kadspec prove --nodes 4 --json results/prove.json
      kadspec prove --policy admit-on-inbound-request
    """
    from kadspec.engines.symbolic import lifecycle

    report = lifecycle.prove_lifecycle(
        nodes,
        _policy(policy_name),
        timeout_ms=timeout_ms,
        jobs=jobs or lifecycle.default_jobs(),
    )
    console = Console()
    if not console.is_terminal:
        console = Console(width=132)  # files and pipes: room for the longest obligation name
    table = Table(title=f"kadspec prove: {nodes} nodes, policy {policy_name}")
    table.add_column("obligation", overflow="fold")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    colours = {"proved": "green", "refuted": "red", "unknown": "yellow"}
    for o in report.obligations:
        table.add_row(o.name, f"[{colours[o.result]}]{o.result}[/]", f"{o.seconds:.3f}")
    console.print(table)
    _show_counterexamples(console, report)
    write_report(json_path, "prove", {"exit_code": 0 if report.ok else 1, **report.to_json()})
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(report.summary(), markup=False, highlight=False)
    raise SystemExit(0 if report.ok else 1)


def _show_counterexamples(console: Console, report: Any) -> None:
    """Every bounded trace and unknown, and the first few counterexamples to induction of a
    requirement (all of them are in the JSON)."""
    failures = report.failures
    for o in failures:
        if o.kind == "bmc" or o.result == "unknown":
            console.rule(f"{o.result}: {o.name}")
            console.print(o.counterexample or "(no detail)", markup=False, highlight=False)
    ctis = [o for o in failures if o.result == "refuted" and o.kind != "bmc"]
    shown = [o for o in ctis if o.requirements][:SHOWN_COUNTEREXAMPLES] or ctis[:1]
    for o in shown:
        console.rule(f"counterexample to induction: {o.name} ({', '.join(o.requirements)})")
        console.print(o.counterexample or "", markup=False, highlight=False)
    if len(ctis) > len(shown):
        console.print(
            f"({len(ctis) - len(shown)} more counterexamples to induction; see --json)",
            markup=False,
            highlight=False,
        )


__all__ = ["prove"]
