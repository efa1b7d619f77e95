"""The observable projection: what a running node can show, as a type of its own.

Checks of observable requirements take only :class:`ObservedNode` (one node), a tuple of them
(cross-node progress checks) or an :class:`ObservedStep` (the nodes before and after a step plus
the messages delivered and sent in it). They never see a model ``NodeState``, so the same check
can judge a model state (through :func:`project`), the reference node in lockstep, or a live
node's snapshot and event stream.

What is observable, following a libp2p node's APIs and events: its mode and mode setting, its
listen addresses (public or private), candidate and confirmed external addresses, its connections
with direction, its routing table with the kind of address behind each entry, the protocols it
learned from identify per peer, the outcome of each provide (with the delivered count and the
failure reason), the results of its finds, its stored provider records with their expiry, and
the messages it sends and receives. The ghost (``ghost.py``) is the observer's own record of
that history and is part of the projection. Timers, lookup bookkeeping, retry backoff and the
model's ``failed`` marks are internal and are not projected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from kadspec.models.config import REPUBLISH_MARGIN, Config, ModeSetting, Reach
from kadspec.models.ghost import Ghost
from kadspec.models.metric import common_prefix_length
from kadspec.models.state import (
    Addr,
    Conn,
    Message,
    Mode,
    NodeState,
    Outcome,
    Phase,
    Proto,
    Purpose,
    Record,
    World,
)

F = TypeVar("F", bound=Callable[..., Any])


@attrs.frozen(cache_hash=True)
class ObservedPeer:
    """What a node shows about one other node."""

    connection: Conn  # NONE, OUTBOUND (we dialed) or INBOUND (it dialed us)
    protocols: Proto  # what identify told us: UNKNOWN, SERVER (kad advertised) or CLIENT
    address: Addr  # the kind of address we hold for it
    in_table: bool


@attrs.frozen(cache_hash=True)
class ObservedProvide:
    """The last outcome a node reported for its provide of one key."""

    outcome: Outcome
    count: int  # the number of peers reported with a success
    reason: int  # the failure reason's code (0 when none is given or the model has none)


@attrs.frozen(cache_hash=True)
class ObservedNode:
    """One node as an observer sees it (plus the constants it was configured with)."""

    node: int
    name: str
    names: tuple[str, ...]  # how the observer calls every node, by index
    id: int
    peer_ids: tuple[int, ...]  # every node's ID, by index
    id_bits: int
    k: int
    record_ttl: int
    republish_margin: int
    outcome_bound: int | None  # BOOT-05's stated bound for a user call, if the model states one
    bootstrap: tuple[int, ...]  # operator configuration
    up: bool
    mode: Mode
    setting: ModeSetting
    listen_public: bool  # its listen addresses are publicly dialable
    candidate: bool  # holds an observed address awaiting confirmation
    confirmed: bool  # holds a confirmed external address
    peers: tuple[ObservedPeer, ...]
    provides: tuple[ObservedProvide, ...]
    finds: tuple[ObservedProvide, ...]  # per key: the last find's outcome (count = providers)
    found: tuple[frozenset[int] | None, ...]  # per key: the providers its last find returned
    records: frozenset[Record]
    ghost: Ghost
    #: BOOT-01: the refresh period, when the model states one: a node whose table emptied dials
    #: its bootstrap peers again within it (None: not judged, as on a live node)
    redial_bound: int | None = None

    def table(self) -> tuple[int, ...]:
        return tuple(p for p, v in enumerate(self.peers) if v.in_table)

    def bucket(self, peer: int) -> int:
        return common_prefix_length(self.id, self.peer_ids[peer], self.id_bits)


@attrs.frozen(cache_hash=True)
class Event:
    """Something a node reports to its user: ``provide-succeeded`` (with the count),
    ``provide-failed`` (with the reason code), ``find-succeeded`` (with the number of providers
    found) or ``find-failed`` (with the reason code)."""

    node: int
    kind: str
    key: int
    count: int = 0
    reason: int = 0


@attrs.frozen
class ObservedStep:
    """One step as an observer sees it: every node before and after, the clock when it began,
    the message handed to its receiver (if any), the messages put on the wire and the events
    the nodes reported."""

    before: tuple[ObservedNode, ...]
    after: tuple[ObservedNode, ...]
    now: int
    delivered: Message | None
    sent: tuple[Message, ...]
    events: tuple[Event, ...] = ()

    def name(self, node: int) -> str:
        return self.before[node].name


def node_events(node: int, old: NodeState, new: NodeState) -> tuple[Event, ...]:
    """The events a model node reports in a step from ``old`` to ``new``.

    This is the model's adapter: a live node emits these events itself; for a model node they
    are read off the change of its provide and find state (which is where the model keeps what
    it told the caller).
    """
    found = []
    for key, (a, b) in enumerate(zip(old.provides, new.provides, strict=True)):
        if (
            b.outcome is Outcome.SUCCEEDED
            and b.phase is Phase.IDLE
            and (a.outcome is not Outcome.SUCCEEDED or a.phase is not Phase.IDLE)
        ):
            found.append(Event(node, "provide-succeeded", key, count=b.delivered_to))
        elif (
            b.outcome is Outcome.FAILED
            and b.phase in (Phase.QUEUED, Phase.IDLE)
            and (a.outcome is not Outcome.FAILED or a.phase in (Phase.LOOKUP, Phase.SENDING))
        ):
            found.append(Event(node, "provide-failed", key, reason=int(getattr(b, "reason", 0))))
    before: tuple[Any, ...] = getattr(old, "find_outcomes", ())
    after: tuple[Any, ...] = getattr(new, "find_outcomes", ())
    if after:
        # The node reports each find's outcome (and when): a new report is a change of it.
        for key, y in enumerate(after):
            x = before[key] if key < len(before) else None
            if y != x and y.outcome is not Outcome.NONE:
                providers = new.found[key] or frozenset()
                if y.outcome is Outcome.SUCCEEDED:
                    found.append(Event(node, "find-succeeded", key, count=len(providers)))
                else:
                    found.append(Event(node, "find-failed", key, reason=int(y.reason)))
        return tuple(found)
    for key, (x, z) in enumerate(zip(old.found, new.found, strict=True)):
        if z is not None and not _finding(new, key) and (x != z or _finding(old, key)):
            found.append(Event(node, "find-succeeded", key, count=len(z)))
    return tuple(found)


def _finding(state: NodeState, key: int) -> bool:
    return any(lk.purpose is Purpose.FIND_PROVIDERS and lk.key == key for lk in state.lookups)


def _project(config: Config, node: int, state: NodeState) -> ObservedNode:
    return ObservedNode(
        node=node,
        name=config.name(node),
        names=tuple(config.name(n) for n in range(len(config.nodes))),
        id=config.ids[node],
        peer_ids=config.ids,
        id_bits=config.id_bits,
        k=config.timing.k,
        record_ttl=config.timing.record_ttl,
        republish_margin=REPUBLISH_MARGIN,
        outcome_bound=outcome_bound(config),
        bootstrap=config.nodes[node].bootstrap,
        up=state.up,
        mode=state.mode,
        setting=state.setting,
        listen_public=config.nodes[node].reach is Reach.PUBLIC,
        candidate=state.candidate,
        confirmed=state.confirmed,
        peers=tuple(ObservedPeer(v.conn, v.proto, v.addr, v.in_table) for v in state.peers),
        provides=tuple(
            ObservedProvide(p.outcome, p.delivered_to, int(getattr(p, "reason", 0)))
            for p in state.provides
        ),
        finds=tuple(
            ObservedProvide(f.outcome, len(state.found[key] or ()), int(f.reason))
            for key, f in enumerate(getattr(state, "find_outcomes", ()))
        ),
        found=state.found,
        records=state.records,
        ghost=state.ghost,
        redial_bound=getattr(config.timing, "refresh_interval", None),
    )


def outcome_bound(config: Config) -> int | None:
    """BOOT-05's stated bound for this network (``Timing.outcome_bound(nodes)``), if any."""
    bound = getattr(config.timing, "outcome_bound", None)
    if bound is None:
        return None
    return int(bound(len(config.nodes)) if callable(bound) else bound)


