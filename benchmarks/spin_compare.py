"""Spin's states per second on a Promela model of the lifecycle's shape, for comparison.

Issue 11 sets the explorer's single-core goal against Spin: a tenth of Spin's rate. This runs
``spin/lifecycle.pml`` (a bootstrap server and joiners: dial, identify, self-lookup, one
provide; see its header) through Spin and reports distinct states stored per second of CPU
time. Both models have the lifecycle's shape but not the same states, so only the rates are
compared, never the counts. ``explorer_bench.py`` calls :func:`measure` in the same run as its
own throughput figure; without ``spin`` or a C compiler the figure is skipped, not failed.

Usage::

    python benchmarks/spin_compare.py                       # prints the JSON
    python benchmarks/spin_compare.py --nodes 3 --out results/bench-spin.json

``spin`` is the Debian package of that name (``apt-get install spin``); the C compiler is the
system's ``cc``.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = Path(__file__).parent / "spin" / "lifecycle.pml"
#: Spin's own partial-order reduction would store fewer states; the rate is measured on the
#: full state space, as kadspec's explorer explores it by default.
PAN_FLAGS = ("-O2", "-w", "-DNOREDUCE", "-DSAFETY")

Json = dict[str, Any]


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _version(spin: str) -> str:
    out = subprocess.run([spin, "-V"], capture_output=True, text=True, check=False).stdout
    return out.strip()


def _number(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else None


def measure(nodes: int = 3, timeout_s: float = 300.0) -> Json:
    """Build and run the verifier for ``nodes`` nodes; the figures, or why there are none."""
    spin, cc = shutil.which("spin"), shutil.which("cc") or shutil.which("gcc")
    if spin is None:
        return {"status": "skipped: spin is not installed (apt-get install spin)"}
    if cc is None:
        return {"status": "skipped: no C compiler (cc) to build Spin's verifier"}
    with tempfile.TemporaryDirectory(prefix="kadspec-spin-") as folder:
        work = Path(folder)
        shutil.copy(MODEL, work / MODEL.name)
        try:
            subprocess.run(
                [spin, "-a", f"-DNODES={nodes}", MODEL.name],
                cwd=work,
                capture_output=True,
                text=True,
                check=True,
                timeout=timeout_s,
            )
            subprocess.run(
                [cc, *PAN_FLAGS, "-o", "pan", "pan.c"],
                cwd=work,
                capture_output=True,
                text=True,
                check=True,
                timeout=timeout_s,
            )
        except subprocess.CalledProcessError as failed:
            return {"status": f"failed: {failed.cmd[0]} said {failed.stderr.strip()[:400]}"}
        cpu, wall = _child_cpu(), time.perf_counter()
        try:
            run = subprocess.run(
                ["./pan", "-m100000"],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return {"status": f"failed: pan ran past {timeout_s:g} s for {nodes} nodes"}
        cpu, wall = _child_cpu() - cpu, time.perf_counter() - wall
    states = _number(r"(\d+) states, stored", run.stdout)
    errors = _number(r"errors: (\d+)", run.stdout)
    if states is None or errors != 0 or "Search not completed" in run.stdout:
        return {"status": "failed: pan did not complete its search", "output": run.stdout[-800:]}
    return {
        "status": "measured",
        "spin": _version(spin),
        "model": f"benchmarks/spin/{MODEL.name}",
        "nodes": nodes,
        "flags": " ".join(PAN_FLAGS),
        "states": states,
        "depth": _number(r"depth reached (\d+)", run.stdout),
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "states_per_second_cpu": round(states / cpu) if cpu > 0 else None,
        "note": "a model of the lifecycle's shape, not of kadspec's states: compare rates only",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--nodes",
        type=int,
        default=3,
        choices=(3, 4, 5),
        help="nodes of the Promela model (4 and up take minutes)",
    )
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    args = parser.parse_args()
    figures = measure(args.nodes)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
