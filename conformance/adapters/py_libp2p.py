"""kadspec adapter protocol v1 over py-libp2p's ``KadDHT``.

Run: ``python -m kadspec.conformance.adapters.py_libp2p``. JSON lines: requests on standard
input; hello, replies and events on standard output; free logs on standard error. One process
runs any number of named py-libp2p nodes (TCP, noise, yamux, identify and identify push as the
py-libp2p host does them, ping, kad-dht) under one trio loop.

What py-libp2p 0.8.1 needs (../shared/research/real-implementations.md):

- ``KadDHT(host, DHTMode.SERVER | DHTMode.CLIENT)`` takes the enum, and has no automatic mode:
  ``mode: auto`` is ``unsupported`` (capability ``auto_mode`` false);
- its routing table fills only from DHT traffic, never on connect. So the adapter's bootstrap is
  the usual libp2p one: dial each bootstrap peer, add it to the table once identify has shown
  its protocols (py-libp2p's ``add_peer`` then checks it serves kad), then look up our own ID;
- ``provide`` returns a bool, not how many peers took the record: the adapter counts the
  ADD_PROVIDER messages py-libp2p reports written (``ProviderStore._send_add_provider``);
  py-libp2p, like Kubo, sends ADD_PROVIDER without waiting for a reply.

Keys follow the key rule: text -> the sha2-256 multihash of its UTF-8 bytes (CIDv1 raw's
multihash); a ``bafk``/``bafy`` CID -> its multihash. Events and snapshots write kad keys as wire
keys (base58btc of the key bytes), requests and outcomes as the runner's text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TextIO

PROTOCOL: Final = "kadspec-adapter/1"
ADAPTER_VERSION: Final = "0.1.0"
#: how long one bootstrap dial, or the self-lookup after the dials, may take
BOOTSTRAP_TIMEOUT_S: Final = 10.0
#: how long closing a node's host (listener, connections) may take before it is cancelled
HOST_CLOSE_S: Final = 5.0
#: how long a provide may take when the request gives no ``timeout_ms``
PROVIDE_TIMEOUT_S: Final = 30.0
_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

JSON = dict[str, Any]


class AdapterError(Exception):
    """A request that fails with an error kind of the protocol."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# --- keys --------------------------------------------------------------------------------------


def key_bytes(key: object) -> bytes:
    """The kad key for a key given as text (the key rule)."""
    if not isinstance(key, str) or not key:
        raise AdapterError("bad-request", "key must be a non-empty string")
    if key.startswith(("bafk", "bafy")):
        multihash = _cid_multihash(key)
        if multihash is not None:
            return multihash
    return b"\x12\x20" + hashlib.sha256(key.encode("utf-8")).digest()


def _cid_multihash(text: str) -> bytes | None:
    body = text[1:].upper()  # multibase 'b': base32, lower case, no padding
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError:
        return None
    at = 0
    for _field in ("version", "codec"):
        while at < len(raw) and raw[at] & 0x80:
            at += 1
        at += 1
    return raw[at:] if raw[:1] == b"\x01" and at < len(raw) else None


def base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    text = ""
    while number:
        number, digit = divmod(number, 58)
        text = _B58[digit] + text
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + text


def wire_key(data: bytes | None) -> str | None:
    return base58(data) if data else None


# --- nodes -------------------------------------------------------------------------------------


def strip_peer(addr: Any) -> str:
    """A multiaddr's text without its ``/p2p/<id>`` tail."""
    text = str(addr)
    at = text.find("/p2p/")
    return text if at < 0 else text[:at]


def unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def connection_fields(conn: Any) -> JSON:
    """Peer, direction and remote address of a py-libp2p swarm connection."""
    direction = str(getattr(conn, "direction", "")).lower()
    addrs = conn.get_transport_addresses() if hasattr(conn, "get_transport_addresses") else []
    return {
        "peer_id": str(conn.muxed_conn.peer_id.to_base58()),
        "direction": "outbound" if "outbound" in direction else "inbound",
        "remote_addr": strip_peer(addrs[0]) if addrs else "/",
    }


#: kad message types the protocol's events name (py-libp2p's enum numbers them like the spec)
KAD_TYPES: Final = {2: "ADD_PROVIDER", 3: "GET_PROVIDERS", 4: "FIND_NODE", 5: "PING"}


