"""A deterministic, seeded network of many cores in one process (a driver, not a model).

Each :class:`SimNode` is a :class:`~kadspec.impl.core.Core` with a provider store and a listen
address ``/sim/<index>``. The network carries the cores' effects: dials open connections (the
listener sees an ephemeral remote address, as on TCP), identify runs both ways after a
connection opens and again (as a push) on a mode change, kad requests and replies travel as
framed protobuf bytes through :mod:`kadspec.impl.wire`, timers fire on a virtual clock.

Everything that varies (latency, loss) comes from one ``random.Random(seed)``, and events are
ordered by (time, sequence number), so a seed replays exactly. The test chooses the rest:

- time: :meth:`SimNetwork.run` advances the virtual clock (ms); :meth:`SimNetwork.at` schedules
  anything at a chosen instant;
- message order: latency may be a function of the link, and with ``hold=True`` nothing crosses
  the network by itself: every transfer waits in :attr:`SimNetwork.pending` until the test
  :meth:`~SimNetwork.deliver`\\ s or :meth:`~SimNetwork.drop`\\ s it, in any order;
- loss: a probability, or a function of the link and the message;
- partitions: :meth:`SimNetwork.partition` cuts or heals a pair;
- crash and restart: :meth:`SimNetwork.crash` loses the process (connections, memory, whatever
  is in flight to it); the provider store survives unless the node was added with
  ``durable=False``; :meth:`SimNetwork.restart` starts a fresh core on the surviving store.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import CoreConfig, ModeSetting
from kadspec.impl.core import Core
from kadspec.impl.events import Direction
from kadspec.impl.keyspace import Keyspace, Sha256Keyspace
from kadspec.impl.provide import Phase
from kadspec.impl.records import MemoryStore, RecordStore
from kadspec.impl.wire import KadMessage, MessageType, decode_frames, frame

#: a link's latency in ms, chosen by the test: (sender index, receiver index) -> ms
LatencyFunction = Callable[[int, int], int]
#: whether one message is lost, chosen by the test: (sender, receiver, message) -> lost
LossFunction = Callable[[int, int, KadMessage], bool]

#: decoded messages kept for reuse (identical bytes decode to the identical frozen value)
_DECODE_CACHE_SIZE = 4096


def sim_peer_id(index: int) -> bytes:
    """Node ``index``'s peer ID: an identity multihash, so it is a valid libp2p peer ID."""
    return bytes([0x00, 6]) + b"sim" + index.to_bytes(3, "big")


def sim_addr(index: int) -> bytes:
    return f"/sim/{index}".encode()


@attrs.define
class SimNode:
    index: int
    config: CoreConfig
    store: RecordStore
    core: Core
    up: bool = False
    #: bumped on every crash, so that events scheduled for an earlier life are dropped
    life: int = 0
    protocols: frozenset[str] = frozenset()
    outcomes: list[fx.ProvideOutcome | fx.FindOutcome] = attrs.Factory(list)
    log: list[fx.LogEvent] = attrs.Factory(list)
    #: False: the store lives in the process and a crash loses it
    durable: bool = True
    #: how many times the process crashed
    crashes: int = 0
    #: the keys it was providing when it last crashed, kept with the store (the reprovider's
    #: key list on disk): a restart queues them again (PROV-05)
    providing: tuple[bytes, ...] = ()

    @property
    def peer_id(self) -> bytes:
        return self.config.peer_id


#: (time, sequence, guard node or None, its life, action, arguments)
_Scheduled = tuple[int, int, "SimNode | None", int, Callable[..., object], tuple[Any, ...]]


@attrs.define
class _Stream:
    origin: int
    request: int
    expects_reply: bool


