"""The in-memory record store keeps the same contract as the SQLite one."""

from __future__ import annotations

from kadspec.impl.records import MemoryStore, ProviderRecord


def test_memory_store_never_serves_expired_records() -> None:
    store = MemoryStore()
    store.add(ProviderRecord(b"k", b"p2", (b"/b",), 20))
    store.add(ProviderRecord(b"k", b"p1", (b"/a",), 10))
    store.add(ProviderRecord(b"other", b"p1", (b"/a",), 10))
    assert [r.provider for r in store.get(b"k", now=9)] == [b"p1", b"p2"]
    assert [r.provider for r in store.get(b"k", now=10)] == [b"p2"]
    assert store.expire(now=10) == 2
    assert len(store) == 1
    store.remove(b"k", b"p2")
    assert store.get(b"k", now=0) == ()
