"""Benchmark of ``kadspec conform --impl reference``: the full run with 10 and 50 nodes, as JSON.

What it measures, for each network size N (every scenario, each grown to at least N nodes by
:func:`kadspec.conformance.runner.with_nodes`):

* wall seconds of the whole conformance run, and per scenario: running it (adapter process,
  nodes, waits), judging it and replaying it (trace validation);
* CPU seconds of the runner (judge and replay run here) and of the adapter processes (the
  nodes), from ``resource.getrusage`` of this process and its children;
* entries and events recorded, and the verdicts (pass/fail/inconclusive counts, traces
  accepted), so a fast run that judged nothing would show;
* the machine's load average when the run started: the scenarios wait in real time, so wall
  figures under load say more about the machine than about kadspec; CPU figures are what the
  work cost.

Timings are measured here and never asserted anywhere. Usage::

    python benchmarks/conform_bench.py --out results/bench-conform.json
    python benchmarks/conform_bench.py --nodes 10 --scenario provide-at-startup   # quick
    python benchmarks/conform_bench.py --no-trace-validation
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

from kadspec.conformance.runner import conform, reference_command, with_nodes
from kadspec.conformance.scenarios import SCENARIOS, Scenario
from kadspec.provenance import provenance

DEFAULT_SIZES = (10, 50)
#: the goal issue 9 sets is "measure it"; this is what a laptop run should stay under
GOAL_SECONDS_PER_SCENARIO = 120.0


def cpu_seconds() -> tuple[float, float]:
    """(this process, its finished children) user+system CPU seconds."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def measure(size: int, scenarios: list[Scenario], validate: bool) -> dict[str, Any]:
    grown = [with_nodes(s, size) for s in scenarios]
    phases: dict[str, dict[str, float]] = {}
    marks: dict[str, float] = {}

    def progress(what: str, scenario: Scenario, payload: Any) -> None:
        now = time.perf_counter()
        if what == "scenario":
            marks[scenario.name] = now
            print(f"  {size} nodes: {scenario.name}", file=sys.stderr, flush=True)
        elif what == "judging":
            phases[scenario.name] = {"run_seconds": now - marks[scenario.name]}
            marks[scenario.name] = now
        elif what == "done":
            phases[scenario.name]["judge_and_replay_seconds"] = now - marks[scenario.name]

    own_before, children_before = cpu_seconds()
    started = time.perf_counter()
    # replay in this process (no budget, no forked child), so its CPU counts as the runner's
    # and the children's CPU is the adapters' alone
    result = conform(
        reference_command(), grown, validate=validate, progress=progress, replay_budget_s=None
    )
    wall = time.perf_counter() - started
    own_after, children_after = cpu_seconds()
    per_scenario = []
    for report in result.scenarios:
        run = report.run
        validation = report.validation
        per_scenario.append(
            {
                "scenario": report.scenario.name,
                "nodes": len(run.nodes),
                "seconds": round(report.seconds, 3),
                **{k: round(v, 3) for k, v in phases.get(report.scenario.name, {}).items()},
                "entries": len(run.entries),
                "events": sum(1 for e in run.entries if e.kind == "event"),
                "ended_early": run.aborted,
                "error": report.error,
                "results": {
                    s: sum(1 for r in report.results if r.status == s)
                    for s in ("pass", "fail", "inconclusive", "not applicable")
                },
                "trace_validation": None
                if validation is None
                else {
                    "verdict": validation.verdict,
                    "explained": validation.explained,
                    "modelled": validation.modelled,
                    "seconds": round(validation.seconds, 3),
                },
                "goal_seconds": GOAL_SECONDS_PER_SCENARIO,
                "met": report.seconds <= GOAL_SECONDS_PER_SCENARIO,
            }
        )
    return {
        "nodes": size,
        "scenarios": len(grown),
        "wall_seconds": round(wall, 3),
        "runner_cpu_seconds": round(own_after - own_before, 3),
        "adapter_cpu_seconds": round(children_after - children_before, 3),
        "summary_line": result.summary_line(),
        "exit_code": result.exit_code(),
        "per_scenario": per_scenario,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench-conform.json"))
    parser.add_argument("--nodes", type=int, action="append", help="network size (repeatable)")
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    parser.add_argument("--no-trace-validation", action="store_true")
    args = parser.parse_args()
    sizes = tuple(args.nodes or DEFAULT_SIZES)
    scenarios = [SCENARIOS[n] for n in (args.scenario or list(SCENARIOS))]
    load = os.getloadavg()
    runs: list[dict[str, Any]] = []
    report = {
        "benchmark": "conform",
        "provenance": provenance(sys.argv[1:]),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in load],
            "note": "scenarios wait in real time; wall figures under load are the machine's, "
            "CPU figures are the work's",
        },
        "trace_validation": not args.no_trace_validation,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for size in sizes:  # written after each size, so a capped run keeps what it measured
        runs.append(measure(size, scenarios, not args.no_trace_validation))
        args.out.write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    for run in runs:
        print(
            f"{run['nodes']} nodes: {run['wall_seconds']:.1f} s wall, runner CPU "
            f"{run['runner_cpu_seconds']:.1f} s, adapter CPU {run['adapter_cpu_seconds']:.1f} s; "
            f"{run['summary_line']}"
        )
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