@attrs.define(eq=False)
class Transfer:
    """Something on its way across the network, held until the test delivers or drops it.

    ``kind`` is one of ``dial`` (a dial leaving ``src``), ``send`` (a request leaving ``src``:
    the connection is dialed or reused, then the request travels), ``request``, ``response``,
    ``delivered`` (the acknowledgement of a request that expects no reply), ``reset`` (a
    refused request's stream reset), ``identify`` (``src``'s identify reaching ``dst``),
    ``dial-back`` (the result of an AutoNAT dial-back). ``message`` is the kad message for
    ``send``, ``request`` and ``response``.

    Dropping one loses it, except that a dial or a dial-back always ends somehow: a dropped
    dial fails (DialFailed), a dropped dial-back reports the address unreachable.
    """

    kind: str
    src: int
    dst: int
    message: KadMessage | None
    #: the node whose life guards the transfer: it is void once that node crashed
    _guard: SimNode = attrs.field(repr=False)
    _life: int = attrs.field(repr=False)
    _action: Callable[..., object] = attrs.field(repr=False)
    _args: tuple[Any, ...] = attrs.field(repr=False)
    #: what losing it means for its guard, if anything (a failed dial)
    _on_drop: tuple[Callable[..., object], tuple[Any, ...]] | None = attrs.field(
        default=None, repr=False
    )

    @property
    def void(self) -> bool:
        """The node it is for (or from, for dial and send) crashed since it left."""
        return not self._guard.up or self._guard.life != self._life


