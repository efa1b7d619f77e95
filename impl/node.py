"""Run one reference node on a real libp2p host: ``kadspec node``, ``python -m kadspec.impl.node``.

Options (issue 8): ``--listen MULTIADDR [--bootstrap MULTIADDR ...] [--provide KEY ...]
[--mode auto|server|client] [--data DIR] [--json-log] [--exit-on-eof]``. The node logs its
lifecycle one readable line per event (bootstrap progress, table size, mode changes, each
provide's outcome with its count), or one JSON object per line with ``--json-log``. Lines on
standard input are commands: ``provide KEY``, ``find KEY``, ``stop KEY``,
``mode auto|server|client``, ``stats``. Ctrl-C, SIGTERM, or the end of input with
``--exit-on-eof`` stops it cleanly (exit status 0).

Bad input is one line on standard error, never a traceback: a bad multiaddr, a bootstrap address
without its peer ID, a data folder whose store or identity is unusable exit with status 2; a
listen address that cannot be bound exits with 1. An unreachable bootstrap peer is one log line,
and the node keeps running (its refresh retries). Keys follow the key rule (:func:`content_key`).
With ``--data DIR`` the node keeps its identity (``identity.key``) and its provider records
(SQLite, ``providers.sqlite3``) there, so a restart is the same peer with the same records, and
it provides its own kept keys again. py-libp2p is imported only when the node starts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

import attrs
import click

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import BootstrapPeer, CoreConfig, ModeSetting
from kadspec.impl.records import MemoryStore, RecordStore
from kadspec.impl.store import SqliteProviderStore, StoreError, path_in

#: how long ``--exit-on-eof`` waits, after the end of input, for the outcomes still due
SETTLE_TIMEOUT_S: Final = 30


class NodeError(ValueError):
    """Bad input for a node: one line says what and where."""


class ListenError(OSError):
    """The node could not listen where it was told to (a port in use, an address not ours)."""


# --- the key rule (CONTRACT.md): what kad key a key given as text names -------------------------

#: multihash code of sha2-256 and its digest length
SHA2_256: Final = 0x12
SHA2_256_LENGTH: Final = 32
#: multicodec of the ``raw`` codec, the codec of a CID for a plain blob of bytes
RAW_CODEC: Final = 0x55
_BASE58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def content_key(text: str) -> bytes:
    """The kad key a user's key names: a CID string's multihash, else sha2-256 of the UTF-8.

    A text key is the multihash (``0x12 0x20`` + digest) of its UTF-8 bytes, the multihash of
    CIDv1(raw, sha256(text)), which is what js-libp2p's ``provide(CID.createV1(raw,
    sha256(text)))`` puts on the wire. A string that is a well-formed CID (CIDv1 in base32, the
    ``bafk...``/``bafy...`` form, or a ``Qm...`` CIDv0) names that CID's multihash, whatever its
    hash function. py-libp2p's ``KadDHT.provide(text)`` sends the bare UTF-8 bytes instead, so
    give it :func:`key_cid` of the key to meet this node on the same key.
    """
    from_cid = _cid_multihash(text)
    if from_cid is not None:
        return from_cid
    digest = hashlib.sha256(text.encode()).digest()
    return bytes([SHA2_256, SHA2_256_LENGTH]) + digest


def key_cid(key: bytes) -> str:
    """The CIDv1 (raw codec, base32) string of a kad key that is a multihash: ``bafk...``."""
    body = bytes([1, RAW_CODEC]) + key
    return "b" + base64.b32encode(body).decode().lower().rstrip("=")


def _split_uvarint(data: bytes) -> tuple[int, bytes] | None:
    value = 0
    for index, byte in enumerate(data[:9]):
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, data[index + 1 :]
    return None


def _is_multihash(data: bytes) -> bool:
    code = _split_uvarint(data)
    length = None if code is None else _split_uvarint(code[1])
    return length is not None and len(length[1]) == length[0] > 0


def _cid_multihash(text: str) -> bytes | None:
    """The multihash inside a CID string, or None when ``text`` is not one."""
    if len(text) == 46 and text.startswith("Qm"):  # CIDv0: a bare base58btc sha2-256 multihash
        number = 0
        for char in text:
            if char not in _BASE58_ALPHABET:
                return None
            number = number * 58 + _BASE58_ALPHABET.index(char)
        raw = number.to_bytes(34, "big") if number < 1 << (8 * 34) else b""
        return raw if raw[:2] == bytes([SHA2_256, SHA2_256_LENGTH]) else None
    if not text.startswith("b") or not text[1:].isalnum() or not text[1:].islower():
        return None
    try:  # multibase "b": RFC 4648 base32, lower case, no padding
        raw = base64.b32decode(text[1:].upper() + "=" * (-len(text[1:]) % 8))
    except (binascii.Error, ValueError):
        return None
    version = _split_uvarint(raw)
    codec = None if version is None or version[0] != 1 else _split_uvarint(version[1])
    if codec is None or not _is_multihash(codec[1]):
        return None
    return codec[1]


@attrs.frozen
class NodeOptions:
    listen: str
    bootstrap: tuple[str, ...] = ()
    provide: tuple[str, ...] = ()
    mode: ModeSetting = ModeSetting.AUTO
    data: Path | None = None
    json_log: bool = False
    exit_on_eof: bool = False


def parse_multiaddr(text: str, option: str) -> Any:
    from multiaddr import Multiaddr

    try:
        return Multiaddr(text)
    except Exception as error:
        raise NodeError(f"{option} {text!r} is not a multiaddr: {error}") from None


def parse_bootstrap(text: str) -> BootstrapPeer:
    """``/ip4/.../tcp/.../p2p/ID`` -> the peer ID and the address to dial it at."""
    from libp2p.peer.id import ID

    addr = parse_multiaddr(text, "--bootstrap")
    try:
        peer = addr.value_for_protocol("p2p")
    except Exception:
        peer = None
    if not peer:
        raise NodeError(f"--bootstrap {text!r} has no /p2p/<peer id> part")
    dial = addr.decapsulate_code(addr.protocols()[-1].code)  # drop the /p2p part
    return BootstrapPeer(ID.from_base58(peer).to_bytes(), (dial.to_bytes(),))


def load_identity(data: Path | None) -> Any:
    """The node's ed25519 key pair, kept in ``DATA/identity.key`` when a data dir is given."""
    from libp2p.crypto.ed25519 import create_new_key_pair

    if data is None:
        return create_new_key_pair()
    data.mkdir(parents=True, exist_ok=True)
    path = data / "identity.key"
    if not path.exists():
        path.write_bytes(os.urandom(32))
        path.chmod(0o600)
    seed = path.read_bytes()
    if len(seed) != 32:
        raise NodeError(f"{path} is not a node identity: {len(seed)} bytes, not a 32-byte seed")
    return create_new_key_pair(seed)


