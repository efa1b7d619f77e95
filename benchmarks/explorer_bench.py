"""Benchmark of the explorer, written as JSON (timings are measured here, never asserted).

What it measures:

* machine: CPU count, Python, load average when the run started (other work on the machine
  slows wall-clock figures down; CPU-time figures are what one core did);
* throughput: distinct states per second of the explorer on scenario ``trio`` (3 nodes), as
  CPU time and wall time, best of a few runs; and, for comparison, a breadth-first search that
  calls the public functions (``enabled``, ``apply``, the checks) directly, as the explorer did
  before it memoized them;
* growth: state counts of the same star scenario with 2, 3 and 4 nodes
  (``configurations.star``) and of the islands (``configurations.islands``), each plain and
  with each reduction;
* the 4-node exhaustive run: states, seconds and peak RSS, in a child process of its own;
* per mutant and per engine, the time to detection: engine "explorer" (``explore`` with the
  mutant's target) and engine "hypothesis" (``kadspec.engines.stateful.hunt``), whose runs stop
  at the first failing example (generation only: shrinking is not detection time);
* profile: the explorer's top functions on ``trio`` by own time (cProfile), which is what the
  single-core work was steered by;
* scale (issue 11): the partitioned explorer with 1 and 2 worker processes against the serial
  one on a complete scenario (wall and CPU time, each worker's CPU time, the speed-up), the
  Ray mode with 2 local workers against ``--workers 2``, the fingerprint mode, and the
  progress snapshots of a run; and the 2-worker speed-up under several hash secrets
  (``by_seed``: which worker owns a state is a hash, and its split of the states varies with
  ``PYTHONHASHSEED``). On a machine shared with other work the wall figures carry that load
  (``load_average`` is recorded at each); CPU figures are what the processes did;
* jobs: ``kadspec check`` over the whole catalogue as a user runs it, in fresh processes: in
  one process (``--workers 1``), with each scenario partitioned over 2 worker processes
  (``--workers 2``), and with whole scenarios side by side in 2 (``--jobs 2``, the default
  when several scenarios are checked); wall and CPU time, and whether the three agree on
  every scenario's states and transitions;
* spin: the ratio to Spin's states per second when ``spin`` is installed (skipped otherwise);
* goals: each figure against the goal it answers, ``met`` true or false.

Usage::

    python benchmarks/explorer_bench.py --out results/bench-explorer.json
    python benchmarks/explorer_bench.py --quick             # under a minute
    python benchmarks/explorer_bench.py --four-node-exhaustive   # adds the full star-4 run
    python benchmarks/explorer_bench.py --only profile,scale --out results/bench-explorer-scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from kadspec.engines.explorer import Exploration, explore
from kadspec.models.actions import apply, enabled, quiescent
from kadspec.models.checks import check_quiescent, check_state, check_step
from kadspec.models.configurations import islands, star
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC
from kadspec.models.scenarios import SCENARIOS, Scenario

SEED_BUGS = ("provide-before-ready-error-dropped", "identify-addresses-not-routed")
#: name -> (symmetry, partial_order)
REDUCTIONS: dict[str, tuple[bool, bool]] = {
    "none": (False, False),
    "symmetry": (True, False),
    "partial-order": (False, True),
    "both": (True, True),
}
GiB = 1 << 30
#: the parts of a run, in order (``--only`` picks some)
SECTIONS = ("throughput", "profile", "scale", "jobs", "growth", "four-node", "large", "mutants")
#: issue 11's larger configurations: the full-bucket scenario (crowd: n0's bucket is full when
#: a newcomer arrives) and the 5-node ones, complete; star-5 to a state cap
LARGE = (("crowd", None), ("five", None), ("five-find", None), ("star-5", 1_000_000))

Json = dict[str, Any]


# --- measuring ----------------------------------------------------------------------------------


def run(
    scenario: str,
    reduction: str = "none",
    max_states: int | None = None,
    max_seconds: float | None = None,
) -> tuple[Exploration, float, float]:
    """Explore a scenario under SPEC with a reduction; the result, wall and CPU seconds."""
    symmetry, partial_order = REDUCTIONS[reduction]
    initial = scenario_of(scenario).initial()
    return timed(
        partial(
            explore,
            initial,
            SPEC,
            max_states=max_states,
            max_seconds=max_seconds,
            symmetry=symmetry,
            partial_order=partial_order,
        )
    )


def timed(run: Callable[[], Exploration]) -> tuple[Exploration, float, float]:
    """The run's result, its wall seconds and its CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def summary(result: Exploration, wall: float, cpu: float) -> Json:
    return {
        "states": result.states,
        "transitions": result.transitions,
        "depth": result.depth,
        "complete": result.complete,
        "stop_reason": result.stop_reason,
        "quiescent_states": result.quiescent_states,
        "requirements_exercised": len(result.exercised),
        "violated": list(result.counterexample.requirements) if result.counterexample else [],
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
    }