class SimNetwork:
    """Many cores, one virtual clock (ms), one seeded random source."""

    def __init__(
        self,
        seed: int = 0,
        latency: tuple[int, int] | LatencyFunction = (1, 20),
        loss: float | LossFunction = 0.0,
        keyspace: Keyspace | None = None,
        keep_log: bool | frozenset[str] = True,
        through_wire: bool = True,
        hold: bool = False,
    ) -> None:
        self.random = random.Random(seed)
        self.latency = latency
        # the latency tuple the draw parameters (low, span, bits) were derived from
        self._latency_of: object = None
        self._latency_draw = (0, 1, 1)
        self.loss = loss
        self.keyspace = keyspace or Sha256Keyspace()
        self.keep_log = keep_log
        #: frame and parse every message with the protobuf codec (off: hand the typed message
        #: over, for benchmarks of the lifecycle at scale; the codec is tested on its own)
        self.through_wire = through_wire
        #: True: transfers wait in ``pending`` for the test to deliver or drop them
        self.hold = hold
        self.pending: list[Transfer] = []
        self.now = 0
        self.nodes: list[SimNode] = []
        self.partitioned: set[frozenset[int]] = set()
        self.delivered_messages = 0
        self._delivered_kinds: Counter[tuple[MessageType, bool]] = Counter()
        self.decode_cache_hits = 0
        #: scheduled events taken off the queue by ``run`` (dropped ones of crashed nodes too)
        self.events_run = 0
        # (time, sequence, guard node or None, its life, action, arguments): the sequence
        # number makes the order total, so the tuples never compare past it
        self._queue: list[_Scheduled] = []
        self._seq = 0
        self._by_peer: dict[bytes, int] = {}
        #: node index -> its listen address (sim_addr), made once
        self._addrs: list[bytes] = []
        # connection id -> (dialer, listener); one connection per pair is reused
        self._connections: dict[int, tuple[int, int]] = {}
        self._pair: dict[tuple[int, int], int] = {}
        # node index -> its open connections, in the order they opened
        self._node_connections: dict[int, dict[int, None]] = {}
        self._streams: dict[int, _Stream] = {}
        self._next_id = 0
        self._decoded: dict[bytes, KadMessage] = {}
        # node index -> its armed timers -> the sequence number of the wake-up that counts
        self._armed: dict[int, dict[ev.Timer, int]] = {}
        self._handlers: dict[type, Callable[[SimNode, Any], None]] = {
            fx.LogEvent: self._on_log,
            fx.SetTimer: self._on_set_timer,
            fx.CancelTimer: self._on_cancel_timer,
            fx.SendRequest: self._on_send_request,
            fx.SendResponse: self._answer,
            fx.ResetStream: self._answer,
            fx.ReportOutcome: self._on_outcome,
            fx.Dial: self._on_dial,
            fx.ModeChanged: self._on_mode_changed,
            fx.RequestDialBack: self._on_dial_back,
            fx.CloseConnection: self._on_close,
        }

    # --- building ----------------------------------------------------------------------------

    def add_node(
        self,
        *,
        mode: ModeSetting = ModeSetting.SERVER,
        store: RecordStore | None = None,
        durable: bool = True,
        **config: object,
    ) -> SimNode:
        """A node with the next index; ``config`` overrides CoreConfig fields.

        ``store`` (default: a fresh in-memory one) is the node's disk: it survives crashes
        unless ``durable`` is False.
        """
        index = len(self.nodes)
        settings: dict[str, object] = {
            "peer_id": sim_peer_id(index),
            "announce_addrs": (sim_addr(index),),
            "mode": mode,
            "keyspace": self.keyspace,
        }
        settings.update(config)
        core_config = CoreConfig(**settings)  # type: ignore[arg-type]
        node_store = MemoryStore() if store is None else store
        node = SimNode(index, core_config, node_store, Core(core_config, node_store))
        node.durable = durable
        self.nodes.append(node)
        self._by_peer[node.peer_id] = index
        self._addrs.append(sim_addr(index))
        self._node_connections[index] = {}
        self._armed[index] = {}
        return node

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- scheduling --------------------------------------------------------------------------

    def at(self, time: int, action: Callable[[], object]) -> None:
        """Run ``action`` at virtual time ``time``."""
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, None, 0, action, ()))

    def _timer(self, node: SimNode, delay: int, action: Callable[..., object], *args: Any) -> None:
        """Run ``action(*args)`` after ``delay`` ms, unless ``node`` crashed in between."""
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay, self._seq, node, node.life, action, args))

    def _transfer(
        self,
        kind: str,
        src: int,
        dst: int,
        guard: SimNode,
        message: KadMessage | None,
        action: Callable[..., object],
        *args: Any,
        on_drop: tuple[Callable[..., object], tuple[Any, ...]] | None = None,
    ) -> None:
        """Carry something from ``src`` to ``guard`` (or let ``guard``'s own dial or send
        leave): after the link's latency, or when the test delivers it (``hold``). Void if
        ``guard`` crashes meanwhile."""
        if self.hold:
            self.pending.append(
                Transfer(kind, src, dst, message, guard, guard.life, action, args, on_drop)
            )
            return
        latency = self.latency
        if isinstance(latency, tuple):
            # random.randint(low, high), spelled out on the public getrandbits (the same
            # rejection sampling CPython's Random uses, so a seed gives the same delays): the
            # library's three layers of calls were a tenth of the simulator's own time
            if latency is not self._latency_of:
                low, high = latency
                span = high - low + 1
                self._latency_of, self._latency_draw = latency, (low, span, span.bit_length())
            low, span, bits = self._latency_draw
            getrandbits = self.random.getrandbits
            drawn = getrandbits(bits)
            while drawn >= span:
                drawn = getrandbits(bits)
            delay = low + drawn
        else:
            delay = latency(src, dst)
        self._seq += 1
        heapq.heappush(
            self._queue, (self.now + delay, self._seq, guard, guard.life, action, args)
        )  # what _timer does, inlined: this runs for every transfer

    def step(self) -> bool:
        """Run the next event; False when nothing is left."""
        if not self._queue:
            return False
        time, _, guard, life, action, args = heapq.heappop(self._queue)
        if time > self.now:
            self.now = time
        if guard is None or (guard.up and guard.life == life):
            action(*args)
        return True

    def run(self, until: int, done: Callable[[], bool] | None = None, check_every: int = 1) -> bool:
        """Run events up to virtual time ``until`` or until ``done()``, asked after every
        ``check_every`` events; return done()'s verdict."""
        queue = self._queue
        pop = heapq.heappop
        steps = 0
        while queue and queue[0][0] <= until:
            time, _, guard, life, action, args = pop(queue)
            if time > self.now:
                self.now = time
            if guard is None or (guard.up and guard.life == life):
                action(*args)
            steps += 1
            if done is not None and steps % check_every == 0 and done():
                self.events_run += steps
                return True
        self.events_run += steps
        self.now = max(self.now, until)
        return done() if done is not None else True

    def deliver(self, index: int = 0) -> Transfer:
        """Carry ``pending[index]`` now (held mode); a void one is discarded. Returns it."""
        transfer = self.pending.pop(index)
        if not transfer.void:
            transfer._action(*transfer._args)
        return transfer

    def drop(self, index: int = 0) -> Transfer:
        """Lose ``pending[index]`` (held mode): a lost message is noticed by its sender's
        deadline; a lost dial fails at once, a lost dial-back says unreachable."""
        transfer = self.pending.pop(index)
        if transfer._on_drop is not None and not transfer.void:
            action, args = transfer._on_drop
            action(*args)
        return transfer

    def settle(
        self, until: int, choose: Callable[[list[Transfer]], int] | None = None,
        max_transfers: int = 100_000,
    ) -> int:  # fmt: skip
        """Held mode: deliver pending transfers (``choose`` picks the index, default the
        oldest) and fire timers as the clock reaches them, up to virtual time ``until``.

        Transfers go first; the clock moves to the next timer only when none is pending.
        Returns how many transfers were delivered.
        """
        delivered = 0
        while delivered < max_transfers:
            if self.pending:
                self.deliver(choose(self.pending) if choose is not None else 0)
                delivered += 1
            elif self._queue and self._queue[0][0] <= until:
                self.step()
            else:
                break
        self.now = max(self.now, until)
        return delivered

    # --- the user's side ---------------------------------------------------------------------

    def start(self, node: SimNode) -> None:
        node.up = True
        self._feed(node, ev.Start(self.now, providing=node.providing))

    def start_at(self, node: SimNode, time: int, provide: bytes | None = None) -> None:
        """Start ``node`` at ``time``; with ``provide``, it provides that key at once (op =
        its index), before it knows any peer."""

        def begin() -> None:
            self.start(node)
            if provide is not None:
                self.command(node, ev.Provide(self.now, op=node.index, key=provide))

        self.at(time, begin)

    def command(self, node: SimNode, event: ev.Event) -> None:
        if node.up:
            self._feed(node, event)

    def crash(self, node: SimNode) -> None:
        """The process dies: its connections close, memory and everything in flight to it are
        lost; its store and the keys it provides stay (the disk) when the node is durable."""
        node.providing = (
            tuple(key for key, job in node.core.jobs().items() if job.phase is not Phase.STOPPED)
            if node.durable
            else ()
        )
        node.up = False
        node.life += 1
        node.crashes += 1
        for conn in list(self._node_connections[node.index]):
            self._close(conn)
        self.pending = [t for t in self.pending if not t.void]
        self._armed[node.index] = {}
        if not node.durable:
            node.store = MemoryStore()
        node.core = Core(node.config, node.store)

    def restart(self, node: SimNode) -> None:
        """Crash ``node`` if it runs, then start a fresh core on what survived."""
        if node.up:
            self.crash(node)
        self.start(node)

    def partition(self, a: SimNode, b: SimNode, cut: bool = True) -> None:
        pair = frozenset({a.index, b.index})
        if cut:
            self.partitioned.add(pair)
        else:
            self.partitioned.discard(pair)

    @property
    def requests_by_type(self) -> dict[str, int]:
        """Delivered requests by message type; a FIND_NODE for the sender's own ID (its
        self-lookup, or an admission probe) is counted apart."""
        counts: Counter[str] = Counter()
        for (kind, own_id), count in self._delivered_kinds.items():
            own = own_id and kind is MessageType.FIND_NODE
            counts[f"{kind.name} for the sender's own ID" if own else kind.name] += count
        return dict(counts)

    def connected_pairs(self) -> set[tuple[int, int]]:
        """The (dialer, listener) index pairs of the open connections."""
        return set(self._connections.values())

    # --- carrying effects --------------------------------------------------------------------

    def _feed(self, node: SimNode, event: ev.Event) -> list[fx.Effect]:
        effects = node.core.handle(event)
        handlers = self._handlers
        for effect in effects:
            handler = handlers.get(type(effect))
            if handler is None:
                handler = self._handler_of(effect)
            handler(node, effect)
        return effects

    def _handler_of(self, effect: fx.Effect) -> Callable[[SimNode, Any], None]:
        """For an effect of a subclass (a wrapped core's): the handler of its base class."""
        for kind, handler in self._handlers.items():
            if isinstance(effect, kind):
                return handler
        raise TypeError(f"the simulated network cannot carry {effect!r}")

    def _on_log(self, node: SimNode, effect: fx.LogEvent) -> None:
        keep = self.keep_log
        if keep is True or (keep is not False and effect.name in keep):
            node.log.append(effect)

    def _on_outcome(self, node: SimNode, effect: fx.ReportOutcome) -> None:
        node.outcomes.append(effect.outcome)

    def _on_set_timer(self, node: SimNode, effect: fx.SetTimer) -> None:
        # Like a host's timer handles: arming again replaces, cancelling removes. Every request
        # arms a deadline that is almost always cancelled; its wake-up is not fed to the core
        # (as on the real host), which also saves an event per request.
        token = self._seq + 1  # the sequence number _timer gives the wake-up
        self._armed[node.index][effect.timer] = token
        self._timer(node, effect.at - self.now, self._fire, node, effect.timer, token)

    def _on_cancel_timer(self, node: SimNode, effect: fx.CancelTimer) -> None:
        self._armed[node.index].pop(effect.timer, None)

    def _on_dial(self, node: SimNode, effect: fx.Dial) -> None:
        failed = ev.DialFailed, effect.peer, "dropped"
        self._transfer(
            "dial", node.index, self._by_peer.get(effect.peer, -1), node, None, self._dial, node,
            effect.peer, effect.addrs, None, on_drop=(self._feed_later, (node, *failed)),
        )  # fmt: skip

    def _on_send_request(self, node: SimNode, effect: fx.SendRequest) -> None:
        self._transfer(
            "send", node.index, self._by_peer.get(effect.peer, -1), node, effect.message,
            self._send_request, node, effect,
        )  # fmt: skip

    def _on_mode_changed(self, node: SimNode, effect: fx.ModeChanged) -> None:
        node.protocols = effect.protocols
        for conn in self._node_connections[node.index]:
            a, b = self._connections[conn]
            other = self.nodes[b if a == node.index else a]
            self._transfer(
                "identify", node.index, other.index, other, None, self._identify, other, node, conn
            )

    def _on_dial_back(self, node: SimNode, effect: fx.RequestDialBack) -> None:
        reachable = effect.addr == sim_addr(node.index)
        self._transfer(
            "dial-back", node.index, node.index, node, None, self._feed_later, node,
            ev.DialBackResult, effect.addr, reachable,
            on_drop=(self._feed_later, (node, ev.DialBackResult, effect.addr, False)),
        )  # fmt: skip

    def _feed_later(self, node: SimNode, event_type: Callable[..., ev.Event], *fields: Any) -> None:
        """Feed an event stamped with the time it arrives."""
        self._feed(node, event_type(self.now, *fields))

    def _on_close(self, node: SimNode, effect: fx.CloseConnection) -> None:
        self._close(effect.connection)

    def _fire(self, node: SimNode, timer: ev.Timer, token: int) -> None:
        armed = self._armed[node.index]
        if armed.get(timer) != token:
            return  # cancelled or armed again since
        del armed[timer]
        self._feed(node, ev.TimerFired(self.now, timer))

    def _reachable(self, a: SimNode, b: SimNode) -> bool:
        if not b.up:
            return False
        return not self.partitioned or frozenset({a.index, b.index}) not in self.partitioned

    def _dial(
        self,
        node: SimNode,
        peer: bytes,
        addrs: Iterable[bytes],
        then: Callable[[int | None], None] | None,
    ) -> None:
        """Open a connection from ``node`` to ``peer``; ``then`` gets its ID (None: failed)."""
        target_index = self._by_peer.get(peer)
        if target_index is not None:
            a = node.index
            existing = self._pair.get((a, target_index) if a < target_index else (target_index, a))
            if existing is not None:
                if then is not None:
                    then(existing)
                return
        target = None if target_index is None else self.nodes[target_index]
        dialable = target is not None and self._addrs[target.index] in addrs
        if target is None or not dialable or not self._reachable(node, target):
            if then is None:
                self._feed(node, ev.DialFailed(self.now, peer, "unreachable"))
            else:
                then(None)
            return
        conn = self._id()
        a, b = node.index, target.index
        self._connections[conn] = (a, b)
        self._pair[(a, b) if a < b else (b, a)] = conn
        self._node_connections[a][conn] = None
        self._node_connections[b][conn] = None
        ephemeral = f"/sim/{node.index}/ephemeral/{conn}".encode()
        self._feed(
            node,
            ev.ConnectionOpened(self.now, conn, peer, Direction.OUTBOUND, self._addrs[b]),
        )
        self._feed(
            target, ev.ConnectionOpened(self.now, conn, node.peer_id, Direction.INBOUND, ephemeral)
        )
        self._transfer("identify", b, a, node, None, self._identify, node, target, conn)
        self._transfer("identify", a, b, target, None, self._identify, target, node, conn)
        if then is not None:
            then(conn)

    def _identify(self, receiver: SimNode, sender: SimNode, conn: int) -> None:
        """``receiver`` gets identify from ``sender`` on ``conn`` (if it is still open)."""
        if conn not in self._connections or not sender.up:
            return
        dialer, _ = self._connections[conn]
        observed = self._addrs[receiver.index] if dialer == receiver.index else None
        self._feed(
            receiver,
            ev.IdentifyReceived(
                self.now,
                conn,
                sender.peer_id,
                (self._addrs[sender.index],),
                sender.protocols,
                observed,
            ),
        )

    def _close(self, conn: int) -> None:
        pair = self._connections.pop(conn, None)
        if pair is None:
            return
        a, b = (self.nodes[i] for i in pair)
        self._pair.pop((pair[0], pair[1]) if pair[0] < pair[1] else (pair[1], pair[0]), None)
        self._node_connections[a.index].pop(conn, None)
        self._node_connections[b.index].pop(conn, None)
        for this, other in ((a, b), (b, a)):
            if this.up:
                self._feed(this, ev.ConnectionClosed(self.now, conn, other.peer_id))

    def _encode(self, message: KadMessage) -> bytes | KadMessage:
        return frame(message) if self.through_wire else message

    def _decode(self, data: bytes | KadMessage) -> KadMessage:
        if isinstance(data, KadMessage):
            return data
        # Decoding is a pure function of the bytes and its result is frozen: a lookup's
        # requests to many peers, and one server's equal replies, are parsed once.
        message = self._decoded.get(data)
        if message is not None:
            self.decode_cache_hits += 1
            return message
        (message,) = decode_frames(data)
        if len(self._decoded) >= _DECODE_CACHE_SIZE:
            del self._decoded[next(iter(self._decoded))]
        self._decoded[data] = message
        return message

    def _lost(self, src: SimNode, dst: SimNode, message: KadMessage) -> bool:
        loss = self.loss
        if isinstance(loss, float | int):
            return self.random.random() < loss
        return loss(src.index, dst.index, message)

    def _send_request(self, node: SimNode, effect: fx.SendRequest) -> None:
        target_index = self._by_peer.get(effect.peer)
        if target_index is not None:
            a = node.index
            conn = self._pair.get((a, target_index) if a < target_index else (target_index, a))
            if conn is not None:  # what _dial does with an open connection
                self._sent(node, effect, conn)
                return
        self._dial(node, effect.peer, effect.addrs, lambda conn: self._sent(node, effect, conn))

    def _sent(self, node: SimNode, effect: fx.SendRequest, conn: int | None) -> None:
        """The request leaves on ``conn`` (None: no connection could be had)."""
        target_index = self._by_peer.get(effect.peer)
        if conn is None or target_index is None:
            self._feed(node, ev.RequestFailed(self.now, effect.request, "dial failed"))
            return
        target = self.nodes[target_index]
        if self._lost(node, target, effect.message) or not self._reachable(node, target):
            return  # lost: the requester's deadline will fire
        data = self._encode(effect.message)
        stream = self._id()
        self._streams[stream] = _Stream(node.index, effect.request, effect.expects_reply)
        self._transfer(
            "request", node.index, target.index, target, effect.message, self._deliver, target,
            node, conn, stream, data,
        )  # fmt: skip

    def _deliver(
        self, target: SimNode, origin: SimNode, conn: int, stream: int, data: bytes | KadMessage
    ) -> None:
        message = self._decode(data)
        self.delivered_messages += 1
        self._delivered_kinds[message.type, message.key == origin.peer_id] += 1
        effects = self._feed(
            target, ev.RequestReceived(self.now, origin.peer_id, conn, stream, message)
        )
        info = self._streams.get(stream)
        if info is None or info.expects_reply:
            return
        for effect in effects:
            if isinstance(effect, fx.ResetStream) and effect.stream == stream:
                return
        del self._streams[stream]
        self._transfer(
            "delivered", target.index, origin.index, origin, None, self._feed_later, origin,
            ev.RequestDelivered, info.request,
        )  # fmt: skip

    def _answer(self, node: SimNode, effect: fx.SendResponse | fx.ResetStream) -> None:
        info = self._streams.pop(effect.stream, None)
        if info is None:
            return
        origin = self.nodes[info.origin]
        if isinstance(effect, fx.ResetStream):
            self._transfer(
                "reset", node.index, origin.index, origin, None, self._feed_later, origin,
                ev.RequestFailed, info.request, "stream reset",
            )  # fmt: skip
            return
        if self._lost(node, origin, effect.message) or not self._reachable(node, origin):
            return
        data = self._encode(effect.message)
        self._transfer(
            "response", node.index, origin.index, origin, effect.message, self._receive, origin,
            info.request, data,
        )  # fmt: skip

    def _receive(self, origin: SimNode, request: int, data: bytes | KadMessage) -> None:
        self._feed(origin, ev.ResponseReceived(self.now, request, self._decode(data)))
