"""The sans-IO core, driven by fake events: one test per behaviour the spec asks of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import BootstrapPeer, CoreConfig, Mode, ModeSetting
from kadspec.impl.core import Core
from kadspec.impl.effects import KAD_PROTOCOL
from kadspec.impl.events import Direction, Timer, TimerKind
from kadspec.impl.keyspace import FixedKeyspace
from kadspec.impl.provide import Phase
from kadspec.impl.records import MemoryStore, ProviderRecord
from kadspec.impl.store import SqliteProviderStore, path_in
from kadspec.impl.wire import KadMessage, MessageType, PeerInfo

E = TypeVar("E")
KAD = frozenset({KAD_PROTOCOL})


def pid(n: int) -> bytes:
    """A peer ID: an identity multihash of four bytes."""
    return bytes([0x00, 4]) + n.to_bytes(4, "big")


def addr(n: int) -> bytes:
    return f"/ip4/10.0.0.{n}/tcp/4001".encode()


def keyspace(*extra: bytes) -> FixedKeyspace:
    """Peer n sits at position n of an 8-bit space; extra keys at 200, 201, ..."""
    table = {pid(n): n for n in range(100)}
    table.update({key: 200 + i for i, key in enumerate(extra)})
    return FixedKeyspace(8, table)


def of(effects: list[Any], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def logged(effects: list[Any], name: str) -> list[fx.LogEvent]:
    return [e for e in of(effects, fx.LogEvent) if e.name == name]


class Node:
    """A core under test with its clock and a log of everything it emitted."""

    def __init__(self, **config: Any) -> None:
        config.setdefault("peer_id", pid(0))
        config.setdefault("keyspace", keyspace(b"key"))
        config.setdefault("mode", ModeSetting.SERVER)
        config.setdefault("announce_addrs", (addr(0),))
        self.store = MemoryStore()
        self.core = Core(CoreConfig(**config), self.store)
        self.now = 0
        self.conn = 0

    def __call__(self, event: Any) -> list[Any]:
        effects: list[Any] = self.core.handle(event)
        return effects

    def start(self) -> list[Any]:
        return self(ev.Start(self.now))

    def connect(
        self, n: int, direction: Direction = Direction.OUTBOUND, identify: bool = True
    ) -> int:
        self.conn += 1
        self(ev.ConnectionOpened(self.now, self.conn, pid(n), direction, addr(n)))
        if identify:
            self(ev.IdentifyReceived(self.now, self.conn, pid(n), (addr(n),), KAD))
        return self.conn

    def request(self, n: int, message: KadMessage, stream: int = 1) -> list[Any]:
        return self(ev.RequestReceived(self.now, pid(n), 1, stream, message))


def test_start_arms_timers_advertises_mode_and_dials_bootstrap_peers_one_by_one() -> None:
    boot = tuple(BootstrapPeer(pid(n), (addr(n),)) for n in (1, 2, 3, 4))
    node = Node(bootstrap=boot)
    out = node.start()
    assert {t.timer.kind for t in of(out, fx.SetTimer)} == {TimerKind.REFRESH, TimerKind.RECORD_GC}
    assert of(out, fx.ModeChanged) == [fx.ModeChanged(Mode.SERVER, KAD)]
    assert of(out, fx.Dial) == [fx.Dial(pid(1), (addr(1),))]
    assert of(node(ev.DialFailed(0, pid(1), "refused")), fx.Dial) == [fx.Dial(pid(2), (addr(2),))]
    out = node(ev.ConnectionOpened(0, 1, pid(2), Direction.OUTBOUND, addr(2)))
    assert of(out, fx.Dial) == [fx.Dial(pid(3), (addr(3),))]
    out = node(ev.ConnectionOpened(0, 2, pid(3), Direction.OUTBOUND, addr(3)))
    assert of(out, fx.Dial) == []  # BOOT-01: two succeeded, pid(4) is never dialled


def test_a_bootstrap_peer_is_admitted_on_identify_and_starts_the_self_lookup() -> None:
    node = Node(bootstrap=(BootstrapPeer(pid(1), (addr(1),)),))
    node.start()
    node(ev.ConnectionOpened(0, 1, pid(1), Direction.OUTBOUND, addr(1)))
    assert pid(1) not in node.core.table  # RT-03: configuration is no word on its protocols
    out = node(ev.IdentifyReceived(0, 1, pid(1), (addr(1),), KAD))
    assert pid(1) in node.core.table
    sent = of(out, fx.SendRequest)
    assert [(s.peer, s.message.type, s.message.key) for s in sent] == [
        (pid(1), MessageType.FIND_NODE, pid(0))
    ]
    assert not node.core.is_ready  # BOOT-02: not before the self-lookup is answered
    node(ev.ResponseReceived(0, sent[0].request, KadMessage(MessageType.FIND_NODE)))
    assert node.core.is_ready


def test_admission_needs_identify_kad_and_a_dialable_address() -> None:
    node = Node()
    node.start()
    # RT-03 / RT-04: an inbound connection, identify pending: nothing to admit on.
    node(ev.ConnectionOpened(0, 1, pid(5), Direction.INBOUND, b"/ip4/10.0.0.5/tcp/53211"))
    assert len(node.core.table) == 0
    # a server advertising kad but no listen address: its inbound remote address is unroutable
    out = node(ev.IdentifyReceived(0, 1, pid(5), (), KAD))
    assert len(node.core.table) == 0 and logged(out, "table.unroutable")
    # ADDR-06: identify's listen addresses make the joiner routable (the rust-libp2p seed bug)
    node(ev.IdentifyReceived(0, 1, pid(5), (addr(5),), KAD))
    entry = node.core.table.get(pid(5))
    assert entry is not None and entry.addrs == (addr(5),)
    # ADDR-02: an identify push without kad (now a client) takes it out again
    node(ev.IdentifyReceived(0, 1, pid(5), (addr(5),), frozenset({"/ipfs/id/1.0.0"})))
    assert pid(5) not in node.core.table


def test_identify_after_its_connection_closed_admits_nobody() -> None:
    node = Node()
    node.start()
    node(ev.ConnectionOpened(0, 1, pid(5), Direction.INBOUND, addr(5)))
    node(ev.ConnectionClosed(0, 1, pid(5)))
    out = node(ev.IdentifyReceived(0, 1, pid(5), (addr(5),), KAD))
    assert pid(5) not in node.core.table and logged(out, "identify.discarded")  # RT-07


def test_a_request_never_admits_its_sender_and_find_node_excludes_it() -> None:
    node = Node()
    node.start()
    for n in (3, 4):
        node.connect(n)
    node(ev.ConnectionOpened(0, 9, pid(7), Direction.INBOUND, addr(7)))
    out = node.request(7, KadMessage(MessageType.FIND_NODE, key=pid(4)), stream=11)
    assert pid(7) not in node.core.table  # RT-02
    (reply,) = of(out, fx.SendResponse)
    assert reply.stream == 11
    assert [p.id for p in reply.message.closer_peers] == [pid(4), pid(3)]  # FIND-01 order
    out = node.request(3, KadMessage(MessageType.FIND_NODE, key=pid(3)))
    assert [p.id for p in of(out, fx.SendResponse)[0].message.closer_peers] == [pid(4)]
    # FIND-02: a FIND_NODE for our own ID returns our neighbours, not nothing
    out = node.request(3, KadMessage(MessageType.FIND_NODE, key=pid(0)))
    assert [p.id for p in of(out, fx.SendResponse)[0].message.closer_peers] == [pid(4)]


def test_a_client_resets_every_kad_request() -> None:
    node = Node(mode=ModeSetting.CLIENT)
    assert of(node.start(), fx.ModeChanged) == [fx.ModeChanged(Mode.CLIENT, frozenset())]
    out = node.request(3, KadMessage(MessageType.PING), stream=4)
    assert of(out, fx.ResetStream) == [fx.ResetStream(4, "client mode serves no kad requests")]
    assert node.core.rejected["client-mode"] == 1


def test_add_provider_is_stored_only_from_the_provider_with_an_address() -> None:
    node = Node(record_ttl=1000, republish_interval=500)
    node.start()
    forged = PeerInfo(id=pid(8), addrs=(addr(8),))
    out = node.request(3, KadMessage(MessageType.ADD_PROVIDER, b"key", provider_peers=(forged,)))
    assert of(out, fx.ResetStream) and node.core.rejected["add-provider-not-sender"] == 1
    bare = PeerInfo(id=pid(3))
    out = node.request(3, KadMessage(MessageType.ADD_PROVIDER, b"key", provider_peers=(bare,)))
    assert of(out, fx.ResetStream) and node.core.rejected["add-provider-no-address"] == 1
    good = PeerInfo(id=pid(3), addrs=(addr(3),))
    out = node.request(3, KadMessage(MessageType.ADD_PROVIDER, b"key", provider_peers=(good,)))
    assert not of(out, fx.ResetStream) and not of(out, fx.SendResponse)
    out = node.request(4, KadMessage(MessageType.GET_PROVIDERS, b"key"))
    assert of(out, fx.SendResponse)[0].message.provider_peers == (good,)  # PROV-07
    node.now = 1000  # PROV-04: expired, and no GC has run
    out = node.request(4, KadMessage(MessageType.GET_PROVIDERS, b"key"))
    assert of(out, fx.SendResponse)[0].message.provider_peers == ()


def test_unsupported_types_are_refused_and_ping_answered() -> None:
    node = Node()
    node.start()
    out = node.request(3, KadMessage(MessageType.PUT_VALUE, b"key"))
    assert of(out, fx.ResetStream) and node.core.rejected["unsupported-type"] == 1
    out = node.request(3, KadMessage(MessageType.PING))
    assert of(out, fx.SendResponse)[0].message == KadMessage(MessageType.PING)


def ready_node(**config: Any) -> Node:
    """A node whose one peer, pid(1), is in the table and answered the self-lookup."""
    node = Node(bootstrap=(BootstrapPeer(pid(1), (addr(1),)),), **config)
    node.start()
    node(ev.ConnectionOpened(0, 1, pid(1), Direction.OUTBOUND, addr(1)))
    out = node(ev.IdentifyReceived(0, 1, pid(1), (addr(1),), KAD))
    (lookup,) = of(out, fx.SendRequest)
    node(ev.ResponseReceived(0, lookup.request, KadMessage(MessageType.FIND_NODE)))
    assert node.core.is_ready
    return node


def test_a_provide_before_ready_waits_then_reports_its_delivered_count() -> None:
    node = Node(bootstrap=(BootstrapPeer(pid(1), (addr(1),)),))
    node.start()
    out = node(ev.Provide(0, op=7, key=b"key"))
    assert not of(out, fx.SendRequest) and logged(out, "provide.queued")  # BOOT-05
    assert node.store.get(b"key", 0)[0].provider == pid(0)  # PROV-01: stored locally first
    node(ev.ConnectionOpened(0, 1, pid(1), Direction.OUTBOUND, addr(1)))
    out = node(ev.IdentifyReceived(0, 1, pid(1), (addr(1),), KAD))
    (self_lookup,) = of(out, fx.SendRequest)
    out = node(ev.ResponseReceived(0, self_lookup.request, KadMessage(MessageType.FIND_NODE)))
    (find,) = of(out, fx.SendRequest)
    assert (find.message.type, find.message.key) == (MessageType.FIND_NODE, b"key")
    out = node(ev.ResponseReceived(0, find.request, KadMessage(MessageType.FIND_NODE)))
    (add,) = of(out, fx.SendRequest)
    assert add.message.type is MessageType.ADD_PROVIDER and not add.expects_reply
    assert add.message.provider_peers == (PeerInfo(id=pid(0), addrs=(addr(0),)),)  # ADDR-07
    out = node(ev.RequestDelivered(5, add.request))
    assert of(out, fx.ReportOutcome) == [
        fx.ReportOutcome(fx.ProvideOutcome(op=7, key=b"key", ok=True, delivered=1, attempt=1))
    ]
    republish = Timer(TimerKind.REPUBLISH, b"key")
    assert node.core.timers()[republish] == 5 + node.core.config.republish_interval  # PROV-05


def test_failed_attempts_report_why_and_back_off_exponentially_up_to_the_cap() -> None:
    node = ready_node(retry_base=100, retry_cap=300)
    out = node(ev.Provide(0, op=1, key=b"key"))
    delays = []
    for attempt in range(1, 5):
        (find,) = of(out, fx.SendRequest)
        out = node(ev.ResponseReceived(node.now, find.request, KadMessage(MessageType.FIND_NODE)))
        (add,) = of(out, fx.SendRequest)
        out = node(ev.RequestFailed(node.now, add.request, "stream reset"))
        (report,) = of(out, fx.ReportOutcome)
        outcome = report.outcome
        assert isinstance(outcome, fx.ProvideOutcome)
        assert (outcome.ok, outcome.delivered, outcome.attempt) == (False, 0, attempt)  # PROV-02
        assert outcome.reason == "no ADD_PROVIDER delivered (1 sent)"
        assert outcome.retry_at is not None
        delays.append(outcome.retry_at - node.now)
        # RT-06 took pid(1) out; it comes back on its next connection
        node.now = outcome.retry_at
        node(ev.IdentifyReceived(node.now, 1, pid(1), (addr(1),), KAD))
        out = node(ev.TimerFired(node.now, Timer(TimerKind.PROVIDE_RETRY, b"key")))
    assert delays == [100, 200, 300, 300]  # PROV-06


def test_a_provide_with_a_limit_ends_in_a_final_failure() -> None:
    node = Node(provide_max_attempts=1)
    node.start()
    node.connect(1)  # identified server, but no self-lookup answered: not Ready
    node.core.self_lookup_done = True  # pretend: Ready with one peer
    out = node(ev.Provide(0, op=3, key=b"key"))
    (find,) = of(out, fx.SendRequest)
    out = node(ev.RequestFailed(0, find.request, "deadline"))
    (report,) = of(out, fx.ReportOutcome)
    assert report.outcome == fx.ProvideOutcome(
        3, b"key", False, 0, 1, "no peer answered GetClosestPeers", None, final=True,
        code="no-peers",
    )  # fmt: skip
    assert node.core.provide_phase(b"key") is Phase.STOPPED


def test_lookups_keep_alpha_in_flight_and_a_silent_peer_times_out() -> None:
    node = Node(alpha=2, request_deadline=50)
    node.start()
    for n in (1, 2, 3, 4, 5):
        node.connect(n)
    node.core.self_lookup_done = True  # pretend: Ready
    out = node(ev.FindProviders(0, op=9, key=b"key"))
    first = of(out, fx.SendRequest)
    assert len(first) == 2  # FIND-03
    deadline = Timer(TimerKind.REQUEST_DEADLINE, first[0].request)
    assert node.core.timers()[deadline] == 50  # PROV-08
    out = node(ev.TimerFired(50, deadline))
    assert first[0].peer not in node.core.table  # RT-06
    assert len(of(out, fx.SendRequest)) == 1  # a replacement, still two in flight
    (find,) = [lk for lk in node.core.lookups() if lk.key == b"key"]
    assert len(find.inflight) == 2 and find.failed == {first[0].peer}
    stale = node(ev.TimerFired(50, deadline))
    assert stale == []  # a timer fires once


def test_find_providers_reports_what_the_network_answered() -> None:
    node = ready_node()
    node.store.add(ProviderRecord(b"key", pid(6), (addr(6),), 10**9))
    out = node(ev.FindProviders(0, op=4, key=b"key"))
    (get,) = of(out, fx.SendRequest)
    assert of(node(ev.FindProviders(0, op=5, key=b"key")), fx.SendRequest) == []  # joins
    remote = PeerInfo(id=pid(2), addrs=(addr(2),))
    reply = KadMessage(MessageType.GET_PROVIDERS, b"key", provider_peers=(remote,))
    reports = of(node(ev.ResponseReceived(0, get.request, reply)), fx.ReportOutcome)
    # the model's find: the providers the replies named (the local store is not asked)
    assert [r.outcome for r in reports] == [
        fx.FindOutcome(4, b"key", True, (remote,)),
        fx.FindOutcome(5, b"key", True, (remote,)),
    ]


def test_an_empty_table_fails_lookups_at_once_and_refresh_stays_armed() -> None:
    node = Node()
    node.start()
    (report,) = of(node(ev.FindProviders(0, op=1, key=b"key")), fx.ReportOutcome)
    reason = "not ready: no peer in the table or no self-lookup yet"
    assert report.outcome == fx.FindOutcome(1, b"key", False, (), reason, "not-ready")  # BOOT-05
    refresh = Timer(TimerKind.REFRESH)
    at = node.core.timers()[refresh]
    out = node(ev.TimerFired(at, refresh))
    assert logged(out, "lookup.failed")
    assert node.core.timers()[refresh] == at + node.core.config.refresh_interval  # BOOT-03


def test_auto_mode_becomes_server_only_after_a_dial_back() -> None:
    node = Node(mode=ModeSetting.AUTO, announce_addrs=())
    node.start()
    assert node.core.mode is Mode.CLIENT
    node(ev.ConnectionOpened(0, 1, pid(1), Direction.OUTBOUND, addr(1)))
    out = node(ev.IdentifyReceived(0, 1, pid(1), (addr(1),), KAD, observed_addr=b"/ip4/1.2.3.4"))
    assert of(out, fx.RequestDialBack) == [fx.RequestDialBack(b"/ip4/1.2.3.4")]
    assert node.core.mode is Mode.CLIENT  # ADDR-03: a candidate is not confirmed
    out = node(ev.DialBackResult(0, b"/ip4/1.2.3.4", reachable=True))
    assert of(out, fx.ModeChanged) == [fx.ModeChanged(Mode.SERVER, KAD)]  # ADDR-04, ADDR-02
    out = node(ev.SetMode(0, ModeSetting.CLIENT))
    assert of(out, fx.ModeChanged) == [fx.ModeChanged(Mode.CLIENT, frozenset())]


def test_stop_providing_cancels_the_job_and_forgets_the_record() -> None:
    node = ready_node()
    node(ev.Provide(0, op=1, key=b"key"))
    out = node(ev.StopProviding(0, b"key"))
    assert node.core.provide_phase(b"key") is None
    assert node.store.get(b"key", 0) == ()
    assert of(out, fx.CancelTimer)  # the outstanding request's deadline


def test_records_accepted_by_one_core_are_served_by_its_successor_from_sqlite(
    tmp_path: Path,
) -> None:
    config = CoreConfig(peer_id=pid(0), keyspace=keyspace(b"key"), mode=ModeSetting.SERVER)
    good = PeerInfo(id=pid(3), addrs=(addr(3),))
    with SqliteProviderStore(path_in(tmp_path)) as store:
        core = Core(config, store)
        core.handle(ev.Start(0))
        message = KadMessage(MessageType.ADD_PROVIDER, b"key", provider_peers=(good,))
        core.handle(ev.RequestReceived(0, pid(3), 1, 1, message))
    with SqliteProviderStore(path_in(tmp_path)) as store:  # the node restarts
        core = Core(config, store)
        core.handle(ev.Start(10))
        request = ev.RequestReceived(
            10, pid(4), 2, 2, KadMessage(MessageType.GET_PROVIDERS, b"key")
        )
        (reply,) = of(core.handle(request), fx.SendResponse)
        assert reply.message.provider_peers == (good,)


def test_a_provide_waits_for_an_address_worth_announcing() -> None:
    node = ready_node(mode=ModeSetting.AUTO, announce_addrs=())
    out = node(ev.Provide(0, op=1, key=b"key"))
    assert not of(out, fx.SendRequest)  # ADDR-07
    assert logged(out, "provide.queued")[0].get("reason") == "no announceable address"
    node(ev.IdentifyReceived(0, 1, pid(1), (addr(1),), KAD, observed_addr=b"/ip4/1.2.3.4"))
    out = node(ev.DialBackResult(0, b"/ip4/1.2.3.4", reachable=True))
    (find,) = of(out, fx.SendRequest)
    assert find.message.key == b"key"


def test_peers_dropped_after_missed_deadlines_come_back_at_once_and_at_the_refresh() -> None:
    """Issue 8's liveness bug: every connected server missed one deadline, the table emptied,
    and nothing ever re-admitted them. A removal that leaves the table below k re-considers the
    other connected peers at once (go's PeerRemoved hook wakes fixLowPeers), failed mark or
    not, since a timeout on a live connection is no failed dial (RT-07); the peer that just
    failed waits for the next removal or the refresh (go re-adds it after a fresh probe)."""
    node = Node(alpha=3, request_deadline=50)
    node.start()
    for n in (1, 2, 3):
        node.connect(n)
    servers = {pid(1), pid(2), pid(3)}
    assert {e.peer for e in node.core.table} == servers
    node.core.self_lookup_done = True  # pretend: Ready
    asked = of(node(ev.FindProviders(0, op=1, key=b"key")), fx.SendRequest)
    assert {r.peer for r in asked} == servers
    for request in asked:  # every request to every connected server times out
        node(ev.TimerFired(50, Timer(TimerKind.REQUEST_DEADLINE, request.request)))
        # RT-06: the peer that failed leaves; those dropped before are back at once
        assert {e.peer for e in node.core.table} == servers - {request.peer}
    refresh = Timer(TimerKind.REFRESH)
    out = node(ev.TimerFired(node.core.timers()[refresh], refresh))
    assert {e.peer for e in node.core.table} == servers  # the last one is back too
    assert [e.name for e in logged(out, "table.add")] == ["table.add"]
