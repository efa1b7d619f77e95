"""The reference node's adapter: ``python -m kadspec.conformance.adapters.reference``.

Speaks ``kadspec-adapter/1`` (:mod:`kadspec.conformance.protocol`) on standard input and output
and runs every node of the run in this one process, each a :class:`~kadspec.impl.core.Core`
under its own py-libp2p host (:class:`~kadspec.impl.host.HostDriver`) on 127.0.0.1. One process
keeps fifty nodes cheap, and gives every node the adapter's clock, so event times, record
expiry and snapshots need no conversion.

What the runner sees comes from the driver's two sides, observed by :class:`ObservingDriver`:
what the network did (connections, identify, kad requests and replies received) from the
events fed *into* the core; what the node did (kad requests and replies sent, table changes,
mode, outcomes) from the effects the core *returns*. A snapshot reads the core's getters and
its store. That split is what lets a test-only breakage (``--break NAME``, from
:mod:`kadspec.conformance.breakage`) wrap the core and be seen exactly as a broken
implementation would be.

Each node keeps its identity and its SQLite provider store in ``DATA/<node>`` (a temporary
folder unless ``--data`` is given), so ``restart`` after ``crash`` or ``stop`` is the same peer
with the same records, on the same port. In one process ``stop`` and ``crash`` do the same: the
core stops at once (nothing more is heard or sent), then its listener closes (no newcomer gets
in), then all its connections at once, so the node is unreachable, as a killed process would be.

Standard output carries only protocol lines: the process moves anything else that writes to
file descriptor 1 (a library's print) to standard error at start-up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import attrs
import click

from kadspec import __version__
from kadspec.conformance import protocol as p
from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import BootstrapPeer, CoreConfig, ModeSetting
from kadspec.impl.wire import KadMessage, PeerInfo

IMPLEMENTATION = "kadspec-reference"
CAPABILITIES = p.Capabilities(auto_mode=True, timings=True, crash_restart=True, events=True)

#: how long a dial (the dial op, a dial-back) may take
DIAL_DEADLINE_S = 10.0
#: how long closing a node's host (listener, connections) may take before it is cancelled
HOST_CLOSE_S = 5.0


class RequestFailed(Exception):
    """A request ends in an error reply of ``kind`` (one of protocol.ERROR_KINDS)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def addr_text(addr: bytes) -> str:
    from multiaddr import Multiaddr

    try:
        return str(Multiaddr(addr))
    except Exception:  # a peer's bytes: show them, never crash on them
        return f"/unparsed/{addr.hex()}"


def key_text(key: bytes) -> str | None:
    return p.base58(key) if key else None


def peers_json(peers: tuple[PeerInfo, ...]) -> list[dict[str, Any]]:
    return [{"peer_id": p.base58(i.id), "addrs": [addr_text(a) for a in i.addrs]} for i in peers]


