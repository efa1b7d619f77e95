"""The sans-IO lifecycle core of the reference node (in the style of h11 and aioquic).

``Core.handle(event)`` takes one event (events.py) and returns the effects (effects.py) the
driver must carry out. Nothing here opens a socket, reads a clock, draws a random number or
starts a thread: time arrives in every event, and the provider store is handed in. Plain
getters (``mode``, ``is_ready``, ``table``, ``rejected`` ...) expose the state for a lockstep
check or an adapter's snapshot.

The concepts live in their own modules (routing, lookup, provide, addresses, records, wire);
this module wires them to events. It implements, at MUST and SHOULD level:

- bootstrap: dial configured peers one after another until two connect (BOOT-01), then a
  self-lookup; Ready = a peer in the table and a self-lookup answered (BOOT-02, BOOT-05);
  refresh stays armed (BOOT-03) and re-dials bootstrap peers when the table is empty; each
  bootstrap and refresh run follows its self-lookup with a lookup of an ID in each empty
  bucket up to the deepest non-empty one, one at a time (BOOT-03);
- admission only with evidence (identify's kad advert, a kad reply, configuration) and a
  dialable address (RT-01..04); failed peers leave the table (RT-06);
- lookups with alpha in flight and a deadline per request (FIND-03, FIND-04, PROV-08);
- provide gated on Ready, retried with capped exponential backoff, with an outcome that counts
  delivered ADD_PROVIDERs (BOOT-05, PROV-01, PROV-02, PROV-06), republished (PROV-05);
- serving FIND_NODE, GET_PROVIDERS (live records only), ADD_PROVIDER from the provider itself,
  PING; refusing everything in client mode (ADDR-01, FIND-01, FIND-02, PROV-03, PROV-04,
  PROV-07).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.addresses import Addresses
from kadspec.impl.config import BootstrapPeer, CoreConfig, Mode
from kadspec.impl.effects import KAD_PROTOCOL, Effect
from kadspec.impl.events import Direction, Event, Timer, TimerKind
from kadspec.impl.keyspace import common_prefix_length
from kadspec.impl.lookup import MAX_REFRESH_BUCKET, Lookup, Purpose, refresh_key
from kadspec.impl.provide import NO_ADDRESS, NO_PEERS, NONE_DELIVERED, NOT_READY, Phase, ProvideJob
from kadspec.impl.records import ProviderRecord, RecordStore
from kadspec.impl.requirements import implements
from kadspec.impl.routing import Added, Entry, Evidence, RoutingTable, admission
from kadspec.impl.wire import KadMessage, MessageType, PeerInfo

#: at most this many addresses of one peer are kept and passed on
MAX_ADDRS = 8


@attrs.define
class PeerState:
    """What we know of one remote peer."""

    connections: dict[int, Direction] = attrs.Factory(dict)
    #: addresses we reached it at (outbound connections, configuration): dialable
    dialed: list[bytes] = attrs.Factory(list)
    #: identify's listen addresses (ADDR-06)
    listen: tuple[bytes, ...] = ()
    #: addresses a lookup reply's closerPeers gave for it (a peer store, not the table: FIND-05)
    learned: list[bytes] = attrs.Factory(list)
    #: remote addresses of its inbound connections: ephemeral ports, never dialable (RT-04)
    remote: list[bytes] = attrs.Factory(list)
    #: identify's protocol list; None until identify arrived (RT-03)
    protocols: frozenset[str] | None = None
    evidence: set[Evidence] = attrs.Factory(set)
    #: the last dial or request to it failed, and nothing has been heard from it since (RT-06)
    failed: bool = False

    def dialable(self) -> tuple[bytes, ...]:
        return tuple(dict.fromkeys((*self.listen, *self.dialed, *self.learned)))[:MAX_ADDRS]


@attrs.frozen
class Request:
    """One of our outstanding kad requests."""

    peer: bytes
    lookup: int | None = None  # the lookup it serves, or
    provide_key: bytes | None = None  # the provide job whose ADD_PROVIDER it is, or
    probe: bool = False  # an admission probe (BOOT-06): does the peer know anyone else?


class Core:
    """One node's lifecycle, driven by events. See the module docstring."""

    def __init__(self, config: CoreConfig, store: RecordStore) -> None:
        self.config = config.validated()
        self.store = store
        self.peer_id = config.peer_id
        self.keyspace = config.keyspace
        self.own_key = self.keyspace.key_of(config.peer_id)
        self.table = RoutingTable(self.own_key, self.keyspace.bits, config.k)
        self.addresses = Addresses(config.announce_addrs, config.mode)
        self.mode = self.addresses.mode()
        self.started = False
        self.self_lookup_done = False
        self.rejected: Counter[str] = Counter()
        self._was_ready = False
        self._effects: list[Effect] = []
        self._timers: dict[Timer, int] = {}
        self._peers: dict[bytes, PeerState] = {}
        self._lookups: dict[int, Lookup] = {}
        self._requests: dict[int, Request] = {}
        self._jobs: dict[bytes, ProvideJob] = {}
        self._finds: dict[int, tuple[list[int], bytes]] = {}
        self._probing: set[bytes] = set()
        self._self_lookup_due = False  # a refresh's self-lookup waits for admission probes
        #: the bucket from which the run's refresh lookups go on, once admission probes are
        #: answered (None: no refresh lookup is due)
        self._refresh_from: int | None = None
        self._refresh_keys: dict[int, bytes | None] = {}  # per bucket: the kad key it looks up
        self._next_id = 0
        self._bootstrap: dict[bytes, BootstrapPeer] = {b.peer: b for b in config.bootstrap}
        #: bootstrap peers dialled (or found connected) since the start or the last empty refresh
        self.boot_tried: set[bytes] = set()
        self._boot_dialing: bytes | None = None
        self._boot_overtaken = False
        #: how many configured bootstrap peers have a connection, kept by the connection events
        #: (_dial_bootstrap runs after every event; counting them each time was a tenth of the
        #: CPU of a 500-node simulation)
        self._boot_connected = 0

    # --- inspection --------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        """BOOT-05: a peer in the table and a self-lookup that was answered."""
        return bool(self.table) and self.self_lookup_done

    def timers(self) -> dict[Timer, int]:
        """The armed timers and when each fires."""
        return dict(self._timers)

    def connections(self) -> dict[bytes, dict[int, Direction]]:
        return {p: dict(s.connections) for p, s in self._peers.items() if s.connections}

    def peers(self) -> dict[bytes, PeerState]:
        """Everything known of each remote peer (read-only use: snapshots, the lockstep check)."""
        return dict(self._peers)

    def provide_phase(self, key: bytes) -> Phase | None:
        job = self._jobs.get(key)
        return None if job is None else job.phase

    def jobs(self) -> dict[bytes, ProvideJob]:
        """The provide jobs by key (read-only use)."""
        return dict(self._jobs)

    def lookups(self) -> tuple[Lookup, ...]:
        return tuple(self._lookups.values())

    def requests(self) -> dict[int, Request]:
        """Our outstanding requests by ID (read-only use)."""
        return dict(self._requests)

    @property
    def boot_dialing(self) -> bytes | None:
        """The bootstrap peer being dialled, if any."""
        return self._boot_dialing

    # --- the one entry point -----------------------------------------------------------------

    def handle(self, event: Event) -> list[Effect]:
        """Apply one event; return the effects to carry out, in order."""
        self._effects = []
        handler = _HANDLERS[type(event)]
        handler(self, event)
        if self.started:
            self._react(event.now)
        out, self._effects = self._effects, []
        return out

    # --- helpers -----------------------------------------------------------------------------

    def _emit(self, effect: Effect) -> None:
        self._effects.append(effect)

    def _log(self, name: str, **fields: str | int | bool) -> None:
        self._emit(fx.LogEvent(name, tuple(fields.items())))

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _arm(self, timer: Timer, at: int) -> None:
        self._timers[timer] = at
        self._emit(fx.SetTimer(timer, at))

    def _cancel(self, timer: Timer) -> None:
        if self._timers.pop(timer, None) is not None:
            self._emit(fx.CancelTimer(timer))

    def _peer(self, peer: bytes) -> PeerState:
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = PeerState()
        return state

    def _self_info(self) -> PeerInfo:
        return PeerInfo(id=self.peer_id, addrs=self.addresses.announceable())

    # --- lifecycle ---------------------------------------------------------------------------

    @implements("BOOT-01", "BOOT-03", "PROV-05")
    def _on_start(self, event: ev.Start) -> None:
        if self.started:
            return
        self.started = True
        self._arm(Timer(TimerKind.REFRESH), event.now + self.config.refresh_interval)
        self._arm(Timer(TimerKind.RECORD_GC), event.now + self.config.gc_interval)
        self._emit(fx.ModeChanged(self.mode, self._protocols()))
        self._log("node.start", mode=self.mode.value, bootstrap=len(self.config.bootstrap))
        for key in event.providing:  # the keys we kept providing across the restart
            self._jobs[key] = ProvideJob(key, 0, self.config.retry_base)

    def _connected(self, peer: bytes) -> bool:
        state = self._peers.get(peer)
        return state is not None and bool(state.connections)

    @implements("BOOT-01")
    def _dial_bootstrap(self) -> None:
        """Dial bootstrap peers one after another, in their configured order, until two are
        connected or every one was tried; one already connected counts as tried at once."""
        dialing = self._boot_dialing
        if dialing is not None:
            if not self._boot_overtaken:
                return  # the dial is on its way: its connection or its failure comes back
            # The peer connected to us meanwhile, so the dial ends without news of its own.
            if self._boot_connected >= self.config.bootstrap_connections:
                return  # nothing more to dial; the peer counts as tried once dialled again
            self._boot_overtaken = False
            if not self._connected(dialing):
                self._emit(fx.Dial(dialing, self._bootstrap[dialing].addrs))  # it left: again
                return
            self._boot_dialing = None  # connected already: tried, on to the next one
        connected = self._boot_connected  # nothing in the loop connects anyone
        for boot in self.config.bootstrap:
            if connected >= self.config.bootstrap_connections:
                return
            if boot.peer in self.boot_tried:
                continue
            self.boot_tried.add(boot.peer)
            if self._connected(boot.peer):
                continue
            self._boot_dialing = boot.peer
            self._log("bootstrap.dial", peer=boot.peer.hex())
            self._emit(fx.Dial(boot.peer, boot.addrs))
            return

    @implements("BOOT-02", "BOOT-05", "ADDR-07")
    def _react(self, now: int) -> None:
        """Consequences of the state itself: bootstrap dials; the first peer starts the
        self-lookup; Ready starts queued provides (or, with no address to announce, says so)."""
        self._dial_bootstrap()
        if self._probing:
            # An admission probe is out: lookups wait for its answer, so that they start from
            # the table the probe decides (the model admits within the same step).
            return
        if self._refresh_from is not None:
            self._refresh_buckets(now)
        running_self = any(lk.purpose is Purpose.SELF for lk in self._lookups.values())
        due = self._self_lookup_due or (bool(self.table) and not self.self_lookup_done)
        if due and not running_self:
            self._self_lookup_due = False
            self._start_lookup(Purpose.SELF, self.peer_id, now)
        if self.is_ready and not self._was_ready:
            self._was_ready = True
            self._log("node.ready", table=len(self.table))
        if not any(job.waiting_for_ready for job in self._jobs.values()):
            return
        if self.is_ready and self.addresses.announceable():
            for job in list(self._jobs.values()):
                if job.waiting_for_ready:
                    self._attempt(job, now)
        elif self.is_ready:
            self._report_waiting()

    @implements("BOOT-05", "ADDR-07")
    def _report_waiting(self) -> None:
        """Tell the callers of provides that cannot start yet why; they stay queued."""
        if not self.is_ready:
            code, reason = NOT_READY, "not ready: no peer in the table or no self-lookup yet"
        elif not self.addresses.announceable():
            code, reason = NO_ADDRESS, "no address to announce"
        else:
            return
        for job in self._jobs.values():
            if job.waiting_for_ready and (job.reported, job.code) != (False, code):
                job.reported, job.code = False, code
                self._log("provide.outcome", key=job.key.hex(), ok=False, reason=reason)
                outcome = fx.ProvideOutcome(
                    job.op, job.key, False, 0, job.attempts, reason, None, code=code
                )
                self._emit(fx.ReportOutcome(outcome))

    # --- connections and identify ------------------------------------------------------------

    def _on_connection_opened(self, event: ev.ConnectionOpened) -> None:
        if event.peer == self.peer_id:
            self._emit(fx.CloseConnection(event.connection, "connection to ourselves"))
            return
        state = self._peer(event.peer)
        if not state.connections and event.peer in self._bootstrap:
            self._boot_connected += 1
        state.connections[event.connection] = event.direction
        if event.direction is Direction.OUTBOUND:
            # RT-04: an address we dialed is dialable; an inbound remote address is not.
            if event.remote_addr not in state.dialed:
                state.dialed.append(event.remote_addr)
        elif event.remote_addr not in state.remote:
            state.remote.append(event.remote_addr)
        if self._boot_dialing == event.peer:
            if event.direction is Direction.OUTBOUND:
                self._boot_dialing = None  # our dial (or a request's) reached it
            else:
                self._boot_overtaken = True  # it dialed us first: see _dial_bootstrap
        self._log(
            "connection.open", peer=event.peer.hex(), direction=event.direction.value,
            connection=event.connection,
        )  # fmt: skip

    def _on_connection_closed(self, event: ev.ConnectionClosed) -> None:
        state = self._peers.get(event.peer)
        closed = state is not None and state.connections.pop(event.connection, None) is not None
        if closed and state is not None and not state.connections and event.peer in self._bootstrap:
            self._boot_connected -= 1
        self._log("connection.close", peer=event.peer.hex(), connection=event.connection)

    def _on_dial_failed(self, event: ev.DialFailed) -> None:
        self._log("dial.failed", peer=event.peer.hex(), reason=event.reason)
        self._mark_failed(event.peer, f"dial failed: {event.reason}", event.now)
        if self._boot_dialing == event.peer:
            self._boot_dialing = None
            self._boot_overtaken = False

    @implements("RT-03", "RT-07", "ADDR-02", "ADDR-03", "ADDR-06")
    def _on_identify(self, event: ev.IdentifyReceived) -> None:
        state = self._peers.get(event.peer)
        if state is None or event.connection not in state.connections:
            # RT-07: identify processed after its connection closed must not admit a dead peer.
            self._log("identify.discarded", peer=event.peer.hex(), reason="connection closed")
            return
        state.listen = tuple(event.listen_addrs)[:MAX_ADDRS]
        state.protocols = event.protocols
        if event.observed_addr is not None and self.addresses.observe(event.observed_addr):
            self._emit(fx.RequestDialBack(event.observed_addr))
        if KAD_PROTOCOL in event.protocols:
            self._consider(event.peer, event.now)
        else:
            self._drop_client(event.peer)

    def _on_dial_back(self, event: ev.DialBackResult) -> None:
        self.addresses.dial_back(event.addr, event.reachable)
        self._log("address.dial-back", reachable=event.reachable)
        self._update_mode()

    def _on_set_mode(self, event: ev.SetMode) -> None:
        self.addresses.setting = event.setting
        self._update_mode()

    def _protocols(self) -> frozenset[str]:
        return frozenset({KAD_PROTOCOL}) if self.mode is Mode.SERVER else frozenset()

    @implements("ADDR-01", "ADDR-02", "ADDR-04")
    def _update_mode(self) -> None:
        mode = self.addresses.mode()
        if mode is not self.mode:
            self._log("mode.change", old=self.mode.value, new=mode.value)
            self.mode = mode
            self._emit(fx.ModeChanged(mode, self._protocols()))

    # --- the routing table -------------------------------------------------------------------

    @implements("RT-01", "RT-02", "RT-03", "RT-04", "RT-05", "ADDR-02", "BOOT-06")
    def _consider(self, peer: bytes, now: int, probed: bool = False) -> None:
        """Admit (or, when identify says it is a client, remove) a peer.

        Only identify's word that it serves kad admits, with a dialable address (RT-02..04).
        Once the table holds k peers a newcomer must first pass a probe: a FIND_NODE for our
        own key that names someone other than us (go's lookupCheck). Below k nobody is probed,
        or a network of fresh nodes, whose tables are all empty, could never form (BOOT-06).
        """
        state = self._peers[peer]
        if peer in self.table:
            return
        advertises = state.protocols is not None and KAD_PROTOCOL in state.protocols
        addrs = state.dialable()
        evidence = admission(state.evidence, state.protocols is not None, advertises, addrs)
        if evidence is None:
            if advertises and not addrs:
                self._log("table.unroutable", peer=peer.hex())
            return
        try:
            key = self.keyspace.key_of(peer)
        except KeyError:
            self.rejected["bad-peer-key"] += 1
            return
        if key == self.own_key:  # only in a narrow test key space: RT-07 keeps it out
            self._log("table.collision", peer=peer.hex())
            return
        if not self.table.has_room(key):
            # RT-05: a full bucket takes no newcomer, so it costs no probe either (go's
            # peerFound asks UsefulNewPeer before lookupCheck)
            self._log("table.full", peer=peer.hex())
            return
        if len(self.table) >= self.config.k and not probed:
            if peer not in self._probing:
                self._probing.add(peer)
                probe = KadMessage(MessageType.FIND_NODE, key=self.peer_id)
                self._send(Request(peer, probe=True), probe, now, True)
            return
        result = self.table.add(Entry(peer, key, addrs, evidence))
        if result is Added.ADDED:
            state.failed = False
            self._log("table.add", peer=peer.hex(), evidence=evidence.value, size=len(self.table))
        elif result is Added.BUCKET_FULL:
            self._log("table.full", peer=peer.hex())

    @implements("RT-01", "ADDR-02")
    def _drop_client(self, peer: bytes) -> None:
        """Identify says the peer no longer serves kad: it leaves the table."""
        if peer in self.table:
            self.table.remove(peer)
            self._log("table.remove", peer=peer.hex(), reason="client", size=len(self.table))

    @implements("RT-06")
    def _mark_failed(self, peer: bytes, reason: str, now: int) -> None:
        """A dial or request to ``peer`` failed: note it, and take it out of the table. A
        removal that leaves the table below k re-evaluates the other connected peers at once
        (go's PeerRemoved hook wakes fixLowPeers); this one waits for the next removal or
        refresh (go re-adds it only once a fresh probe answers)."""
        if peer == self.peer_id:
            return
        self._peer(peer).failed = True
        if self.table.remove(peer):
            self._log("table.remove", peer=peer.hex(), reason=reason, size=len(self.table))
            self._recover_low_table(now, skip=peer)

    @implements("BOOT-06", "ADDR-06", "RT-07")
    def _recover_low_table(self, now: int, skip: bytes = b"") -> None:
        """A table below k re-evaluates every connected peer (go's fixLowPeers): a peer dropped
        after a request that failed or timed out on a live connection is still a connected
        server, and the refresh gives it another chance, failed mark or not (RT-07 forbids
        re-admitting a failed dial, and a live connection is no failed dial)."""
        if len(self.table) >= self.config.k:
            return
        for peer, state in list(self._peers.items()):
            if skip and len(self.table) >= self.config.k:
                break  # after a removal: refill to k, no admission probe in the middle of a step
            if state.connections and peer != skip:
                self._consider(peer, now)

    # --- serving requests --------------------------------------------------------------------

    @implements("ADDR-01", "RT-02", "FIND-01", "FIND-02", "PROV-03", "PROV-04", "PROV-07")
    def _on_request(self, event: ev.RequestReceived) -> None:
        """Answer a peer's request. The sender is never admitted for asking (RT-02)."""
        message = event.message
        if self.mode is Mode.CLIENT:
            self._refuse(event, "client-mode", "client mode serves no kad requests")
            return
        if message.type is MessageType.PING:
            self._emit(fx.SendResponse(event.stream, KadMessage(MessageType.PING)))
            return
        if message.type not in (
            MessageType.FIND_NODE, MessageType.GET_PROVIDERS, MessageType.ADD_PROVIDER
        ):  # fmt: skip
            self._refuse(event, "unsupported-type", f"{message.type.name} not served")
            return
        try:
            target = self.keyspace.key_of(message.key)
        except KeyError:
            self._refuse(event, "bad-key", "key outside the key space")
            return
        if message.type is MessageType.ADD_PROVIDER:
            self._accept_provider(event)
            return
        closer = tuple(
            e.info for e in self.table.closest(target, self.config.k, frozenset({event.peer}))
        )
        if message.type is MessageType.FIND_NODE:
            reply = KadMessage(MessageType.FIND_NODE, key=message.key, closer_peers=closer)
        else:
            live = [r for r in self.store.get(message.key, event.now) if r.live_at(event.now)]
            reply = KadMessage(
                MessageType.GET_PROVIDERS,
                key=message.key,
                closer_peers=closer,
                provider_peers=tuple(PeerInfo(id=r.provider, addrs=r.addrs) for r in live),
            )
        self._emit(fx.SendResponse(event.stream, reply))

    def _refuse(self, event: ev.RequestReceived, counter: str, reason: str) -> None:
        self.rejected[counter] += 1
        self._log("request.refused", peer=event.peer.hex(), reason=reason)
        self._emit(fx.ResetStream(event.stream, reason))

    @implements("PROV-03")
    def _accept_provider(self, event: ev.RequestReceived) -> None:
        """Store a provider record only from the provider itself, with an address."""
        own = [p for p in event.message.provider_peers if p.id == event.peer]
        if not own:
            self._refuse(
                event, "add-provider-not-sender", "ADD_PROVIDER provider is not the sender"
            )
            return
        addrs = tuple(dict.fromkeys(a for p in own for a in p.addrs))[:MAX_ADDRS]
        if not addrs:
            self._refuse(event, "add-provider-no-address", "ADD_PROVIDER without address")
            return
        self.store.add(
            ProviderRecord(
                key=event.message.key,
                provider=event.peer,
                addrs=addrs,
                expires_at=event.now + self.config.record_ttl,
            )
        )
        self._log("record.stored", provider=event.peer.hex(), key=event.message.key.hex())

    # --- our requests ------------------------------------------------------------------------

    @implements("PROV-08")
    def _send(self, request: Request, message: KadMessage, now: int, expects_reply: bool) -> int:
        rid = self._new_id()
        self._requests[rid] = request
        entry = self.table.get(request.peer)
        addrs = entry.addrs if entry is not None else ()
        if not addrs and request.lookup is not None:
            addrs = self._lookups[request.lookup].addrs.get(request.peer, ())
        if not addrs and request.peer in self._peers:
            addrs = self._peers[request.peer].dialable()
        self._emit(fx.SendRequest(rid, request.peer, addrs, message, expects_reply))
        self._arm(Timer(TimerKind.REQUEST_DEADLINE, rid), now + self.config.request_deadline)
        return rid

    def _settle_request(self, rid: int) -> Request | None:
        request = self._requests.pop(rid, None)
        if request is not None:
            self._cancel(Timer(TimerKind.REQUEST_DEADLINE, rid))
        return request

    @implements("BOOT-06")
    def _probe_answered(self, request: Request, reply: KadMessage, now: int) -> None:
        """The admission probe's reply: a peer that knows someone besides us may enter."""
        self._probing.discard(request.peer)
        others = [p for p in reply.closer_peers if p.id != self.peer_id]
        if reply.type is MessageType.FIND_NODE and others and request.peer in self._peers:
            self._consider(request.peer, now, probed=True)

    @implements("FIND-05")
    def _on_response(self, event: ev.ResponseReceived) -> None:
        request = self._settle_request(event.request)
        if request is None:
            return
        if request.probe:
            self._probe_answered(request, event.message, event.now)
            return
        if request.lookup is None:
            return
        lookup = self._lookups.get(request.lookup)
        expected = (
            MessageType.GET_PROVIDERS
            if lookup is not None and lookup.purpose is Purpose.FIND_PROVIDERS
            else MessageType.FIND_NODE
        )
        if event.message.type is not expected:
            self.rejected["reply-type"] += 1
            self._fail_request(request, f"{event.message.type.name} reply", event.now)
            return
        closer = []
        key_of, peers, own_id = self.keyspace.key_of, self._peers, self.peer_id
        for info in event.message.closer_peers:
            peer = info.id
            if peer == own_id:
                continue
            try:
                key = key_of(peer)
            except KeyError:
                self.rejected["bad-peer-key"] += 1
                continue
            addrs = info.addrs if len(info.addrs) <= MAX_ADDRS else info.addrs[:MAX_ADDRS]
            closer.append((peer, key, addrs))
            # closerPeers carry addresses: a peer store entry, never a table entry (FIND-05)
            state = peers.get(peer)
            if state is None:
                state = peers[peer] = PeerState()
            learned = state.learned
            for addr in addrs:
                if addr not in learned:
                    learned.append(addr)
        # the responder has just shown it serves kad: readmitted if identify vouched for it
        self._peer(request.peer).failed = False
        self._consider(request.peer, event.now)
        if lookup is None:
            return
        lookup.on_reply(request.peer, closer, event.message.provider_peers)
        self._advance(lookup, event.now)

    def _on_delivered(self, event: ev.RequestDelivered) -> None:
        request = self._settle_request(event.request)
        if request is not None and request.provide_key is not None:
            job = self._jobs.get(request.provide_key)
            if job is not None and event.request in job.pending:
                job.pending.remove(event.request)
                job.delivered.add(request.peer)
                self._settle_job(job, event.now)

    def _on_request_failed(self, event: ev.RequestFailed) -> None:
        request = self._settle_request(event.request)
        if request is not None:
            self._fail_request(request, event.reason, event.now, event.request)

    def _fail_request(self, request: Request, reason: str, now: int, rid: int = 0) -> None:
        if request.probe:
            self._probing.discard(request.peer)  # it stays out; no failure is held against it
            return
        self._log("request.failed", peer=request.peer.hex(), reason=reason)
        if request.lookup is not None:
            self._mark_failed(request.peer, reason, now)
            lookup = self._lookups.get(request.lookup)
            if lookup is not None:
                lookup.on_failure(request.peer)
                self._advance(lookup, now)
        elif request.provide_key is not None:
            job = self._jobs.get(request.provide_key)
            if job is not None and rid in job.pending:
                job.pending.remove(rid)
                self._mark_failed(request.peer, reason, now)
                self._settle_job(job, now)

    @implements("PROV-05", "PROV-06", "PROV-08")
    def _on_timer(self, event: ev.TimerFired) -> None:
        at = self._timers.get(event.timer)
        if at is None or event.now < at:
            return  # cancelled, or re-armed later: a stale wake-up
        del self._timers[event.timer]
        kind, subject = event.timer.kind, event.timer.subject
        if kind is TimerKind.REQUEST_DEADLINE and isinstance(subject, int):
            request = self._requests.pop(subject, None)
            if request is not None:
                self._fail_request(request, "deadline", event.now, subject)
        elif kind is TimerKind.REFRESH:
            self._refresh(event.now)
        elif kind is TimerKind.RECORD_GC:
            gone = self.store.expire(event.now)
            self._log("records.expired", count=gone)
            self._arm(Timer(TimerKind.RECORD_GC), event.now + self.config.gc_interval)
        elif kind is TimerKind.PROVIDE_RETRY and isinstance(subject, bytes):
            job = self._jobs.get(subject)
            if job is not None and job.phase is Phase.QUEUED:
                self._attempt(job, event.now)  # a retry runs whatever the table holds now
        elif kind is TimerKind.REPUBLISH and isinstance(subject, bytes):
            job = self._jobs.get(subject)
            if job is not None and job.phase is Phase.IDLE:
                self._log("provide.republish", key=subject.hex())
                self._attempt(job, event.now)

    @implements("BOOT-01", "BOOT-02", "BOOT-03", "BOOT-05")
    def _refresh(self, now: int) -> None:
        """Tell waiting provides why they wait, win connected servers back, stay armed, go back
        to the bootstrap peers if the table is empty, and look ourselves up."""
        self._report_waiting()
        self._recover_low_table(now)
        self._arm(Timer(TimerKind.REFRESH), now + self.config.refresh_interval)
        if not self.table:
            self.boot_tried = set()
            self._boot_dialing = None
            self._boot_overtaken = False
        if not any(lk.purpose is Purpose.SELF for lk in self._lookups.values()):
            if self._probing:
                self._self_lookup_due = True  # started by _react once the probes are answered
            else:
                self._start_lookup(Purpose.SELF, self.peer_id, now)

    # --- lookups -----------------------------------------------------------------------------

    @implements("BOOT-04", "FIND-05")
    def _start_lookup(self, purpose: Purpose, key: bytes, now: int, ident: int = 0) -> None:
        """Start a lookup seeded from the table; with no seed it ends at once (BOOT-04)."""
        target = self.keyspace.key_of(key)
        seeds = [(e.peer, e.key, e.addrs) for e in self.table if not self._peer(e.peer).failed]
        ident = ident or self._new_id()
        lookup = Lookup(ident, purpose, target, key, seeds, self.config.k, self.config.alpha)
        self._log("lookup.start", purpose=purpose.value, key=key.hex(), seeds=len(seeds))
        self._lookups[ident] = lookup
        self._advance(lookup, now)

    def _advance(self, lookup: Lookup, now: int) -> None:
        if lookup.ident not in self._lookups:
            return
        kind = (
            MessageType.GET_PROVIDERS
            if lookup.purpose is Purpose.FIND_PROVIDERS
            else MessageType.FIND_NODE
        )
        for peer in lookup.next_queries():
            self._send(
                Request(peer, lookup=lookup.ident), KadMessage(kind, key=lookup.key), now, True
            )
        if lookup.finished():
            self._end_lookup(lookup, now)

    def _drop_lookup(self, ident: int) -> None:
        """Forget a lookup and the replies still out for it (and their deadlines)."""
        self._lookups.pop(ident, None)
        for rid, request in list(self._requests.items()):
            if request.lookup == ident:
                self._settle_request(rid)

    def _end_lookup(self, lookup: Lookup, now: int) -> None:
        self._drop_lookup(lookup.ident)
        result = lookup.result()
        self._log(
            "lookup.end", purpose=lookup.purpose.value, key=lookup.key.hex(),
            answered=len(lookup.answered), failed=len(lookup.failed), hops=lookup.max_hops(),
        )  # fmt: skip
        if lookup.purpose is Purpose.SELF:
            if lookup.answered:
                self.self_lookup_done = True
            elif not lookup.keys:
                self._log("lookup.failed", purpose="self", reason="no peers in table")
            if self.self_lookup_done:
                # a new run: a bucket lookup the last run left open gives way to it
                stale = [i for i, lk in self._lookups.items() if lk.purpose is Purpose.REFRESH]
                for ident in stale:
                    self._drop_lookup(ident)
                self._refresh_from = 0
                self._refresh_buckets(now)
        elif lookup.purpose is Purpose.REFRESH:
            bucket = common_prefix_length(self.own_key, lookup.target, self.keyspace.bits)
            self._refresh_from = bucket + 1
            self._refresh_buckets(now)
        elif lookup.purpose is Purpose.PROVIDE:
            job = self._jobs.get(lookup.key)
            if job is not None and job.lookup == lookup.ident:
                self._announce(job, result, now, empty_table=not lookup.keys)
        else:
            ops, key = self._finds.pop(lookup.ident)
            # What the network answered: a find that some peer answered succeeded, even with
            # no provider; one that no peer answered failed (BOOT-04, BOOT-05).
            providers = tuple(lookup.providers[p] for p in sorted(lookup.providers))
            if lookup.answered:
                code, reason = "", ""
            else:
                code = NO_PEERS
                reason = "no peers in table" if not lookup.keys else "no peer answered"
            for op in ops:
                outcome = fx.FindOutcome(op, key, bool(lookup.answered), providers, reason, code)
                self._emit(fx.ReportOutcome(outcome))

    def _next_refresh_bucket(self, first: int) -> int | None:
        """The first empty bucket from ``first`` on, no deeper than the deepest non-empty one
        (nor than 15); None when none is left or the table is empty (the model's
        ``lifecycle.next_refresh_bucket``)."""
        buckets = self.table.bucket_sizes()
        if not buckets:
            return None
        for bucket in range(first, min(max(buckets), MAX_REFRESH_BUCKET + 1)):
            if bucket not in buckets:
                return bucket
        return None

    @implements("BOOT-03")
    def _refresh_buckets(self, now: int) -> None:
        """Look up an ID in the run's next empty bucket: one lookup at a time, after the
        self-lookup, each next one when the last ends (go's doRefresh, the IPFS spec's
        FIND_NODE "with a randomly generated Peer ID matching the bucket"). It waits while an
        admission probe is out, so that it reads the table the probe decides."""
        if self._probing or self._refresh_from is None:
            return
        first, self._refresh_from = self._refresh_from, None
        while (bucket := self._next_refresh_bucket(first)) is not None:
            if bucket not in self._refresh_keys:
                self._refresh_keys[bucket] = refresh_key(self.keyspace, self.own_key, bucket)
            key = self._refresh_keys[bucket]
            if key is not None:
                self._start_lookup(Purpose.REFRESH, key, now)
                return
            self._log("refresh.skipped", bucket=bucket, reason="no key for the bucket")
            first = bucket + 1

    # --- provide -----------------------------------------------------------------------------

    @implements("BOOT-05", "PROV-07")
    def _on_find(self, event: ev.FindProviders) -> None:
        """Start a GET_PROVIDERS lookup; a call for a key already being looked up joins it; a
        node that is not Ready fails the call at once with a retryable reason."""
        for ops, key in self._finds.values():
            if key == event.key:
                ops.append(event.op)
                return
        if not self.is_ready:
            reason = "not ready: no peer in the table or no self-lookup yet"
            outcome = fx.FindOutcome(event.op, event.key, False, (), reason, NOT_READY)
            self._emit(fx.ReportOutcome(outcome))
            return
        ident = self._new_id()
        self._finds[ident] = ([event.op], event.key)
        self._start_lookup(Purpose.FIND_PROVIDERS, event.key, event.now, ident)

    def _store_own(self, key: bytes, now: int) -> None:
        self.store.add(
            ProviderRecord(
                key, self.peer_id, self.addresses.announceable(), now + self.config.record_ttl
            )
        )

    @implements("PROV-01", "BOOT-05")
    def _on_provide(self, event: ev.Provide) -> None:
        """Store our record locally first, then queue the announcement until Ready."""
        self._store_own(event.key, event.now)
        job = self._jobs.get(event.key)
        if job is not None and job.phase in (Phase.LOOKUP, Phase.SENDING, Phase.QUEUED):
            job.op = event.op  # already on its way: the next outcome answers this command too
            return
        if job is not None:
            self._cancel(Timer(TimerKind.REPUBLISH, event.key))
        self._jobs[event.key] = ProvideJob(event.key, event.op, self.config.retry_base)
        if not self.is_ready:
            self._log("provide.queued", key=event.key.hex(), reason="not ready")
        elif not self.addresses.announceable():
            # ADDR-07: an ADD_PROVIDER without an address would be dropped by every server
            self._log("provide.queued", key=event.key.hex(), reason="no announceable address")

    def _on_stop(self, event: ev.StopProviding) -> None:
        job = self._jobs.pop(event.key, None)
        self.store.remove(event.key, self.peer_id)
        if job is None:
            return
        for timer in (
            Timer(TimerKind.PROVIDE_RETRY, event.key),
            Timer(TimerKind.REPUBLISH, event.key),
        ):
            self._cancel(timer)
        for rid in list(job.pending):
            self._settle_request(rid)
        if job.lookup is not None:
            self._drop_lookup(job.lookup)
        self._log("provide.stopped", key=event.key.hex())

    def _attempt(self, job: ProvideJob, now: int) -> None:
        self._cancel(Timer(TimerKind.PROVIDE_RETRY, job.key))
        self._cancel(Timer(TimerKind.REPUBLISH, job.key))
        job.begin_attempt()
        self._log("provide.attempt", key=job.key.hex(), attempt=job.attempts)
        job.lookup = self._new_id()
        self._start_lookup(Purpose.PROVIDE, job.key, now, job.lookup)

    @implements("PROV-01", "PROV-08", "ADDR-07")
    def _announce(self, job: ProvideJob, peers: list[bytes], now: int, empty_table: bool) -> None:
        """GetClosestPeers ended: send ADD_PROVIDER to the peers it found."""
        job.lookup = None
        if not peers:
            reason = "no peers in table" if empty_table else "no peer answered GetClosestPeers"
            self._provide_failed(job, reason, NO_PEERS, now)
            return
        job.phase = Phase.SENDING
        job.delivered = set()
        message = KadMessage(
            MessageType.ADD_PROVIDER, key=job.key, provider_peers=(self._self_info(),)
        )
        job.pending = []
        for peer in peers:
            rid = self._send(Request(peer, provide_key=job.key), message, now, expects_reply=False)
            job.pending.append(rid)
        job.sent = len(peers)

    @implements("PROV-02", "PROV-05")
    def _settle_job(self, job: ProvideJob, now: int) -> None:
        if job.phase is not Phase.SENDING or job.pending:
            return
        if not job.delivered:
            reason = f"no ADD_PROVIDER delivered ({job.sent} sent)"
            self._provide_failed(job, reason, NONE_DELIVERED, now)
            return
        self._store_own(job.key, now)
        job.succeed(self.config.retry_base, now)
        self._arm(Timer(TimerKind.REPUBLISH, job.key), now + self.config.republish_interval)
        outcome = fx.ProvideOutcome(job.op, job.key, True, len(job.delivered), job.attempts)
        self._log("provide.outcome", key=job.key.hex(), ok=True, delivered=len(job.delivered))
        self._emit(fx.ReportOutcome(outcome))

    @implements("PROV-02", "PROV-06")
    def _provide_failed(self, job: ProvideJob, reason: str, code: str, now: int) -> None:
        limit = self.config.provide_max_attempts
        job.reported, job.code = False, code
        if limit is not None and job.attempts >= limit:
            job.phase = Phase.STOPPED
            job.pending, job.delivered = [], set()
            outcome = fx.ProvideOutcome(
                job.op, job.key, False, 0, job.attempts, reason, None, final=True, code=code
            )
        else:
            retry_at = job.schedule_retry(now, self.config.retry_base, self.config.retry_cap)
            self._arm(Timer(TimerKind.PROVIDE_RETRY, job.key), retry_at)
            outcome = fx.ProvideOutcome(
                job.op, job.key, False, 0, job.attempts, reason, retry_at, code=code
            )
        self._log(
            "provide.outcome", key=job.key.hex(), ok=False, reason=reason, attempt=job.attempts
        )
        self._emit(fx.ReportOutcome(outcome))


_HANDLERS: dict[type, Callable[[Core, Any], None]] = {
    ev.Start: Core._on_start,
    ev.ConnectionOpened: Core._on_connection_opened,
    ev.ConnectionClosed: Core._on_connection_closed,
    ev.DialFailed: Core._on_dial_failed,
    ev.IdentifyReceived: Core._on_identify,
    ev.RequestReceived: Core._on_request,
    ev.ResponseReceived: Core._on_response,
    ev.RequestDelivered: Core._on_delivered,
    ev.RequestFailed: Core._on_request_failed,
    ev.DialBackResult: Core._on_dial_back,
    ev.TimerFired: Core._on_timer,
    ev.Provide: Core._on_provide,
    ev.FindProviders: Core._on_find,
    ev.StopProviding: Core._on_stop,
    ev.SetMode: Core._on_set_mode,
}
