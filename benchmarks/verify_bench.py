"""Benchmark of ``kadspec verify``, the README's main job, written as JSON (never asserted).

It runs ``python3 -m kadspec verify --json`` in a fresh process, as a user would, and records:

* machine: CPU count, Python, and the load average when the run started (other work on the
  machine slows wall-clock figures down);
* the wall-clock time of the whole command and its exit code;
* per mutant and engine (explorer, Hypothesis), the seconds its hunt took to detect the bug,
  read from the report ``verify`` itself writes;
* the goals of issue 6, each with ``met`` true or false: ``verify`` under 60 s on this machine,
  every mutant detected in under 10 s by the explorer and in under 30 s by Hypothesis.

Usage::

    python benchmarks/verify_bench.py --out results/bench-verify.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOALS = {"verify": 60.0, "explorer": 10.0, "hypothesis": 30.0}


def run_verify() -> tuple[float, int, dict[str, Any]]:
    """Wall seconds, exit code and the JSON report of one ``kadspec verify`` run."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "verify.json"
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "kadspec", "verify", "--json", str(report)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            check=False,
        )
        seconds = time.perf_counter() - started
        data: dict[str, Any] = json.loads(report.read_text("utf-8")) if report.exists() else {}
    return seconds, done.returncode, data


def slowest_detections(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per engine: how many mutants it caught of how many, and its slowest detection."""
    runs = report.get("parts", {}).get("mutants", {}).get("mutants", [])
    result: dict[str, dict[str, Any]] = {}
    for engine in ("explorer", "hypothesis"):
        mine = [r for r in runs if r.get("engine") == engine]
        slowest = max(mine, key=lambda r: float(r["seconds"]), default=None)
        result[engine] = {
            "mutants": len(mine),
            "caught": sum(1 for r in mine if r.get("caught")),
            "slowest": None
            if slowest is None
            else {"mutant": slowest["name"], "seconds": slowest["seconds"]},
            "seconds": {r["name"]: r["seconds"] for r in mine},
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench-verify.json"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    seconds, code, report = run_verify()
    engines = slowest_detections(report)
    goals = [
        {
            "goal": f"kadspec verify in under {GOALS['verify']:.0f} s on this machine",
            "figure": round(seconds, 1),
            "met": code == 0 and seconds < GOALS["verify"],
        }
    ]
    for engine, figures in engines.items():
        slowest = figures["slowest"]
        goals.append(
            {
                "goal": f"every mutant detected in under {GOALS[engine]:.0f} s ({engine})",
                "figure": slowest,
                "met": bool(figures["mutants"])
                and figures["caught"] == figures["mutants"]
                and slowest is not None
                and float(slowest["seconds"]) < GOALS[engine],
            }
        )
    result = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": round(load, 2),
        },
        "verify": {"seconds": round(seconds, 2), "exit_code": code},
        "engines": engines,
        "goals": goals,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    for goal in goals:
        print(f"{'met    ' if goal['met'] else 'NOT met'}  {goal['goal']}: {goal['figure']}")
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