class KeyNames:
    """The text each kad key was given as, so the log shows what the operator typed."""

    def __init__(self) -> None:
        self._texts: dict[bytes, str] = {}

    def key(self, text: str) -> bytes:
        """:func:`content_key` of ``text``, remembering the text for the log."""
        key = content_key(text)
        self._texts.setdefault(key, text)
        return key

    def text(self, key: bytes) -> str:
        """The text a key was given as; a key from a peer shows as its CID (or hex)."""
        known = self._texts.get(key)
        if known is not None:
            return known
        return key_cid(key) if _is_multihash(key) else key.hex()


def peer_name(peer_hex: object) -> str:
    """A peer ID (hex, as the core logs it) in the base58 form libp2p prints, shortened."""
    text = str(peer_hex)
    try:
        from libp2p.peer.id import ID

        text = ID(bytes.fromhex(text)).to_base58()
    except (ImportError, ValueError):
        pass
    return "…" + text[-8:]


def _one_line(text: object, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe(effect: fx.Effect, names: KeyNames) -> str | None:
    """One readable line for an effect worth a person's attention, or None."""
    if isinstance(effect, fx.ReportOutcome):
        o = effect.outcome
        if isinstance(o, fx.ProvideOutcome):
            if o.ok:
                return f"provide {names.text(o.key)!r}: stored on {o.delivered} peers"
            retry = f", retrying at {o.retry_at / 1000:.1f}s" if o.retry_at is not None else ""
            return (
                f"provide {names.text(o.key)!r} failed (attempt {o.attempt}, stored on "
                f"{o.delivered}): {o.reason}{retry}"
            )
        if not o.ok:
            return f"find {names.text(o.key)!r} failed: {o.reason}"
        found = ", ".join(peer_name(bytes(p.id).hex()) for p in o.providers) or "none"
        return f"find {names.text(o.key)!r}: {len(o.providers)} providers ({found})"
    if not isinstance(effect, fx.LogEvent):
        return None
    f = dict(effect.fields)
    lines: dict[str, Callable[[], str]] = {
        "node.start": lambda: f"node started in {f['mode']} mode, {f['bootstrap']} bootstrap peers",
        "bootstrap.dial": lambda: f"bootstrap: dialling {peer_name(f['peer'])}",
        "dial.failed": lambda: f"peer {peer_name(f['peer'])} unreachable: {_one_line(f['reason'])}",
        "table.add": lambda: (
            f"routing table: +{peer_name(f['peer'])} ({f['evidence']}), {f['size']} peers"
        ),
        "table.remove": lambda: (
            f"routing table: -{peer_name(f['peer'])} ({_one_line(f['reason'])}), {f['size']} peers"
        ),
        "node.ready": lambda: f"ready: self-lookup done, {f['table']} peers in the table",
        "mode.change": lambda: f"mode: {f['old']} -> {f['new']}",
        "provide.queued": lambda: (
            f"provide {names.text(bytes.fromhex(str(f['key'])))!r} queued: {f['reason']}"
        ),
        "record.stored": lambda: (
            f"stored a record: {peer_name(f['provider'])} provides "
            f"{names.text(bytes.fromhex(str(f['key'])))!r}"
        ),
        "request.refused": lambda: (
            f"refused a request from {peer_name(f['peer'])}: {_one_line(f['reason'])}"
        ),
        "request.rejected": lambda: (
            f"reset a bad stream from {peer_name(f['peer'])}: {_one_line(f['reason'])}"
        ),
        "command.unknown": lambda: (
            f"unknown command {f['line']!r} (provide KEY, find KEY, stop KEY, "
            "mode auto|server|client, stats)"
        ),
        "node.stats": lambda: (
            f"stats: {f['table']} peers in the table, {f['connections']} connected, "
            f"{f['records']} records held, rejected {f['rejected'] or 'nothing'}"
        ),
    }
    line = lines.get(effect.name)
    return None if line is None else line()


#: the JSON log's names for outcomes (ReportOutcome), which no log event may also use
OUTCOME_EVENTS: Final = frozenset({"provide.outcome", "find.outcome"})


def as_json(effect: fx.Effect, names: KeyNames) -> dict[str, Any] | None:
    """One JSON object for an effect the log shows (every log event and outcome), or None."""
    if isinstance(effect, fx.LogEvent):
        if effect.name in OUTCOME_EVENTS:
            return None  # the core's note of an outcome it also reports: the outcome says more
        return {"event": effect.name, **dict(effect.fields)}
    if isinstance(effect, fx.ReportOutcome):
        o = effect.outcome
        fields = attrs.asdict(o)
        fields["key"] = names.text(o.key)
        fields["key_hex"] = o.key.hex()
        if isinstance(o, fx.FindOutcome):
            fields["providers"] = [
                {"id": bytes(p.id).hex(), "addrs": [bytes(a).hex() for a in p.addrs]}
                for p in o.providers
            ]
        kind = "provide.outcome" if isinstance(o, fx.ProvideOutcome) else "find.outcome"
        return {"event": kind, **fields}
    return None


class NodeLog:
    """The node's log on one text stream: readable lines, or JSON objects (``--json-log``)."""

    def __init__(self, out: TextIO, json_log: bool, names: KeyNames) -> None:
        self.out = out
        self.json_log = json_log
        self.names = names
        self.clock: Callable[[], int] = lambda: 0
        #: keys of the provides and finds given that have no settled outcome yet (a provide
        #: settles on success or a final failure, a find on any outcome)
        self.unsettled: set[tuple[str, bytes]] = set()

    def effect(self, effect: fx.Effect) -> None:
        if isinstance(effect, fx.ReportOutcome):
            o = effect.outcome
            if isinstance(o, fx.FindOutcome):
                self.unsettled.discard(("find", o.key))
            elif o.ok or o.final:
                self.unsettled.discard(("provide", o.key))
        if self.json_log:
            record = as_json(effect, self.names)
            if record is not None:
                self._write(json.dumps({**record, "time_ms": self.clock()}, default=str))
        else:
            line = describe(effect, self.names)
            if line is not None:
                self._write(line)

    def event(self, name: str, text: str, **fields: Any) -> None:
        """A node-level event (not the core's): ``text`` for people, ``fields`` for JSON."""
        if self.json_log:
            self._write(json.dumps({"event": name, **fields, "time_ms": self.clock()}))
        else:
            self._write(text)

    def _write(self, line: str) -> None:
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):  # nobody reads the log any more: keep serving
            pass


