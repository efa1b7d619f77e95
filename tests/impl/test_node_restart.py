"""kill -9 of a reference node while peers provide to it, then a restart with the same --data:
no acknowledged record is lost and the database passes ``PRAGMA integrity_check`` (issue 8).

Acknowledged means what a provider was told: its log says ``provide.delivered`` to the killed
node for that key, which the driver logs only after the receiver closed the stream, and the
receiver closes only after the fsynced commit. Skipped without py-libp2p, except under CI, where a
missing py-libp2p fails."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("libp2p")

from node_processes import NodeProcess, find_outcome, key_hex, running_nodes

from kadspec.impl.store import path_in

PROVIDERS = 3
KEYS_EACH = 150
#: acknowledged stores on the victim before it is killed (the rest are still in flight)
KILL_AFTER = 40


def acknowledged_by(victim: NodeProcess, providers: list[NodeProcess]) -> set[tuple[str, str]]:
    """(provider hex, key hex) of every store the victim acknowledged to a provider."""
    return {
        (provider.peer_hex, e["key"])
        for provider in providers
        for e in provider.named("provide.delivered")
        if e["peer"] == victim.peer_hex
    }


def test_kill_9_while_storing_then_restart_loses_no_acknowledged_record(tmp_path: Path) -> None:
    data = tmp_path / "victim"
    with running_nodes() as nodes:
        victim = NodeProcess("--mode", "server", "--data", str(data))
        nodes.append(victim)
        victim.wait_listening()
        providers = [
            NodeProcess("--mode", "server", "--bootstrap", victim.addr) for _ in range(PROVIDERS)
        ]
        nodes.extend(providers)
        for provider in providers:
            provider.wait_listening()
        for index, provider in enumerate(providers):
            provider.command(*(f"provide key-{index}-{i}" for i in range(KEYS_EACH)))

        deadline = time.monotonic() + 120
        while len(acknowledged_by(victim, providers)) < KILL_AFTER:
            assert time.monotonic() < deadline, "the providers never reached the victim"
            time.sleep(0.02)
        os.killpg(victim.process.pid, signal.SIGKILL)  # the victim we started, by its pid
        assert victim.process.wait(30) == -signal.SIGKILL
        time.sleep(0.5)  # let the providers' readers catch up with what was acknowledged
        acknowledged = acknowledged_by(victim, providers)
        assert len(victim.stored()) < PROVIDERS * KEYS_EACH, "killed after every store ended"

        # the database as the kill left it: consistent, and holding every acknowledged record
        db = sqlite3.connect(path_in(data))
        try:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            held = {
                (bytes(p).hex(), bytes(k).hex())
                for k, p in db.execute("SELECT key, provider FROM provider")
            }
        finally:
            db.close()
        lost = acknowledged - held
        assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged records lost"

        # the providers stop; the victim restarts as the same peer and serves what it held
        for provider in providers:
            assert provider.terminate() == 0
        restarted = NodeProcess("--mode", "server", "--data", str(data))
        nodes.append(restarted)
        listening = restarted.wait_listening().wait_for(lambda e: e["event"] == "node.listening")
        assert restarted.peer_hex == victim.peer_hex
        assert listening["records"] >= len(acknowledged)
        # a newcomer whose only peer is the restarted node finds an acknowledged record there
        texts = {
            key_hex(f"key-{index}-{i}"): f"key-{index}-{i}"
            for index in range(PROVIDERS)
            for i in range(KEYS_EACH)
        }
        provider_hex, acknowledged_key = sorted(acknowledged)[0]
        key = texts[acknowledged_key]
        newcomer = NodeProcess("--mode", "server", "--bootstrap", restarted.addr)
        nodes.append(newcomer)
        newcomer.wait_listening()
        newcomer.wait_for(lambda e: e["event"] == "node.ready", 60)
        newcomer.command(f"find {key}")
        found = newcomer.wait_for(find_outcome(key), 60)
        assert provider_hex in {p["id"] for p in found["providers"]}, found
        assert restarted.terminate() == 0
        print(
            f"\nkilled after {len(acknowledged)} acknowledged stores "
            f"({len(held)} records on disk), none lost"
        )
