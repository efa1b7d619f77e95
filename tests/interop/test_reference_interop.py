"""The reference node interoperates with js-libp2p and py-libp2p on loopback (issue 8).

For each implementation, through its adapter (protocol ``kadspec-adapter/1``): a bootstrap
node ``boot`` and a second node ``peer`` that joins it, both in server mode; then a reference
node process that bootstraps from ``boot``. The test checks that

- the reference node joins: its self-lookup through ``boot`` ends ready with ``boot`` in its
  table, and ``boot`` routes to the joiner (the reference node is in boot's routing table);
- a key the reference node provides is stored on at least one of them and found by both;
- a key ``peer`` provides is found by the reference node.

Every adapter line is checked against the protocol's JSON Schemas. Loopback only; each wait is
bounded; every process is stopped by its pid. A missing npm or py-libp2p skips the test on a
developer's machine and fails it under ``CI=true``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
from interop_harness import (
    ADAPTERS,
    LOOPBACK,
    AdapterProcess,
    ReferenceNode,
    adapter_command_for_test,
    base58_peer,
)

pytestmark = pytest.mark.xdist_group("interop")  # one worker: npm ci must not run twice at once

#: one wait for the network to do something on loopback; generous because the machine is shared
STEP_S = 20.0


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Iterator[AdapterProcess]:
    command = adapter_command_for_test(request.param)
    with AdapterProcess(command) as process:
        yield process


def start_node(adapter: AdapterProcess, name: str, bootstrap: list[str]) -> tuple[str, str]:
    """Start a server-mode node; its peer ID and its dialable address with /p2p/."""
    result = adapter.request(
        "start", node=name, mode="server", listen=LOOPBACK, bootstrap=bootstrap
    )
    peer_id: str = result["peer_id"]
    return peer_id, f"{result['listen_addrs'][0]}/p2p/{peer_id}"


def table_of(adapter: AdapterProcess, node: str) -> set[str]:
    return {entry["peer_id"] for entry in adapter.request("snapshot", node=node)["routing_table"]}


def wait_until_in_table(adapter: AdapterProcess, node: str, peer: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while peer not in (table := table_of(adapter, node)):
        assert time.monotonic() < deadline, f"{peer} never entered {node}'s table: {table}"
        time.sleep(0.2)


def provider_ids(result: dict[str, list[dict[str, object]]]) -> set[object]:
    return {provider["peer_id"] for provider in result["providers"]}


def test_reference_node_interoperates(adapter: AdapterProcess) -> None:
    implementation = adapter.hello["implementation"]
    run = secrets.token_hex(4)  # keys no earlier run can have left behind
    reference_key = f"kadspec-interop-reference-{run}"
    adapter_key = f"kadspec-interop-{implementation}-{run}"

    boot_id, boot_addr = start_node(adapter, "boot", [])
    peer_id, _ = start_node(adapter, "peer", [boot_addr])

    with ReferenceNode(bootstrap=[boot_addr]) as reference:
        # the reference node bootstraps from the other implementation...
        ready = reference.wait_for(lambda r: r.get("event") == "node.ready", STEP_S)
        assert ready["table"] >= 1, reference.log_tail()
        added = {base58_peer(r["peer"]) for r in reference.events("table.add")}
        assert boot_id in added, f"boot {boot_id} never entered the reference node's table"
        # ...and the bootstrap node routes to its joiner
        wait_until_in_table(adapter, "boot", reference.peer_id, STEP_S)

        # a key the reference node provides is stored and found by both nodes
        reference.command(f"provide {reference_key}")
        outcome = reference.wait_for(
            lambda r: (
                r.get("event") == "provide.outcome"
                and r.get("key") == reference_key
                and r.get("ok") is True
            ),
            STEP_S,
        )
        assert outcome["delivered"] >= 1
        for node in ("boot", "peer"):
            found = adapter.request(
                "find_providers", node=node, key=reference_key, deadline_ms=10_000
            )
            assert reference.peer_id in provider_ids(found), f"{node} did not find {found}"

        # a key the other implementation provides is found by the reference node
        provided = adapter.request("provide", node="peer", key=adapter_key)
        assert provided["outcome"] == "success" and provided["count"] >= 1, provided
        reference.command(f"find {adapter_key}")
        found_by_reference = reference.wait_for(
            lambda r: r.get("event") == "find.outcome" and r.get("key") == adapter_key,
            STEP_S,
        )
        providers = {base58_peer(p["id"]) for p in found_by_reference["providers"]}
        assert peer_id in providers, f"reference node found {providers}, not {peer_id}"

    assert adapter.problems == [], "adapter lines that break the protocol's schemas"
