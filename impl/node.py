"""Run one reference node on a real libp2p host: ``python -m kadspec.impl.node``.

The command-line options are the ones issue 8 gives ``kadspec node`` (which will delegate here):
``--listen MULTIADDR [--bootstrap MULTIADDR ...] [--provide KEY ...] [--mode auto|server|client]
[--data DIR] [--json-log]``. The node logs its lifecycle one readable line per event (bootstrap
progress, table size, mode changes, each provide's outcome with its count), or one JSON object
per line with ``--json-log``. Lines on standard input are commands: ``provide KEY``,
``find KEY``, ``stop KEY``, ``mode auto|server|client``. Ctrl-C (or end of input with
``--exit-on-eof``) stops it cleanly.

A bad multiaddr is one line on standard error and exit status 2; an unreachable bootstrap peer
is one log line, and the node keeps running (its refresh retries). Keys are UTF-8 strings.
With ``--data DIR`` the node keeps its identity (``identity.key``) and its provider records
(SQLite, ``providers.sqlite3``) there, so a restart is the same peer with the same records.
Needs the ``node`` extra (py-libp2p).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs
import click

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import BootstrapPeer, CoreConfig, ModeSetting
from kadspec.impl.records import MemoryStore, RecordStore
from kadspec.impl.store import SqliteProviderStore, path_in


class NodeError(ValueError):
    """Bad input for a node: one line says what and where."""


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
    return create_new_key_pair(path.read_bytes())


def describe(effect: fx.Effect) -> str | None:
    """One readable line for an effect worth a person's attention, or None."""
    if isinstance(effect, fx.ReportOutcome):
        o = effect.outcome
        if isinstance(o, fx.ProvideOutcome):
            if o.ok:
                return f"provide {o.key.decode(errors='replace')!r}: stored on {o.delivered} peers"
            retry = f", retrying at {o.retry_at / 1000:.1f}s" if o.retry_at is not None else ""
            return f"provide {o.key.decode(errors='replace')!r} failed: {o.reason}{retry}"
        names = ", ".join(bytes(p.id).hex()[-12:] for p in o.providers) or "none"
        return f"find {o.key.decode(errors='replace')!r}: {len(o.providers)} providers ({names})"
    if not isinstance(effect, fx.LogEvent):
        return None
    f = dict(effect.fields)
    lines: dict[str, Callable[[], str]] = {
        "node.start": lambda: f"node started in {f['mode']} mode, {f['bootstrap']} bootstrap peers",
        "bootstrap.dial": lambda: f"bootstrap: dialling {str(f['peer'])[-12:]}",
        "dial.failed": lambda: f"peer {str(f['peer'])[-12:]} unreachable: {f['reason']}",
        "table.add": lambda: (
            f"routing table: +{str(f['peer'])[-12:]} ({f['evidence']}), {f['size']} peers"
        ),
        "table.remove": lambda: (
            f"routing table: -{str(f['peer'])[-12:]} ({f['reason']}), {f['size']} peers"
        ),
        "node.ready": lambda: f"ready: self-lookup done, {f['table']} peers in the table",
        "mode.change": lambda: f"mode: {f['old']} -> {f['new']}",
        "provide.queued": lambda: f"provide queued: {f['reason']}",
        "request.refused": lambda: f"refused a request from {str(f['peer'])[-12:]}: {f['reason']}",
        "request.rejected": lambda: (
            f"reset a bad stream from {str(f['peer'])[-12:]}: {f['reason']}"
        ),
    }
    line = lines.get(effect.name)
    return None if line is None else line()


def as_json(effect: fx.Effect) -> dict[str, Any] | None:
    if isinstance(effect, fx.LogEvent):
        return {"event": effect.name, **dict(effect.fields)}
    if isinstance(effect, fx.ReportOutcome):
        o = effect.outcome
        fields = attrs.asdict(o)
        fields["key"] = o.key.decode(errors="replace")
        if isinstance(o, fx.FindOutcome):
            fields["providers"] = [
                {"id": bytes(p.id).hex(), "addrs": [bytes(a).hex() for a in p.addrs]}
                for p in o.providers
            ]
        kind = "provide.outcome" if isinstance(o, fx.ProvideOutcome) else "find.outcome"
        return {"event": kind, **fields}
    return None