class Output:
    """Protocol lines to the runner, one write and flush each (trio runs one task at a time)."""

    def __init__(self, stream: TextIO, epoch: float) -> None:
        self.stream = stream
        self.epoch = epoch

    def now_ms(self) -> int:
        import trio

        return int((trio.current_time() - self.epoch) * 1000)

    def send(self, message: p.Hello | p.Reply | p.Event) -> None:
        try:
            self.stream.write(p.encode(message) + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # the runner is gone; the end of standard input stops us next

    def event(self, node: str, kind: str, **fields: Any) -> None:
        self.send(p.Event(node, self.now_ms(), kind, fields))


def _observing_driver_class() -> type[Any]:
    """ObservingDriver, defined once py-libp2p can be imported."""
    from kadspec.impl.host import HostDriver

    class ObservingDriver(HostDriver):
        """A HostDriver that tells the runner what its core is told and what it does."""

        def __init__(self, node: NodeRun, core: Any, host: Any, out: Output) -> None:
            super().__init__(core, host, self._report)
            self.node = node
            self.out = out
            self._epoch_s = out.epoch
            self._links: dict[int, tuple[bytes, str, str]] = {}  # connection -> peer, dir, addr
            self._asked: dict[int, tuple[bytes, KadMessage]] = {}  # request -> peer, message
            self._inbound: dict[int, bytes] = {}  # inbound stream -> peer
            self._table_addrs: dict[bytes, list[str]] = {}

        def now(self) -> int:
            import trio

            return int((trio.current_time() - self._epoch_s) * 1000)

        def handle(self, event: ev.Event) -> list[fx.Effect]:
            if self.halted:  # a crashed or stopped node reports nothing more
                return []
            self._observe(event)
            effects: list[fx.Effect] = super().handle(event)
            for effect in effects:
                self._observe_effect(effect)
            return effects

        def _emit(self, kind: str, **fields: Any) -> None:
            self.out.event(self.node.name, kind, **fields)

        def _report(self, effect: fx.Effect) -> None:
            if isinstance(effect, fx.RequestDialBack):
                self._spawn(self._dial_back, effect.addr)

        async def _dial_back(self, addr: bytes) -> None:
            """AutoNAT's question answered on loopback: can a fresh TCP connection reach it?"""
            import trio
            from multiaddr import Multiaddr

            reachable = False
            with contextlib.suppress(Exception), trio.move_on_after(DIAL_DEADLINE_S):
                parsed = Multiaddr(addr)
                host = parsed.value_for_protocol("ip4")
                port = int(parsed.value_for_protocol("tcp"))
                stream = await trio.open_tcp_stream(host, port)
                await stream.aclose()
                reachable = True
            self.handle(ev.DialBackResult(self.now(), addr, reachable))

        # -- the network's side: events fed into the core --

        def _observe(self, event: ev.Event) -> None:
            if isinstance(event, ev.ConnectionOpened):
                if event.peer == self.core.peer_id:
                    return
                link = (event.peer, event.direction.value, addr_text(event.remote_addr))
                self._links[event.connection] = link
                self._emit(
                    "connection_opened",
                    peer=p.base58(link[0]),
                    direction=link[1],
                    remote_addr=link[2],
                )
            elif isinstance(event, ev.ConnectionClosed):
                closed = self._links.pop(event.connection, None)
                if closed is not None:
                    self._emit(
                        "connection_closed",
                        peer=p.base58(closed[0]),
                        direction=closed[1],
                        remote_addr=closed[2],
                    )
            elif isinstance(event, ev.IdentifyReceived):
                self.node.protocols[event.peer] = sorted(event.protocols)
                self._emit(
                    "identify_received",
                    peer=p.base58(event.peer),
                    listen_addrs=[addr_text(a) for a in event.listen_addrs],
                    observed_addr=(
                        None if event.observed_addr is None else addr_text(event.observed_addr)
                    ),
                    protocols=sorted(event.protocols),
                )
            elif isinstance(event, ev.RequestReceived):
                self._inbound[event.stream] = event.peer
                if event.message.key:
                    self.node.record_keys.add(event.message.key)
                self._emit(
                    "kad_request_received",
                    kad_type=event.message.type.name,
                    peer=p.base58(event.peer),
                    key=key_text(event.message.key),
                    providers=peers_json(event.message.provider_peers),
                )
            elif isinstance(event, ev.ResponseReceived):
                asked = self._asked.pop(event.request, None)
                if asked is not None:
                    self._emit(
                        "kad_response_received",
                        kad_type=event.message.type.name,
                        peer=p.base58(asked[0]),
                        key=key_text(event.message.key),
                        closer_peers=peers_json(event.message.closer_peers),
                        provider_peers=peers_json(event.message.provider_peers),
                    )
            elif isinstance(event, ev.RequestFailed | ev.RequestDelivered):
                self._asked.pop(event.request, None)

        # -- the node's side: effects the core returned --

        def _observe_effect(self, effect: fx.Effect) -> None:
            if isinstance(effect, fx.SendRequest):
                self._asked[effect.request] = (effect.peer, effect.message)
                self._emit(
                    "kad_request_sent",
                    kad_type=effect.message.type.name,
                    peer=p.base58(effect.peer),
                    key=key_text(effect.message.key),
                    providers=peers_json(effect.message.provider_peers),
                )
            elif isinstance(effect, fx.SendResponse):
                peer = self._inbound.pop(effect.stream, None)
                if peer is not None:
                    self._emit(
                        "kad_response_sent",
                        kad_type=effect.message.type.name,
                        peer=p.base58(peer),
                        key=key_text(effect.message.key),
                        closer_peers=peers_json(effect.message.closer_peers),
                        provider_peers=peers_json(effect.message.provider_peers),
                    )
            elif isinstance(effect, fx.ResetStream):
                self._inbound.pop(effect.stream, None)
            elif isinstance(effect, fx.ModeChanged):
                self._emit("mode_changed", mode=effect.mode.value)
            elif isinstance(effect, fx.LogEvent) and effect.name in ("table.add", "table.remove"):
                self._table_change(effect)
            elif isinstance(effect, fx.ReportOutcome):
                self.node.outcome(effect.outcome)

        def _table_change(self, effect: fx.LogEvent) -> None:
            peer = bytes.fromhex(str(effect.get("peer")))
            if effect.name == "table.add":
                entry = self.core.table.get(peer)
                addrs = [] if entry is None else [addr_text(a) for a in entry.addrs]
                self._table_addrs[peer] = addrs
                self._emit("routing_table_added", peer=p.base58(peer), addrs=addrs)
            else:
                addrs = self._table_addrs.pop(peer, [])
                reason = effect.get("reason")
                self._emit(
                    "routing_table_removed",
                    peer=p.base58(peer),
                    addrs=addrs,
                    reason=None if reason is None else str(reason),
                )

        def remote_addr(self, connection: int) -> str | None:
            link = self._links.get(connection)
            return None if link is None else link[2]

    return ObservingDriver


@attrs.define(eq=False)
class NodeRun:
    """One node of the run: its start args, its data folder and, while it runs, its core."""

    name: str
    start: dict[str, Any]
    data: Path
    out: Output
    breakage: str | None
    listen: list[str] = attrs.Factory(list)  # the bound addresses, reused on restart
    peer_id: str = ""
    driver: Any = None
    scope: Any = None
    halt: Any = None  # trio.Event: set to stop the node
    stopped: Any = None  # trio.Event set when the node's tasks have ended
    protocols: dict[bytes, list[str]] = attrs.Factory(dict)
    record_keys: set[bytes] = attrs.Factory(set)
    texts: dict[bytes, str] = attrs.Factory(dict)  # key bytes -> the runner's text
    waiting_provides: dict[bytes, list[Callable[[fx.ProvideOutcome | None], None]]] = attrs.Factory(
        dict
    )
    waiting_finds: dict[int, Callable[[fx.FindOutcome | None], None]] = attrs.Factory(dict)

    @property
    def running(self) -> bool:
        return self.driver is not None

    def outcome(self, outcome: fx.ProvideOutcome | fx.FindOutcome) -> None:
        text = self.texts.get(outcome.key, p.base58(outcome.key))
        if isinstance(outcome, fx.ProvideOutcome):
            self.out.event(
                self.name,
                "provide_outcome",
                key=text,
                outcome="success" if outcome.ok else "failure",
                count=outcome.delivered,
                reason=outcome.reason or None,
            )
            for answer in self.waiting_provides.pop(outcome.key, []):
                answer(outcome)
        else:
            providers = peers_json(outcome.providers)
            self.out.event(self.name, "find_outcome", key=text, providers=providers)
            answer_find = self.waiting_finds.pop(outcome.op, None)
            if answer_find is not None:
                answer_find(outcome)

    def snapshot(self) -> dict[str, Any]:
        driver = self.driver
        core = driver.core
        now = driver.now()
        connections = [
            {
                "peer_id": p.base58(peer),
                "direction": direction.value,
                "remote_addr": driver.remote_addr(ident) or "/unknown",
            }
            for peer, links in sorted(core.connections().items())
            for ident, direction in sorted(links.items())
        ]
        records = [
            {
                "key": p.base58(record.key),
                "provider": p.base58(record.provider),
                "addrs": [addr_text(a) for a in record.addrs],
                "expires_at_ms": record.expires_at,
            }
            for key in sorted(self.record_keys)
            for record in core.store.get(key, now)
        ]
        return {
            "peer_id": self.peer_id,
            "mode": core.mode.value,
            "listen_addrs": [str(a) for a in driver.host.get_transport_addrs()],
            "external_addrs": [addr_text(a) for a in core.addresses.announceable()],
            "connections": connections,
            "routing_table": [
                {"peer_id": p.base58(e.peer), "addrs": [addr_text(a) for a in e.addrs]}
                for e in core.table
            ],
            "protocols": {p.base58(peer): list(ps) for peer, ps in sorted(self.protocols.items())},
            "provider_records": records,
            "time_ms": now,
        }


def _bootstrap_peer(text: str) -> BootstrapPeer:
    from multiaddr import Multiaddr

    try:
        addr = Multiaddr(text)
        peer = addr.value_for_protocol("p2p")
        dial = addr.decapsulate_code(addr.protocols()[-1].code)
        return BootstrapPeer(p.unbase58(peer), (dial.to_bytes(),))
    except Exception as error:
        raise RequestFailed(
            "bad-request",
            f"bootstrap {text!r} is not a multiaddr ending in /p2p/<peer id>: {error}",
        ) from None


def _config(node: NodeRun, peer_id: bytes, announce: tuple[bytes, ...]) -> CoreConfig:
    args = node.start
    timings: dict[str, Any] = {
        k: int(v) for k, v in dict(args.get("timings") or {}).items() if k in p.TIMINGS
    }
    mode = ModeSetting(args["mode"])
    config = attrs.evolve(
        CoreConfig(
            peer_id=peer_id,
            announce_addrs=announce if mode is ModeSetting.SERVER else (),
            bootstrap=tuple(_bootstrap_peer(b) for b in args.get("bootstrap", ())),
            mode=mode,
        ),
        **timings,
    )
    problems = config.problems()
    if problems:
        raise RequestFailed("bad-request", "; ".join(problems))
    return config


class ReferenceAdapter:
    """Serves one runner: reads requests, runs nodes, answers."""

    def __init__(self, out: Output, data: Path, breakage: str | None) -> None:
        self.out = out
        self.data = data
        self.breakage = breakage
        self.nodes: dict[str, NodeRun] = {}
        self.ops = 0
        self._nursery: Any = None
        self._driver_class = _observing_driver_class()

    async def serve(self, stdin: Any) -> None:
        import trio

        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            buffer = b""
            while True:
                chunk = await stdin.receive_some(65536)
                if not chunk:  # the runner went away: stop everything
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip() and await self._take(line, nursery):
                        await self._stop_all()
                        nursery.cancel_scope.cancel()
                        return
            await self._stop_all()
            nursery.cancel_scope.cancel()

    async def _take(self, line: bytes, nursery: Any) -> bool:
        """Start serving one request line; True after shutdown was answered."""
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("id"), int):
            print(f"adapter: ignored a line that is no request: {line[:200]!r}", file=sys.stderr)
            return False
        ident = message["id"]
        found = p.problems(message)
        if found:
            self.out.send(p.Reply(ident, False, error=p.ErrorInfo("bad-request", "; ".join(found))))
            return False
        request = p.Request(ident, message["op"], message["args"])
        if request.op == "shutdown":
            await self._stop_all()
            self.out.send(p.Reply(ident, True, {}))
            return True
        nursery.start_soon(self._answer, request)
        return False

    async def _answer(self, request: p.Request) -> None:
        handler = getattr(self, f"_op_{request.op}")
        try:
            result = await handler(request.args)
        except RequestFailed as failure:
            self.out.send(p.Reply(request.id, False, error=p.ErrorInfo(failure.kind, str(failure))))
            return
        except Exception as error:  # a bug here must cost one request, not the run
            message = f"{type(error).__name__}: {error}"
            self.out.send(p.Reply(request.id, False, error=p.ErrorInfo("failed", message)))
            return
        self.out.send(p.Reply(request.id, True, result))

    def _node(self, name: str, *, running: bool = True) -> NodeRun:
        node = self.nodes.get(name)
        if node is None:
            raise RequestFailed("unknown-node", f"no node named {name!r} was started")
        if running and not node.running:
            raise RequestFailed("failed", f"node {name!r} is not running (stopped or crashed)")
        return node

    # --- ops -------------------------------------------------------------------------------

    async def _op_start(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args["node"]
        if name in self.nodes:
            raise RequestFailed("bad-request", f"node {name!r} was already started")
        node = NodeRun(name, dict(args), self.data / name, self.out, self.breakage)
        self.nodes[name] = node
        try:
            await self._launch(node)
        except BaseException:
            del self.nodes[name]
            raise
        return {"peer_id": node.peer_id, "listen_addrs": node.listen}

    async def _launch(self, node: NodeRun) -> None:
        import trio

        listen = node.listen or [node.start["listen"]]
        try:
            await self._nursery.start(self._run_node, node, listen)
        except RequestFailed:
            raise
        except BaseException as error:
            leaves = _leaves(error)
            found = next((e for e in leaves if isinstance(e, RequestFailed)), None)
            if found is not None:
                raise found from None
            if any(isinstance(e, trio.Cancelled) for e in leaves):
                raise
            reason = "; ".join(f"{type(e).__name__}: {e}" for e in leaves)
            raise RequestFailed("failed", f"node {node.name!r} did not start: {reason}") from None

    async def _run_node(self, node: NodeRun, listen: list[str], task_status: Any) -> None:
        import trio
        from libp2p import new_host
        from multiaddr import Multiaddr

        from kadspec.impl.core import Core
        from kadspec.impl.node import load_identity
        from kadspec.impl.store import SqliteProviderStore, path_in

        try:
            addrs = [Multiaddr(a) for a in listen]
        except Exception as error:
            raise RequestFailed("bad-request", f"listen {listen!r}: {error}") from None
        key_pair = load_identity(node.data)
        host = new_host(key_pair=key_pair, listen_addrs=addrs)
        node.stopped = trio.Event()
        started = False
        try:
            with (
                trio.CancelScope() as scope,
                SqliteProviderStore(path_in(node.data)) as store,
            ):
                node.scope = scope
                node.halt = trio.Event()
                async with host.run(listen_addrs=addrs):
                    async with trio.open_nursery() as nursery:
                        bound = host.get_transport_addrs()
                        node.peer_id = str(host.get_id())
                        node.listen = [str(a) for a in bound]
                        announce = tuple(a.to_bytes() for a in bound)
                        config = _config(node, host.get_id().to_bytes(), announce)
                        core: Any = Core(config, store)
                        if node.breakage is not None:
                            from kadspec.conformance.breakage import (  # type: ignore[import-not-found,unused-ignore]
                                BREAKAGES,
                            )

                            core = BREAKAGES[node.breakage].wrap(core)
                        driver = self._driver_class(node, core, host, self.out)
                        await nursery.start(driver.run)
                        node.driver = driver
                        started = True
                        task_status.started()
                        await node.halt.wait()
                        driver.halt()  # the core stops: nothing more is heard or sent
                        with trio.move_on_after(HOST_CLOSE_S):
                            await _close_listeners(host)
                        nursery.cancel_scope.cancel()
                    # Leaving host.run does not close py-libp2p's listening socket or its
                    # connections; closing the host does, so a stopped node is unreachable.
                    with trio.move_on_after(HOST_CLOSE_S):
                        await _close_connections(host)
                        await host.close()
        except Exception as error:
            if not started:
                raise
            # one node failing must not take the others down: it is down, the runner sees it
            print(f"adapter: node {node.name!r} stopped: {error!r}", file=sys.stderr)
        finally:
            node.driver = None
            node.scope = None
            node.halt = None
            node.stopped.set()

    async def _halt(self, node: NodeRun) -> None:
        """Stop a node: its core first, then its host (sockets closed); cancel it outright
        if that takes longer than HOST_CLOSE_S."""
        import trio

        if node.halt is not None:
            node.halt.set()
        if node.stopped is not None:
            with trio.move_on_after(2 * HOST_CLOSE_S):
                await node.stopped.wait()
            if node.scope is not None:
                node.scope.cancel()
            await node.stopped.wait()
        for answers in node.waiting_provides.values():
            for answer in answers:
                answer(None)
        node.waiting_provides.clear()
        for answer_find in node.waiting_finds.values():
            answer_find(None)
        node.waiting_finds.clear()

    async def _stop_all(self) -> None:
        for node in list(self.nodes.values()):
            await self._halt(node)

    async def _op_stop(self, args: dict[str, Any]) -> dict[str, Any]:
        await self._halt(self._node(args["node"]))
        return {}

    async def _op_crash(self, args: dict[str, Any]) -> dict[str, Any]:
        await self._halt(self._node(args["node"]))
        return {}

    async def _op_restart(self, args: dict[str, Any]) -> dict[str, Any]:
        node = self._node(args["node"], running=False)
        if node.running:
            await self._halt(node)
        node.protocols.clear()
        await self._launch(node)
        return {}

    async def _op_dial(self, args: dict[str, Any]) -> dict[str, Any]:
        import trio
        from libp2p.peer.peerinfo import info_from_p2p_addr
        from multiaddr import Multiaddr

        node = self._node(args["node"])
        try:
            info = info_from_p2p_addr(Multiaddr(args["addr"]))
        except Exception as error:
            raise RequestFailed("bad-request", f"addr {args['addr']!r}: {error}") from None
        try:
            with trio.fail_after(DIAL_DEADLINE_S):
                await node.driver.host.connect(info)
        except trio.TooSlowError:
            slow = f"dial {args['addr']} took over {DIAL_DEADLINE_S} s"
            raise RequestFailed("timeout", slow) from None
        except Exception as error:
            raise RequestFailed("failed", f"dial {args['addr']}: {error}") from None
        return {}

    async def _op_set_mode(self, args: dict[str, Any]) -> dict[str, Any]:
        node = self._node(args["node"])
        node.driver.command(ev.SetMode(node.driver.now(), ModeSetting(args["mode"])))
        return {}

    async def _op_snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._node(args["node"]).snapshot()

    async def _op_provide(self, args: dict[str, Any]) -> dict[str, Any]:
        import trio

        node = self._node(args["node"])
        key = p.key_bytes(args["key"])
        node.texts[key] = args["key"]
        node.record_keys.add(key)
        done = trio.Event()
        outcome: list[fx.ProvideOutcome | None] = []

        def answer(result: fx.ProvideOutcome | None) -> None:
            outcome.append(result)
            done.set()

        node.waiting_provides.setdefault(key, []).append(answer)
        self.ops += 1
        node.driver.command(ev.Provide(node.driver.now(), op=self.ops, key=key))
        await done.wait()  # the runner bounds the wait
        result = outcome[0]
        if result is None:
            raise RequestFailed("failed", f"node {node.name!r} went down before an outcome")
        return {
            "outcome": "success" if result.ok else "failure",
            "count": result.delivered,
            "reason": result.reason or None,
        }

    async def _op_find_providers(self, args: dict[str, Any]) -> dict[str, Any]:
        import trio

        node = self._node(args["node"])
        key = p.key_bytes(args["key"])
        node.texts[key] = args["key"]
        done = trio.Event()
        outcome: list[fx.FindOutcome | None] = []

        def answer(result: fx.FindOutcome | None) -> None:
            outcome.append(result)
            done.set()

        self.ops += 1
        node.waiting_finds[self.ops] = answer
        node.driver.command(ev.FindProviders(node.driver.now(), op=self.ops, key=key))
        deadline = int(args.get("deadline_ms", 10_000))
        with trio.move_on_after(deadline / 1000):
            await done.wait()
        if not outcome:
            node.waiting_finds.pop(self.ops, None)
            raise RequestFailed("timeout", f"no find outcome within {deadline} ms")
        result = outcome[0]
        if result is None:
            raise RequestFailed("failed", f"node {node.name!r} went down before an outcome")
        return {"providers": peers_json(result.providers)}


async def _close_listeners(host: Any) -> None:
    """Stop accepting connections, as a killed process would at once.

    py-libp2p's host.close() closes the connections one by one and only then its listeners, so
    a crashing node went on accepting connections and answering identify for up to ~0.8 s
    (trace validation saw it in bootstrap-restart and churn runs); closing the listeners first
    makes crash and stop refuse newcomers from the start. host.close() closes them again
    harmlessly (TCPListener.close is idempotent).
    """
    import trio

    async with trio.open_nursery() as closing:
        for listener in list(host.get_network().listeners.values()):
            closing.start_soon(listener.close)


async def _close_connections(host: Any) -> None:
    """Close every connection at once (host.close() awaits each in turn), so the peers of a
    crashed node all see its connections drop together, as with a killed process."""
    import trio

    async with trio.open_nursery() as closing:
        for conn in list(host.get_network().get_connections()):
            closing.start_soon(_close_quietly, conn)


async def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        await conn.close()


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


async def _main(protocol_out: TextIO, data: Path, breakage: str | None) -> None:
    import trio

    out = Output(protocol_out, trio.current_time())
    adapter = ReferenceAdapter(out, data, breakage)
    out.send(p.Hello(p.PROTOCOL, IMPLEMENTATION, _version(breakage), CAPABILITIES))
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    await adapter.serve(stdin)


def _version(breakage: str | None) -> str:
    return __version__ if breakage is None else f"{__version__}+broken.{breakage}"


def _protocol_stream() -> TextIO:
    """Standard output for protocol lines only: fd 1 now points at standard error, so a stray
    print from a library cannot corrupt the protocol."""
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return open(private, "w", encoding="utf-8", buffering=1)  # lives as long as we do


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep node identities and stores here (default: a temporary folder, removed at exit).",
)
@click.option(
    "--break",
    "breakage",
    metavar="NAME",
    help="Test only: apply kadspec.conformance.breakage.BREAKAGES[NAME] to every node.",
)
def main(data: Path | None, breakage: str | None) -> None:
    """The reference node's adapter (kadspec-adapter/1 on standard input and output)."""
    try:
        import libp2p  # noqa: F401
        import trio
    except ImportError:
        raise click.ClickException(
            "py-libp2p cannot be imported: reinstall kadspec (pip install -e .)"
        ) from None
    if breakage is not None:
        from kadspec.conformance.breakage import (  # type: ignore[import-not-found,unused-ignore]
            BREAKAGES,
        )

        if breakage not in BREAKAGES:
            raise click.BadParameter(
                f"{breakage!r} is not one of {', '.join(sorted(BREAKAGES))}", param_hint="--break"
            )
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    protocol_out = _protocol_stream()
    folder = data or Path(tempfile.mkdtemp(prefix="kadspec-reference-"))
    try:
        trio.run(_main, protocol_out, folder, breakage)
    except KeyboardInterrupt:
        pass
    finally:
        if data is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
