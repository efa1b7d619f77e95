"""A deterministic, seeded network of many cores in one process (a driver, not a model).

Each :class:`SimNode` is a :class:`~kadspec.impl.core.Core` with an in-memory store and a listen
address ``/sim/<index>``. The network carries the cores' effects: dials open connections (the
listener sees an ephemeral remote address, as on TCP), identify runs both ways after a
connection opens and again (as a push) on a mode change, kad requests and replies travel as
framed protobuf bytes through :mod:`kadspec.impl.wire`, timers fire on a virtual clock.

Everything that varies (latency, loss) comes from one ``random.Random(seed)``, and events are
ordered by (time, sequence number), so a seed replays exactly. The test chooses the rest: when
nodes start, crash and restart, which pairs are partitioned, and what the users ask.
"""

from __future__ import annotations

import functools
import heapq
import random
from collections.abc import Callable, Iterable

import attrs

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import CoreConfig, ModeSetting
from kadspec.impl.core import Core
from kadspec.impl.events import Direction
from kadspec.impl.keyspace import Keyspace, Sha256Keyspace
from kadspec.impl.records import MemoryStore
from kadspec.impl.wire import KadMessage, decode_frames, frame


def sim_peer_id(index: int) -> bytes:
    """Node ``index``'s peer ID: an identity multihash, so it is a valid libp2p peer ID."""
    return bytes([0x00, 6]) + b"sim" + index.to_bytes(3, "big")


def sim_addr(index: int) -> bytes:
    return f"/sim/{index}".encode()


@attrs.define
class SimNode:
    index: int
    config: CoreConfig
    store: MemoryStore
    core: Core
    up: bool = False
    #: bumped on every crash, so that events scheduled for an earlier life are dropped
    life: int = 0
    protocols: frozenset[str] = frozenset()
    outcomes: list[fx.ProvideOutcome | fx.FindOutcome] = attrs.Factory(list)
    log: list[fx.LogEvent] = attrs.Factory(list)

    @property
    def peer_id(self) -> bytes:
        return self.config.peer_id


@attrs.define
class _Stream:
    origin: int
    request: int
    expects_reply: bool


