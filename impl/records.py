"""Provider records and the store interface the core is handed (PROV-03, PROV-04, PROV-07).

The core never opens a file: it is given a :class:`RecordStore` (SQLite in ``store``, or the
in-memory :class:`MemoryStore` for simulations and tests). Expiry is checked on every read,
whether or not :meth:`RecordStore.expire` (garbage collection) has run: an expired record is
never served (PROV-04).
"""

from __future__ import annotations

from typing import Protocol

import attrs

from kadspec.impl.requirements import implements


@attrs.frozen
class ProviderRecord:
    """``provider`` (a peer ID) provides ``key`` at ``addrs`` until ``expires_at`` (ms)."""

    key: bytes
    provider: bytes
    addrs: tuple[bytes, ...]
    expires_at: int

    def live_at(self, now: int) -> bool:
        """True while the record may be served: strictly before its expiry instant."""
        return now < self.expires_at


class RecordStore(Protocol):
    """Where a node keeps provider records. ``add`` returns once the record is durable."""

    def add(self, record: ProviderRecord) -> None:
        """Store or refresh (same key and provider) a record; return only when acknowledged."""

    def get(self, key: bytes, now: int) -> tuple[ProviderRecord, ...]:
        """The records for ``key`` that are live at ``now``, ordered by provider."""

    def remove(self, key: bytes, provider: bytes) -> None:
        """Forget one record (stop providing)."""

    def expire(self, now: int) -> int:
        """Delete every record expired at ``now``; return how many went."""


class MemoryStore:
    """A :class:`RecordStore` in a dict: for simulations and tests; lost on restart."""

    def __init__(self) -> None:
        self._records: dict[tuple[bytes, bytes], ProviderRecord] = {}

    def add(self, record: ProviderRecord) -> None:
        self._records[record.key, record.provider] = record

    @implements("PROV-04")
    def get(self, key: bytes, now: int) -> tuple[ProviderRecord, ...]:
        return tuple(
            sorted(
                (r for (k, _), r in self._records.items() if k == key and r.live_at(now)),
                key=lambda r: r.provider,
            )
        )

    def remove(self, key: bytes, provider: bytes) -> None:
        self._records.pop((key, provider), None)

    def expire(self, now: int) -> int:
        dead = [ident for ident, r in self._records.items() if not r.live_at(now)]
        for ident in dead:
            del self._records[ident]
        return len(dead)

    def __len__(self) -> int:
        return len(self._records)

    def everything(self) -> tuple[ProviderRecord, ...]:
        """Every record held, expired or not (for the lockstep check's abstraction)."""
        return tuple(self._records.values())
