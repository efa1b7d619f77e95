"""The SQLite provider store: the RecordStore contract, restarts, and kill -9 during writes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kadspec.impl.records import ProviderRecord
from kadspec.impl.store import SqliteProviderStore, StoreError, path_in


def record(key: bytes, provider: bytes, expires_at: int, *addrs: bytes) -> ProviderRecord:
    return ProviderRecord(key=key, provider=provider, addrs=addrs, expires_at=expires_at)


def test_expired_records_are_never_served_even_before_gc(tmp_path: Path) -> None:
    with SqliteProviderStore(path_in(tmp_path)) as store:
        store.add(record(b"k", b"p1", 1000, b"/a"))
        store.add(record(b"k", b"p2", 2000, b"/b", b""))
        assert [r.provider for r in store.get(b"k", now=999)] == [b"p1", b"p2"]
        assert store.get(b"k", now=1000) == (record(b"k", b"p2", 2000, b"/b", b""),)
        assert store.get(b"k", now=2000) == ()
        assert len(store) == 2  # still on disk: served never, collected by expire()
        assert store.expire(now=1500) == 1
        assert len(store) == 1


def test_republish_refreshes_expiry_and_addresses(tmp_path: Path) -> None:
    with SqliteProviderStore(tmp_path / "s.db") as store:
        store.add(record(b"k", b"p", 10, b"/old"))
        store.add(record(b"k", b"p", 20, b"/new"))
        assert store.get(b"k", now=15) == (record(b"k", b"p", 20, b"/new"),)
        store.remove(b"k", b"p")
        assert store.get(b"k", now=0) == ()


def test_records_survive_a_restart_in_wal_mode(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    with SqliteProviderStore(path) as store:
        store.add(record(b"k", b"p", 10**15, b"/ip4/127.0.0.1/tcp/1"))
    with SqliteProviderStore(path) as store:
        assert store.get(b"k", now=0) == (record(b"k", b"p", 10**15, b"/ip4/127.0.0.1/tcp/1"),)
        assert store.integrity_problems() == []
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_file_that_is_not_a_store_is_one_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="bogus: not a usable provider store"):
        SqliteProviderStore(bogus)
    newer = tmp_path / "newer"
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        SqliteProviderStore(newer)


WRITER = textwrap.dedent(
    """
    import sys
    from kadspec.impl.records import ProviderRecord
    from kadspec.impl.store import SqliteProviderStore
    store = SqliteProviderStore(sys.argv[1])
    for i in range(100_000):  # bounded: the parent kills it long before the end
        key = i.to_bytes(4, "big")
        store.add(ProviderRecord(key, b"provider", (b"/ip4/10.0.0.1/tcp/4001", key), 10**15))
        print(i, flush=True)  # acknowledged: add() returned after the commit
    """
)


def test_kill_9_while_writing_loses_no_acknowledged_record(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acknowledged = []
    try:
        for line in child.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) >= 300:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)  # the child we started, by its pid
        rest, _ = child.communicate(timeout=30)
    acknowledged += [int(line) for line in rest.split()]
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 300

    with SqliteProviderStore(path) as store:
        assert store.integrity_problems() == []
        for i in acknowledged:
            key = i.to_bytes(4, "big")
            assert store.get(key, now=0) == (
                ProviderRecord(key, b"provider", (b"/ip4/10.0.0.1/tcp/4001", key), 10**15),
            ), f"acknowledged record {i} lost"
        assert len(store) >= len(acknowledged)


def test_expiry_is_kept_in_wall_clock_time_across_a_restart(tmp_path: Path) -> None:
    # a node's clock starts at 0 in every process; the store keeps expiry in wall-clock time
    path = path_in(tmp_path)
    with SqliteProviderStore(path, wall_offset_ms=1_000_000) as first_run:
        first_run.add(record(b"k", b"p", 5_000, b"/a"))  # expires at wall time 1,005,000
    with SqliteProviderStore(path, wall_offset_ms=1_004_000) as restarted:  # 4 s later
        assert restarted.get(b"k", now=999) == (record(b"k", b"p", 1_000, b"/a"),)
        assert restarted.get(b"k", now=1_000) == ()
        assert restarted.everything() == (record(b"k", b"p", 1_000, b"/a"),)
        assert restarted.expire(now=1_000) == 1