def statistics(driver: Any) -> dict[str, Any]:
    """What ``stats`` reports: table, connections, records held, rejected input by reason."""
    rejected = dict(driver.rejected) | dict(driver.core.rejected)
    store = driver.core.store
    return {
        "table": len(driver.core.table),
        "connections": len(driver.core.connections()),
        "records": len(store) if hasattr(store, "__len__") else -1,
        "rejected": {k: v for k, v in sorted(rejected.items()) if v},
    }


async def run_node(options: NodeOptions, out: TextIO) -> str:
    """Run until SIGINT or SIGTERM (or end of input with ``exit_on_eof``); say which ended it."""
    import trio
    from libp2p import new_host

    from kadspec.impl.core import Core
    from kadspec.impl.host import HostDriver

    listen = parse_multiaddr(options.listen, "--listen")
    bootstrap = tuple(parse_bootstrap(b) for b in options.bootstrap)
    key_pair = load_identity(options.data)
    log = NodeLog(out, options.json_log, KeyNames())
    ended_by = "end of input"

    host = new_host(key_pair=key_pair, listen_addrs=[listen])
    store: RecordStore = MemoryStore()
    with contextlib.ExitStack() as closing:
        if options.data is not None:
            store = closing.enter_context(SqliteProviderStore(path_in(options.data)))
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with host.run(listen_addrs=[listen]), trio.open_nursery() as nursery:
                if not host.get_transport_addrs():  # py-libp2p logs a failed bind and goes on
                    raise ListenError(f"cannot listen on {options.listen} (in use, or not ours?)")
                addrs = tuple(a.to_bytes() for a in host.get_transport_addrs())
                config = CoreConfig(
                    peer_id=host.get_id().to_bytes(),
                    announce_addrs=addrs if options.mode is not ModeSetting.CLIENT else (),
                    bootstrap=bootstrap,
                    mode=options.mode,
                )
                # keys this node provided before a restart: its own records in its store
                providing = tuple(
                    sorted(
                        {r.key for r in store.everything() if r.provider == config.peer_id}
                        if isinstance(store, SqliteProviderStore)
                        else set()
                    )
                )
                driver = HostDriver(Core(config, store), host, log.effect, providing)
                full = [f"{a}/p2p/{host.get_id()}" for a in host.get_transport_addrs()]
                log.event(
                    "node.listening",
                    f"peer {host.get_id()} listening on {' '.join(full)}",
                    addrs=full,
                    peer=host.get_id().to_bytes().hex(),
                    records=statistics(driver)["records"],
                )
                if isinstance(store, SqliteProviderStore):
                    log.event(
                        "node.data",
                        f"data: {len(store)} provider records kept in {store.path}",
                        path=str(store.path),
                        records=len(store),
                    )
                await nursery.start(driver.run)
                log.clock = driver.now
                if isinstance(store, SqliteProviderStore):  # expiry on disk in wall-clock time
                    store.wall_offset_ms = int(time.time() * 1000) - driver.now()
                for text in options.provide:
                    _run_command(driver, log, f"provide {text}", op=0)

                async def stop_on_signal() -> None:
                    nonlocal ended_by
                    async for number in signals:
                        ended_by = signal.Signals(number).name
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(stop_on_signal)
                await _read_commands(driver, log, options.exit_on_eof)
                with trio.move_on_after(SETTLE_TIMEOUT_S):
                    while log.unsettled:
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
        stats = statistics(driver)
        log.event(
            "node.stopped",
            f"stopping ({ended_by}): {stats['table']} peers in the table, "
            f"{stats['records']} records held",
            reason=ended_by,
            **stats,
        )
    return ended_by


