"""``kadspec node`` as a process: clear one-line errors, a clean stop on SIGINT and SIGTERM, and
bad input on the wire that is reset, counted and logged while the node keeps serving.
Skipped without py-libp2p, except under CI, where a missing py-libp2p fails."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("libp2p")

import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo as HostPeerInfo
from multiaddr import Multiaddr
from node_processes import COMMAND, MODULE_COMMAND, NodeProcess, running_nodes

from kadspec.impl.wire import (
    DEFAULT_MAX_MESSAGE_SIZE,
    PROTOCOL_ID,
    KadMessage,
    MessageType,
    PeerInfo,
    decode_frames,
    encode_uvarint,
    frame,
)

UNREACHABLE = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGxCGHiQQHGmtSpfYc8iZVRouFW6e6uTPq4zFrZkTjv6Q"


def test_bad_input_is_one_line_on_stderr_and_status_2_or_1(tmp_path: Path) -> None:
    (tmp_path / "store" / "providers.sqlite3").parent.mkdir()
    (tmp_path / "store" / "providers.sqlite3").write_bytes(b"not a database" * 100)
    (tmp_path / "identity" / "identity.key").parent.mkdir()
    (tmp_path / "identity" / "identity.key").write_bytes(b"short")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    listen = ["--listen", "/ip4/127.0.0.1/tcp/0"]
    cases = [  # (command, arguments, exit status, what the one line says)
        (COMMAND, ["--listen", "/ip4/1.2.3/tcp/0"], 2,
         "error: --listen '/ip4/1.2.3/tcp/0' is not a multiaddr"),
        (MODULE_COMMAND, ["--listen", "/ip4/999.0.0.1/tcp/0"], 2, "is not a multiaddr"),
        (MODULE_COMMAND, [*listen, "--bootstrap", "/ip4/127.0.0.1/tcp/1"], 2,
         "has no /p2p/<peer id> part"),
        (MODULE_COMMAND, [*listen, "--bootstrap", "nonsense"], 2, "is not a multiaddr"),
        (MODULE_COMMAND, [*listen, "--data", str(tmp_path / "store")], 2,
         "not a usable provider store"),
        (MODULE_COMMAND, [*listen, "--data", str(tmp_path / "identity")], 2,
         "is not a node identity: 5 bytes"),
        (MODULE_COMMAND, ["--listen", f"/ip4/127.0.0.1/tcp/{port}", "--exit-on-eof"], 1,
         f"cannot listen on /ip4/127.0.0.1/tcp/{port}"),
    ]  # fmt: skip
    # all at once: each is a process start, and they are independent
    processes = [
        subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        for command, args, _, _ in cases
    ]  # fmt: skip
    try:
        for process, (_, args, status, message) in zip(processes, cases, strict=True):
            _, err = process.communicate(timeout=60)
            assert process.returncode == status, (args, err)
            assert err.count("\n") == 1 and message in err, (args, err)
    finally:
        taken.close()
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_an_unreachable_bootstrap_peer_is_one_line_and_ctrl_c_stops_cleanly() -> None:
    with running_nodes() as nodes:
        lonely = NodeProcess("--bootstrap", UNREACHABLE)
        nodes.append(lonely)
        failed = lonely.wait_for(lambda e: e["event"] == "dial.failed")
        assert "unable to connect" in failed["reason"]
        lonely.process.send_signal(signal.SIGINT)
        assert lonely.process.wait(30) == 0
        lonely.wait_for(lambda e: e["event"] == "node.stopped")
        assert "".join(lonely.stderr).strip() == "stopped (SIGINT)"


def test_the_readable_log_says_an_unreachable_peer_in_one_line_and_sigterm_stops() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "kadspec", "node", "--listen", "/ip4/127.0.0.1/tcp/0",
         "--bootstrap", UNREACHABLE, "--provide", "hello"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "unreachable" in line:
                break
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0 and err.strip() == "stopped (SIGTERM)", err
    text = "".join(lines) + out
    assert "listening on /ip4/127.0.0.1/tcp/" in text
    assert "bootstrap: dialling …" in text
    assert "provide 'hello' failed" in text or "provide 'hello' queued" in text
    assert sum("unreachable: unable to connect" in line for line in text.splitlines()) == 1
    assert "Traceback" not in text + err


# --- bad input on the wire ------------------------------------------------------------------------


async def send_on_kad_stream(host: Any, peer: ID, data: bytes) -> bytes:
    """Open a kad stream, write ``data``, half-close; whatever comes back before the end."""
    stream = await host.new_stream(peer, [PROTOCOL_ID])
    reply = b""
    try:
        await stream.write(data)
        await stream.close_write()
        with trio.move_on_after(15):
            while chunk := await stream.read(65536):
                reply += bytes(chunk)
    except Exception:  # a reset: the answer this test expects for bad input
        pass
    return reply


def garbage_on_raw_tcp(addr: str) -> None:
    """Bytes that are not even multistream-select, straight onto a TCP connection."""
    port = int(Multiaddr(addr).value_for_protocol("tcp"))
    noise = random.Random(8).randbytes(4096)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(noise)
        raw.shutdown(socket.SHUT_WR)
        raw.settimeout(10)
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass


def test_bad_input_on_the_wire_is_reset_counted_and_logged_and_the_node_keeps_serving() -> None:
    """Oversized, truncated, unknown-type and malformed kad messages, an ADD_PROVIDER whose
    provider is not the sender, random bytes on a kad stream and on a raw TCP connection: each
    is refused without a reply, counted in the node's stats and logged; the node answers a
    PING and a FIND_NODE afterwards and stops cleanly."""
    with running_nodes() as nodes:
        node = NodeProcess("--mode", "server")
        nodes.append(node)
        node.wait_listening()
        node_id = ID.from_base58(node.addr.rsplit("/", 1)[1])
        rng = random.Random(7)
        bad = {
            "OversizedMessage": encode_uvarint(DEFAULT_MAX_MESSAGE_SIZE + 1) + b"\x08\x05",
            "TruncatedMessage": b"\x05\x08\x04",
            "UnknownMessageType": b"\x02\x08\x09",
            "MalformedMessage": b"\x02\x0a\xff",
            "add-provider-not-sender": frame(
                KadMessage(
                    MessageType.ADD_PROVIDER,
                    key=b"\x12\x20" + bytes(32),
                    provider_peers=(PeerInfo(id=node_id.to_bytes(), addrs=(b"\x04",)),),
                )
            ),
        }
        replies: list[bytes] = []

        async def attack() -> None:
            loopback = Multiaddr("/ip4/127.0.0.1/tcp/0")
            host = new_host(key_pair=create_new_key_pair(), listen_addrs=[loopback])
            async with host.run(listen_addrs=[loopback]):
                await host.connect(HostPeerInfo(node_id, [Multiaddr(node.addr)]))
                for data in bad.values():
                    replies.append(await send_on_kad_stream(host, node_id, data))
                for _ in range(5):  # random bytes, each behind a plausible small length
                    noise = rng.randbytes(rng.randrange(1, 200))
                    replies.append(await send_on_kad_stream(host, node_id, noise))
                await trio.to_thread.run_sync(garbage_on_raw_tcp, node.addr)
                # still serving, on the connection that carried the garbage and on a new one
                ping = await send_on_kad_stream(host, node_id, frame(KadMessage(MessageType.PING)))
                assert decode_frames(ping) == [KadMessage(MessageType.PING)]
                find = await send_on_kad_stream(
                    host,
                    node_id,
                    frame(KadMessage(MessageType.FIND_NODE, key=host.get_id().to_bytes())),
                )
                assert decode_frames(find)[0].type is MessageType.FIND_NODE

        trio.run(attack)
        assert replies == [b""] * len(replies)  # refused: no reply to any of them
        stats = node.stats()
        for kind in bad:
            assert stats["rejected"].get(kind, 0) >= 1, (kind, stats)
        assert sum(stats["rejected"].values()) >= len(replies), stats
        refused = node.named("request.rejected") + node.named("request.refused")
        assert len(refused) >= len(replies)
        assert node.process.poll() is None
        assert node.terminate() == 0
        assert "Traceback" not in "".join(node.stderr)