async def run_node(options: NodeOptions, out: TextIO) -> None:
    """Run until cancelled (or end of input with ``exit_on_eof``)."""
    import trio
    from libp2p import new_host

    from kadspec.impl.core import Core
    from kadspec.impl.host import HostDriver

    listen = parse_multiaddr(options.listen, "--listen")
    bootstrap = tuple(parse_bootstrap(b) for b in options.bootstrap)
    key_pair = load_identity(options.data)

    def emit(effect: fx.Effect) -> None:
        if options.json_log:
            record = as_json(effect)
            if record is not None:
                out.write(json.dumps(record, default=str) + "\n")
        else:
            line = describe(effect)
            if line is not None:
                out.write(line + "\n")
        out.flush()

    host = new_host(key_pair=key_pair, listen_addrs=[listen])
    store: RecordStore = MemoryStore()
    with contextlib.ExitStack() as closing:
        if options.data is not None:
            store = closing.enter_context(SqliteProviderStore(path_in(options.data)))
        async with host.run(listen_addrs=[listen]), trio.open_nursery() as nursery:
            addrs = tuple(a.to_bytes() for a in host.get_transport_addrs())
            config = CoreConfig(
                peer_id=host.get_id().to_bytes(),
                announce_addrs=addrs if options.mode is not ModeSetting.CLIENT else (),
                bootstrap=bootstrap,
                mode=options.mode,
            )
            driver = HostDriver(Core(config, store), host, emit)
            full = [f"{a}/p2p/{host.get_id()}" for a in host.get_transport_addrs()]
            if options.json_log:
                out.write(json.dumps({"event": "node.listening", "addrs": full}) + "\n")
            else:
                out.write(f"peer {host.get_id()} listening on {' '.join(full)}\n")
            out.flush()
            await nursery.start(driver.run)
            for key in options.provide:
                driver.command(ev.Provide(driver.now(), op=0, key=key.encode()))
            await _read_commands(driver, emit, options.exit_on_eof)
            nursery.cancel_scope.cancel()


async def _read_commands(driver: Any, emit: Callable[[fx.Effect], None], exit_on_eof: bool) -> None:
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
            words = raw.decode(errors="replace").split(maxsplit=1)
            op += 1
            now = driver.now()
            if len(words) == 2 and words[0] == "provide":
                driver.command(ev.Provide(now, op=op, key=words[1].encode()))
            elif len(words) == 2 and words[0] == "find":
                driver.command(ev.FindProviders(now, op=op, key=words[1].encode()))
            elif len(words) == 2 and words[0] == "stop":
                driver.command(ev.StopProviding(now, key=words[1].encode()))
            elif (
                len(words) == 2 and words[0] == "mode" and words[1] in ("auto", "server", "client")
            ):
                driver.command(ev.SetMode(now, ModeSetting(words[1])))
            elif words:
                emit(fx.LogEvent("command.unknown", (("line", raw.decode(errors="replace")),)))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--listen", required=True, metavar="MULTIADDR", help="e.g. /ip4/0.0.0.0/tcp/4001")
@click.option("--bootstrap", multiple=True, metavar="MULTIADDR", help="…/p2p/<peer id>, repeatable")
@click.option("--provide", multiple=True, metavar="KEY", help="provide KEY at start, repeatable")
@click.option("--mode", type=click.Choice(["auto", "server", "client"]), default="auto")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), help="identity, records")
@click.option("--json-log", is_flag=True, help="one JSON object per event")
@click.option("--exit-on-eof", is_flag=True, help="stop when standard input ends")
def node(
    listen: str,
    bootstrap: Sequence[str],
    provide: Sequence[str],
    mode: str,
    data: Path | None,
    json_log: bool,
    exit_on_eof: bool,
) -> None:
    """Run a reference kad-dht node (needs the 'node' extra: pip install 'kadspec[node]')."""
    options = NodeOptions(
        listen, tuple(bootstrap), tuple(provide), ModeSetting(mode), data, json_log, exit_on_eof
    )
    try:
        import libp2p  # noqa: F401  (its import sets its loggers up; quieten them after)
        import trio
    except ImportError:
        raise click.ClickException(
            "py-libp2p is not installed: pip install 'kadspec[node]'"
        ) from None
    # py-libp2p logs every failed connection attempt at WARNING; the node's own log says what
    # matters, once, on standard output.
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    try:
        trio.run(run_node, options, sys.stdout)
    except BaseException as error:  # trio wraps what its tasks raise in exception groups
        leaves = _leaves(error)
        if all(isinstance(e, KeyboardInterrupt) for e in leaves):
            click.echo("stopped", err=True)
            return
        for leaf in leaves:
            if isinstance(leaf, NodeError):
                click.echo(f"error: {leaf}", err=True)
                sys.exit(2)
        for leaf in leaves:
            if isinstance(leaf, OSError):  # e.g. the listen port is taken
                click.echo(f"error: {leaf}", err=True)
                sys.exit(1)
        raise


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


if __name__ == "__main__":
    node()
