"""What happens to a node: the events a driver feeds into the core.

Every event carries ``now`` (milliseconds on the driver's clock): the core has no clock. IDs of
connections, streams, requests and operations are chosen by whoever creates them (connections
and inbound streams by the driver, requests by the core, operations by the user) and are only
compared for equality.
"""

from __future__ import annotations

import enum

import attrs

from kadspec.impl.config import ModeSetting
from kadspec.impl.wire import KadMessage


class Direction(enum.Enum):
    """Who opened a connection: we dialed (outbound) or the peer dialed us (inbound)."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"


class TimerKind(enum.Enum):
    REFRESH = "refresh"
    REQUEST_DEADLINE = "request-deadline"
    PROVIDE_RETRY = "provide-retry"
    REPUBLISH = "republish"
    RECORD_GC = "record-gc"


@attrs.frozen
class Timer:
    """A named timer: ``kind`` plus what it is about (a request ID, a content key)."""

    kind: TimerKind
    subject: int | bytes = 0


@attrs.frozen
class Start:
    """The node starts: arm timers, dial bootstrap peers. ``providing`` lists the keys it
    provided before a restart (kept on disk by the driver, like the reprovider's key store):
    they are queued again (PROV-05)."""

    now: int
    providing: tuple[bytes, ...] = ()


@attrs.frozen
class ConnectionOpened:
    now: int
    connection: int
    peer: bytes
    direction: Direction
    #: the remote multiaddr of the connection (binary); dialable only when we dialed it
    remote_addr: bytes


@attrs.frozen
class ConnectionClosed:
    now: int
    connection: int
    peer: bytes


@attrs.frozen
class DialFailed:
    """A Dial effect failed: no connection to ``peer`` could be opened."""

    now: int
    peer: bytes
    reason: str


@attrs.frozen
class IdentifyReceived:
    """Identify (or identify push) from ``peer`` on ``connection``."""

    now: int
    connection: int
    peer: bytes
    listen_addrs: tuple[bytes, ...]
    protocols: frozenset[str]
    #: the address the peer saw us at, if it said
    observed_addr: bytes | None = None


@attrs.frozen
class RequestReceived:
    """A peer opened a kad stream to us and sent ``message``; answer or reset ``stream``."""

    now: int
    peer: bytes
    connection: int
    stream: int
    message: KadMessage


@attrs.frozen
class ResponseReceived:
    """The reply to our request ``request``."""

    now: int
    request: int
    message: KadMessage


@attrs.frozen
class RequestDelivered:
    """A request that expects no reply (ADD_PROVIDER) was written and the stream closed."""

    now: int
    request: int


@attrs.frozen
class RequestFailed:
    """Our request could not be completed: dial failure, stream reset, bad reply."""

    now: int
    request: int
    reason: str


@attrs.frozen
class DialBackResult:
    """An AutoNAT dial-back to one of our candidate addresses succeeded or failed."""

    now: int
    addr: bytes
    reachable: bool


@attrs.frozen
class TimerFired:
    now: int
    timer: Timer


@attrs.frozen
class Provide:
    """User command: announce that we provide ``key``; outcomes come back tagged ``op``."""

    now: int
    op: int
    key: bytes


@attrs.frozen
class FindProviders:
    now: int
    op: int
    key: bytes


@attrs.frozen
class StopProviding:
    now: int
    key: bytes


@attrs.frozen
class SetMode:
    now: int
    setting: ModeSetting


Event = (
    Start
    | ConnectionOpened
    | ConnectionClosed
    | DialFailed
    | IdentifyReceived
    | RequestReceived
    | ResponseReceived
    | RequestDelivered
    | RequestFailed
    | DialBackResult
    | TimerFired
    | Provide
    | FindProviders
    | StopProviding
    | SetMode
)
