"""Benchmark of the simulated network of reference cores, written as JSON (never asserted).

Issue 8's goal: in the simulated network, N = 1,000 nodes bootstrap, each provides one key and
every key is found once, in under 60 s of wall time in one process, with lookup hop counts
reported against log2(N). Every node starts (spread over the first seconds of virtual time)
with two bootstrap peers among the first nodes, and provides its key the moment it starts.
Once every provide has succeeded, each key is looked up once, from another node chosen by the
seed. Hops of a lookup = the longest chain of replies that led to a peer that answered.

Usage::

    python benchmarks/sim_bench.py --out results/bench-sim.json          # N = 1000
    python benchmarks/sim_bench.py --nodes 100 --out results/bench-sim-100.json
    python benchmarks/sim_bench.py --no-wire --steady-only    # typed messages, one variant
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import MINUTE, SECOND, BootstrapPeer
from kadspec.impl.sim import SimNetwork, sim_addr, sim_peer_id


def run(nodes: int, seed: int, at_start_up: bool, wire: bool) -> dict[str, Any]:
    net = SimNetwork(seed=seed, keep_log=frozenset({"lookup.end"}), through_wire=wire)
    boot_count = min(4, nodes)
    boot = tuple(BootstrapPeer(sim_peer_id(i), (sim_addr(i),)) for i in range(boot_count))
    for index in range(boot_count):  # the bootstrap nodes know each other
        net.add_node(bootstrap=tuple(b for b in boot if b.peer != sim_peer_id(index)))
    for _ in range(nodes - boot_count):
        net.add_node(bootstrap=boot)
    keys = [f"bench-key-{n.index}".encode() for n in net.nodes]
    spread = 5 * SECOND
    wall = time.perf_counter()
    cpu = time.process_time()
    if at_start_up:
        for node, key in zip(net.nodes, keys, strict=True):
            net.start_at(node, node.index * spread // nodes, provide=key)
    else:
        for node in net.nodes:
            net.start_at(node, node.index * spread // nodes)
        net.run(
            until=spread + MINUTE,
            done=lambda: all(n.core.is_ready for n in net.nodes),
            check_every=nodes,
        )
        net.run(until=net.now + 10 * SECOND)  # let the last self-lookups' replies settle
        for node, key in zip(net.nodes, keys, strict=True):
            net.command(node, ev.Provide(net.now, op=node.index, key=key))

    def provided() -> bool:
        return all(
            any(isinstance(o, fx.ProvideOutcome) and o.ok for o in n.outcomes) for n in net.nodes
        )

    all_provided = net.run(until=30 * MINUTE, done=provided, check_every=nodes)
    provide_wall = time.perf_counter() - wall
    provide_virtual = net.now
    chooser = random.Random(seed)
    for n in net.nodes:
        n.log.clear()
    askers = []
    for index, key in enumerate(keys):
        asker = net.nodes[(index + chooser.randrange(1, nodes)) % nodes]
        askers.append(asker)
        net.command(asker, ev.FindProviders(net.now, op=index, key=key))

    def found_all() -> bool:
        return sum(isinstance(o, fx.FindOutcome) for n in net.nodes for o in n.outcomes) >= nodes

    start = net.now
    net.run(until=start + 10 * MINUTE, done=found_all, check_every=nodes)
    wall_total = time.perf_counter() - wall
    cpu_total = time.process_time() - cpu

    found = 0
    for index, asker in enumerate(askers):
        outcomes = [o for o in asker.outcomes if isinstance(o, fx.FindOutcome) and o.op == index]
        if any(net.nodes[index].peer_id in {p.id for p in o.providers} for o in outcomes):
            found += 1
    hops = [
        int(e.get("hops") or 0)
        for n in net.nodes
        for e in n.log
        if e.name == "lookup.end" and e.get("purpose") == "find-providers"
    ]
    attempts = [
        max((o.attempt for o in n.outcomes if isinstance(o, fx.ProvideOutcome)), default=0)
        for n in net.nodes
    ]
    tables = [len(n.core.table) for n in net.nodes]
    return {
        "nodes": nodes,
        "seed": seed,
        "provide": "at start-up" if at_start_up else "once every node is Ready",
        "messages_through_protobuf": wire,
        "all_provided": all_provided,
        "keys_found": found,
        "wall_s": round(wall_total, 2),
        "cpu_s": round(cpu_total, 2),
        "provide_phase_wall_s": round(provide_wall, 2),
        "provide_phase_virtual_ms": provide_virtual,
        "messages_delivered": net.delivered_messages,
        "provide_attempts_max": max(attempts),
        "table_size": {"min": min(tables), "median": statistics.median(tables), "max": max(tables)},
        "find_hops": {
            "log2_n": round(math.log2(nodes), 2),
            "mean": round(statistics.mean(hops), 2) if hops else None,
            "max": max(hops, default=None),
        },
        "goal": {
            "wall_s_under": 60,
            "met": all_provided and found == nodes and wall_total < 60,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/bench-sim.json"))
    parser.add_argument(
        "--no-wire", action="store_true", help="hand messages over typed, skipping protobuf"
    )
    parser.add_argument(
        "--steady-only", action="store_true", help="skip the provide-at-start-up variant"
    )
    args = parser.parse_args()
    wire = not args.no_wire
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg()[0],
        },
        "run": run(args.nodes, args.seed, at_start_up=False, wire=wire),
    }
    if not args.steady_only:
        result["run_provide_at_start_up"] = run(args.nodes, args.seed, True, wire)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
