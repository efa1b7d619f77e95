"""Run a scenario on reference cores in the in-process simulated network, recorded as a Run.

This is an adapter without processes or sockets: :class:`RecordingNetwork` is the seeded
:class:`~kadspec.impl.sim.SimNetwork` with a recorder at the one point where events enter a
core, writing the protocol v1 events an adapter would emit (network-side events from the raw
event, node-side events from the effects the core, or a :mod:`breakage` wrapper around it,
returns) and the requests, replies and snapshots of the scenario. Time is the simulation's
virtual clock (ms), so a run is exact and takes milliseconds: the judge's tests and the
breakage tests use it, and live runs through the runner then confirm on real hosts.

Simulated addresses are written as loopback TCP multiaddrs (``/sim/3`` is
``/ip4/127.0.0.1/tcp/40003``; a listener-side ephemeral address gets a port from 50000 up), so
the judge classifies them under the loopback profile as it does a live run's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kadspec.conformance.breakage import Breakage
from kadspec.conformance.protocol import (
    PROTOCOL,
    Capabilities,
    Entry,
    Hello,
    NodeRecord,
    Run,
    base58,
    key_bytes,
    unbase58,
)
from kadspec.conformance.scenarios import Call, Scenario, Snapshot, Wait, resolve
from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import BootstrapPeer, ModeSetting
from kadspec.impl.sim import SimNetwork, SimNode, sim_addr
from kadspec.impl.wire import KadMessage, PeerInfo

HELLO = Hello(
    PROTOCOL,
    "kadspec-reference-sim",
    "0.1.0",
    Capabilities(auto_mode=True, timings=True, crash_restart=True, events=True),
)
_TIMING_FIELDS = frozenset(
    {"refresh_interval", "request_deadline", "record_ttl", "republish_interval", "retry_base",
     "retry_cap", "gc_interval"}
)  # fmt: skip


def addr_text(addr: bytes) -> str:
    text = addr.decode(errors="replace")
    parts = text.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "sim":
        return f"/ip4/127.0.0.1/tcp/{40000 + int(parts[1])}"
    if len(parts) == 4 and parts[0] == "sim" and parts[2] == "ephemeral":
        return f"/ip4/127.0.0.1/tcp/{50000 + int(parts[3])}"
    return text if text.startswith("/") else "/" + text


def _peers(infos: tuple[PeerInfo, ...]) -> list[dict[str, Any]]:
    return [{"peer_id": base58(p.id), "addrs": [addr_text(a) for a in p.addrs]} for p in infos]


def _key(message: KadMessage) -> str | None:
    return base58(message.key) if message.key else None


class RecordingNetwork(SimNetwork):
    """A SimNetwork that writes the run's entries as it goes."""

    def __init__(self, seed: int = 0, breakage: Breakage | None = None) -> None:
        super().__init__(seed=seed, latency=(1, 5))
        self.breakage = breakage
        self.entries: list[Entry] = []
        self.name_of: dict[int, str] = {}
        self.key_text: dict[bytes, str] = {}
        self._sent_to: dict[tuple[int, int], bytes] = {}
        self._asked_by: dict[tuple[int, int], bytes] = {}
        self._conns: dict[tuple[int, int], tuple[bytes, str, str]] = {}
        self.protocols: dict[int, dict[bytes, tuple[str, ...]]] = {}
        #: (node index, "provide"|"find", key bytes) -> request ids waiting for the outcome
        self.waiting: dict[tuple[int, str, bytes], list[int]] = {}

    # --- entries -----------------------------------------------------------------------------

    def add(
        self, kind: Any, node: str, payload: Mapping[str, Any], request: int | None = None
    ) -> None:
        self.entries.append(Entry(len(self.entries), self.now, kind, node, payload, request))

    def event(self, node: SimNode, name: str, **fields: Any) -> None:
        payload = {"type": "event", "node": self.name_of[node.index], "time_ms": self.now,
                   "event": name, **fields}  # fmt: skip
        self.add("event", self.name_of[node.index], payload)

    def reply(self, rid: int, node: str, result: Mapping[str, Any] | None = None,
              error: tuple[str, str] | None = None) -> None:  # fmt: skip
        if error is None:
            payload: dict[str, Any] = {"type": "reply", "id": rid, "ok": True,
                                       "result": dict(result or {})}  # fmt: skip
        else:
            payload = {"type": "reply", "id": rid, "ok": False,
                       "error": {"kind": error[0], "message": error[1]}}  # fmt: skip
        self.add("reply", node, payload, rid)

    # --- the recorder at the core's door --------------------------------------------------------

    def _feed(self, node: SimNode, event: ev.Event) -> list[fx.Effect]:
        self._network_side(node, event)
        effects = node.core.handle(event)
        self._node_side(node, event, effects)
        for effect in effects:
            handler = self._handlers.get(type(effect)) or self._handler_of(effect)
            handler(node, effect)
        return effects

    def crash(self, node: SimNode) -> None:
        super().crash(node)
        if self.breakage is not None:
            node.core = self.breakage.wrap(node.core)  # type: ignore[assignment]
        self.protocols[node.index] = {}

    def _network_side(self, node: SimNode, event: ev.Event) -> None:
        i = node.index
        if isinstance(event, ev.ConnectionOpened):
            fields = (event.peer, event.direction.value, addr_text(event.remote_addr))
            self._conns[(i, event.connection)] = fields
            self.event(node, "connection_opened", peer=base58(event.peer),
                       direction=fields[1], remote_addr=fields[2])  # fmt: skip
        elif isinstance(event, ev.ConnectionClosed):
            peer, direction, remote = self._conns.pop(
                (i, event.connection), (event.peer, "outbound", "/ip4/127.0.0.1/tcp/1")
            )
            self.protocols.setdefault(i, {}).pop(peer, None)
            self.event(node, "connection_closed", peer=base58(peer), direction=direction,
                       remote_addr=remote)  # fmt: skip
        elif isinstance(event, ev.IdentifyReceived):
            protocols = tuple(sorted(event.protocols))
            if (i, event.connection) in self._conns:
                self.protocols.setdefault(i, {})[event.peer] = protocols
            observed = None if event.observed_addr is None else addr_text(event.observed_addr)
            self.event(node, "identify_received", peer=base58(event.peer),
                       listen_addrs=[addr_text(a) for a in event.listen_addrs],
                       observed_addr=observed, protocols=list(protocols))  # fmt: skip
        elif isinstance(event, ev.RequestReceived):
            self._asked_by[(i, event.stream)] = event.peer
            m = event.message
            self.event(node, "kad_request_received", kad_type=m.type.name, peer=base58(event.peer),
                       key=_key(m), providers=_peers(m.provider_peers))  # fmt: skip
        elif isinstance(event, ev.ResponseReceived):
            asked = self._sent_to.get((i, event.request))
            m = event.message
            if asked is not None:
                self.event(node, "kad_response_received", kad_type=m.type.name, peer=base58(asked),
                           key=_key(m), closer_peers=_peers(m.closer_peers),
                           provider_peers=_peers(m.provider_peers))  # fmt: skip

    def _node_side(self, node: SimNode, event: ev.Event, effects: list[fx.Effect]) -> None:
        i = node.index
        for effect in effects:
            if isinstance(effect, fx.SendRequest):
                self._sent_to[(i, effect.request)] = effect.peer
                m = effect.message
                self.event(node, "kad_request_sent", kad_type=m.type.name, peer=base58(effect.peer),
                           key=_key(m), providers=_peers(m.provider_peers))  # fmt: skip
            elif isinstance(effect, fx.SendResponse):
                peer = self._asked_by.pop((i, effect.stream), None)
                m = effect.message
                if peer is not None:
                    self.event(node, "kad_response_sent", kad_type=m.type.name,
                               peer=base58(peer), key=_key(m), closer_peers=_peers(m.closer_peers),
                               provider_peers=_peers(m.provider_peers))  # fmt: skip
            elif isinstance(effect, fx.ResetStream):
                self._asked_by.pop((i, effect.stream), None)
            elif isinstance(effect, fx.ModeChanged):
                self.event(node, "mode_changed", mode=effect.mode.value)
            elif isinstance(effect, fx.LogEvent) and effect.name in ("table.add", "table.remove"):
                peer = bytes.fromhex(str(effect.get("peer")))
                entry = node.core.table.get(peer)
                addrs = [addr_text(a) for a in entry.addrs] if entry is not None else []
                name = (
                    "routing_table_added" if effect.name == "table.add" else "routing_table_removed"
                )
                self.event(node, name, peer=base58(peer), addrs=addrs)
            elif isinstance(effect, fx.ReportOutcome):
                self._outcome(node, effect.outcome)

    def _outcome(self, node: SimNode, outcome: fx.ProvideOutcome | fx.FindOutcome) -> None:
        text = self.key_text.get(outcome.key, outcome.key.decode(errors="replace"))
        if isinstance(outcome, fx.ProvideOutcome):
            result: dict[str, Any] = {
                "outcome": "success" if outcome.ok else "failure",
                "count": outcome.delivered,
                "reason": outcome.reason or None,
            }
            self.event(node, "provide_outcome", key=text, **result)
            op = "provide"
        else:
            result = {"providers": _peers(outcome.providers)}
            self.event(node, "find_outcome", key=text, **result)
            op = "find"
        for rid in self.waiting.pop((node.index, op, outcome.key), []):
            self.reply(rid, self.name_of[node.index], result)


