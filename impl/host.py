"""The real network driver: a :class:`~kadspec.impl.core.Core` on a py-libp2p host.

py-libp2p provides the transport stack (TCP, noise, yamux), identify and identify push; the
core speaks ``/ipfs/kad/1.0.0`` itself through :mod:`kadspec.impl.wire`. This module only
translates: host notifications and streams become core events, core effects become host calls.
py-libp2p is one of kadspec's dependencies.

What the driver adds on top of the host:

- connection direction comes from py-libp2p's ``SwarmConn.direction``, and where that is
  unknown from whether this driver dialled the peer;
- identify is requested by the driver on every new connection (``/ipfs/id/1.0.0``) and identify
  pushes are taken over, so the core sees each peer's listen addresses, protocols and the
  address it observed us at, on the connection they came on (RT-07);
- a mode change registers or removes the kad stream handler, which changes the protocol list
  identify reports, and pushes identify to every connected peer (ADDR-01, ADDR-02);
- bad input on a kad stream (WireError, a read deadline) resets the stream, is counted in
  ``rejected`` and reported as a log event; it never reaches the core as an exception;
- an ADD_PROVIDER counts as delivered only once the receiver closed the stream after handling
  it (see :meth:`HostDriver._await_acknowledgement`), and each delivery is logged
  (``provide.delivered``, the peer and the key), so a provide's count can be checked against the
  stores its receivers hold.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import trio
from libp2p.identity.identify.identify import ID as IDENTIFY
from libp2p.identity.identify.identify import parse_identify_response
from libp2p.identity.identify_push.identify_push import ID_PUSH, push_identify_to_peers
from libp2p.peer.id import ID as PeerID
from libp2p.peer.peerinfo import PeerInfo as HostPeerInfo
from libp2p.rcmgr import Direction as HostDirection
from multiaddr import Multiaddr

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import Mode
from kadspec.impl.core import Core
from kadspec.impl.events import Direction, Timer
from kadspec.impl.wire import (
    PROTOCOL_ID,
    FrameDecoder,
    KadMessage,
    WireError,
    decode_frames,
    frame,
)

#: how long one read on a kad or identify stream may take before the stream is reset
READ_DEADLINE_S = 10.0
#: how long an inbound kad stream may stay idle after a message before it is closed (go-libp2p
#: keeps its request streams open for reuse; its own server closes them after a minute)
STREAM_IDLE_S = 60.0
#: pauses between tries of the driver's identify request when the peer refuses the stream
IDENTIFY_RETRY_PAUSES_S = (0.25, 0.5, 1.0)

Report = Callable[[fx.Effect], None]


def multiaddr_bytes(addr: Any) -> bytes:
    """The binary form of a multiaddr (the form kad messages carry)."""
    return bytes(Multiaddr(addr).to_bytes()) if not isinstance(addr, bytes) else addr


async def read_message(stream: Any, max_size: int | None = None) -> KadMessage:
    """One length-prefixed kad message from a stream; WireError or trio.TooSlowError else."""
    decoder = FrameDecoder() if max_size is None else FrameDecoder(max_size)
    with trio.fail_after(READ_DEADLINE_S):
        while True:
            message = decoder.next_message()
            if message is not None:
                return message
            data = await _read_some(stream)
            if not data:
                decoder.end_of_stream()
                raise WireError("stream closed before a message arrived")
            decoder.feed(data)


async def next_message(stream: Any, decoder: FrameDecoder, first: bool) -> KadMessage | None:
    """The next message on an inbound kad stream, which may carry several; None when it ended.

    The first message must arrive within READ_DEADLINE_S (trio.TooSlowError otherwise), and the
    stream must not end without one (WireError). Later ones are optional: a peer may keep the
    stream open to reuse it (go-libp2p does), so an idle stream ends quietly after
    STREAM_IDLE_S, unless it stopped in the middle of a message (trio.TooSlowError).
    """
    with trio.move_on_after(READ_DEADLINE_S if first else STREAM_IDLE_S) as waiting:
        message = await _message_or_end(stream, decoder, first)
    if waiting.cancelled_caught and (first or decoder.buffered):
        raise trio.TooSlowError
    return None if waiting.cancelled_caught else message


async def _message_or_end(stream: Any, decoder: FrameDecoder, first: bool) -> KadMessage | None:
    while True:
        message = decoder.next_message()
        if message is not None:
            return message
        data = await _read_some(stream)
        if not data:
            decoder.end_of_stream()  # TruncatedMessage when it stopped mid-message
            if first:
                raise WireError("stream closed before a message arrived")
            return None
        decoder.feed(data)


async def _read_some(stream: Any) -> bytes:
    """The next bytes of a stream, or b"" at its end (py-libp2p raises EOFError there)."""
    try:
        return bytes(await stream.read(65536))
    except EOFError:
        return b""


async def read_all(stream: Any) -> bytes:
    chunks = []
    with trio.fail_after(READ_DEADLINE_S):
        while data := await _read_some(stream):
            chunks.append(data)
    return b"".join(chunks)


def connection_lost(stream: Any) -> bool:
    """True when the connection under ``stream`` is shutting down or closed."""
    muxed = getattr(stream, "muxed_conn", None)
    shutting_down = getattr(muxed, "event_shutting_down", None)
    if shutting_down is not None and shutting_down.is_set():
        return True
    closed = getattr(muxed, "is_closed", False)
    return bool(closed() if callable(closed) else closed)


def _leave_identify_to_the_driver(host: Any) -> None:
    """Stop the host from running identify on its own on every new connection.

    The driver asks for identify on each connection itself (the core needs every connection's
    answer, observed address included), so py-libp2p's own identify on connect (BasicHost
    schedules one from its notifee and from connect) doubled the identify streams: four
    exchanges per connection instead of two. With 50 nodes in one process those streams,
    each a multistream negotiation and a protobuf built from the host's addresses, were a
    large share of the work that delayed kad streams past their deadline. It also raced the
    driver's request against js-libp2p's one-inbound-identify-stream limit. The host still
    answers identify requests; only its unasked requests go.
    """
    if hasattr(host, "_schedule_identify"):
        host._schedule_identify = _no_host_identify


def _no_host_identify(peer_id: Any, *, reason: str) -> None:
    return None


def _leave_dialling_to_the_core(host: Any) -> None:
    """Stop the host from dialling peers on its own.

    py-libp2p's swarm has an auto-connector: below min_connections (50) open connections it
    dials every unconnected peer of its peer store every 10 s (below its watermarks, every
    30 s). Whom the node dials is the core's policy (bootstrap peers, lookups; BOOT-01,
    RT-06), checked against the model; a host dialling behind it adds connections no rule
    asked for, and in a 50-node loopback network, where every node stays below 50, the
    re-dials of dropped peers were a steady share of the connection setups (each a noise
    handshake) of an overloaded process. go-libp2p's connection manager only trims.
    """
    connector = getattr(host.get_network(), "auto_connector", None)
    if connector is not None:
        connector.maybe_connect = _no_auto_connect


async def _no_auto_connect() -> None:
    return None


class HostDriver:
    """Carries one core's effects out on a py-libp2p host and feeds the host's news back."""

    def __init__(
        self,
        core: Core,
        host: Any,
        report: Report | None = None,
        providing: tuple[bytes, ...] = (),
    ) -> None:
        self.core = core
        self.host = host
        self.report = report or (lambda effect: None)
        #: keys this node provided before a restart, queued again at Start (PROV-05)
        self.providing = providing
        self.rejected: Counter[str] = Counter()
        self._nursery: trio.Nursery | None = None
        self._epoch = 0.0
        self._ids = itertools.count(1)
        self._connections: dict[int, int] = {}  # id(muxed connection) -> our connection id
        self._dialling: set[bytes] = set()
        self._timers: dict[Timer, trio.CancelScope] = {}
        self._streams: dict[int, Any] = {}
        #: set by :meth:`halt` or when :meth:`run` ends: the core hears nothing more
        self.halted = False

    # --- running -----------------------------------------------------------------------------

    def now(self) -> int:
        return int((trio.current_time() - self._epoch) * 1000)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start the core and serve until cancelled. The host must already be running."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._epoch = trio.current_time()
            _leave_identify_to_the_driver(self.host)
            _leave_dialling_to_the_core(self.host)
            self.host.get_network().register_notifee(_Notifee(self))
            self.host.set_stream_handler(ID_PUSH, self._on_identify_push)
            self.handle(ev.Start(self.now(), providing=self.providing))
            for conn in self.host.get_network().get_connections():
                self._connected(conn)  # BOOT-07: connections older than the driver count
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self.halt()

    def halt(self) -> None:
        """Stop the core at once, as a killed process would: from now on no host news reaches
        it and nothing more is sent for it (the host's notifications and stream handlers outlive
        the driver's tasks until the host is closed). Cancelling :meth:`run` ends the tasks."""
        self.halted = True

    def handle(self, event: ev.Event) -> list[fx.Effect]:
        """Feed one event to the core and carry out its effects (none once halted)."""
        if self.halted:
            return []
        effects = self.core.handle(event)
        for effect in effects:
            self._apply(effect)
        return effects

    def command(self, event: ev.Event) -> None:
        """A user command (Provide, FindProviders, StopProviding, SetMode), stamped now."""
        self.handle(event)

    def _spawn(self, function: Callable[..., Any], *args: Any) -> None:
        assert self._nursery is not None, "the driver is not running"
        self._nursery.start_soon(function, *args)

    # --- effects -----------------------------------------------------------------------------

    def _apply(self, effect: fx.Effect) -> None:
        if isinstance(effect, fx.SetTimer):
            self._set_timer(effect.timer, effect.at)
        elif isinstance(effect, fx.CancelTimer):
            scope = self._timers.pop(effect.timer, None)
            if scope is not None:
                scope.cancel()
        elif isinstance(effect, fx.Dial):
            self._spawn(self._dial, effect.peer, effect.addrs)
        elif isinstance(effect, fx.SendRequest):
            self._spawn(self._request, effect)
        elif isinstance(effect, fx.ModeChanged):
            self._set_mode(effect.mode)
        elif isinstance(effect, fx.CloseConnection):
            pass  # py-libp2p closes connections to ourselves on its own
        elif isinstance(effect, fx.SendResponse | fx.ResetStream):
            pass  # answered inside the stream handler that asked
        else:  # ReportOutcome, LogEvent, RequestDialBack (no AutoNAT here)
            self.report(effect)

    def _set_timer(self, timer: Timer, at: int) -> None:
        old = self._timers.pop(timer, None)
        if old is not None:
            old.cancel()
        scope = trio.CancelScope()
        self._timers[timer] = scope

        async def fire() -> None:
            with scope:
                await trio.sleep(max(0, at - self.now()) / 1000)
                if self._timers.get(timer) is scope:
                    del self._timers[timer]
                self.handle(ev.TimerFired(max(self.now(), at), timer))

        self._spawn(fire)

    def _set_mode(self, mode: Mode) -> None:
        if mode is Mode.SERVER:
            self.host.set_stream_handler(PROTOCOL_ID, self._on_kad_stream)
        else:
            self.host.remove_stream_handler(PROTOCOL_ID)
        if self._nursery is not None:
            self._spawn(self._push_identify)

    async def _push_identify(self) -> None:
        try:
            await push_identify_to_peers(self.host)
        except Exception as error:  # a peer that vanished must not stop the node
            self.report(fx.LogEvent("identify.push-failed", (("reason", str(error)),)))

    async def _dial(self, peer: bytes, addrs: tuple[bytes, ...]) -> None:
        self._dialling.add(peer)
        try:
            info = HostPeerInfo(PeerID(peer), [Multiaddr(a) for a in addrs])
            with trio.fail_after(READ_DEADLINE_S):
                await self.host.connect(info)
        except Exception as error:
            self.handle(ev.DialFailed(self.now(), peer, str(error) or type(error).__name__))
        finally:
            self._dialling.discard(peer)

    async def _request(self, effect: fx.SendRequest) -> None:
        peer = PeerID(effect.peer)
        try:
            with trio.fail_after(READ_DEADLINE_S):
                if not self.host.get_network().get_connections(peer):
                    self._dialling.add(effect.peer)
                    try:
                        addrs = [Multiaddr(a) for a in effect.addrs]
                        await self.host.connect(HostPeerInfo(peer, addrs))
                    finally:
                        self._dialling.discard(effect.peer)
                stream = await self.host.new_stream(peer, [PROTOCOL_ID])
                await stream.write(frame(effect.message))
                if effect.expects_reply:
                    reply = await read_message(stream)
                    await stream.close()
                    self.handle(ev.ResponseReceived(self.now(), effect.request, reply))
                else:
                    await self._await_acknowledgement(stream)
                    self.report(
                        fx.LogEvent(
                            "provide.delivered",
                            (("peer", effect.peer.hex()), ("key", effect.message.key.hex())),
                        )
                    )
                    self.handle(ev.RequestDelivered(self.now(), effect.request))
        except Exception as error:
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            self.handle(ev.RequestFailed(self.now(), effect.request, reason))

    async def _await_acknowledgement(self, stream: Any) -> None:
        """Half-close an ADD_PROVIDER stream and wait for the receiver to close its side.

        ADD_PROVIDER has no reply, so a write alone proves nothing: the receiver may refuse the
        record (a reset) or die before storing it. Every implementation handles the message,
        then reads on, sees our end of stream and closes (go-libp2p's handleNewMessage loop,
        js-libp2p's pipe, py-libp2p's handle_stream, this driver's _on_kad_stream after the
        store's fsynced commit). That close is the acknowledgement a delivered store counts on
        (PROV-02): a reset, bytes that are not kad messages, or the deadline is a failed
        request. py-libp2p answers ADD_PROVIDER with a message before it closes; well-formed
        replies are read and ignored.
        """
        await stream.close_write()
        decode_frames(await read_all(stream))  # raises WireError for anything but messages
        if connection_lost(stream):
            # py-libp2p ends every stream's reads with the same EOF when the whole connection
            # drops: a receiver killed mid-store must not count as one that closed
            raise WireError("connection lost before the receiver closed the stream")
        await stream.close()

    # --- host news ---------------------------------------------------------------------------

    def _connected(self, conn: Any) -> None:
        muxed = conn.muxed_conn
        if self.halted or id(muxed) in self._connections:
            return
        peer = muxed.peer_id.to_bytes()
        ident = next(self._ids)
        self._connections[id(muxed)] = ident
        direction = getattr(conn, "direction", HostDirection.UNKNOWN)
        if direction == HostDirection.UNKNOWN:
            outbound = peer in self._dialling
        else:
            outbound = direction == HostDirection.OUTBOUND
        addrs = conn.get_transport_addresses() if hasattr(conn, "get_transport_addresses") else []
        remote = multiaddr_bytes(addrs[0]) if addrs else b""
        self.handle(
            ev.ConnectionOpened(
                self.now(),
                ident,
                peer,
                Direction.OUTBOUND if outbound else Direction.INBOUND,
                remote,
            )
        )
        self._spawn(self._identify, conn, ident, peer)

    def _disconnected(self, conn: Any) -> None:
        ident = self._connections.pop(id(conn.muxed_conn), None)
        if ident is not None:
            self.handle(ev.ConnectionClosed(self.now(), ident, conn.muxed_conn.peer_id.to_bytes()))

    async def _identify(self, conn: Any, ident: int, peer: bytes) -> None:
        """Ask the peer for identify on a new connection, retrying a refused stream.

        py-libp2p's host runs its own identify on every new connection at the same moment, and
        js-libp2p serves one inbound identify stream per connection at a time (maxInboundStreams
        1), resetting the second; a short pause and another try gets the answer (INTEROP found
        this against js-libp2p).
        """
        for pause in (*IDENTIFY_RETRY_PAUSES_S, None):
            if ident not in self._connections.values():
                return  # the connection closed meanwhile
            try:
                stream = await self.host.new_stream(PeerID(peer), [IDENTIFY])
                data = await read_all(stream)
                await stream.close()
            except Exception as error:
                if pause is not None:
                    await trio.sleep(pause)
                    continue
                self.rejected["identify"] += 1
                reason = f"{type(error).__name__}: {error}"
                self.report(
                    fx.LogEvent("identify.failed", (("peer", peer.hex()), ("reason", reason)))
                )
                return
            try:
                info = parse_identify_response(data)
            except Exception as error:  # bad bytes: refused once, not retried
                self.rejected["identify"] += 1
                reason = f"{type(error).__name__}: {error}"
                self.report(
                    fx.LogEvent("identify.failed", (("peer", peer.hex()), ("reason", reason)))
                )
                return
            self._feed_identify(info, ident, peer)
            return

    async def _on_identify_push(self, stream: Any) -> None:
        peer = stream.muxed_conn.peer_id.to_bytes()
        ident = self._connections.get(id(stream.muxed_conn))
        try:
            data = await read_all(stream)
            if ident is not None:
                self._feed_identify(parse_identify_response(data), ident, peer)
        except Exception:
            self.rejected["identify-push"] += 1
            await stream.reset()

    def _feed_identify(self, info: Any, ident: int, peer: bytes) -> None:
        observed = bytes(info.observed_addr) if info.HasField("observed_addr") else None
        self.handle(
            ev.IdentifyReceived(
                self.now(),
                ident,
                peer,
                tuple(bytes(a) for a in info.listen_addrs),
                frozenset(str(p) for p in info.protocols),
                observed or None,
            )
        )

    async def _on_kad_stream(self, stream: Any) -> None:
        """Inbound kad requests on one stream: parse, let the core answer, write or reset.

        A stream may carry several requests, each answered in turn, until the peer ends it.
        Nothing a peer sends may stop the node: bad bytes, a read past the deadline, or a
        stream that breaks under us end in a reset, counted in ``rejected`` by kind and logged.
        An ADD_PROVIDER gets no reply; the close at the end, after the store's fsynced commit,
        is what the sender takes as the acknowledgement.
        """
        peer = stream.muxed_conn.peer_id.to_bytes()
        ident = self._connections.get(id(stream.muxed_conn), 0)
        if self.halted:  # a halted node answers nothing: the stream dies as with a killed one
            with contextlib.suppress(Exception):
                await stream.reset()
            return
        decoder = FrameDecoder()
        first = True
        while True:
            try:
                message = await next_message(stream, decoder, first)
            except Exception as error:
                kind = "TooSlow" if isinstance(error, trio.TooSlowError) else type(error).__name__
                await self._reject(stream, peer, kind, str(error) or kind)
                return
            if message is None:
                with contextlib.suppress(Exception):
                    await stream.close()
                return
            first = False
            number = next(self._ids)
            effects = self.handle(ev.RequestReceived(self.now(), peer, ident, number, message))
            try:
                for effect in effects:
                    if isinstance(effect, fx.SendResponse) and effect.stream == number:
                        await stream.write(frame(effect.message))
                    elif isinstance(effect, fx.ResetStream) and effect.stream == number:
                        await stream.reset()
                        return
            except Exception as error:  # the peer went away mid-answer
                kind, reason = "stream-broken", f"{type(error).__name__}: {error}"
                await self._reject(stream, peer, kind, reason)
                return

    async def _reject(self, stream: Any, peer: bytes, kind: str, reason: str) -> None:
        self.rejected[kind] += 1
        self.report(fx.LogEvent("request.rejected", (("peer", peer.hex()), ("reason", reason))))
        with contextlib.suppress(Exception):
            await stream.reset()


class _Notifee:
    """py-libp2p network notifications, handed to the driver."""

    def __init__(self, driver: HostDriver) -> None:
        self.driver = driver

    async def connected(self, network: Any, conn: Any) -> None:
        self.driver._connected(conn)

    async def disconnected(self, network: Any, conn: Any) -> None:
        self.driver._disconnected(conn)

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None
