"""Counterexamples for people: numbered steps, node names, what changed, the requirement broken.

Also the ITF-style JSON form of a trace (the trace format Quint and Apalache use), so a
counterexample can be kept as a file and read by other tools.
"""

from __future__ import annotations

from typing import Any

from kadspec.engines.explorer import Counterexample
from kadspec.models.actions import Action
from kadspec.models.checks import sent_messages
from kadspec.models.state import NodeState, World
from kadspec.spec import requirement


def node_changes(world: World, before: NodeState, after: NodeState, n: int) -> list[str]:
    """What a reader needs to know about one node's change, in a few words each."""
    name = world.config.name
    out: list[str] = []
    if before.up != after.up:
        out.append("up" if after.up else "down")
    if before.mode != after.mode:
        out.append(f"mode {before.mode.name.lower()} -> {after.mode.name.lower()}")
    if after.confirmed and not before.confirmed:
        out.append("external address confirmed")
    elif after.candidate and not before.candidate:
        out.append("candidate address observed")
    for p, (old, new) in enumerate(zip(before.peers, after.peers, strict=True)):
        if old.in_table != new.in_table:
            out.append(f"{'+' if new.in_table else '-'}{name(p)} in table")
        if old.conn != new.conn:
            out.append(
                f"{'connected to' if new.conn else 'disconnected from'} {name(p)}"
                + (f" ({new.conn.name.lower()})" if new.conn else "")
            )
        if old.proto != new.proto:
            out.append(f"learns {name(p)} is {new.proto.name.lower()}")
        if old.failed != new.failed and new.failed:
            out.append(f"{name(p)} failed")
    if before.self_lookup_done != after.self_lookup_done and after.self_lookup_done:
        out.append("self-lookup done")
    for k, (old_p, new_p) in enumerate(zip(before.provides, after.provides, strict=True)):
        if (old_p.phase, old_p.outcome) != (new_p.phase, new_p.outcome):
            outcome = "" if new_p.outcome.value == 0 else f", {new_p.outcome.name.lower()}"
            out.append(f"provide key{k}: {new_p.phase.name.lower()}{outcome}")
    added = after.records - before.records
    out += [
        f"stores record key{r.key}->{name(r.provider)} (expires {r.expires})"
        for r in added
        if not any((o.key, o.provider) == (r.key, r.provider) for o in before.records)
    ]
    return out


def changes(before: World, action: Action, after: World) -> str:
    parts = []
    for n, (old, new) in enumerate(zip(before.nodes, after.nodes, strict=True)):
        if old is not new and old != new:
            said = node_changes(after, old, new, n)
            if said:
                parts.append(f"{after.config.name(n)}: " + ", ".join(said))
    sent = len(sent_messages(before, action, after))
    if after.clock != before.clock:
        parts.append(f"clock {before.clock} -> {after.clock}")
    if sent > 0:
        parts.append(f"{sent} message{'s' if sent > 1 else ''} sent")
    return "; ".join(parts)


def render(counterexample: Counterexample, *, title: str = "Counterexample") -> str:
    """The trace as numbered steps, each with what changed, then the requirements broken."""
    lines = [f"{title} ({len(counterexample.steps)} steps):"]
    before = counterexample.initial
    for number, step in enumerate(counterexample.steps, 1):
        said = step.action.describe(before)
        lines.append(f"  {number:>2}. {said}")
        delta = changes(before, step.action, step.world)
        if delta:
            lines.append(f"      {delta}")
        before = step.world
    for violation in counterexample.violations:
        req = requirement(violation.requirement)
        lines.append(f"  broken: {req.id} {req.level} - {req.title}")
        lines.append(f"          {violation.detail}")
    return "\n".join(lines)


def to_itf(counterexample: Counterexample) -> dict[str, Any]:
    """The trace in ITF JSON (https://apalache-mc.org/docs/adr/015adr-trace.html)."""

    def state(world: World, action: str) -> dict[str, Any]:
        nodes = []
        for n, s in enumerate(world.nodes):
            nodes.append(
                {
                    "name": world.config.name(n),
                    "up": s.up,
                    "mode": s.mode.name,
                    "confirmed": s.confirmed,
                    "table": {"#set": [world.config.name(p) for p in s.table()]},
                    "connections": {
                        "#map": [
                            [world.config.name(p), v.conn.name]
                            for p, v in enumerate(s.peers)
                            if v.conn
                        ]
                    },
                    "provides": [
                        {
                            "phase": p.phase.name,
                            "outcome": p.outcome.name,
                            "delivered_to": {"#bigint": str(p.delivered_to)},
                        }
                        for p in s.provides
                    ],
                    "records": {
                        "#set": [
                            [r.key, world.config.name(r.provider), {"#bigint": str(r.expires)}]
                            for r in sorted(s.records, key=lambda r: (r.key, r.provider))
                        ]
                    },
                }
            )
        return {
            "action": action,
            "clock": {"#bigint": str(world.clock)},
            "nodes": nodes,
            "in_flight": {"#bigint": str(len(world.messages()))},
        }

    states = [state(counterexample.initial, "init")]
    before = counterexample.initial
    for step in counterexample.steps:
        states.append(state(step.world, step.action.describe(before)))
        before = step.world
    return {
        "#meta": {
            "format": "ITF",
            "source": "kadspec",
            "violated": list(counterexample.requirements),
        },
        "vars": ["action", "clock", "nodes", "in_flight"],
        "states": states,
    }
