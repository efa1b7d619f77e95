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


#: why a provide or a find failed, as reported in an outcome's ``code`` (BOOT-05)
NOT_READY = "not-ready"  # not Ready yet: empty table, or no self-lookup answered
NO_ADDRESS = "no-address"  # Ready, but no address we may announce (ADDR-07)
NO_PEERS = "no-peers"  # the lookup found no peer to ask, or none answered
NONE_DELIVERED = "none-delivered"  # no ADD_PROVIDER was delivered (PROV-02)


class ProvideJob:
    """The state of providing one key, and what its caller was last told."""

    def __init__(self, key: bytes, op: int, retry_base: int) -> None:
        self.key = key
        self.op = op
        self.phase = Phase.QUEUED
        self.attempts = 0
        self.backoff = retry_base
        self.retry_at: int | None = None
        self.lookup: int | None = None
        self.pending: list[int] = []  # request IDs of ADD_PROVIDER not yet settled, in send order
        self.delivered: set[bytes] = set()
        self.sent = 0
        #: the last outcome reported: None (nothing yet), True (success) or False (failure)
        self.reported: bool | None = None
        self.code = ""  # the failure's code (NOT_READY ...) when ``reported`` is False
        self.delivered_to = 0  # the count the last success reported (PROV-02)
        self.published_at: int | None = None

    @property
    def waiting_for_ready(self) -> bool:
        return self.phase is Phase.QUEUED and self.retry_at is None

    def begin_attempt(self) -> None:
        """GetClosestPeers starts; the deliveries of the last round stay counted until the
        next round of ADD_PROVIDER begins (or the attempt fails)."""
        self.phase = Phase.LOOKUP
        self.attempts += 1
        self.retry_at = None

    @implements("PROV-06")
    def schedule_retry(self, now: int, retry_base: int, retry_cap: int) -> int:
        """After a failed attempt: queue again, due after the current backoff, then double it."""
        delay = max(self.backoff, retry_base)
        self.phase = Phase.QUEUED
        self.retry_at = now + delay
        self.backoff = min(2 * delay, retry_cap)
        self.pending = []
        self.delivered = set()
        self.lookup = None
        return self.retry_at

    def succeed(self, retry_base: int, now: int) -> None:
        self.phase = Phase.IDLE
        self.backoff = retry_base
        self.retry_at = None
        self.lookup = None
        self.pending = []
        self.reported = True
        self.code = ""
        self.delivered_to = len(self.delivered)
        self.published_at = now