async def _read_commands(driver: Any, log: NodeLog, exit_on_eof: bool) -> None:
    """Serve the commands on standard input, one a line, until it ends."""
    import trio

    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    op = 0
    while True:
        chunk = await stdin.receive_some(4096)
        if not chunk:
            if exit_on_eof:
                return
            await trio.sleep_forever()
        buffer += chunk
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            op += 1
            _run_command(driver, log, raw.decode(errors="replace").strip(), op)


def _run_command(driver: Any, log: NodeLog, line: str, op: int) -> None:
    words = line.split(maxsplit=1)
    now = driver.now()
    if not words:
        return
    verb, argument = words[0], (words[1] if len(words) == 2 else "")
    if verb == "provide" and argument:
        log.unsettled.add(("provide", log.names.key(argument)))
        driver.command(ev.Provide(now, op=op, key=log.names.key(argument)))
    elif verb == "find" and argument:
        log.unsettled.add(("find", log.names.key(argument)))
        driver.command(ev.FindProviders(now, op=op, key=log.names.key(argument)))
    elif verb == "stop" and argument:
        driver.command(ev.StopProviding(now, key=log.names.key(argument)))
    elif verb == "mode" and argument in ("auto", "server", "client"):
        driver.command(ev.SetMode(now, ModeSetting(argument)))
    elif verb == "stats" and not argument:
        stats = statistics(driver)
        log.effect(fx.LogEvent("node.stats", tuple(stats.items())))
    else:
        log.effect(fx.LogEvent("command.unknown", (("line", line),)))