def scenario_of(name: str) -> Scenario:
    """A scenario by name: SCENARIOS, ``star-<n>`` or ``islands-<n>``."""
    if name in SCENARIOS:
        return SCENARIOS[name]
    family, _, count = name.partition("-")
    return {"star": star, "islands": islands}[family](int(count))


def machine() -> Json:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB, 1),
    }


def reference_bfs(name: str, limit: int | None) -> Json:
    """Breadth-first search straight on the public functions, no memo: the explorer before."""
    initial = scenario_of(name).initial()
    wall, cpu = time.perf_counter(), time.process_time()
    seen = {initial}
    order = [initial]
    transitions = 0
    for world in order:
        if quiescent(world, SPEC):
            check_quiescent(world, SPEC)
        for action in enabled(world, SPEC):
            after = apply(world, SPEC, action)
            transitions += 1
            check_step(world, action, after, SPEC)
            if after not in seen:
                seen.add(after)
                order.append(after)
                check_state(after, SPEC)
        if limit is not None and len(seen) >= limit:
            break
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "scenario": name,
        "states": len(seen),
        "transitions": transitions,
        "complete": limit is None or len(seen) < limit,
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "states_per_second_cpu": round(len(seen) / cpu),
        "states_per_second_wall": round(len(seen) / wall),
    }


def throughput(repeats: int, reference_limit: int | None) -> Json:
    runs = [run("trio") for _ in range(repeats)]
    result = runs[0][0]
    cpu = min(c for _, _, c in runs)
    wall = min(w for _, w, _ in runs)
    return {
        "scenario": "trio",
        "nodes": 3,
        # the explorer counts each requirement's live premises on every state and transition
        # (the vacuity report); these figures include that cost
        "counts_premises": True,
        "states": result.states,
        "transitions": result.transitions,
        "repeats": repeats,
        "best_cpu_seconds": round(cpu, 3),
        "best_wall_seconds": round(wall, 3),
        "states_per_second_cpu": round(result.states / cpu),
        "states_per_second_wall": round(result.states / wall),
        "reference_public_functions": reference_bfs("trio", reference_limit),
    }


def growth(four_node_cap: int, reductions: tuple[str, ...]) -> Json:
    """State counts by network size, plain and with each reduction."""
    found: Json = {}
    for family in ("star", "islands"):
        for count in (2, 3, 4):
            name = f"{family}-{count}"
            cap = four_node_cap if name == "star-4" else None
            runs = {label: summary(*run(name, label, cap)) for label in reductions}
            found[name] = {"nodes": count, "max_states": cap, "runs": runs}
    return found


# --- profile and scale (issue 11) ---------------------------------------------------------------

#: the explorer before issue 11's work (commit 576fb57's engines) against after (the engines
#: of the commit that added these figures): one core, CPU time, best of runs alternating old
#: and new in one process at load 4-13 on 2 cores (CPU time rises under load too: compare
#: within a row, not across runs)
BEFORE_ISSUE_11 = {
    "commit": "576fb57",
    "trio": {"before_states_per_second_cpu": 28_735, "after_states_per_second_cpu": 30_084},
    "trio-forgery": {"before_states_per_second_cpu": 31_278, "after_states_per_second_cpu": 35_399},
}
SPIN_STATES_PER_SECOND = 822_000  # issue 11: Spin on a comparable lifecycle model


def profile(scenario: str = "trio", top: int = 15) -> Json:
    """cProfile's top functions of one exploration, by own time."""
    import cProfile
    import pstats

    initial = scenario_of(scenario).initial()
    explore(initial, SPEC)  # warm: imports and the model's own caches
    profiler = cProfile.Profile()
    profiler.enable()
    result = explore(initial, SPEC)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values())
    for (path, line, name), (_, calls, own, cumulative, _) in sorted(
        entries.items(), key=lambda item: -item[1][2]
    )[:top]:
        rows.append(
            {
                "function": f"{Path(path).name}:{line}({name})",
                "calls": calls,
                "own_seconds": round(own, 3),
                "cumulative_seconds": round(cumulative, 3),
                "own_share": round(own / total, 3) if total else None,
            }
        )
    return {
        "scenario": scenario,
        "states": result.states,
        "profiled_seconds": round(total, 3),
        "note": "under cProfile (which slows calls down unevenly); shares, not rates",
        "top_by_own_time": rows,
        "cost_split": cost_split(scenario),
    }