def simulate(scenario: Scenario, breakage: Breakage | None = None, seed: int = 0) -> Run:
    """The run of ``scenario`` on simulated reference nodes (each wrapped by ``breakage``)."""
    net = RecordingNetwork(seed, breakage)
    nodes: dict[str, SimNode] = {}
    records: dict[str, NodeRecord] = {}
    addresses: dict[str, str] = {}
    next_id = [0]
    answered: set[int] = set()

    def request(op: str, args: Mapping[str, Any]) -> int:
        next_id[0] += 1
        rid = next_id[0]
        net.add("request", str(args.get("node", "")),
                {"type": "request", "id": rid, "op": op, "args": dict(args)})  # fmt: skip
        return rid

    def reply(rid: int, node: str, result: Mapping[str, Any] | None = None,
              error: tuple[str, str] | None = None) -> None:  # fmt: skip
        answered.add(rid)
        net.reply(rid, node, result, error)

    def running(name: str) -> SimNode | None:
        node = nodes.get(name)
        return node if node is not None and node.up else None

    def timeout(rid: int, name: str, waiting: tuple[int, str, bytes]) -> None:
        if rid in net.waiting.get(waiting, []):
            net.waiting[waiting].remove(rid)
            reply(rid, name, error=("timeout", "no outcome within the request's bound"))

    def call(step: Call) -> None:
        args = resolve(dict(step.args), addresses)
        name = str(args.get("node", ""))
        rid = request(step.op, args)
        node = running(name)
        if step.op == "start":
            bootstrap = []
            for addr in args.get("bootstrap", []):
                peer = unbase58(addr.rsplit("/p2p/", 1)[1])
                target = next(n for n in net.nodes if n.peer_id == peer)
                bootstrap.append(BootstrapPeer(peer, (sim_addr(target.index),)))
            timings = {k: int(v) for k, v in (args.get("timings") or {}).items()
                       if k in _TIMING_FIELDS}  # fmt: skip
            setting = ModeSetting(str(args.get("mode", "server")))
            new = net.add_node(mode=setting, bootstrap=tuple(bootstrap), **timings)  # type: ignore[arg-type]
            if breakage is not None:
                new.core = breakage.wrap(new.core)  # type: ignore[assignment]
            net.name_of[new.index] = name
            nodes[name] = new
            peer_id = base58(new.peer_id)
            listen = [addr_text(sim_addr(new.index))]
            addresses[name] = f"{listen[0]}/p2p/{peer_id}"
            records[name] = NodeRecord(name, args, peer_id)
            reply(rid, name, {"peer_id": peer_id, "listen_addrs": listen})
            net.start(new)
            return
        if step.op == "restart" and name in nodes:
            net.restart(nodes[name])  # a crashed node comes back with its identity and store
            reply(rid, name, {})
            return
        if node is None:
            reply(rid, name, error=("unknown-node", f"no running node {name!r}"))
            return
        if step.op in ("provide", "find_providers"):
            key = key_bytes(str(args["key"]))
            net.key_text[key] = str(args["key"])
            kind = "provide" if step.op == "provide" else "find"
            waiting = (node.index, kind, key)
            net.waiting.setdefault(waiting, []).append(rid)
            net.at(net.now + step.timeout_ms, lambda: timeout(rid, name, waiting))
            event: ev.Event = (
                ev.Provide(net.now, op=rid, key=key)
                if kind == "provide"
                else ev.FindProviders(net.now, op=rid, key=key)
            )
            net.command(node, event)
            if step.wait:
                net.run(net.now + step.timeout_ms + 1, done=lambda: rid in answered)
        elif step.op in ("stop", "crash"):
            net.crash(node)
            reply(rid, name, {})
        elif step.op == "set_mode":
            net.command(node, ev.SetMode(net.now, ModeSetting(str(args["mode"]))))
            reply(rid, name, {})
        elif step.op == "dial":
            reply(rid, name, error=("unsupported", "the simulation dials only through the core"))
        else:
            reply(rid, name, error=("bad-request", f"unknown op {step.op!r}"))

    def snapshot(names: tuple[str, ...]) -> None:
        for name in names or tuple(n for n in nodes if running(n)):
            node = running(name)
            if node is None:
                continue
            rid = request("snapshot", {"node": name})
            net.add("snapshot", name, _snapshot(net, node), rid)
            answered.add(rid)

    for step in scenario.steps:
        if isinstance(step, Call):
            call(step)
        elif isinstance(step, Wait):
            net.run(net.now + step.ms)
        elif isinstance(step, Snapshot):
            snapshot(step.nodes)
    pending = [rid for rids in net.waiting.values() for rid in rids]
    if pending:
        longest = max((s.timeout_ms for s in scenario.steps if isinstance(s, Call)), default=0)
        net.run(net.now + longest + 1, done=lambda: not any(net.waiting.values()))
    return Run(
        hello=HELLO,
        scenario=scenario.name,
        nodes=tuple(records.values()),
        entries=tuple(net.entries),
        adapter="simulated reference cores",
        duration_ms=net.now,
    )