EXAMPLE = """\b
Example: a bootstrap node, and a second node that joins it and provides a key
  $ kadspec node --listen /ip4/127.0.0.1/tcp/4001 --mode server --data ./boot
  peer 12D3KooW... listening on /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...
  $ kadspec node --listen /ip4/127.0.0.1/tcp/0 \\
      --bootstrap /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW... --provide hello

\b
Commands on standard input, one a line:
  provide KEY   announce that this node provides KEY
  find KEY      look up KEY's providers
  stop KEY      stop providing KEY
  mode auto|server|client
  stats         routing table size, connections, records held, rejected input

\b
Keys: a text key names the sha2-256 multihash of its UTF-8 bytes (the multihash of
CIDv1(raw, sha256(text)), as js-libp2p provides it); a CID string (bafk..., bafy...,
Qm...) names that CID's multihash. The log shows the text.
"""


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXAMPLE,
)
@click.option(
    "--listen",
    required=True,
    metavar="MULTIADDR",
    help="Where to accept connections, e.g. /ip4/127.0.0.1/tcp/0 (port 0: any free port).",
)
@click.option(
    "--bootstrap",
    multiple=True,
    metavar="MULTIADDR",
    help="A peer to join through, with its /p2p/<peer id> part; repeatable.",
)
@click.option(
    "--provide", multiple=True, metavar="KEY", help="Provide KEY from the start; repeatable."
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "server", "client"]),
    default="auto",
    show_default=True,
    help="server answers kad requests; client only asks; auto follows confirmed reachability.",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Keep the identity and the provider records (SQLite) here across restarts.",
)
@click.option("--json-log", is_flag=True, help="Log one JSON object per event.")
@click.option(
    "--exit-on-eof",
    is_flag=True,
    help="Stop when standard input ends and every provide and find given has its outcome "
    f"(waiting at most {SETTLE_TIMEOUT_S} s).",
)
def node(
    listen: str,
    bootstrap: Sequence[str],
    provide: Sequence[str],
    mode: str,
    data: Path | None,
    json_log: bool,
    exit_on_eof: bool,
) -> None:
    """Run a reference Kademlia DHT node on a real libp2p host (TCP, noise, yamux).

    The node joins through its bootstrap peers, provides its keys as soon as its routing table
    is ready, serves FIND_NODE, GET_PROVIDERS, ADD_PROVIDER and PING, and logs its lifecycle one
    line per event: bootstrap progress, table size, mode changes, each provide's outcome with
    the number of peers that stored it. Ctrl-C or SIGTERM stops it cleanly.
    """
    options = NodeOptions(
        listen, tuple(bootstrap), tuple(provide), ModeSetting(mode), data, json_log, exit_on_eof
    )
    try:
        import libp2p  # noqa: F401  (its import sets its loggers up; quieten them after)
        import trio
    except ImportError:
        raise click.ClickException(
            "py-libp2p is not installed: pip install libp2p (kadspec depends on it)"
        ) from None
    # py-libp2p logs every failed connection attempt at WARNING; the node's own log says what
    # matters, once, on standard output.
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    try:
        ended_by = trio.run(run_node, options, sys.stdout)
    except BaseException as error:  # trio wraps what its tasks raise in exception groups
        leaves = _leaves(error)
        if all(isinstance(e, KeyboardInterrupt) for e in leaves):
            _ignore_late_stop_signals()
            click.echo("stopped", err=True)
            return
        for leaf in leaves:
            if isinstance(leaf, NodeError | StoreError):
                click.echo(f"error: {leaf}", err=True)
                sys.exit(2)
        for leaf in leaves:
            if isinstance(leaf, OSError):  # e.g. the listen port is taken
                click.echo(f"error: {_one_line(leaf)}", err=True)
                sys.exit(1)
        raise
    _ignore_late_stop_signals()
    click.echo(f"stopped ({ended_by})", err=True)


def _ignore_late_stop_signals() -> None:
    """The node has stopped cleanly: a stop signal that comes after (``timeout`` signals the
    node, then its process group, and forwards what it gets itself) must not turn its exit
    status 0 into 130. A CI run saw exactly that, after "stopped (SIGINT)"."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


if __name__ == "__main__":
    node()