def cost_split(scenario: str = "trio", repeats: int = 3) -> Json:
    """Where one core's time goes, without a profiler's distortion (best of ``repeats``):

    * cold: a run as ``kadspec check`` does it, every memo empty;
    * warm: the same run again on the same (already filled) engine, so that every step,
      guard and check is a memo hit: what the explorer's own loop costs;
    * model: the model's own functions (``apply``, ``check_step``, ``exercised_in_step``)
      recomputed, alone, for each situation the cold run had to compute once.

    The model's part bounds the cold rate from above even for an engine that cost nothing:
    states / model seconds."""
    import kadspec.engines.explorer as explorer_module
    from kadspec.engines.successors import Successors
    from kadspec.models.checks import exercised_in_step

    initial = scenario_of(scenario).initial()
    engines: list[Successors] = []
    situations: list[tuple[Any, Any]] = []

    class Recording(Successors):
        def _compute(
            self, world: Any, move: Any, situation: int, alone: bool, key: Any = None
        ) -> Any:
            situations.append((world, move.action))
            return super()._compute(world, move, situation, alone, key)

    def reused(*args: Any, **kwargs: Any) -> Successors:
        if not engines:
            engines.append(Recording(*args, **kwargs))
        return engines[0]

    cold = min(timed(partial(explore, initial, SPEC))[2] for _ in range(repeats))
    # explore() builds its engine by this module-level name: hand it the one engine
    original = getattr(explorer_module, "Successors")  # noqa: B009
    setattr(explorer_module, "Successors", reused)  # noqa: B010
    try:
        result, _, _ = timed(partial(explore, initial, SPEC))  # fills the one engine
        warm = min(timed(partial(explore, initial, SPEC))[2] for _ in range(repeats))
    finally:
        setattr(explorer_module, "Successors", original)  # noqa: B010

    def model_only() -> None:
        for world, action in situations:
            after = apply(world, SPEC, action)
            check_step(world, action, after, SPEC)
            exercised_in_step(world, action, after, SPEC)

    model = min(_cpu(model_only) for _ in range(repeats))
    states = result.states
    return {
        "scenario": scenario,
        "states": states,
        "computed_situations": len(situations),
        "cold_cpu_seconds": round(cold, 3),
        "warm_cpu_seconds": round(warm, 3),
        "model_cpu_seconds": round(model, 3),
        "states_per_second_cpu": {
            "cold": round(states / cold),
            "warm_engine_loop_only": round(states / warm),
            "bound_if_the_engine_cost_nothing": round(states / model),
        },
        "model_share_of_cold": round(model / cold, 3),
        "note": "the model's first computation of each situation is what a cold run cannot "
        "avoid; warm = every memo hit",
    }


