"""Provide jobs: one per key we provide, from the user's command to an honest outcome.

A job waits until the node is Ready and has an address to announce (BOOT-05, ADDR-07), runs
GetClosestPeers, sends ADD_PROVIDER to the peers found, counts the deliveries and reports
(PROV-02). A failed attempt is retried with capped exponential backoff (PROV-06); a successful
one arms the republish timer (PROV-05). The core does the sending; this module keeps the state
and the arithmetic.
"""

from __future__ import annotations

import enum

from kadspec.impl.requirements import implements


class Phase(enum.Enum):
    QUEUED = "queued"  # waiting for Ready (no retry timer) or for its retry timer
    LOOKUP = "lookup"  # GetClosestPeers running
    SENDING = "sending"  # ADD_PROVIDER out, deliveries being counted
    IDLE = "idle"  # succeeded; republish armed
    STOPPED = "stopped"  # gave up or the user stopped providing


class ProvideJob:
    """The state of providing one key."""

    def __init__(self, key: bytes, op: int, retry_base: int) -> None:
        self.key = key
        self.op = op
        self.phase = Phase.QUEUED
        self.attempts = 0
        self.backoff = retry_base
        self.retry_at: int | None = None
        self.lookup: int | None = None
        self.pending: set[int] = set()  # request IDs of ADD_PROVIDER not yet settled
        self.delivered: set[bytes] = set()
        self.sent = 0

    @property
    def waiting_for_ready(self) -> bool:
        return self.phase is Phase.QUEUED and self.retry_at is None

    def begin_attempt(self) -> None:
        self.phase = Phase.LOOKUP
        self.attempts += 1
        self.retry_at = None
        self.pending = set()
        self.delivered = set()
        self.sent = 0

    @implements("PROV-06")
    def schedule_retry(self, now: int, retry_base: int, retry_cap: int) -> int:
        """After a failed attempt: queue again, due after the current backoff, then double it."""
        delay = max(self.backoff, retry_base)
        self.phase = Phase.QUEUED
        self.retry_at = now + delay
        self.backoff = min(2 * delay, retry_cap)
        self.pending = set()
        self.lookup = None
        return self.retry_at

    def succeed(self, retry_base: int) -> None:
        self.phase = Phase.IDLE
        self.backoff = retry_base
        self.retry_at = None
        self.lookup = None
        self.pending = set()
