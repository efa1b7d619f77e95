"""The reference adapter through the client: schema-valid both ways, crash and restart keep the
node's identity, port and records, errors name the node, and --break is checked at start."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator

import psutil
import pytest

from kadspec.conformance import protocol as p
from kadspec.conformance.client import AdapterClient
from kadspec.conformance.runner import reference_command


@pytest.fixture
def adapter() -> Iterator[AdapterClient]:
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    client = AdapterClient(reference_command(), name="reference", close_step=2.0)
    client.start()
    try:
        yield client
    finally:
        client.close()
    left = {c.pid for c in psutil.Process().children(recursive=True)} - before
    assert not left, f"left behind: {left}"


def start(node: str, bootstrap: list[str] | None = None) -> dict[str, object]:
    return {
        "node": node,
        "mode": "server",
        "listen": "/ip4/127.0.0.1/tcp/0",
        "bootstrap": bootstrap or [],
        "timings": {"refresh_interval": 1000, "request_deadline": 1000},
    }


def test_crash_and_restart_keep_identity_port_and_records(adapter: AdapterClient) -> None:
    assert adapter.hello is not None and adapter.hello.capabilities.crash_restart
    boot = adapter.call("start", start("boot"))
    address = f"{boot['listen_addrs'][0]}/p2p/{boot['peer_id']}"
    a = adapter.call("start", start("a", [address]))
    outcome = adapter.call("provide", {"node": "a", "key": "kept"}, timeout=20)
    assert outcome["outcome"] == "success" and outcome["count"] >= 1
    stored = adapter.call("snapshot", {"node": "boot"})["provider_records"]
    assert {"key": p.wire_key("kept"), "provider": a["peer_id"]}.items() <= stored[0].items()
    adapter.call("crash", {"node": "boot"})
    port = int(str(boot["listen_addrs"][0]).rsplit("/", 1)[1])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 5):
        pass  # a crashed node is unreachable: its listener is closed, not just its core
    down = adapter.request("snapshot", {"node": "boot"})
    assert not down.ok and down.error is not None and down.error.kind == "failed"
    adapter.call("restart", {"node": "boot"})
    again = adapter.call("snapshot", {"node": "boot"})
    assert again["peer_id"] == boot["peer_id"]
    assert again["listen_addrs"] == boot["listen_addrs"]
    assert [r["key"] for r in again["provider_records"]] == [p.wire_key("kept")]
    missing = adapter.request("dial", {"node": "nobody", "addr": address})
    assert missing.error is not None and missing.error.kind == "unknown-node"
    twice = adapter.request("start", start("a"))
    assert twice.error is not None and twice.error.kind == "bad-request"
    events = {e.payload["event"] for e in adapter.entries if e.kind == "event"}
    assert {"connection_opened", "routing_table_added", "kad_request_sent"} <= events
    assert {"kad_request_received", "kad_response_sent", "provide_outcome"} <= events


def test_the_adapter_refuses_a_request_that_breaks_its_schema() -> None:
    bad = b'{"type":"request","id":9,"op":"dial","args":{"node":"a"}}\n'
    done = subprocess.run(
        reference_command(),
        input=bad + b'{"type":"request","id":10,"op":"shutdown","args":{}}\n',
        capture_output=True,
        timeout=120,
    )
    replies = [json.loads(line) for line in done.stdout.splitlines()[1:]]
    assert replies[0]["id"] == 9 and replies[0]["error"]["kind"] == "bad-request"
    assert "args: 'addr' is a required property" in replies[0]["error"]["message"]
    assert replies[1] == {"type": "reply", "id": 10, "ok": True, "result": {}}
    assert done.returncode == 0


def test_an_unknown_breakage_is_refused_before_anything_runs() -> None:
    done = subprocess.run(
        [*reference_command("no-such-breakage")],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "'no-such-breakage' is not one of" in done.stderr
    assert "admit-client" in done.stderr
    assert done.stdout == ""


def test_a_halting_node_closes_its_listener_while_its_connections_still_live() -> None:
    # py-libp2p's host.close() closes connections one by one, then its listeners; the adapter
    # closes the listeners first, so a crashing node accepts no newcomer (a killed one would not)
    import trio
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.peerinfo import PeerInfo as HostPeerInfo
    from multiaddr import Multiaddr

    from kadspec.conformance.adapters.reference import _close_connections, _close_listeners

    loopback = Multiaddr("/ip4/127.0.0.1/tcp/0")

    async def scenario() -> None:
        crashing = new_host(key_pair=create_new_key_pair(), listen_addrs=[loopback])
        peer = new_host(key_pair=create_new_key_pair(), listen_addrs=[loopback])
        async with crashing.run([loopback]), peer.run([loopback]):
            addrs = crashing.get_transport_addrs()
            await peer.connect(HostPeerInfo(crashing.get_id(), addrs))
            port = int(addrs[0].value_for_protocol("tcp"))
            await _close_listeners(crashing)
            with pytest.raises(OSError):
                await trio.open_tcp_stream("127.0.0.1", port)
            assert crashing.get_network().get_connections(peer.get_id())  # not closed yet
            await _close_connections(crashing)
            assert not crashing.get_network().get_connections(peer.get_id())
            await crashing.close()
            await peer.close()

    async def bounded() -> None:
        with trio.fail_after(30):
            await scenario()

    trio.run(bounded)