def _cpu(work: Callable[[], None]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def scale(scenario: str, ray_scenario: str) -> Json:
    """The partitioned explorer against the serial one, Ray against --workers 2, the
    fingerprint mode, and one run's progress snapshots."""
    from kadspec.engines.explorer import Snapshot
    from kadspec.engines.parallel import choose_owner_nodes, explore_parallel

    initial = scenario_of(scenario).initial()
    found: Json = {"scenario": scenario}
    serial, wall, cpu = timed(partial(explore, initial, SPEC, keep_going=True))
    found["serial"] = _scale_row(serial, wall, cpu)
    for workers in (1, 2):
        snapshots: list[Snapshot] = []
        result, wall, _ = timed(
            partial(
                explore_parallel,
                initial,
                SPEC,
                workers=workers,
                keep_going=True,
                progress=snapshots.append,
            )
        )
        row = _scale_row(result, wall, result.cpu_seconds)
        row["agrees_with_serial"] = (result.states, result.transitions, result.levels) == (
            serial.states,
            serial.transitions,
            serial.levels,
        )
        found[f"workers_{workers}"] = row
        if workers == 2:
            found["progress_snapshots"] = [
                {
                    "states": s.states,
                    "transitions": s.transitions,
                    "depth": s.depth,
                    "frontier": s.frontier,
                    "states_per_second": round(s.states_per_second),
                    "memory_mb": round(s.memory_mb, 1),
                }
                for s in snapshots
            ]
    two = found["workers_2"]
    serial_wall = found["serial"]["wall_seconds"]
    found["speedup_2_workers_wall"] = round(serial_wall / two["wall_seconds"], 2)
    busiest = max(two["worker_cpu_seconds"], default=0.0)
    # With a core of its own per worker, the run would take about as long as its busiest
    # worker's CPU time (plus the coordinator's): the speed-up this partition allows.
    found["speedup_2_workers_cpu_bound"] = (
        round(found["serial"]["cpu_seconds"] / busiest, 2) if busiest else None
    )
    found["total_cpu_ratio_2_workers"] = round(
        two["cpu_seconds"] / found["serial"]["cpu_seconds"], 2
    )
    fingerprint, wall, _ = timed(
        partial(explore_parallel, initial, SPEC, workers=1, fingerprints=True, keep_going=True)
    )
    found["fingerprints_1_worker"] = _scale_row(fingerprint, wall, fingerprint.cpu_seconds) | {
        "omission_probability": fingerprint.omission_probability,
        "agrees_with_serial": fingerprint.states == serial.states,
    }
    found["owner_nodes"] = list(choose_owner_nodes(initial, SPEC))
    found["ray"] = ray_overhead(ray_scenario)
    return found


def scale_capped(scenario: str, max_states: int) -> Json:
    """Serial against 2 workers on a larger, capped run (the workers finish the level they
    are in, so their run holds a few more states: rates are per state)."""
    from kadspec.engines.parallel import choose_owner_nodes, explore_parallel

    initial = scenario_of(scenario).initial()
    serial, wall, cpu = timed(partial(explore, initial, SPEC, max_states=max_states))
    two, two_wall, _ = timed(
        partial(explore_parallel, initial, SPEC, workers=2, max_states=max_states)
    )
    busiest = max(two.worker_cpu_seconds, default=0.0)
    serial_per_state = cpu / serial.states
    return {
        "scenario": scenario,
        "max_states": max_states,
        "owner_nodes": list(choose_owner_nodes(initial, SPEC)),
        "serial": _scale_row(serial, wall, cpu),
        "workers_2": _scale_row(two, two_wall, two.cpu_seconds),
        "speedup_2_workers_wall": round((wall / serial.states) / (two_wall / two.states), 2),
        "speedup_2_workers_cpu_bound": round(serial_per_state / (busiest / two.states), 2)
        if busiest
        else None,
        "total_cpu_ratio_2_workers": round((two.cpu_seconds / two.states) / serial_per_state, 2),
    }


def _scale_row(result: Exploration, wall: float, cpu: float) -> Json:
    return {
        "states": result.states,
        "transitions": result.transitions,
        "complete": result.complete,
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "worker_cpu_seconds": [round(c, 3) for c in result.worker_cpu_seconds],
        "states_per_second_wall": round(result.states / wall) if wall else None,
        "peak_memory_mb": round(result.peak_memory_mb, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def ray_overhead(scenario: str) -> Json:
    """The Ray mode (2 local workers) against --workers 2 on one scenario."""
    try:
        import ray
    except ImportError:
        return {"status": "skipped: Ray is not installed (pip install 'kadspec[ray]')"}
    from kadspec.engines.distributed import HASH_SEED, explore_ray
    from kadspec.engines.parallel import explore_parallel

    initial = scenario_of(scenario).initial()
    processes, process_wall, _ = timed(partial(explore_parallel, initial, SPEC, workers=2))
    begun = time.perf_counter()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONHASHSEED": HASH_SEED}},
        log_to_driver=False,
    )
    start_seconds = time.perf_counter() - begun
    try:
        on_ray, ray_wall, _ = timed(partial(explore_ray, initial, SPEC, workers=2))
    finally:
        ray.shutdown()
    return {
        "scenario": scenario,
        "states": on_ray.states,
        "agrees_with_workers": (on_ray.states, on_ray.levels)
        == (processes.states, processes.levels),
        "ray_start_seconds": round(start_seconds, 3),
        "ray_wall_seconds": round(ray_wall, 3),
        "ray_cpu_seconds": round(on_ray.cpu_seconds, 3),
        "workers_2_wall_seconds": round(process_wall, 3),
        "workers_2_cpu_seconds": round(processes.cpu_seconds, 3),
        "overhead_wall_ratio": round(ray_wall / process_wall, 2) if process_wall else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def spin_ratio(rate: float) -> Json:
    """Our rate against Spin's, measured in the same run (``spin_compare.py``: Spin on a
    Promela model of the lifecycle's shape) when ``spin`` and a C compiler are installed;
    skipped otherwise, never failed."""
    sys.path.insert(0, str(Path(__file__).parent))
    from spin_compare import measure

    spin = measure()
    spin["issue_11_spin_states_per_second"] = SPIN_STATES_PER_SECOND
    if spin.get("states_per_second_cpu"):
        spin["ratio"] = round(rate / spin["states_per_second_cpu"], 4)
        spin["a_tenth_of_spin"] = round(spin["states_per_second_cpu"] / 10)
    return spin


def check_catalogue(repeats: int) -> Json:
    """``kadspec check`` over every built-in scenario, three ways, each in a fresh process:
    wall time, the process tree's CPU time, and each scenario's states and transitions."""
    ways = {
        "one_process": ["--workers", "1"],
        "each_scenario_over_2_workers": ["--workers", "2"],
        "scenarios_side_by_side_2_jobs": ["--jobs", "2"],
    }
    found: Json = {}
    counts: dict[str, list[tuple[str, int, int]]] = {}
    for label, options in ways.items():
        rows: list[Json] = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as folder:
                report = Path(folder) / "check.json"
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "kadspec", "check", *options, "--json", str(report)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                wall = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if done.returncode != 0 or not report.exists():
                    return {"status": "failed", "way": label, "stderr": done.stderr[-2000:]}
                data = json.loads(report.read_text())
            counts[label] = [
                (run["name"], run["states"], run["transitions"]) for run in data["scenarios"]
            ]
            rows.append(
                {
                    "wall_seconds": round(wall, 2),
                    "cpu_seconds": round(
                        after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2
                    ),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                }
            )
        best = min(rows, key=lambda row: row["wall_seconds"])
        found[label] = best | {"runs": rows, "options": options}
    one = found["one_process"]["wall_seconds"]
    found["scenarios"] = len(counts["one_process"])
    found["states"] = sum(states for _, states, _ in counts["one_process"])
    found["agree"] = (
        counts["one_process"]
        == counts["each_scenario_over_2_workers"]
        == counts["scenarios_side_by_side_2_jobs"]
    )
    for label in ("each_scenario_over_2_workers", "scenarios_side_by_side_2_jobs"):
        found[label]["speedup_wall"] = round(one / found[label]["wall_seconds"], 2)
    return found


# --- runs in a child process (peak memory of their own) -----------------------------------------


def child(request: Json, timeout: float | None, env: dict[str, str] | None = None) -> Json:
    """Run ``request`` in a fresh interpreter (with ``env``, default this one's); its JSON
    answer, or why there is none."""
    command = [sys.executable, __file__, "--child", json.dumps(request)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "timeout_seconds": timeout}
    if done.returncode != 0:
        return {"status": "failed", "stderr": done.stderr[-2000:]}
    answer: Json = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def peak_rss_mib() -> int:
    """This process's peak resident memory in MiB: the kernel's high-water mark of this
    program's memory (getrusage's ru_maxrss would also count the parent's size at the fork,
    as Linux keeps it across exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def run_child(request: Json) -> Json:
    """The child side of :func:`child`."""
    # Fail with MemoryError rather than push the machine (and everyone on it) into swap or
    # the OOM killer: the goal is 24 GiB, the cap leaves room for the rest of the system.
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cap = min(22 * GiB, int(physical * 0.9))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if request["kind"] == "explore":
        result, wall, cpu = run(
            request["scenario"],
            request["reduction"],
            request.get("max_states"),
            request.get("max_seconds"),
        )
        answer = summary(result, wall, cpu) | {"levels": list(result.levels)}
        answer["scenario"] = request["scenario"]
        answer["reduction"] = request["reduction"]
        answer["peak_rss_mib"] = peak_rss_mib()
        return answer
    if request["kind"] == "two-workers":
        return two_workers_child(request["scenario"])
    return hunt_child(request["mutant"], request["max_examples"])


def two_workers_child(name: str) -> Json:
    """The serial explorer against 2 worker processes on one complete scenario, CPU times."""
    from kadspec.engines.parallel import explore_parallel

    initial = scenario_of(name).initial()
    serial, _, cpu = timed(partial(explore, initial, SPEC, keep_going=True))
    two = explore_parallel(initial, SPEC, workers=2, keep_going=True)
    busiest = max(two.worker_cpu_seconds)
    return {
        "states": two.states,
        "agrees_with_serial": (two.states, two.levels) == (serial.states, serial.levels),
        "serial_cpu_seconds": round(cpu, 3),
        "worker_cpu_seconds": [round(c, 3) for c in two.worker_cpu_seconds],
        "speedup_2_workers_cpu_bound": round(cpu / busiest, 2),
        "total_cpu_ratio_2_workers": round(two.cpu_seconds / cpu, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def scale_by_seed(scenario: str, seeds: tuple[int, ...] = (1, 2, 3)) -> Json:
    """:func:`two_workers_child` under each hash secret in ``seeds``: a state's owner is a
    hash of the owner nodes' states, whose combinations are few, so how evenly the workers
    share the states (and the busiest worker's CPU time) varies with the secret."""
    rows = {
        str(seed): child(
            {"kind": "two-workers", "scenario": scenario},
            timeout=900,
            env=dict(os.environ) | {"PYTHONHASHSEED": str(seed)},
        )
        for seed in seeds
    }
    speedups = [r["speedup_2_workers_cpu_bound"] for r in rows.values() if "states" in r]
    return {
        "scenario": scenario,
        "by_seed": rows,
        "speedup_2_workers_cpu_bound_min": min(speedups, default=None),
        "speedup_2_workers_cpu_bound_max": max(speedups, default=None),
    }


def hunt_child(name: str, max_examples: int) -> Json:
    """One Hypothesis hunt, stopped at the first failing example."""
    from hypothesis import Phase
    from hypothesis import settings as Settings

    from kadspec.engines import stateful

    # Time to detection is the time to the first failing run; shrinking it afterwards (which
    # can take minutes) is not part of it. hunt() fixes its phases, so the bench narrows them.
    namespace = vars(stateful)
    original: Callable[..., None] = namespace["run_state_machine_as_test"]

    def generate_only(machine: Any, *, settings: Settings) -> None:
        original(machine, settings=Settings(settings, phases=(Phase.generate,)))

    namespace["run_state_machine_as_test"] = generate_only
    mutant = MUTANTS[name]
    found = stateful.hunt(
        mutant.scenario_spec,
        mutant.policy,
        mutant.expected,
        max_examples=max_examples,
        seed=0,
        minimize_trace=False,
    )
    return {
        "detected": found.detected,
        "seconds": round(found.seconds, 3),
        "seconds_to_detect": _rounded(getattr(found, "seconds_to_detect", None)),
        "examples": found.examples,
        "examples_to_detect": getattr(found, "examples_to_detect", None),
        "trace_length": len(found.counterexample.steps) if found.counterexample else None,
        "phases": "generate only",
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- mutants ------------------------------------------------------------------------------------


def mutants(hypothesis: str, max_examples: int, timeout: float) -> Json:
    """Per mutant, per engine: detected, and how long it took."""
    try:
        from kadspec.engines.stateful import hunt  # noqa: F401
    except ImportError as missing:
        hypothesis_status = f"unavailable: {missing}"
    else:
        hypothesis_status = "available"
    found: Json = {}
    for name, mutant in MUTANTS.items():
        initial = mutant.scenario_spec.initial()
        result, wall, cpu = timed(partial(explore, initial, mutant.policy, target=mutant.expected))
        ce = result.counterexample
        engines: Json = {
            "explorer": {
                "detected": ce is not None and mutant.expected in ce.requirements,
                "seconds": round(wall, 3),
                "cpu_seconds": round(cpu, 3),
                "states": result.states,
                "trace_length": len(ce.steps) if ce else None,
            }
        }
        if hypothesis_status != "available":
            engines["hypothesis"] = {"status": hypothesis_status}
        elif hypothesis == "all" or (hypothesis == "seeds" and name in SEED_BUGS):
            request = {"kind": "hunt", "mutant": name, "max_examples": max_examples}
            engines["hypothesis"] = child(request, timeout)
        else:
            engines["hypothesis"] = {"status": "skipped (--quick)"}
        found[name] = {
            "expected": mutant.expected,
            "scenario": mutant.scenario,
            "engines": engines,
        }
    return found


# --- goals --------------------------------------------------------------------------------------


def goals(report: Json) -> list[Json]:
    found = []
    by_engine: dict[str, list[tuple[str, Json]]] = {}
    for name, row in report.get("mutants", {}).items():
        for engine, figures in row["engines"].items():
            by_engine.setdefault(engine, []).append((name, figures))
    for engine, all_rows in by_engine.items():
        rows = [(n, f) for n, f in all_rows if "skipped" not in f.get("status", "")]
        if not rows:
            continue
        times = [_detect_time(f) for _, f in rows]
        measured = [t for t in times if t is not None]
        complete = len(measured) == len(rows)
        slowest = max(measured) if measured else None
        found.append(
            {
                "goal": f"every mutant detected in under 10 s ({engine})",
                "measured": {
                    "detected": f"{len(measured)}/{len(rows)}",
                    "slowest_seconds": slowest,
                    "slowest": max(rows, key=lambda r: _detect_time(r[1]) or 0.0)[0],
                    "undetected": [n for n, f in rows if _detect_time(f) is None],
                },
                "met": complete and slowest is not None and slowest < 10,
            }
        )
        seeds = {n: _detect_time(f) for n, f in rows if n in SEED_BUGS}
        found.append(
            {
                "goal": f"the two seed bugs detected in under 1 s ({engine})",
                "measured": seeds,
                "met": len(seeds) == 2 and all(t is not None and t < 1 for t in seeds.values()),
            }
        )
    if "throughput" in report:
        rate = report["throughput"]["states_per_second_cpu"]
        found.append(
            {
                "goal": "explorer >= 25,000 distinct states/s on one core, 3 nodes (trio)",
                "measured": {
                    "states_per_second_cpu": rate,
                    "states_per_second_wall": report["throughput"]["states_per_second_wall"],
                    "before": report["throughput"]["reference_public_functions"][
                        "states_per_second_cpu"
                    ],
                },
                "met": rate >= 25_000,
            }
        )
    if "growth" in report and "four_node_exhaustive" in report:
        stars = {
            name: row["runs"]["none"]["states"]
            for name, row in report["growth"].items()
            if name.startswith("star-")
        }
        exact = {n: report["growth"][n]["runs"]["none"]["complete"] for n in stars}
        four = report.get("four_node_exhaustive", {})
        if four.get("scenario") == "star-4" and four.get("complete"):
            stars["star-4"], exact["star-4"] = four["states"], True
        found.append(
            {
                "goal": "state count growth from 2 to 4 nodes reported",
                "measured": {"states": stars, "exact": exact},
                "met": all(exact.values()),
            }
        )
        rss = four.get("peak_rss_mib")
        found.append(
            {
                "goal": "a 4-node configuration explored exhaustively within 24 GiB",
                "measured": {
                    k: four.get(k)
                    for k in (
                        "scenario",
                        "reduction",
                        "states",
                        "complete",
                        "violated",
                        "wall_seconds",
                    )
                }
                | {"peak_rss_mib": rss},
                "met": bool(four.get("complete")) and rss is not None and rss < 24 * 1024,
            }
        )
    found.extend(scale_goals(report))
    return found


def scale_goals(report: Json) -> list[Json]:
    """Issue 11's goals, for the figures this run has."""
    found = []
    if "throughput" in report:
        rate = report["throughput"]["states_per_second_cpu"]
        found.append(
            {
                "goal": "single core on trio: >= 120,000 distinct states/s by CPU time",
                "measured": {
                    "states_per_second_cpu": rate,
                    "before_issue_11": BEFORE_ISSUE_11,
                    "spin": report.get("spin", {}),
                },
                "met": rate >= 120_000,
            }
        )
    if "scale" in report:
        scale_ = report["scale"]
        found.append(
            {
                "goal": "speed-up with 2 workers on this 2-core machine: >= 1.7x",
                "measured": {
                    "scenario": scale_["scenario"],
                    "wall": scale_["speedup_2_workers_wall"],
                    "cpu_bound": scale_["speedup_2_workers_cpu_bound"],
                    "total_cpu_ratio": scale_["total_cpu_ratio_2_workers"],
                    "cpu_bound_by_seed": {
                        seed: row.get("speedup_2_workers_cpu_bound")
                        for seed, row in scale_.get("by_seed", {}).get("by_seed", {}).items()
                    },
                    "load_average": scale_["workers_2"]["load_average"],
                    "note": "wall figures under the load recorded; cpu_bound = serial CPU / "
                    "busiest worker's CPU (the speed-up with a free core per worker)",
                },
                "met": scale_["speedup_2_workers_wall"] >= 1.7,
            }
        )
        found.append(
            {
                "goal": "the Ray mode with 2 local workers: its overhead against --workers 2",
                "measured": scale_["ray"],
                "met": bool(scale_["ray"].get("agrees_with_workers")),
            }
        )
    if "jobs" in report and "scenarios_side_by_side_2_jobs" in report["jobs"]:
        jobs = report["jobs"]
        side_by_side = jobs["scenarios_side_by_side_2_jobs"]
        found.append(
            {
                "goal": "speed-up with 2 workers on this 2-core machine: >= 1.7x "
                "(kadspec check over the catalogue, as it runs by default)",
                "measured": {
                    "one_process_wall_seconds": jobs["one_process"]["wall_seconds"],
                    "jobs_2_wall_seconds": side_by_side["wall_seconds"],
                    "jobs_2_speedup_wall": side_by_side["speedup_wall"],
                    "workers_2_speedup_wall": jobs["each_scenario_over_2_workers"]["speedup_wall"],
                    "agree": jobs["agree"],
                    "load_average": side_by_side["load_average"],
                },
                "met": jobs["agree"] and side_by_side["speedup_wall"] >= 1.7,
            }
        )
    return found


def _detect_time(figures: Json) -> float | None:
    if not figures.get("detected"):
        return None
    value = figures.get("seconds_to_detect", figures.get("seconds"))
    return None if value is None else float(value)


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench-explorer.json"))
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument(
        "--four-node-exhaustive",
        action="store_true",
        help="explore star-4 exhaustively (tens of minutes; default: islands-4)",
    )
    parser.add_argument(
        "--four-node-seconds",
        type=float,
        help="a time cap for --four-node-exhaustive (the run then says how far it got)",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--scale-scenario",
        default="trio-forgery",
        help="the complete scenario the workers are timed on (default: trio-forgery)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return 0

    started = time.perf_counter()
    report: Json = {"machine": machine(), "mode": "quick" if args.quick else "full"}
    report["sections"] = list(SECTIONS if not args.only else args.only.split(","))
    step = _announcer(started)
    sections = SECTIONS if not args.only else tuple(args.only.split(","))
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if "throughput" in sections:
        step("throughput on trio")
        report["throughput"] = throughput(
            repeats=1 if args.quick else 3, reference_limit=5_000 if args.quick else None
        )
        report["spin"] = spin_ratio(report["throughput"]["states_per_second_cpu"])
    if "profile" in sections:
        step("profile on trio")
        report["profile"] = profile()
    if "scale" in sections:
        step(f"workers, fingerprints and Ray on {args.scale_scenario}")
        report["scale"] = scale(args.scale_scenario, ray_scenario="trio")
        step("serial against 2 workers on star-4, capped")
        report["scale"]["capped"] = scale_capped("star-4", 50_000 if args.quick else 400_000)
        if not args.quick:
            step(f"2 workers on {args.scale_scenario} under hash secrets 1, 2 and 3")
            report["scale"]["by_seed"] = scale_by_seed(args.scale_scenario)
    if "jobs" in sections:
        step("kadspec check over the catalogue: 1 process, --workers 2, --jobs 2")
        report["jobs"] = check_catalogue(repeats=1 if args.quick else 2)
    if "growth" in sections:
        step("state counts by network size")
        report["growth"] = growth(
            four_node_cap=10_000 if args.quick else 200_000,
            reductions=("none", "both") if args.quick else tuple(REDUCTIONS),
        )
    if "four-node" in sections:
        if args.four_node_exhaustive:
            step("star-4 exhaustively, in a child process")
            request: Json = {"kind": "explore", "scenario": "star-4", "reduction": "none"}
            if args.four_node_seconds:
                request["max_seconds"] = args.four_node_seconds
        else:
            step("islands-4 exhaustively, in a child process")
            request = {"kind": "explore", "scenario": "islands-4", "reduction": "none"}
        report["four_node_exhaustive"] = child(request, timeout=None)
    if "large" in sections:
        report["large"] = {}
        for name, cap in LARGE:
            step(f"{name} ({'complete' if cap is None else f'to {cap:,} states'}), in a child")
            request = {"kind": "explore", "scenario": name, "reduction": "none"}
            report["large"][name] = child(request | {"max_states": cap}, timeout=3600)
    if "mutants" in sections:
        step("mutants, per engine")
        report["mutants"] = mutants(
            hypothesis="seeds" if args.quick else "all",
            max_examples=100 if args.quick else 400,
            timeout=30 if args.quick else 60,
        )
    report["goals"] = goals(report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_summary(report, args.out)
    return 0


def _announcer(started: float) -> Callable[[str], None]:
    def step(what: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {what}", file=sys.stderr, flush=True)

    return step


def print_summary(report: Json, out: Path) -> None:
    m = report["machine"]
    print(f"\nmachine: {m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, ", end="")
    print(f"load {m['load_average_at_start']}")
    if "throughput" in report:
        t = report["throughput"]
        ref = t["reference_public_functions"]
        print(
            f"trio: {t['states']} states; explorer {t['states_per_second_cpu']:,} states/s CPU "
            f"({t['states_per_second_wall']:,} wall); public functions without memo "
            f"{ref['states_per_second_cpu']:,} states/s CPU"
        )
    if "profile" in report:
        print("\nprofile on trio (own time share):")
        for row in report["profile"]["top_by_own_time"][:8]:
            print(f"  {row['own_share']:6.1%}  {row['calls']:>9,}  {row['function']}")
    if "scale" in report:
        sc = report["scale"]
        print(f"\n{sc['scenario']}: serial {sc['serial']['cpu_seconds']} s CPU", end="")
        print(f" ({sc['serial']['wall_seconds']} s wall); 2 workers ", end="")
        print(f"{sc['workers_2']['wall_seconds']} s wall, workers' CPU ", end="")
        print(
            f"{sc['workers_2']['worker_cpu_seconds']}: speed-up {sc['speedup_2_workers_wall']}x ",
            end="",
        )
        print(f"wall, {sc['speedup_2_workers_cpu_bound']}x CPU-bound; Ray: {sc['ray']}")
    if "jobs" in report and "one_process" in report["jobs"]:
        jb = report["jobs"]
        print(
            f"\nkadspec check, {jb['scenarios']} scenarios, {jb['states']:,} states: "
            f"1 process {jb['one_process']['wall_seconds']} s, --workers 2 "
            f"{jb['each_scenario_over_2_workers']['wall_seconds']} s "
            f"({jb['each_scenario_over_2_workers']['speedup_wall']}x), --jobs 2 "
            f"{jb['scenarios_side_by_side_2_jobs']['wall_seconds']} s "
            f"({jb['scenarios_side_by_side_2_jobs']['speedup_wall']}x); agree: {jb['agree']}"
        )
    elif "jobs" in report:
        print(f"\nkadspec check over the catalogue: {report['jobs']}")
    if "growth" in report:
        print("\nstates by network size (plain / symmetry / partial order / both):")
        for name, row in report["growth"].items():
            runs = row["runs"]
            cells = " / ".join(
                f"{runs[r]['states']:,}{'' if runs[r]['complete'] else '+'}" if r in runs else "-"
                for r in REDUCTIONS
            )
            print(f"  {name:10s} {cells}")
    four = report.get("four_node_exhaustive")
    if four is not None and "states" in four:
        print(
            f"\n4-node exhaustive: {four['scenario']} ({four['reduction']}): {four['states']:,} "
            f"states, {four['wall_seconds']:.0f} s wall, {four['cpu_seconds']:.0f} s CPU, "
            f"peak RSS {four['peak_rss_mib']:,} MiB, complete={four['complete']}, "
            f"violated={four['violated'] or 'none'}"
        )
    elif four is not None:
        print(f"\n4-node exhaustive: {four}")
    if "mutants" in report:
        print("\nmutants: explorer seconds | hypothesis seconds to detect")
        for name, row in report["mutants"].items():
            ex = row["engines"]["explorer"]
            hy = row["engines"]["hypothesis"]
            hy_text = (
                f"{hy['seconds_to_detect']}"
                if hy.get("detected")
                else hy.get("status", "not found")
            )
            mark = "" if ex["detected"] else " NOT DETECTED"
            print(f"  {name:36s} {ex['seconds']:7.2f}{mark} | {hy_text}")
    print("\ngoals:")
    for goal in report["goals"]:
        print(f"  [{'met' if goal['met'] else 'NOT met'}] {goal['goal']}: {goal['measured']}")
    print(f"\n{report['seconds']} s in all; written to {out}")


if __name__ == "__main__":
    sys.exit(main())