def _snapshot(net: RecordingNetwork, node: SimNode) -> dict[str, Any]:
    core = node.core
    i = node.index
    connections = []
    for peer, conns in core.connections().items():
        for conn, direction in conns.items():
            remote = net._conns.get((i, conn), (peer, direction.value, "/ip4/127.0.0.1/tcp/1"))[2]
            connections.append(
                {"peer_id": base58(peer), "direction": direction.value, "remote_addr": remote}
            )
    records = []
    for key in net.key_text:
        for r in core.store.get(key, net.now):
            records.append({"key": base58(r.key), "provider": base58(r.provider),
                            "addrs": [addr_text(a) for a in r.addrs],
                            "expires_at_ms": r.expires_at})  # fmt: skip
    return {
        "peer_id": base58(node.peer_id),
        "mode": core.mode.value,
        "listen_addrs": [addr_text(sim_addr(i))],
        "external_addrs": [addr_text(a) for a in sorted(core.addresses.confirmed)],
        "connections": connections,
        "routing_table": [
            {"peer_id": base58(e.peer), "addrs": [addr_text(a) for a in e.addrs]}
            for e in core.table
        ],
        "protocols": {base58(p): list(ps) for p, ps in net.protocols.get(i, {}).items()},
        "provider_records": records,
        "time_ms": net.now,
    }


__all__ = ["HELLO", "RecordingNetwork", "addr_text", "simulate"]
