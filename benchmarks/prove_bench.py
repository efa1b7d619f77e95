"""Benchmark of ``kadspec prove``, written as JSON (timings are measured here, never asserted).

What it measures:

* machine: CPU count, Python, z3, and the load average when the run started (other work on the
  machine slows wall-clock figures down);
* for 3, 4 and 5 nodes under the spec policy: every obligation of ``prove_lifecycle`` with its
  verdict and seconds (the metric lemmas included, as ``kadspec prove`` runs them), the wall-clock
  total and the CPU time of this process and its workers, per transition group and per kind;
* growth: each obligation's seconds at 3, 4 and 5 nodes side by side, and per-group totals with
  the ratios 4/3 and 5/4;
* the goal: every obligation for 4 nodes proved in under 60 s in total (wall clock, with the
  default number of worker processes), ``met`` true or false; and the same run on one process;
* bounded model checking: per safety mutant, the time to a trace confirmed by the executable
  model, and the trace's length.

Usage::

    python benchmarks/prove_bench.py --out results/bench-prove.json
    python benchmarks/prove_bench.py --quick      # 3 and 4 nodes only, no BMC
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import z3

from kadspec.engines.symbolic.bmc import bmc
from kadspec.engines.symbolic.invariants import encoded_requirements
from kadspec.engines.symbolic.lifecycle import ProofReport, default_jobs, prove_lifecycle
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC

GOAL_SECONDS = 60.0
GOAL_NODES = 4


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _group(name: str) -> str:
    if name.startswith(("lemma", "initiation")):
        return name.split(":")[0]
    return name.rsplit(" / ", 1)[-1]


def _run(nodes: int, jobs: int) -> tuple[ProofReport, dict[str, Any]]:
    cpu, wall = _cpu(), time.perf_counter()
    report = prove_lifecycle(nodes, SPEC, jobs=jobs, lemmas=True)
    wall = time.perf_counter() - wall
    cpu = _cpu() - cpu
    groups: dict[str, float] = defaultdict(float)
    kinds: dict[str, float] = defaultdict(float)
    for o in report.obligations:
        groups[_group(o.name)] += o.seconds
        kinds[o.kind] += o.seconds
    slowest = sorted(report.obligations, key=lambda o: -o.seconds)[:10]
    summary = {
        "nodes": nodes,
        "jobs": jobs,
        "ok": report.ok,
        "obligations": len(report.obligations),
        "counts": {r: report.count(r) for r in ("proved", "refuted", "unknown")},
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "sum_of_obligation_seconds": round(sum(o.seconds for o in report.obligations), 3),
        "seconds_per_group": {g: round(t, 3) for g, t in sorted(groups.items())},
        "seconds_per_kind": {k: round(t, 3) for k, t in sorted(kinds.items())},
        "slowest": [{"name": o.name, "seconds": round(o.seconds, 3)} for o in slowest],
    }
    return report, summary


def _growth(reports: dict[int, ProofReport], runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    sizes = sorted(reports)
    per_obligation: dict[str, dict[str, float]] = defaultdict(dict)
    for n in sizes:
        for o in reports[n].obligations:
            per_obligation[o.name][str(n)] = round(o.seconds, 4)
    groups: dict[str, dict[str, Any]] = {}
    for g in runs[sizes[0]]["seconds_per_group"]:
        row: dict[str, Any] = {str(n): runs[n]["seconds_per_group"].get(g) for n in sizes}
        for a, b in itertools.pairwise(sizes):
            ta, tb = row[str(a)], row[str(b)]
            row[f"ratio_{b}_over_{a}"] = round(tb / ta, 2) if ta and tb else None
        groups[g] = row
    totals = {str(n): runs[n]["wall_seconds"] for n in sizes}
    return {
        "wall_seconds_by_nodes": totals,
        "per_group": groups,
        "per_obligation": dict(sorted(per_obligation.items())),
    }


def _bmc() -> list[dict[str, Any]]:
    out = []
    for m in MUTANTS.values():
        if m.expected not in encoded_requirements():
            continue
        result = bmc(m.scenario_spec.initial(), m.policy, m.expected)
        out.append(
            {
                "mutant": m.name,
                "requirement": m.expected,
                "scenario": m.scenario,
                "confirmed": result.confirmed,
                "seconds": round(result.seconds, 3),
                "trace_steps": len(result.replay.steps) if result.replay else None,
                "symbolic_depth": result.depth,
                "attempts": result.attempts,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench-prove.json"))
    parser.add_argument("--quick", action="store_true", help="3 and 4 nodes only, no BMC")
    args = parser.parse_args(argv)
    jobs = default_jobs()
    data: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "z3": z3.get_version_string(),
            "load_average_at_start": list(os.getloadavg()),
            "default_jobs": jobs,
        }
    }
    sizes = [3, 4] if args.quick else [3, 4, 5]
    reports: dict[int, ProofReport] = {}
    runs: dict[int, dict[str, Any]] = {}
    for n in sizes:
        reports[n], runs[n] = _run(n, jobs)
        print(f"{n} nodes: {reports[n].summary()}", file=sys.stderr)
    data["runs"] = [runs[n] for n in sizes]
    data["growth"] = _growth(reports, runs)
    _, single = _run(GOAL_NODES, 1)
    print(f"{GOAL_NODES} nodes on one process: {single['wall_seconds']} s", file=sys.stderr)
    goal = runs[GOAL_NODES]
    data["goal"] = {
        "statement": f"every obligation for {GOAL_NODES} nodes proved in under "
        f"{GOAL_SECONDS:.0f} s in total",
        "nodes": GOAL_NODES,
        "jobs": jobs,
        "all_proved": goal["ok"],
        "wall_seconds": goal["wall_seconds"],
        "met": goal["ok"] and goal["wall_seconds"] < GOAL_SECONDS,
        "one_process": {
            "wall_seconds": single["wall_seconds"],
            "met": single["ok"] and single["wall_seconds"] < GOAL_SECONDS,
        },
    }
    if not args.quick:
        data["bmc"] = _bmc()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
