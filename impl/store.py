"""The provider store in SQLite: one file per node, durable on acknowledgement (PROV-04).

WAL journal with ``synchronous=FULL``: every :meth:`SqliteProviderStore.add` is its own
transaction, and when it returns the commit is in the WAL and fsynced, so a record that was
acknowledged survives a crash (kill -9) or a power cut, and the database stays consistent
(``PRAGMA integrity_check``). Reads filter on expiry in SQL, so an expired record is never
served even before :meth:`expire` has collected it.

This is the only module of the node that touches a disk; the core sees it as a
:class:`~kadspec.impl.records.RecordStore`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Final

from kadspec.impl.records import ProviderRecord
from kadspec.impl.requirements import implements

#: The file name inside a node's data directory.
FILE_NAME: Final = "providers.sqlite3"

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS provider (
    key        BLOB    NOT NULL,
    provider   BLOB    NOT NULL,
    addrs      BLOB    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (key, provider)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS provider_expiry ON provider (expires_at);
"""


class StoreError(RuntimeError):
    """The database file cannot be used as a provider store; the message says why."""


def _pack(addrs: tuple[bytes, ...]) -> bytes:
    """Addresses as one blob: each a 4-byte big-endian length, then its bytes."""
    return b"".join(len(a).to_bytes(4, "big") + a for a in addrs)


def _unpack(blob: bytes) -> tuple[bytes, ...]:
    addrs = []
    index = 0
    while index < len(blob):
        length = int.from_bytes(blob[index : index + 4], "big")
        addrs.append(blob[index + 4 : index + 4 + length])
        index += 4 + length
    return tuple(addrs)


def path_in(data_dir: str | Path) -> Path:
    """The store's file in a node's data directory (one file per node)."""
    return Path(data_dir) / FILE_NAME


class SqliteProviderStore:
    """A :class:`~kadspec.impl.records.RecordStore` kept in one SQLite file.

    Opening creates the file and its schema if needed; a file written by a newer schema, or one
    that is not SQLite, raises StoreError naming the path. Use it as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | Path, wall_offset_ms: int = 0) -> None:
        self.path = Path(path)
        #: wall-clock ms at the core's time 0: expiry instants are kept on disk in wall-clock
        #: time, so a restarted node (whose clock starts again at 0) neither serves a record
        #: past its real expiry nor drops one early
        self.wall_offset_ms = wall_offset_ms
        try:
            # isolation_level=None: autocommit, so each statement below is one transaction and
            # add() has committed when it returns.
            self._db = sqlite3.connect(self.path, isolation_level=None)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: SQLite refused WAL mode (journal_mode={mode})")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this node's "
                    f"({SCHEMA_VERSION})"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: not a usable provider store: {error}") from None

    def add(self, record: ProviderRecord) -> None:
        """Store or refresh a record; durable (fsynced WAL commit) when this returns."""
        self._db.execute(
            "INSERT INTO provider (key, provider, addrs, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key, provider) DO UPDATE SET addrs = excluded.addrs, "
            "expires_at = excluded.expires_at",
            (
                record.key,
                record.provider,
                _pack(record.addrs),
                record.expires_at + self.wall_offset_ms,
            ),
        )

    @implements("PROV-04")
    def get(self, key: bytes, now: int) -> tuple[ProviderRecord, ...]:
        """The records for ``key`` live at ``now`` (expiry checked here, not only by GC)."""
        rows = self._db.execute(
            "SELECT provider, addrs, expires_at FROM provider "
            "WHERE key = ? AND expires_at > ? ORDER BY provider",
            (key, now + self.wall_offset_ms),
        )
        return tuple(
            ProviderRecord(
                key=key, provider=p, addrs=_unpack(a), expires_at=e - self.wall_offset_ms
            )
            for p, a, e in rows
        )

    def remove(self, key: bytes, provider: bytes) -> None:
        self._db.execute("DELETE FROM provider WHERE key = ? AND provider = ?", (key, provider))

    def expire(self, now: int) -> int:
        """Delete every record expired at ``now``; return how many went."""
        return self._db.execute(
            "DELETE FROM provider WHERE expires_at <= ?", (now + self.wall_offset_ms,)
        ).rowcount

    def everything(self) -> tuple[ProviderRecord, ...]:
        """Every record held, expired or not, ordered by key and provider (for snapshots)."""
        rows = self._db.execute(
            "SELECT key, provider, addrs, expires_at FROM provider ORDER BY key, provider"
        )
        return tuple(
            ProviderRecord(key=k, provider=p, addrs=_unpack(a), expires_at=e - self.wall_offset_ms)
            for k, p, a, e in rows
        )

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT count(*) FROM provider").fetchone()[0]
        return count

    def integrity_problems(self) -> list[str]:
        """What ``PRAGMA integrity_check`` reports; empty when the file is sound."""
        rows = [str(r[0]) for r in self._db.execute("PRAGMA integrity_check")]
        return [] if rows == ["ok"] else rows

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteProviderStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
