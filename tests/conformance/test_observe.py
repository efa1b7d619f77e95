"""Tests for kadspec.conformance.observe: a run becomes the model's observable projection with
real 256-bit positions, ghosts written from events, and addresses classified by a profile."""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import pytest

from kadspec.conformance.observe import LOOPBACK, PUBLIC, Moment, Observer, position, strip_peer
from kadspec.conformance.protocol import (
    PROTOCOL,
    Capabilities,
    Entry,
    Hello,
    NodeRecord,
    Run,
    base58,
    unbase58,
    wire_key,
)
from kadspec.models.state import Addr, Conn, Proto

KAD = "/ipfs/kad/1.0.0"


@functools.cache
def simulated(scenario: str, breakage: str | None = None) -> Run:
    """The run of a named scenario on simulated reference cores (deterministic: cached, so the
    test files share one run per scenario and breakage)."""
    from kadspec.conformance.breakage import BREAKAGES
    from kadspec.conformance.scenarios import SCENARIOS
    from kadspec.conformance.simulate import simulate

    return simulate(SCENARIOS[scenario], BREAKAGES[breakage] if breakage else None)


def peer(n: int) -> str:
    """A peer ID in base58btc: an identity multihash, as libp2p prints an ed25519 key's."""
    return str(base58(bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + bytes([n]) * 32))


def addr(n: int) -> str:
    return f"/ip4/127.0.0.1/tcp/{4000 + n}"


