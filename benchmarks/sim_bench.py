"""Benchmark of the simulated network of reference cores, written as JSON (never asserted).

Issue 8's goal: in the simulated network, N = 1,000 nodes bootstrap, each provides one key and
every key is found once, in under 60 s of wall time in one process, with lookup hop counts
reported against log2(N).

Every node starts (spread over the first 5 s of virtual time) with the first four nodes as
bootstrap peers, each node's list in its own seeded order (``--bootstrap-order fixed``: one
order for all). Two variants: ``steady`` waits until every node is Ready, then every node
provides its key; ``start-up`` has each node provide the moment it starts, before it knows any
peer. Once every provide has succeeded, each key is looked up once, from another node chosen by
the seed. Hops of a lookup = the longest chain of replies that led to a peer that answered.

Times: ``wall_s`` is what the goal names; ``cpu_s`` is this process's CPU time. On a shared
machine (the development box runs nine agents on two cores) wall time is inflated by the
others' load, so read ``cpu_s`` as the cost of the run and ``load_average`` for the context.

A smaller run is profiled (cProfile on CPU time) and its top functions go in the JSON.

Usage::

    python benchmarks/sim_bench.py --out results/bench-sim.json     # N = 1000, curve, profile
    python benchmarks/sim_bench.py --nodes 200 --curve '' --profile-nodes 0 --out /tmp/b.json
    python benchmarks/sim_bench.py --no-typed ...   # without the typed-message headline run
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import platform
import pstats
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import MINUTE, SECOND, BootstrapPeer
from kadspec.impl.sim import SimNetwork, sim_addr, sim_peer_id

T = TypeVar("T")

GOAL_WALL_S = 60
GOAL_NODES = 1000
VARIANTS = ("steady", "start-up")


class Clock:
    """Wall and CPU time of the phases of one run."""

    def __init__(self, net: SimNetwork) -> None:
        self.net = net
        self.phases: dict[str, dict[str, float | int]] = {}
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        self._virtual = net.now
        self.start_wall, self.start_cpu = self._wall, self._cpu

    def lap(self, phase: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.phases[phase] = {
            "wall_s": round(wall - self._wall, 2),
            "cpu_s": round(cpu - self._cpu, 2),
            "virtual_ms": self.net.now - self._virtual,
        }
        self._wall, self._cpu, self._virtual = wall, cpu, self.net.now

    def totals(self) -> tuple[float, float]:
        return self._wall - self.start_wall, self._cpu - self.start_cpu


def hop_summary(hops: list[int], nodes: int) -> dict[str, Any]:
    log2_n = math.log2(nodes)
    if not hops:
        return {"lookups": 0, "log2_n": round(log2_n, 2)}
    ordered = sorted(hops)

    def percentile(fraction: float) -> int:
        return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]

    mean = statistics.mean(hops)
    return {
        "lookups": len(hops),
        "log2_n": round(log2_n, 2),
        "mean": round(mean, 2),
        "p50": percentile(0.50),
        "p95": percentile(0.95),
        "max": ordered[-1],
        "mean_over_log2_n": round(mean / log2_n, 3),
    }


def lookup_hops(net: SimNetwork, purpose: str) -> list[int]:
    return [
        int(e.get("hops") or 0)
        for n in net.nodes
        for e in n.log
        if e.name == "lookup.end" and e.get("purpose") == purpose
    ]


def table_holes(net: SimNetwork, buckets: int = 4) -> dict[str, Any]:
    """How many nodes hold no contact at all in each of the farthest parts of the key space.

    Bucket i of a node holds peers whose key first differs from its own at bit i: half of the
    network for bucket 0, a quarter for bucket 1 ... With N = 1,000 each of these parts has
    dozens of nodes, so an empty bucket is a hole: a lookup towards that part, started there and
    answered by neighbours with the same hole, ends in the wrong place (issue 8's missed key).
    """
    sizes = [n.core.table.bucket_sizes() for n in net.nodes]
    return {
        "at_virtual_ms": net.now,
        "nodes_with_empty_bucket": {
            str(i): sum(1 for b in sizes if not b.get(i)) for i in range(buckets)
        },
        "mean_bucket_size": {
            str(i): round(sum(b.get(i, 0) for b in sizes) / len(sizes), 1) for i in range(buckets)
        },
    }


def run(
    nodes: int, seed: int, variant: str, wire: bool, shuffle_bootstrap: bool = True
) -> dict[str, Any]:
    """One simulated run; see the module docstring."""
    load_at_start = os.getloadavg()[0]
    net = SimNetwork(seed=seed, keep_log=frozenset({"lookup.end"}), through_wire=wire)
    boot_count = min(4, nodes)
    boot = tuple(BootstrapPeer(sim_peer_id(i), (sim_addr(i),)) for i in range(boot_count))
    # Each node's list in its own seeded order (a stream apart from the network's): go dials
    # its bootstrap peers in random order (BOOT-01), while the core, which draws no random
    # numbers, dials them in the order it is given. With one order for all, every node joins
    # through nodes 0 and 1, and the half of the key space they are not in is reached by chance.
    order = random.Random(1_000_003 * seed + 17)
    for index in range(nodes):
        peers = [b for b in boot if b.peer != sim_peer_id(index)]  # the first ones know each other
        if shuffle_bootstrap:
            order.shuffle(peers)
        net.add_node(bootstrap=tuple(peers))
    keys = [f"bench-key-{n.index}".encode() for n in net.nodes]
    spread = 5 * SECOND
    clock = Clock(net)

    def ready() -> bool:
        return all(n.core.is_ready for n in net.nodes)

    if variant == "start-up":
        for node, key in zip(net.nodes, keys, strict=True):
            net.start_at(node, node.index * spread // nodes, provide=key)
        all_ready = None
    else:
        for node in net.nodes:
            net.start_at(node, node.index * spread // nodes)
        all_ready = net.run(until=spread + MINUTE, done=ready, check_every=nodes)
        net.run(until=net.now + 10 * SECOND)  # let the last self-lookups' replies settle
        clock.lap("bootstrap")
        holes = table_holes(net)
        for node, key in zip(net.nodes, keys, strict=True):
            net.command(node, ev.Provide(net.now, op=node.index, key=key))

    def provided() -> bool:
        return all(
            any(isinstance(o, fx.ProvideOutcome) and o.ok for o in n.outcomes) for n in net.nodes
        )

    all_provided = net.run(until=30 * MINUTE, done=provided, check_every=nodes)
    clock.lap("provide" if variant == "steady" else "bootstrap and provide")
    if variant == "start-up":
        holes = table_holes(net)
    provide_hops = lookup_hops(net, "provide")
    for n in net.nodes:
        n.log.clear()
    chooser = random.Random(seed)
    askers = []
    for index, key in enumerate(keys):
        asker = net.nodes[(index + chooser.randrange(1, nodes)) % nodes]
        askers.append(asker)
        net.command(asker, ev.FindProviders(net.now, op=index, key=key))

    def found_all() -> bool:
        return sum(isinstance(o, fx.FindOutcome) for n in net.nodes for o in n.outcomes) >= nodes

    net.run(until=net.now + 10 * MINUTE, done=found_all, check_every=nodes)
    clock.lap("find")
    wall, cpu = clock.totals()

    found = 0
    missed = []
    for index, asker in enumerate(askers):
        outcomes = [o for o in asker.outcomes if isinstance(o, fx.FindOutcome) and o.op == index]
        if any(net.nodes[index].peer_id in {p.id for p in o.providers} for o in outcomes):
            found += 1
        else:
            missed.append({"provider": index, "asker": asker.index, "outcomes": len(outcomes)})
    attempts = [
        max((o.attempt for o in n.outcomes if isinstance(o, fx.ProvideOutcome)), default=0)
        for n in net.nodes
    ]
    tables = [len(n.core.table) for n in net.nodes]
    complete = bool(all_provided) and found == nodes
    return {
        "nodes": nodes,
        "seed": seed,
        "variant": variant,
        "provide": "at start-up" if variant == "start-up" else "once every node is Ready",
        "messages_through_protobuf": wire,
        "bootstrap_order": "shuffled per node (seeded)" if shuffle_bootstrap else "fixed",
        "far_bucket_refresh": (
            "after each self-lookup the core looks up, one at a time, an ID in every empty "
            "bucket up to its deepest non-empty one (BOOT-03); buckets that hold a peer but "
            "fewer than k are not looked up (see table_holes_when_providing)"
        ),
        "all_ready_before_providing": all_ready,
        "all_provided": all_provided,
        "keys_found": found,
        "keys_missed": missed[:10],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "load_average_1min_at_start_and_end": [
            round(load_at_start, 2),
            round(os.getloadavg()[0], 2),
        ],
        "phases": clock.phases,
        "virtual_ms": net.now,
        "messages_delivered": net.delivered_messages,
        "requests_by_type": dict(sorted(net.requests_by_type.items())),
        "events_run": net.events_run,
        "frames_decoded_from_cache": net.decode_cache_hits,
        "provide_attempts_max": max(attempts),
        "table_size": {"min": min(tables), "median": statistics.median(tables), "max": max(tables)},
        "table_holes_when_providing": holes,
        "find_hops": hop_summary(lookup_hops(net, "find-providers"), nodes),
        "provide_hops": hop_summary(provide_hops, nodes),
        "goal": {
            "nodes_at_least": GOAL_NODES,
            "wall_s_under": GOAL_WALL_S,
            "met": complete and nodes >= GOAL_NODES and wall < GOAL_WALL_S,
            "met_in_cpu_time": complete and nodes >= GOAL_NODES and cpu < GOAL_WALL_S,
        },
    }


def profile(nodes: int, seed: int, wire: bool, top: int = 25) -> dict[str, Any]:
    """Where the CPU time of a smaller run goes (cProfile with a CPU-time timer)."""
    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(run, nodes, seed, "steady", wire)
    stats = pstats.Stats(profiler)
    root = str(Path(__file__).resolve().parent.parent) + os.sep
    rows = []
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (path, line, name), (_, calls, own, cumulative, _) in entries.items():
        where = path.replace(root, "")
        rows.append(
            {
                "function": f"{where}:{line}({name})",
                "calls": calls,
                "own_s": round(own, 3),
                "cumulative_s": round(cumulative, 3),
            }
        )
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    total: float = stats.total_tt  # type: ignore[attr-defined]
    return {
        "nodes": nodes,
        "variant": "steady",
        "messages_through_protobuf": wire,
        "timer": "process_time (CPU); cProfile itself slows the run about 2-3x",
        "total_s": round(total, 2),
        "top_by_own_time": rows[:top],
    }


def isolated(cycle_gc: bool, function: Callable[..., T], *arguments: Any) -> T:
    """``function(*arguments)``; without ``cycle_gc`` no collection walks the live network
    during it, and one collection follows it.

    A run's garbage is freed by reference counting (peak RSS at N = 1,000 is 467 MB with or
    without collections); what is cyclic, the network itself once the run is over, is collected
    right after, outside the run's clock. With the threshold raised, the young collections
    still took 5% of a 1,000-node run's CPU, all of it walking live objects."""
    if not cycle_gc:
        gc.disable()
    try:
        return function(*arguments)
    finally:
        gc.enable()
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000, help="the headline N")
    parser.add_argument(
        "--curve", default="100,200,500", help="smaller N (steady variant), comma-separated"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/bench-sim.json"))
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"headline variants: {VARIANTS}"
    )
    parser.add_argument(
        "--no-wire", action="store_true", help="hand every message over typed, skipping protobuf"
    )
    parser.add_argument(
        "--typed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the headline steady run with typed messages (default; --no-typed skips it)",
    )
    parser.add_argument("--profile-nodes", type=int, default=300, help="0: no profile")
    parser.add_argument(
        "--bootstrap-order",
        choices=("shuffled", "fixed"),
        default="shuffled",
        help="each node's bootstrap list in its own seeded order (default), or all in one order",
    )
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=200_000,
        help="allocations between young collections (Python's default: 700; 0 keeps it)",
    )
    parser.add_argument(
        "--cycle-gc",
        choices=("off", "on"),
        default="off",
        help="off (default): no cycle collection during a run, one after it",
    )
    args = parser.parse_args()
    if args.gc_threshold:
        # Millions of long-lived objects (a thousand cores' tables, peers, records) make every
        # collection walk them all; the runs allocate far more than they keep. 13% of the CPU
        # of a 300-node run went to collections at the default threshold.
        gc.set_threshold(args.gc_threshold, 20, 100)
    cycle_gc = args.cycle_gc == "on"

    shuffle = args.bootstrap_order == "shuffled"

    def measured(nodes: int, variant: str, wire: bool) -> dict[str, Any]:
        return isolated(cycle_gc, run, nodes, args.seed, variant, wire, shuffle)

    wire = not args.no_wire
    load_before = os.getloadavg()
    headline = {v: measured(args.nodes, v, wire) for v in args.variants.split(",") if v}
    if args.typed and wire:
        headline["steady-typed"] = measured(args.nodes, "steady", False)
    curve = [
        measured(int(n), "steady", wire)
        for n in args.curve.split(",")
        if n.strip() and int(n) != args.nodes
    ]
    result: dict[str, Any] = {
        "goal": (
            "issue 8: in the simulated network, 1,000 nodes bootstrap, each provides one key "
            "and every key is found once, in under 60 s of wall time in one process"
        ),
        "goal_met": {name: r["goal"] for name, r in headline.items()},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "gc_threshold": gc.get_threshold(),
            "cycle_gc_during_runs": cycle_gc,
            # other jobs on a shared machine often run niced: a run at 0 gets more of a core
            "niceness": os.nice(0),
            "note": (
                "measured on a machine shared with other jobs: wall times are inflated by "
                "their load; cpu_s is this process's own CPU time"
            ),
        },
        "headline": headline,
        "curve": [
            {
                "nodes": r["nodes"],
                "wall_s": r["wall_s"],
                "cpu_s": r["cpu_s"],
                "messages_delivered": r["messages_delivered"],
                "keys_found": r["keys_found"],
                "find_hops": r["find_hops"],
            }
            for r in sorted([*curve, *headline.values()], key=lambda r: r["nodes"])
            if r["variant"] == "steady" and r["messages_through_protobuf"] == wire
        ],
    }
    if args.profile_nodes:
        result["profile"] = isolated(cycle_gc, profile, args.profile_nodes, args.seed, wire)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {
        name: {k: r[k] for k in ("wall_s", "cpu_s", "keys_found", "find_hops", "goal")}
        for name, r in headline.items()
    }
    print(json.dumps({"headline": summary, "curve": result["curve"]}, indent=2))


if __name__ == "__main__":
    main()
