"""The js-libp2p and py-libp2p adapters keep protocol ``kadspec-adapter/1`` on its edges.

Besides the happy path the interop test walks, an adapter must answer a request it cannot do
with the right error kind, keep stopped nodes stopped (their port closed), and exit on
shutdown; every line it writes must satisfy the protocol's JSON Schemas. One adapter process
per implementation.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from interop_harness import ADAPTERS, LOOPBACK, AdapterProcess, adapter_command_for_test

pytestmark = pytest.mark.xdist_group("interop")  # one worker: npm ci must not run twice at once


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Iterator[AdapterProcess]:
    command = adapter_command_for_test(request.param)
    with AdapterProcess(command) as process:
        yield process


#: which adapters can crash and restart a node (their hello must say so)
CRASH_RESTART = {"js-libp2p": True, "py-libp2p": False}


def error_kind(adapter: AdapterProcess, op: str, **args: object) -> str:
    reply = adapter.wait_reply(adapter.send(op, **args), 30.0)
    assert reply["ok"] is False, f"{op} {args} should have failed: {reply}"
    kind: str = reply["error"]["kind"]
    return kind


def test_adapter_answers_each_request_with_the_right_outcome(adapter: AdapterProcess) -> None:
    assert adapter.hello["protocol"] == "kadspec-adapter/1"
    assert adapter.hello["capabilities"]["events"] is True

    assert error_kind(adapter, "teleport", node="a") == "bad-request"
    if not CRASH_RESTART[adapter.hello["implementation"]]:
        assert error_kind(adapter, "crash", node="a") == "unsupported"
    assert error_kind(adapter, "provide", node="nobody", key="k") == "unknown-node"
    bad_listen = {"mode": "server", "listen": "/ip4/127.0.0.1/tcp/notaport", "bootstrap": []}
    assert error_kind(adapter, "start", node="a", **bad_listen) == "bad-request"

    started = adapter.request("start", node="a", mode="server", listen=LOOPBACK, bootstrap=[])
    assert started["listen_addrs"] and all(
        a.startswith("/ip4/127.0.0.1/tcp/") for a in started["listen_addrs"]
    )
    snapshot = adapter.request("snapshot", node="a")
    assert snapshot["peer_id"] == started["peer_id"]
    assert snapshot["mode"] == "server" and snapshot["routing_table"] == []
    assert error_kind(adapter, "start", node="a", mode="server", listen=LOOPBACK, bootstrap=[]) == (
        "bad-request"  # the name is taken
    )

    adapter.request("set_mode", node="a", mode="client")
    assert adapter.request("snapshot", node="a")["mode"] == "client"
    assert any(e["event"] == "mode_changed" and e["mode"] == "client" for e in adapter.events)

    adapter.request("stop", node="a")
    # an adapter that can restart a node keeps it, stopped: asking a stopped node fails
    gone = "failed" if CRASH_RESTART[adapter.hello["implementation"]] else "unknown-node"
    assert error_kind(adapter, "snapshot", node="a") == gone
    port = int(started["listen_addrs"][0].rsplit("/tcp/", 1)[1])
    with pytest.raises(ConnectionRefusedError):  # a stopped node is unreachable
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    adapter.request("shutdown")
    assert adapter.process.wait(timeout=15) == 0
    assert adapter.problems == [], "adapter lines that break the protocol's schemas"


def test_crash_and_restart_keep_identity_port_and_records(adapter: AdapterProcess) -> None:
    from kadspec.conformance import protocol

    implementation = adapter.hello["implementation"]
    assert adapter.hello["capabilities"]["crash_restart"] is CRASH_RESTART[implementation]
    if not CRASH_RESTART[implementation]:
        assert error_kind(adapter, "restart", node="boot") == "unsupported"
        return
    boot = adapter.request("start", node="boot", mode="server", listen=LOOPBACK, bootstrap=[])
    address = f"{boot['listen_addrs'][0]}/p2p/{boot['peer_id']}"
    adapter.request("start", node="a", mode="server", listen=LOOPBACK, bootstrap=[address])
    provided: dict[str, object] = {}
    for _ in range(20):  # until a's table holds boot: js-libp2p refuses to provide before
        provided = adapter.request("provide", node="a", key="kept", timeout_s=40)
        if provided["outcome"] == "success":
            break
    assert provided["outcome"] == "success", provided
    adapter.request("crash", node="boot")
    assert error_kind(adapter, "snapshot", node="boot") == "failed"
    port = int(boot["listen_addrs"][0].rsplit("/tcp/", 1)[1])
    with pytest.raises(ConnectionRefusedError):  # a crashed node is unreachable
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    adapter.request("restart", node="boot")
    again = adapter.request("snapshot", node="boot")
    assert again["peer_id"] == boot["peer_id"] and again["listen_addrs"] == boot["listen_addrs"]
    assert protocol.wire_key("kept") in {r["key"] for r in again["provider_records"]}
    assert error_kind(adapter, "restart", node="nobody") == "unknown-node"
    adapter.request("shutdown")
    assert adapter.process.wait(timeout=15) == 0
    assert adapter.problems == [], "adapter lines that break the protocol's schemas"