class SimNetwork:
    """Many cores, one virtual clock (ms), one seeded random source."""

    def __init__(
        self,
        seed: int = 0,
        latency: tuple[int, int] = (1, 20),
        loss: float = 0.0,
        keyspace: Keyspace | None = None,
        keep_log: bool | frozenset[str] = True,
        through_wire: bool = True,
    ) -> None:
        self.random = random.Random(seed)
        self.latency = latency
        self.loss = loss
        self.keyspace = keyspace or Sha256Keyspace()
        self.keep_log = keep_log
        #: frame and parse every message with the protobuf codec (off: hand the typed message
        #: over, for benchmarks of the lifecycle at scale; the codec is tested on its own)
        self.through_wire = through_wire
        self.now = 0
        self.nodes: list[SimNode] = []
        self.partitioned: set[frozenset[int]] = set()
        self.delivered_messages = 0
        self._queue: list[tuple[int, int, Callable[[], object]]] = []
        self._seq = 0
        self._by_peer: dict[bytes, int] = {}
        self._by_addr: dict[bytes, int] = {}
        # connection id -> (dialer, listener); one connection per pair is reused
        self._connections: dict[int, tuple[int, int]] = {}
        self._pair: dict[frozenset[int], int] = {}
        self._streams: dict[int, _Stream] = {}
        self._next_id = 0

    # --- building ----------------------------------------------------------------------------

    def add_node(self, *, mode: ModeSetting = ModeSetting.SERVER, **config: object) -> SimNode:
        """A node with the next index; ``config`` overrides CoreConfig fields."""
        index = len(self.nodes)
        settings: dict[str, object] = {
            "peer_id": sim_peer_id(index),
            "announce_addrs": (sim_addr(index),),
            "mode": mode,
            "keyspace": self.keyspace,
        }
        settings.update(config)
        core_config = CoreConfig(**settings)  # type: ignore[arg-type]
        store = MemoryStore()
        node = SimNode(index, core_config, store, Core(core_config, store))
        self.nodes.append(node)
        self._by_peer[node.peer_id] = index
        self._by_addr[sim_addr(index)] = index
        return node

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- scheduling --------------------------------------------------------------------------

    def at(self, time: int, action: Callable[[], object]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, action))

    def _later(self, node: SimNode, action: Callable[[], object], delay: int | None = None) -> None:
        """Run ``action`` after a network delay, unless ``node`` crashed in between."""
        life = node.life
        wait = self.random.randint(*self.latency) if delay is None else delay

        def guarded() -> None:
            if node.up and node.life == life:
                action()

        self.at(self.now + wait, guarded)

    def step(self) -> bool:
        """Run the next event; False when nothing is left."""
        if not self._queue:
            return False
        time, _, action = heapq.heappop(self._queue)
        self.now = max(self.now, time)
        action()
        return True

    def run(self, until: int, done: Callable[[], bool] | None = None, check_every: int = 1) -> bool:
        """Run events up to virtual time ``until`` or until ``done()``, asked after every
        ``check_every`` events; return done()'s verdict."""
        steps = 0
        while self._queue and self._queue[0][0] <= until:
            self.step()
            steps += 1
            if done is not None and steps % check_every == 0 and done():
                return True
        self.now = max(self.now, until)
        return done() if done is not None else True

    # --- the user's side ---------------------------------------------------------------------

    def start(self, node: SimNode) -> None:
        node.up = True
        self._feed(node, ev.Start(self.now))

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
        """The process dies: its connections close, memory is lost, its store stays (disk)."""
        node.up = False
        node.life += 1
        for conn, (a, b) in list(self._connections.items()):
            if node.index in (a, b):
                self._close(conn)
        node.core = Core(node.config, node.store)

    def partition(self, a: SimNode, b: SimNode, cut: bool = True) -> None:
        pair = frozenset({a.index, b.index})
        if cut:
            self.partitioned.add(pair)
        else:
            self.partitioned.discard(pair)

    # --- carrying effects --------------------------------------------------------------------

    def _feed(self, node: SimNode, event: ev.Event) -> list[fx.Effect]:
        effects = node.core.handle(event)
        for effect in effects:
            self._apply(node, effect)
        return effects

    def _apply(self, node: SimNode, effect: fx.Effect) -> None:
        if isinstance(effect, fx.LogEvent):
            keep = self.keep_log
            if keep is True or (not isinstance(keep, bool) and effect.name in keep):
                node.log.append(effect)
        elif isinstance(effect, fx.ReportOutcome):
            node.outcomes.append(effect.outcome)
        elif isinstance(effect, fx.SetTimer):
            self._later(node, lambda: self._fire(node, effect.timer), effect.at - self.now)
        elif isinstance(effect, fx.CancelTimer):
            pass  # the core ignores a cancelled timer's wake-up
        elif isinstance(effect, fx.Dial):
            self._later(node, lambda: self._dial(node, effect.peer, effect.addrs, None))
        elif isinstance(effect, fx.SendRequest):
            self._later(node, lambda: self._send_request(node, effect))
        elif isinstance(effect, fx.SendResponse | fx.ResetStream):
            self._answer(node, effect)
        elif isinstance(effect, fx.ModeChanged):
            node.protocols = effect.protocols
            for conn, (a, b) in self._connections.items():
                if node.index in (a, b):
                    other = self.nodes[b if a == node.index else a]
                    self._later(other, functools.partial(self._identify, other, node, conn))
        elif isinstance(effect, fx.RequestDialBack):
            reachable = effect.addr == sim_addr(node.index)
            self._later(
                node, lambda: self._feed(node, ev.DialBackResult(self.now, effect.addr, reachable))
            )
        elif isinstance(effect, fx.CloseConnection):
            self._close(effect.connection)

    def _fire(self, node: SimNode, timer: ev.Timer) -> None:
        self._feed(node, ev.TimerFired(self.now, timer))

    def _reachable(self, a: SimNode, b: SimNode) -> bool:
        return b.up and frozenset({a.index, b.index}) not in self.partitioned

    def _dial(
        self,
        node: SimNode,
        peer: bytes,
        addrs: Iterable[bytes],
        then: Callable[[int | None], None] | None,
    ) -> None:
        """Open a connection from ``node`` to ``peer``; ``then`` gets its ID (None: failed)."""
        target_index = self._by_peer.get(peer)
        existing = (
            None if target_index is None else self._pair.get(frozenset({node.index, target_index}))
        )
        if existing is not None:
            if then is not None:
                then(existing)
            return
        target = None if target_index is None else self.nodes[target_index]
        dialable = target is not None and sim_addr(target.index) in addrs
        if target is None or not dialable or not self._reachable(node, target):
            if then is None:
                self._feed(node, ev.DialFailed(self.now, peer, "unreachable"))
            else:
                then(None)
            return
        conn = self._id()
        self._connections[conn] = (node.index, target.index)
        self._pair[frozenset({node.index, target.index})] = conn
        ephemeral = f"/sim/{node.index}/ephemeral/{conn}".encode()
        self._feed(
            node,
            ev.ConnectionOpened(self.now, conn, peer, Direction.OUTBOUND, sim_addr(target.index)),
        )
        self._feed(
            target, ev.ConnectionOpened(self.now, conn, node.peer_id, Direction.INBOUND, ephemeral)
        )
        self._later(node, lambda: self._identify(node, target, conn))
        self._later(target, lambda: self._identify(target, node, conn))
        if then is not None:
            then(conn)

    def _identify(self, receiver: SimNode, sender: SimNode, conn: int) -> None:
        """``receiver`` gets identify from ``sender`` on ``conn`` (if it is still open)."""
        if conn not in self._connections or not sender.up:
            return
        dialer, _ = self._connections[conn]
        observed = sim_addr(receiver.index) if dialer == receiver.index else None
        self._feed(
            receiver,
            ev.IdentifyReceived(
                self.now,
                conn,
                sender.peer_id,
                (sim_addr(sender.index),),
                sender.protocols,
                observed,
            ),
        )

    def _close(self, conn: int) -> None:
        pair = self._connections.pop(conn, None)
        if pair is None:
            return
        a, b = (self.nodes[i] for i in pair)
        self._pair.pop(frozenset(pair), None)
        for this, other in ((a, b), (b, a)):
            if this.up:
                self._feed(this, ev.ConnectionClosed(self.now, conn, other.peer_id))

    def _encode(self, message: KadMessage) -> bytes | KadMessage:
        return frame(message) if self.through_wire else message

    def _decode(self, data: bytes | KadMessage) -> KadMessage:
        if isinstance(data, KadMessage):
            return data
        (message,) = decode_frames(data)
        return message

    def _send_request(self, node: SimNode, effect: fx.SendRequest) -> None:
        def connected(conn: int | None) -> None:
            target_index = self._by_peer.get(effect.peer)
            if conn is None or target_index is None:
                self._feed(node, ev.RequestFailed(self.now, effect.request, "dial failed"))
                return
            target = self.nodes[target_index]
            if self.random.random() < self.loss or not self._reachable(node, target):
                return  # lost: the requester's deadline will fire
            data = self._encode(effect.message)
            stream = self._id()
            self._streams[stream] = _Stream(node.index, effect.request, effect.expects_reply)
            self._later(target, lambda: self._deliver(target, node, conn, stream, data))

        self._dial(node, effect.peer, effect.addrs, connected)

    def _deliver(
        self, target: SimNode, origin: SimNode, conn: int, stream: int, data: bytes | KadMessage
    ) -> None:
        message = self._decode(data)
        self.delivered_messages += 1
        effects = self._feed(
            target, ev.RequestReceived(self.now, origin.peer_id, conn, stream, message)
        )
        info = self._streams.get(stream)
        reset = any(isinstance(e, fx.ResetStream) and e.stream == stream for e in effects)
        if info is not None and not info.expects_reply and not reset:
            del self._streams[stream]
            self._later(
                origin, lambda: self._feed(origin, ev.RequestDelivered(self.now, info.request))
            )

    def _answer(self, node: SimNode, effect: fx.SendResponse | fx.ResetStream) -> None:
        info = self._streams.pop(effect.stream, None)
        if info is None:
            return
        origin = self.nodes[info.origin]
        if isinstance(effect, fx.ResetStream):
            self._later(
                origin,
                lambda: self._feed(
                    origin, ev.RequestFailed(self.now, info.request, "stream reset")
                ),
            )
            return
        if self.random.random() < self.loss or not self._reachable(node, origin):
            return
        data = self._encode(effect.message)

        def receive() -> None:
            message = self._decode(data)
            self._feed(origin, ev.ResponseReceived(self.now, info.request, message))

        self._later(origin, receive)