#: per configuration (by id, holding it so the id cannot be recycled): projections by (node,
#: state), and the same by (the state object's id, node) for the objects met, each entry
#: holding its state object
_CACHES: dict[
    int,
    tuple[
        Config,
        dict[tuple[int, NodeState], ObservedNode],
        dict[int, tuple[NodeState, ObservedNode]],
    ],
] = {}


def project_node(config: Config, node: int, state: NodeState) -> ObservedNode:
    """The projection of one node state, memoized per (configuration, node, state).

    Equal node states are often distinct objects (each search builds its own), and comparing
    two of them walks the whole state: so each object is also remembered by identity, and an
    equal state met again as the same object is found without comparing anything."""
    entry = _CACHES.get(id(config))
    if entry is None or entry[0] is not config:
        if len(_CACHES) > 64:
            _CACHES.clear()
        entry = _CACHES[id(config)] = (config, {}, {})
    by_object = entry[2]
    known = by_object.get(id(state) << 4 | node)
    if known is not None and known[0] is state:
        return known[1]
    cache = entry[1]
    found = cache.get((node, state))
    if found is None:
        if len(cache) > 500_000:
            cache.clear()
        found = cache[(node, state)] = _project(config, node, state)
    if len(by_object) > 100_000:  # it may hold states the search has dropped: keep it small
        by_object.clear()
    by_object[id(state) << 4 | node] = (state, found)
    return found


def project(world: World, node: int) -> ObservedNode:
    """What an observer sees of ``node`` in ``world``."""
    return project_node(world.config, node, world.nodes[node])


def project_all(world: World) -> tuple[ObservedNode, ...]:
    return tuple(project_node(world.config, n, s) for n, s in enumerate(world.nodes))


def observable(function: F) -> F:
    """Mark a check as judging only the observable projection (its first argument is an
    ObservedNode, a tuple of them or an ObservedStep). The check runners project for it."""
    function.__observable__ = True  # type: ignore[attr-defined]
    return function


def is_observable(function: Callable[..., Any]) -> bool:
    return bool(getattr(function, "__observable__", False))


__all__ = [
    "Event",
    "ObservedNode",
    "ObservedPeer",
    "ObservedProvide",
    "ObservedStep",
    "is_observable",
    "node_events",
    "observable",
    "outcome_bound",
    "project",
    "project_all",
    "project_node",
]
