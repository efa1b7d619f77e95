"""What the core asks its driver to do, and what it reports: the effects it emits.

The driver carries each effect out and feeds the consequences back as events (a Dial ends in
ConnectionOpened or DialFailed, a SendRequest in ResponseReceived, RequestDelivered or
RequestFailed, a SetTimer in TimerFired).
"""

from __future__ import annotations

import attrs

from kadspec.impl.config import Mode
from kadspec.impl.events import Timer
from kadspec.impl.wire import KadMessage, PeerInfo

#: the protocol a server advertises in identify (ADDR-01)
KAD_PROTOCOL = "/ipfs/kad/1.0.0"


@attrs.frozen
class Dial:
    peer: bytes
    addrs: tuple[bytes, ...]


@attrs.frozen
class SendRequest:
    """Open a kad stream to ``peer`` (dialing ``addrs`` if not connected) and send ``message``.

    With ``expects_reply`` the driver reads one reply; without it (ADD_PROVIDER) it reports
    RequestDelivered once the message was written.
    """

    request: int
    peer: bytes
    addrs: tuple[bytes, ...]
    message: KadMessage
    expects_reply: bool = True


@attrs.frozen
class SendResponse:
    stream: int
    message: KadMessage


@attrs.frozen
class ResetStream:
    """Refuse an inbound request: reset its stream. ``reason`` is for the log."""

    stream: int
    reason: str


@attrs.frozen
class CloseConnection:
    connection: int
    reason: str


@attrs.frozen
class SetTimer:
    """Arm (or re-arm) ``timer`` to fire at ``at`` ms; the driver sends TimerFired then."""

    timer: Timer
    at: int


@attrs.frozen
class CancelTimer:
    timer: Timer


@attrs.frozen
class ModeChanged:
    """Advertise ``protocols`` in identify from now on and push them to connected peers
    (ADDR-01, ADDR-02): the kad protocol exactly in server mode."""

    mode: Mode
    protocols: frozenset[str]


@attrs.frozen
class RequestDialBack:
    """Ask a peer to dial us back at a candidate address (AutoNAT), ADDR-03."""

    addr: bytes


@attrs.frozen
class ProvideOutcome:
    """How one provide attempt ended (PROV-02). ``delivered`` counts ADD_PROVIDER deliveries.

    A failed attempt names its ``reason`` and, unless ``final``, when the next one starts.
    """

    op: int
    key: bytes
    ok: bool
    delivered: int
    attempt: int
    reason: str = ""
    retry_at: int | None = None
    final: bool = False
    #: the failure's code: "not-ready", "no-address", "no-peers" or "none-delivered" (BOOT-05)
    code: str = ""


@attrs.frozen
class FindOutcome:
    """A GET_PROVIDERS lookup ended: the providers found (local records included)."""

    op: int
    key: bytes
    ok: bool
    providers: tuple[PeerInfo, ...]
    reason: str = ""
    #: the failure's code: "not-ready" or "no-peers" (BOOT-05)
    code: str = ""


@attrs.frozen
class ReportOutcome:
    outcome: ProvideOutcome | FindOutcome


@attrs.frozen
class LogEvent:
    """A structured event for the log and the adapter: a dotted name and flat fields."""

    name: str
    fields: tuple[tuple[str, str | int | bool], ...] = ()

    def get(self, field: str) -> str | int | bool | None:
        return dict(self.fields).get(field)


Effect = (
    Dial
    | SendRequest
    | SendResponse
    | ResetStream
    | CloseConnection
    | SetTimer
    | CancelTimer
    | ModeChanged
    | RequestDialBack
    | ReportOutcome
    | LogEvent
)
