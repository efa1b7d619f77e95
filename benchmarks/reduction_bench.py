"""Benchmark of the partial-order reduction (``kadspec.engines.reductions.PartialOrder``).

Writes ``results/bench-reductions.json``:

* machine: CPU count and the load average when the run started (the box is shared, so wall
  figures carry the load; CPU seconds are given beside them);
* stars: star-3 explored completely with and without the reduction; star-4 with and without it
  under the same state cap, with the breadth-first levels of both and, at every depth both
  searches completed, the states held within that depth;
* four_node: star-4 (the 4-node star with a provide) with the reduction, to a time cap, with
  its time and peak RSS (complete or not, as it says);
* five_node: star-5 with the reduction to a state cap, with its depth, levels and peak RSS;
* scenarios: the check scenarios where the reduction acts, states with and without it.

Every run happens in a child process of its own, so that each peak RSS is that run's.
EXPLORER's benchmark can embed the same figures by calling :func:`reduction_figures`.

    python benchmarks/reduction_bench.py                  # the defaults below (~10 min)
    python benchmarks/reduction_bench.py --four-seconds 1800 --five-states 1000000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import time
from pathlib import Path
from typing import Any

from kadspec.engines.explorer import explore
from kadspec.models.configurations import star
from kadspec.models.policy import SPEC
from kadspec.models.scenarios import SCENARIOS, Scenario

Json = dict[str, Any]
OUTPUT = Path("results/bench-reductions.json")
#: check scenarios where the reduction acts (no fault or timer left at some point)
SCENARIO_NAMES = ("trio", "two-bootstraps", "crowd", "five", "five-find", "mode-change")


def scenario_of(name: str) -> Scenario:
    if name in SCENARIOS:
        return SCENARIOS[name]
    family, _, count = name.partition("-")
    if family != "star":
        raise ValueError(f"unknown scenario {name!r}")
    return star(int(count))


def _measure(request: Json) -> Json:
    """One exploration, in this (child) process: its figures, time and peak RSS."""
    initial = scenario_of(request["scenario"]).initial()
    wall, cpu = time.perf_counter(), time.process_time()
    result = explore(
        initial,
        SPEC,
        partial_order=request["partial_order"],
        max_states=request.get("max_states"),
        max_seconds=request.get("max_seconds"),
    )
    return {
        "scenario": request["scenario"],
        "partial_order": request["partial_order"],
        "states": result.states,
        "transitions": result.transitions,
        "depth": result.depth,
        "complete": result.complete,
        "stop_reason": result.stop_reason,
        "max_states": request.get("max_states"),
        "max_seconds": request.get("max_seconds"),
        "quiescent_states": result.quiescent_states,
        "violated": sorted(result.violated),
        "levels": list(result.levels),
        "wall_seconds": round(time.perf_counter() - wall, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def measure(request: Json) -> Json:
    """:func:`_measure` in a fresh child process (a clean peak RSS per run)."""
    context = multiprocessing.get_context("fork")
    with context.Pool(1, maxtasksperchild=1) as pool:
        answer: Json = pool.apply(_measure, (request,))
    return answer


def within_depth(plain: Json, reduced: Json) -> Json:
    """States held within each depth that both searches completed (the last level of a capped
    search may be partial, so it is left out), and the reduced share."""
    common = min(len(plain["levels"]), len(reduced["levels"]))
    if not (plain["complete"] and reduced["complete"]):
        common -= 1
    rows = []
    for depth in range(common):
        full = sum(plain["levels"][: depth + 1])
        cut = sum(reduced["levels"][: depth + 1])
        rows.append({"depth": depth, "plain": full, "reduced": cut, "ratio": round(cut / full, 4)})
    return {"by_depth": rows, "deepest_common": common - 1}


def reduction_figures(
    star4_cap: int = 200_001, four_seconds: float = 600.0, five_states: int = 200_000
) -> Json:
    """Every figure of this benchmark (EXPLORER's benchmark may call this and embed it)."""
    report: Json = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "note": "wall figures were measured on a shared, loaded machine; see cpu_seconds",
        }
    }
    stars: Json = {}
    plain = measure({"scenario": "star-3", "partial_order": False})
    reduced = measure({"scenario": "star-3", "partial_order": True})
    stars["star-3"] = {
        "plain": plain,
        "partial_order": reduced,
        "state_ratio": round(reduced["states"] / plain["states"], 4),
        **within_depth(plain, reduced),
    }
    cap = {"max_states": star4_cap}
    plain = measure({"scenario": "star-4", "partial_order": False, **cap})
    reduced = measure({"scenario": "star-4", "partial_order": True, **cap})
    stars["star-4"] = {"plain": plain, "partial_order": reduced, **within_depth(plain, reduced)}
    report["stars"] = stars
    report["four_node"] = measure(
        {"scenario": "star-4", "partial_order": True, "max_seconds": four_seconds}
    )
    report["five_node"] = measure(
        {"scenario": "star-5", "partial_order": True, "max_states": five_states}
    )
    scenarios: Json = {}
    for name in SCENARIO_NAMES:
        plain = measure({"scenario": name, "partial_order": False})
        reduced = measure({"scenario": name, "partial_order": True})
        scenarios[name] = {
            "plain_states": plain["states"],
            "reduced_states": reduced["states"],
            "ratio": round(reduced["states"] / plain["states"], 4),
            "same_violations": plain["violated"] == reduced["violated"],
            "same_quiescent_states": plain["quiescent_states"] == reduced["quiescent_states"],
            "plain_cpu_seconds": plain["cpu_seconds"],
            "reduced_cpu_seconds": reduced["cpu_seconds"],
        }
    report["scenarios"] = scenarios
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--star4-cap", type=int, default=200_001)
    parser.add_argument("--four-seconds", type=float, default=600.0)
    parser.add_argument("--five-states", type=int, default=200_000)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    report = reduction_figures(args.star4_cap, args.four_seconds, args.five_states)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
