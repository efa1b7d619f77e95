"""``python -m kadspec.impl.node`` as a process: clear errors, a clean stop, and 20 processes on
loopback that provide at start-up and find every key. Skipped without the ``node`` extra."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("libp2p")

from libp2p.peer.id import ID

NODE = [sys.executable, "-m", "kadspec.impl.node", "--listen", "/ip4/127.0.0.1/tcp/0"]


class NodeProcess:
    """One node process with --json-log; its events are collected as they arrive."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*NODE, "--json-log", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        listening = self.wait_for(lambda e: e["event"] == "node.listening")
        self.addr: str = listening["addrs"][0]
        self.peer_hex = ID.from_base58(self.addr.rsplit("/", 1)[1]).to_bytes().hex()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if match(event):
                    return event
            if self.process.poll() is not None and not any(match(e) for e in self.events):
                raise AssertionError(f"node exited: {self.process.stderr.read()}")  # type: ignore[union-attr]
            time.sleep(0.05)
        raise AssertionError(f"timed out; last events: {self.events[-5:]}")

    def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> tuple[int, str]:
        """Ctrl-C; the exit status and what went to standard error."""
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=30)
        return self.process.returncode, err


def test_a_bad_multiaddr_is_one_line_and_status_2() -> None:
    done = subprocess.run(
        [*NODE[:-2], "--listen", "/ip4/999.0.0.1/tcp/0"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "is not a multiaddr" in done.stderr
    done = subprocess.run(
        [*NODE, "--bootstrap", "/ip4/127.0.0.1/tcp/1"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "has no /p2p/<peer id> part" in done.stderr


def test_an_unreachable_bootstrap_peer_is_one_line_and_ctrl_c_stops_cleanly() -> None:
    lonely = NodeProcess(
        "--bootstrap",
        "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGxCGHiQQHGmtSpfYc8iZVRouFW6e6uTPq4zFrZkTjv6Q",
    )
    failed = lonely.wait_for(lambda e: e["event"] == "dial.failed")
    assert "unable to connect" in failed["reason"]
    status, err = lonely.stop()
    assert status == 0 and err.strip() == "stopped (SIGINT)" and "Traceback" not in err


def find_outcome_of(key: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["event"] == "find.outcome" and event["key"] == key


@pytest.mark.slow
def test_twenty_processes_provide_at_start_up_and_every_key_is_found_from_every_node() -> None:
    boot = NodeProcess("--mode", "server")
    joiners: list[NodeProcess] = []
    try:
        for index in range(1, 20):
            joiners.append(
                NodeProcess(
                    "--mode", "server", "--bootstrap", boot.addr, "--provide", f"key-{index}"
                )
            )
        nodes = [boot, *joiners]
        boot.command("provide key-0")
        for node in nodes:
            outcome = node.wait_for(lambda e: e["event"] == "provide.outcome" and e["ok"], 120)
            assert outcome["delivered"] >= 1  # PROV-02: success means a delivered store
        for node in nodes:
            for event in node.events:
                if event["event"] == "provide.outcome" and not event["ok"]:
                    assert event["reason"]  # a failed attempt says why (and is retried)
        # the rust-libp2p seed bug: the bootstrap node routes to every joiner
        added = {e["peer"] for e in boot.events if e["event"] == "table.add"}
        removed = {e["peer"] for e in boot.events if e["event"] == "table.remove"}
        assert {j.peer_hex for j in joiners} <= added - removed
        for node in nodes:
            for index in range(20):
                node.command(f"find key-{index}")
            # one node's lookups at a time: twenty processes share a small machine
            for index, provider in enumerate(nodes):
                found = node.wait_for(find_outcome_of(f"key-{index}"), 120)
                assert provider.peer_hex in {p["id"] for p in found["providers"]}, found
    finally:
        for node in [boot, *joiners]:
            node.process.kill()
            node.process.wait()