class RunBuilder:
    """A run written by hand: requests, replies, events and snapshots with seq and time."""

    def __init__(self, events: bool = True, timings: bool = True) -> None:
        self.entries: list[Entry] = []
        self.nodes: list[NodeRecord] = []
        self.rid = 0
        self.events = events
        self.timings = timings

    def _add(
        self, kind: Any, node: str, time: int, payload: dict[str, Any], rid: int | None
    ) -> int:
        self.entries.append(Entry(len(self.entries), time, kind, node, payload, rid))
        return len(self.entries) - 1

    def request(self, time: int, op: str, **args: Any) -> int:
        self.rid += 1
        payload = {"type": "request", "id": self.rid, "op": op, "args": args}
        self._add("request", str(args.get("node", "")), time, payload, None)
        return self.rid

    def reply(
        self,
        time: int,
        rid: int,
        node: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> int:
        payload: dict[str, Any] = {"type": "reply", "id": rid, "ok": error is None}
        if error is None:
            payload["result"] = result or {}
        else:
            payload["error"] = {"kind": error, "message": error}
        return self._add("reply", node, time, payload, rid)

    def start(
        self,
        time: int,
        name: str,
        n: int,
        mode: str = "server",
        bootstrap: tuple[int, ...] = (),
        timings: dict[str, int] | None = None,
    ) -> None:
        args = {
            "node": name,
            "mode": mode,
            "listen": "/ip4/127.0.0.1/tcp/0",
            "bootstrap": [f"{addr(b)}/p2p/{peer(b)}" for b in bootstrap],
            "timings": timings or {},
        }
        rid = self.request(time, "start", **args)
        self.reply(time, rid, name, {"peer_id": peer(n), "listen_addrs": [addr(n)]})
        self.nodes.append(NodeRecord(name, args, peer(n)))

    def event(self, time: int, node: str, name: str, **fields: Any) -> int:
        payload = {"type": "event", "node": node, "time_ms": time, "event": name, **fields}
        return self._add("event", node, time, payload, None)

    def connected(
        self, time: int, node: str, other: int, direction: str = "outbound", remote: int = 0
    ) -> int:
        """``node`` opened a connection with peer ``other``; ``remote`` numbers the remote
        address when it is not ``other``'s listen address (an inbound dialer's port)."""
        return self.event(
            time,
            node,
            "connection_opened",
            peer=peer(other),
            direction=direction,
            remote_addr=addr(remote or other),
        )

    def identified(
        self,
        time: int,
        node: str,
        other: int,
        protocols: tuple[str, ...] = (KAD,),
        observed: str | None = None,
    ) -> int:
        """``node`` read ``other``'s identify: its listen address and ``protocols``."""
        return self.event(
            time,
            node,
            "identify_received",
            peer=peer(other),
            listen_addrs=[addr(other)],
            observed_addr=observed,
            protocols=list(protocols),
        )

    def kad(
        self, time: int, node: str, name: str, kad_type: str, other: int, key: str, **fields: Any
    ) -> int:
        """A kad event of ``node`` about a message exchanged with peer ``other``."""
        return self.event(time, node, name, kad_type=kad_type, peer=peer(other), key=key, **fields)

    def snapshot(
        self,
        time: int,
        node: str,
        n: int,
        mode: str = "server",
        table: tuple[Any, ...] = (),
        connections: tuple[Any, ...] = (),
        protocols: dict[str, list[str]] | None = None,
        records: tuple[Any, ...] = (),
        external: tuple[str, ...] = (),
    ) -> int:
        rid = self.request(time, "snapshot", node=node)
        snapshot = {
            "peer_id": peer(n),
            "mode": mode,
            "listen_addrs": [addr(n)],
            "external_addrs": list(external),
            "connections": [
                {"peer_id": peer(p), "direction": d, "remote_addr": r} for p, d, r in connections
            ],
            "routing_table": [{"peer_id": peer(p), "addrs": list(a)} for p, a in table],
            "protocols": protocols or {},
            "provider_records": [
                {"key": k, "provider": peer(p), "addrs": [addr(p)], "expires_at_ms": x}
                for k, p, x in records
            ],
            "time_ms": time,
        }
        return self._add("snapshot", node, time, snapshot, rid)

    def run(self) -> Run:
        capabilities = Capabilities(events=self.events, timings=self.timings)
        hello = Hello(PROTOCOL, "hand-written", "0", capabilities)
        return Run(hello, "hand", tuple(self.nodes), tuple(self.entries))


def moments(run: Run, profile: Any = LOOPBACK) -> tuple[Observer, list[Moment]]:
    observer = Observer(run, profile)
    return observer, list(observer.moments())


def test_positions_are_sha256_of_the_peer_id_bytes_256_bits_wide() -> None:
    b = RunBuilder()
    b.start(0, "a", 1)
    b.start(0, "b", 2)
    b.snapshot(10, "a", 1, table=((2, (addr(2),)),))
    observer, found = moments(b.run())
    for n, name in ((1, "a"), (2, "b")):
        expected = int.from_bytes(hashlib.sha256(unbase58(peer(n))).digest(), "big")
        assert observer.positions[observer.index[peer(n)]] == expected == position(peer(n))
        assert observer.names[observer.index[peer(n)]] == name
    node = next(m.node for m in found if m.kind == "snapshot" and m.node is not None)
    assert node.id_bits == 256
    other = observer.index[peer(2)]
    assert node.bucket(other) == 256 - (node.id ^ node.peer_ids[other]).bit_length()
    assert node.table() == (other,)


def test_content_keys_are_positioned_by_their_wire_bytes() -> None:
    key = wire_key("hello")
    assert position(key) == int.from_bytes(hashlib.sha256(unbase58(key)).digest(), "big")


@pytest.mark.parametrize(
    ("address", "loopback", "public"),
    [
        ("/ip4/127.0.0.1/tcp/4001", True, False),
        ("/ip4/192.168.1.5/tcp/4001", True, False),
        ("/ip4/8.8.8.8/tcp/4001", True, True),
        ("/ip6/2001:4860:4860::8888/udp/4001/quic-v1", True, True),
        ("/dns4/example.com/tcp/443/wss", True, True),
        ("/ip4/127.0.0.1/tcp/0", False, False),
        ("/p2p-circuit", False, False),
    ],
)
def test_profiles_classify_addresses(address: str, loopback: bool, public: bool) -> None:
    assert LOOPBACK.dialable(address) is loopback
    assert PUBLIC.dialable(address) is public
    assert not LOOPBACK.candidate(address)
    assert PUBLIC.candidate(address) is public
    assert LOOPBACK.describe() != PUBLIC.describe()


def test_strip_peer() -> None:
    assert strip_peer(f"{addr(1)}/p2p/{peer(1)}") == addr(1)
    assert strip_peer(addr(1)) == addr(1)


def test_ghost_is_written_from_events_not_from_snapshots() -> None:
    b = RunBuilder()
    b.start(0, "a", 1)
    b.start(0, "b", 2)
    b.start(0, "c", 3, mode="client")
    b.connected(5, "a", 2, "inbound", remote=50)
    b.identified(6, "a", 2, observed=addr(1))
    b.identified(7, "a", 3, ("/ipfs/id/1.0.0",))
    b.snapshot(
        10,
        "a",
        1,
        table=((2, (addr(2),)),),
        connections=((2, "inbound", addr(50)), (3, "inbound", addr(51))),
        protocols={peer(2): [KAD], peer(3): []},
    )
    observer, found = moments(b.run())
    node = next(m.node for m in found if m.kind == "snapshot" and m.node is not None)
    i2, i3 = observer.index[peer(2)], observer.index[peer(3)]
    assert node.ghost.heard == {i2, i3}
    assert node.ghost.servers == {i2}
    assert node.ghost.observers == {i2}
    assert node.peers[i2] == node.peers[i2].__class__(
        Conn.INBOUND, Proto.SERVER, Addr.DIALABLE, True
    )
    assert node.peers[i3].protocols is Proto.CLIENT and not node.peers[i3].in_table


def test_an_inbound_remote_address_is_not_dialable() -> None:
    """RT-04 / ADDR-06: the listener-side address of a connection is the dialer's ephemeral
    port; an entry backed only by it is REMOTE, never DIALABLE."""
    b = RunBuilder()
    b.start(0, "a", 1)
    b.start(0, "b", 2)
    b.connected(5, "a", 2, "inbound", remote=50)
    b.snapshot(10, "a", 1, table=((2, (addr(50),)),), connections=((2, "inbound", addr(50)),))
    observer, found = moments(b.run())
    node = next(m.node for m in found if m.kind == "snapshot" and m.node is not None)
    assert node.peers[observer.index[peer(2)]].address is Addr.REMOTE


def test_configured_bootstrap_peers_count_as_evidence_until_identify_says_client() -> None:
    b = RunBuilder()
    b.start(0, "boot", 1)
    b.start(1, "a", 2, bootstrap=(1,))
    b.snapshot(2, "a", 2, table=((1, (addr(1),)),), connections=((1, "outbound", addr(1)),))
    b.identified(3, "a", 1, ())
    b.snapshot(4, "a", 2, table=((1, (addr(1),)),), connections=((1, "outbound", addr(1)),))
    observer, found = moments(b.run())
    first, second = [m.node for m in found if m.kind == "snapshot" and m.node is not None]
    boot = observer.index[peer(1)]
    assert boot in first.ghost.servers and boot in first.ghost.heard
    assert boot not in second.ghost.servers


def test_a_round_comes_once_every_running_node_was_snapshotted() -> None:
    b = RunBuilder()
    b.start(0, "a", 1)
    b.start(0, "b", 2)
    b.snapshot(10, "a", 1)
    b.snapshot(11, "b", 2)
    b.snapshot(12, "a", 1)
    _, found = moments(b.run())
    kinds = [m.kind for m in found]
    assert kinds == ["snapshot", "snapshot", "round", "snapshot", "end"]


def test_a_find_node_reply_becomes_a_model_message_with_real_positions() -> None:
    b = RunBuilder()
    b.start(0, "a", 1)
    b.start(0, "b", 2)
    b.start(0, "c", 3)
    b.event(5, "a", "routing_table_added", peer=peer(3), addrs=[addr(3)])
    b.kad(
        6,
        "a",
        "kad_response_sent",
        "FIND_NODE",
        2,
        peer(2),
        closer_peers=[{"peer_id": peer(3), "addrs": [addr(3)]}],
        provider_peers=[],
    )
    observer, found = moments(b.run())
    step = [m.step for m in found if m.kind == "step" and m.step is not None][-1]
    (message,) = step.sent
    assert message.target == position(peer(2)) == observer.positions[observer.index[peer(2)]]
    assert message.closer == {observer.index[peer(3)]}
    assert step.before[message.src].table() == (observer.index[peer(3)],)


def test_events_before_the_start_reply_are_kept() -> None:
    """An adapter may report what a starting node does before the start reply arrives."""
    b = RunBuilder()
    b.start(0, "boot", 1)
    rid = b.request(
        1, "start", node="a", mode="server", listen="/ip4/127.0.0.1/tcp/0", bootstrap=[], timings={}
    )
    b.connected(2, "a", 1)
    b.identified(3, "a", 1)
    b.event(4, "a", "routing_table_added", peer=peer(1), addrs=[addr(1)])
    b.reply(5, rid, "a", {"peer_id": peer(2), "listen_addrs": [addr(2)]})
    b.snapshot(6, "a", 2, table=((1, (addr(1),)),), connections=((1, "outbound", addr(1)),))
    observer, found = moments(b.run())
    admission = next(m for m in found if m.kind == "step" and m.node is not None)
    assert admission.node is not None and admission.node.table() == (observer.index[peer(1)],)
    assert observer.index[peer(1)] in admission.node.ghost.heard


def test_a_late_reply_answers_the_expired_request_not_a_newer_one() -> None:
    """Replies answer the oldest request on their topic: a reply that arrives after the first
    request's deadline is that request's (too late), so a second request on the same key that
    then times out leaves its peer unanswered (a node MAY drop it)."""
    b = RunBuilder()
    b.start(0, "a", 1, timings={"request_deadline": 100})
    b.start(0, "b", 2)
    find = {"kad_type": "FIND_NODE", "peer": peer(2), "key": peer(1)}
    b.event(10, "a", "kad_request_sent", providers=[], **find)  # deadline 110: expires
    b.event(150, "a", "kad_request_sent", providers=[], **find)  # deadline 250
    b.event(160, "a", "kad_response_received", closer_peers=[], provider_peers=[], **find)
    b.snapshot(200, "a", 1)
    b.snapshot(300, "a", 1)
    observer, found = moments(b.run())
    during, after = [m.node for m in found if m.kind == "snapshot" and m.node is not None]
    b_index = observer.index[peer(2)]
    assert b_index in during.ghost.unanswered  # the first request's deadline passed
    assert len(during.ghost.waiting) == 1  # the 160 reply was the first one's, too late
    assert b_index in after.ghost.unanswered and not after.ghost.waiting


def test_with_identify_events_the_observer_trusts_them_over_the_snapshot_protocols() -> None:
    """js-libp2p's peer store adds a protocol a peer merely opened a stream for: a client that
    sent kad requests shows kad there, though its identify never advertised it."""
    b = RunBuilder()
    b.start(0, "boot", 1)
    b.start(0, "c", 2, mode="client")
    b.connected(2, "boot", 2, "inbound", remote=50)
    b.identified(3, "boot", 2, ("/ipfs/id/1.0.0",))
    b.snapshot(10, "boot", 1, connections=((2, "inbound", addr(50)),), protocols={peer(2): [KAD]})
    observer, found = moments(b.run())
    node = next(m.node for m in found if m.kind == "snapshot" and m.node is not None)
    assert node.peers[observer.index[peer(2)]].protocols is Proto.CLIENT


@pytest.mark.parametrize("capable", [True, False])
def test_timing_overrides_count_only_when_the_adapter_takes_them(capable: bool) -> None:
    """An adapter without the 'timings' capability ignores them: its records live 48 h."""
    b = RunBuilder(timings=capable)
    b.start(0, "a", 1, timings={"record_ttl": 1000})
    b.snapshot(1, "a", 1)
    _, found = moments(b.run())
    node = next(m.node for m in found if m.kind == "snapshot" and m.node is not None)
    assert node.record_ttl == (1000 if capable else 48 * 3600 * 1000)