class FrameReader:
    """Splits the bytes of one direction of a kad stream into its varint-prefixed messages."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[Any]:
        from libp2p.kad_dht.pb.kademlia_pb2 import Message

        self.buffer += data
        messages: list[Any] = []
        while True:
            length, at, shift = 0, 0, 0
            while at < len(self.buffer):
                byte = self.buffer[at]
                length |= (byte & 0x7F) << shift
                at += 1
                shift += 7
                if not byte & 0x80:
                    break
            else:
                return messages  # the length prefix is not complete yet
            if len(self.buffer) < at + length:
                return messages
            body, self.buffer = self.buffer[at : at + length], self.buffer[at + length :]
            message = Message()
            try:
                message.ParseFromString(body)
            except Exception:
                continue  # not a kad message: py-libp2p rejects it, nothing to report
            messages.append(message)


def peer_infos(peers: Any) -> list[JSON]:
    """A kad message's closer or provider peers as the protocol writes them."""
    from multiaddr import Multiaddr

    infos = []
    for peer in peers:
        addrs = []
        for raw in peer.addrs:
            try:
                addrs.append(strip_peer(Multiaddr(bytes(raw))))
            except Exception:
                continue  # an address we cannot read is left out of the event
        infos.append({"peer_id": base58(bytes(peer.id)), "addrs": unique(addrs)})
    return infos


class ObservedStream:
    """A kad stream that reports the messages crossing it, and otherwise is the stream.

    Inbound streams (served by py-libp2p's handler): what is read is a request received, what
    is written a response sent. Outbound streams (opened by py-libp2p's queries): what is
    written is a request sent, what is read a response received.
    """

    def __init__(self, stream: Any, report: Callable[[str, Any], None], inbound: bool) -> None:
        self._stream = stream
        self._report = report
        self._read_kind = "kad_request_received" if inbound else "kad_response_received"
        self._write_kind = "kad_response_sent" if inbound else "kad_request_sent"
        self._reads = FrameReader()
        self._writes = FrameReader()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def read(self, n: int | None = None) -> bytes:
        data = bytes(await self._stream.read(n))
        for message in self._reads.feed(data):
            self._report(self._read_kind, message)
        return data

    async def write(self, data: bytes) -> None:
        await self._stream.write(data)
        for message in self._writes.feed(bytes(data)):
            self._report(self._write_kind, message)


class PyNode:
    """One py-libp2p host with its KadDHT, run by the adapter's trio loop."""

    def __init__(self, name: str, host: Any, dht: Any, mode: str) -> None:
        self.name = name
        self.host = host
        self.dht = dht
        self.mode = mode
        self.table: set[str] = set()
        self.acknowledged: dict[bytes, set[str]] = {}
        self.scope: Any = None
        self.halt: Any = None  # trio.Event: set to stop the node
        self.done: Any = None  # trio.Event: set when the node's tasks have ended

    @property
    def peer_id(self) -> str:
        return str(self.host.get_id().to_base58())

    def connections(self) -> list[Any]:
        return list(self.host.get_network().get_connections())


class Adapter:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.nodes: dict[str, PyNode] = {}
        self.nursery: Any = None
        self.started_at = time.monotonic()
        self.wall_at_start = time.time()
        self.ops: dict[str, Callable[[JSON], Awaitable[JSON]]] = {
            "start": self.start,
            "dial": self.dial,
            "provide": self.provide,
            "find_providers": self.find_providers,
            "snapshot": self.snapshot,
            "set_mode": self.set_mode,
            "stop": self.stop,
            "shutdown": self.shutdown,
        }
        self.finished = False

    # --- output ----------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int((time.monotonic() - self.started_at) * 1000)

    def write(self, message: JSON) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def emit(self, node: PyNode, event: str, **fields: Any) -> None:
        self.write(
            {**fields, "type": "event", "node": node.name, "time_ms": self.now_ms(), "event": event}
        )

    def hello(self) -> None:
        from importlib.metadata import version

        self.write(
            {
                "type": "hello",
                "protocol": PROTOCOL,
                "implementation": "py-libp2p",
                "version": f"libp2p {version('libp2p')}, adapter {ADAPTER_VERSION}",
                "capabilities": {
                    "auto_mode": False,
                    "timings": False,
                    "crash_restart": False,
                    "events": True,
                },
            }
        )

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        import trio

        self.hello()
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            buffer = b""
            while not self.finished:
                chunk = await stdin.receive_some(65536)
                if not chunk:  # end of input without shutdown: stop the nodes and leave
                    await self.shutdown({})
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        nursery.start_soon(self.serve, line)
            nursery.cancel_scope.cancel()

    async def serve(self, line: bytes) -> None:
        try:
            request = json.loads(line)
        except ValueError as error:
            # no id to answer to: the protocol has no reply for this line, so say it on stderr
            print(f"ignored a line that is not JSON ({error}): {line[:160]!r}", file=sys.stderr)
            return
        ident = request.get("id") if isinstance(request, dict) else None
        if not isinstance(ident, int) or isinstance(ident, bool) or ident < 0:
            print(f"ignored a request without an integer id: {line[:160]!r}", file=sys.stderr)
            return
        if request.get("type") != "request" or not isinstance(request.get("op"), str):
            self.reply_error(ident, "bad-request", 'expected {"type": "request", "id": int, ...}')
            return
        op = self.ops.get(request["op"])
        if op is None:
            kind = "unsupported" if request["op"] in ("crash", "restart") else "bad-request"
            self.reply_error(ident, kind, f"op {request['op']} is not supported by py-libp2p")
            return
        args = request.get("args") or {}
        try:
            result = await op(args)
        except AdapterError as error:
            self.reply_error(ident, error.kind, str(error))
            return
        except Exception as error:  # an implementation failure is a reply, never a crash
            self.reply_error(ident, "failed", f"{type(error).__name__}: {error}")
            return
        self.write({"type": "reply", "id": ident, "ok": True, "result": result})
        if request["op"] == "shutdown":
            self.finished = True
            if self.nursery is not None:
                self.nursery.cancel_scope.cancel()

    def reply_error(self, ident: int, kind: str, message: str) -> None:
        self.write(
            {"type": "reply", "id": ident, "ok": False, "error": {"kind": kind, "message": message}}
        )

    def node(self, args: JSON) -> PyNode:
        name = args.get("node")
        node = self.nodes.get(name) if isinstance(name, str) else None
        if node is None:
            raise AdapterError("unknown-node", f"no running node named {name!r}")
        return node

    # --- ops ---------------------------------------------------------------------------------

    async def start(self, args: JSON) -> JSON:
        import trio
        from libp2p import new_host
        from libp2p.crypto.ed25519 import create_new_key_pair
        from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
        from multiaddr import Multiaddr

        name = args.get("node")
        if not isinstance(name, str) or not name:
            raise AdapterError("bad-request", "node must be a non-empty string")
        if name in self.nodes:
            raise AdapterError("bad-request", f"node {name!r} is already running")
        mode = args.get("mode", "server")
        if mode == "auto":
            raise AdapterError("unsupported", "py-libp2p's KadDHT has no automatic mode")
        if mode not in ("server", "client"):
            raise AdapterError("bad-request", f"mode must be server or client, not {mode!r}")
        try:
            listen = Multiaddr(args.get("listen", "/ip4/127.0.0.1/tcp/0"))
            bootstrap = [Multiaddr(a) for a in args.get("bootstrap", [])]
        except Exception as error:
            raise AdapterError("bad-request", f"bad multiaddr: {error}") from None
        host = new_host(key_pair=create_new_key_pair(), listen_addrs=[listen])
        dht = KadDHT(host, DHTMode.SERVER if mode == "server" else DHTMode.CLIENT)
        node = PyNode(name, host, dht, mode)
        self.nodes[name] = node
        try:
            await self.nursery.start(self._run_node, node, listen)
        except BaseException:
            self.nodes.pop(name, None)
            raise
        self.emit(node, "mode_changed", mode=mode)
        connected = False
        for addr in bootstrap:
            connected = await self._connect(node, addr) or connected
        if connected:
            with trio.move_on_after(BOOTSTRAP_TIMEOUT_S):
                await dht.peer_routing.find_closest_peers_network(host.get_id().to_bytes())
            await self._table_changed(node)
        return {
            "peer_id": node.peer_id,
            "listen_addrs": unique([strip_peer(a) for a in host.get_transport_addrs()]),
        }

    async def _connect(self, node: PyNode, addr: Any) -> bool:
        import trio
        from libp2p.peer.peerinfo import info_from_p2p_addr

        try:
            info = info_from_p2p_addr(addr)
            with trio.fail_after(BOOTSTRAP_TIMEOUT_S):
                await node.host.connect(info)
        except Exception as error:
            print(f"{node.name}: bootstrap dial {addr} failed: {error}", file=sys.stderr)
            return False
        # Add the bootstrap peer only once identify has told its protocols, so py-libp2p's own
        # server-mode check (kad in identify) decides; before identify it would admit anyone.
        with trio.move_on_after(BOOTSTRAP_TIMEOUT_S):
            while not self._protocols(node, info.peer_id):
                await trio.sleep(0.05)
        await node.dht.add_peer(info.peer_id)
        return True

    async def _run_node(self, node: PyNode, listen: Any, *, task_status: Any) -> None:
        import trio
        from libp2p.tools.anyio_service.context import background_trio_service

        node.done = trio.Event()
        node.halt = trio.Event()
        try:
            with trio.CancelScope() as scope:
                node.scope = scope
                async with node.host.run(listen_addrs=[listen]):
                    self._observe(node)
                    async with background_trio_service(node.dht):
                        task_status.started()
                        await node.halt.wait()
                    # Leaving host.run leaves py-libp2p's listener and connections open (a
                    # stopped node would still be reachable); closing the host closes them.
                    with trio.move_on_after(HOST_CLOSE_S):
                        await node.host.close()
        except Exception as error:
            print(f"{node.name}: stopped on {type(error).__name__}: {error}", file=sys.stderr)
        finally:
            node.done.set()

    def _observe(self, node: PyNode) -> None:
        """Hooks on what py-libp2p lets us see: connections, identify, table changes, stores."""
        adapter = self
        network = node.host.get_network()
        network.register_notifee(_Notifee(self, node))

        table = node.dht.routing_table
        add_peer, remove_peer = table.add_peer, table.remove_peer

        async def add_and_report(peer: Any, **kwargs: Any) -> bool:
            added = bool(await add_peer(peer, **kwargs))
            await adapter._table_changed(node)
            return added

        def remove_and_report(peer: Any) -> bool:
            removed = bool(remove_peer(peer))
            if removed:
                adapter._report_table(node)
            return removed

        table.add_peer = add_and_report
        table.remove_peer = remove_and_report

        store = node.dht.provider_store
        send_add_provider = store._send_add_provider

        async def count_add_provider(peer: Any, key: bytes) -> bool:
            sent = bool(await send_add_provider(peer, key))
            if sent:
                node.acknowledged.setdefault(key, set()).add(str(peer.to_base58()))
            return sent

        store._send_add_provider = count_add_provider
        self._observe_kad_streams(node)

        host = node.host
        identify_peer = getattr(host, "_identify_peer", None)
        if identify_peer is not None:

            async def identify_and_report(peer: Any, **kwargs: Any) -> None:
                await identify_peer(peer, **kwargs)
                protocols = adapter._protocols(node, peer)
                if protocols:
                    adapter.emit(
                        node,
                        "identify_received",
                        peer=str(peer.to_base58()),
                        listen_addrs=adapter._peer_addrs(node, peer),
                        observed_addr=None,
                        protocols=protocols,
                    )
                    await adapter._table_changed(node)

            host._identify_peer = identify_and_report

    def _observe_kad_streams(self, node: PyNode) -> None:
        """Every kad stream, served or opened, reports its messages as protocol events."""
        from libp2p.kad_dht.common import PROTOCOL_ID
        from libp2p.kad_dht.kad_dht import DHTMode

        adapter, dht, host = self, node.dht, node.host

        def reporter(stream: Any) -> Callable[[str, Any], None]:
            peer = str(stream.muxed_conn.peer_id.to_base58())

            def report(kind: str, message: Any) -> None:
                kad_type = KAD_TYPES.get(int(message.type))
                if kad_type is None:
                    return  # PUT_VALUE/GET_VALUE: outside the protocol's events
                fields: JSON = {"kad_type": kad_type, "peer": peer, "key": wire_key(message.key)}
                if kind.startswith("kad_request"):
                    fields["providers"] = peer_infos(message.providerPeers)
                else:
                    fields["closer_peers"] = peer_infos(message.closerPeers)
                    fields["provider_peers"] = peer_infos(message.providerPeers)
                adapter.emit(node, kind, **fields)

            return report

        handle_stream = dht.handle_stream

        async def handle_observed(stream: Any) -> None:
            await handle_stream(ObservedStream(stream, reporter(stream), inbound=True))

        # switch_mode registers dht.handle_stream again: the instance attribute keeps it ours
        dht.handle_stream = handle_observed
        if dht.mode == DHTMode.SERVER:
            host.set_stream_handler(PROTOCOL_ID, handle_observed)

        new_stream = host.new_stream

        async def new_observed_stream(peer: Any, protocols: Any, *args: Any, **kwargs: Any) -> Any:
            stream = await new_stream(peer, protocols, *args, **kwargs)
            if str(PROTOCOL_ID) in [str(p) for p in protocols]:
                return ObservedStream(stream, reporter(stream), inbound=False)
            return stream

        host.new_stream = new_observed_stream

    async def _table_changed(self, node: PyNode) -> None:
        self._report_table(node)

    def _report_table(self, node: PyNode) -> None:
        infos = {str(i.peer_id.to_base58()): i for i in node.dht.routing_table.get_peer_infos()}
        for peer in sorted(set(infos) - node.table):
            addrs = unique([strip_peer(a) for a in infos[peer].addrs])
            self.emit(node, "routing_table_added", peer=peer, addrs=addrs)
        for peer in sorted(node.table - set(infos)):
            self.emit(node, "routing_table_removed", peer=peer, addrs=[])
        node.table = set(infos)

    def _own_addrs(self, node: PyNode) -> list[str]:
        return unique([strip_peer(a) for a in node.host.get_transport_addrs()])

    def _peer_addrs(self, node: PyNode, peer: Any) -> list[str]:
        try:
            return unique([strip_peer(a) for a in node.host.get_peerstore().addrs(peer)])
        except Exception:
            return []

    def _protocols(self, node: PyNode, peer: Any) -> list[str]:
        try:
            return [str(p) for p in node.host.get_peerstore().get_protocols(peer) or []]
        except Exception:
            return []

    async def dial(self, args: JSON) -> JSON:
        import trio
        from libp2p.peer.peerinfo import info_from_p2p_addr
        from multiaddr import Multiaddr

        node = self.node(args)
        try:
            info = info_from_p2p_addr(Multiaddr(args.get("addr", "")))
        except Exception as error:
            raise AdapterError("bad-request", f"bad multiaddr: {error}") from None
        try:
            with trio.fail_after(BOOTSTRAP_TIMEOUT_S):
                await node.host.connect(info)
        except Exception as error:
            raise AdapterError("failed", f"dial {args.get('addr')}: {error}") from None
        return {}

    async def provide(self, args: JSON) -> JSON:
        import trio

        node = self.node(args)
        key = key_bytes(args.get("key"))
        node.acknowledged[key] = set()
        timeout = float(args.get("timeout_ms", PROVIDE_TIMEOUT_S * 1000)) / 1000
        reason: str | None = None
        try:
            with trio.fail_after(timeout):
                await node.dht.provider_store.provide(key)
        except trio.TooSlowError:
            reason = f"no outcome within {timeout:.0f} s"
        count = len(node.acknowledged.pop(key, set()))
        outcome = "success" if count > 0 else "failure"
        if outcome == "failure" and reason is None:
            reason = "no peer took the record"
        result = {"outcome": outcome, "count": count, "reason": None if count else reason}
        self.emit(node, "provide_outcome", key=args["key"], **result)
        return result

    async def find_providers(self, args: JSON) -> JSON:
        import trio

        node = self.node(args)
        key = key_bytes(args.get("key"))
        deadline = args.get("deadline_ms", 10000)
        if not isinstance(deadline, int | float) or deadline <= 0:
            raise AdapterError("bad-request", "deadline_ms must be a positive number")
        found: list[Any] = []
        with trio.move_on_after(deadline / 1000):
            found = list(await node.dht.provider_store.find_providers(key, 20))
        providers: dict[str, list[str]] = {}  # py-libp2p repeats providers
        for info in found:
            addrs = providers.setdefault(str(info.peer_id.to_base58()), [])
            addrs.extend(strip_peer(a) for a in info.addrs)
        result = [{"peer_id": p, "addrs": unique(a)} for p, a in providers.items()]
        self.emit(node, "find_outcome", key=args["key"], providers=result)
        return {"providers": result}

    async def snapshot(self, args: JSON) -> JSON:
        from libp2p.kad_dht.provider_store import PROVIDER_RECORD_EXPIRATION_INTERVAL
        from libp2p.peer.id import ID

        node = self.node(args)
        conns = node.connections()
        connections = [connection_fields(conn) for conn in conns]
        peers = unique([c["peer_id"] for c in connections])
        records = []
        for key, by_peer in node.dht.provider_store.providers.items():
            for record in by_peer.values():
                expires = record.timestamp + PROVIDER_RECORD_EXPIRATION_INTERVAL
                records.append(
                    {
                        "key": wire_key(key),
                        "provider": str(record.peer_id.to_base58()),
                        "addrs": unique([strip_peer(a) for a in record.addresses]),
                        "expires_at_ms": int((expires - self.wall_at_start) * 1000),
                    }
                )
        table = [
            {
                "peer_id": str(info.peer_id.to_base58()),
                "addrs": unique([strip_peer(a) for a in info.addrs]),
            }
            for info in node.dht.routing_table.get_peer_infos()
        ]
        return {
            "peer_id": node.peer_id,
            "mode": node.mode,
            "listen_addrs": self._own_addrs(node),
            "external_addrs": [],  # py-libp2p confirms no observed address without AutoNAT
            "connections": connections,
            "routing_table": table,
            "protocols": {p: self._protocols(node, ID.from_base58(p)) for p in peers},
            "provider_records": records,
            "time_ms": self.now_ms(),
        }

    async def set_mode(self, args: JSON) -> JSON:
        from libp2p.kad_dht.kad_dht import DHTMode

        node = self.node(args)
        mode = args.get("mode")
        if mode == "auto":
            raise AdapterError("unsupported", "py-libp2p's KadDHT has no automatic mode")
        if mode not in ("server", "client"):
            raise AdapterError("bad-request", f"mode must be server or client, not {mode!r}")
        # py-libp2p sends no identify push on a switch: peers learn it on their next identify
        await node.dht.switch_mode(DHTMode.SERVER if mode == "server" else DHTMode.CLIENT)
        if mode != node.mode:
            node.mode = mode
            self.emit(node, "mode_changed", mode=mode)
        await self._table_changed(node)
        return {}

    async def stop(self, args: JSON) -> JSON:
        node = self.node(args)
        await self._stop(node)
        return {}

    async def _stop(self, node: PyNode) -> None:
        """Stop the DHT, close the host (listener and connections), and if that takes longer
        than it should, cancel the node outright."""
        import trio

        self.nodes.pop(node.name, None)
        if node.halt is not None:
            node.halt.set()
        if node.done is not None:
            with trio.move_on_after(2 * HOST_CLOSE_S):
                await node.done.wait()
            if node.scope is not None:
                node.scope.cancel()
            await node.done.wait()

    async def shutdown(self, args: JSON) -> JSON:
        for node in list(self.nodes.values()):
            await self._stop(node)
        return {}


class _Notifee:
    """py-libp2p network notifications as protocol events."""

    def __init__(self, adapter: Adapter, node: PyNode) -> None:
        self.adapter = adapter
        self.node = node

    def _fields(self, conn: Any) -> JSON:
        fields = connection_fields(conn)
        return {"peer": fields.pop("peer_id"), **fields}

    async def connected(self, network: Any, conn: Any) -> None:
        self.adapter.emit(self.node, "connection_opened", **self._fields(conn))

    async def disconnected(self, network: Any, conn: Any) -> None:
        self.adapter.emit(self.node, "connection_closed", **self._fields(conn))

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None


def main() -> None:
    try:
        import libp2p  # noqa: F401  (its import sets its loggers up; quieten them after)
        import trio
    except ImportError:
        print("py-libp2p is not installed: pip install 'kadspec[node]'", file=sys.stderr)
        sys.exit(2)
    # py-libp2p logs every failed exchange at WARNING ("Failed to read DHT message"); the
    # protocol's events say what matters
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    trio.run(Adapter(sys.stdout).run)


if __name__ == "__main__":
    main()
