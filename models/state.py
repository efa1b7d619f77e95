"""The model's state: a world of nodes, the messages in flight between them, and a clock.

Everything is immutable and hashable (frozen attrs classes, tuples, frozensets) because the
explorer keeps a set of every state it has seen. The shape is fixed for a given configuration
(one PeerView per ordered pair, one ProvideState per key), which is also what lets the
symbolic layer encode a state as a fixed set of solver variables.

A node's state mixes two kinds of field. Some are what a running node can show through its
adapter (mode, candidate and confirmed addresses, connections with direction, the routing table
with address kinds, what identify said, provide and find outcomes, stored provider records);
``observe.project`` copies exactly those into an ``ObservedNode``, the only thing observable
checks see. The rest is model bookkeeping that no live node exposes: ``failed`` marks,
``boot_tried``, ``self_lookup_done``, timers (``refresh_at``, ``retry_at``, ``republish_at``,
deadlines), lookups, backoff, pending and acknowledged ADD_PROVIDERs. Checks that read those
are marked internal in ``checks.py``. ``NodeState.ghost`` belongs to the observer, not the
node (see ``ghost.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from kadspec.models.config import Config, ModeSetting
from kadspec.models.ghost import NO_HISTORY, Ghost

T = TypeVar("T")
_REPLACERS: dict[type, Callable[..., Any]] = {}


def replace(instance: T, **changes: Any) -> T:
    """``attrs.evolve`` without its per-call introspection: the explorer calls this millions
    of times, and the field names of a class never change."""
    cls = type(instance)
    replacer = _REPLACERS.get(cls)
    if replacer is None:
        replacer = _REPLACERS[cls] = _replacer(cls)
    result: T = replacer(instance, changes)
    return result


def _replacer(cls: type) -> Callable[..., Any]:
    """A function building ``cls`` from an instance and a dict of changes, its fields named
    in its code: one membership test per field (no method call), and the constructor called
    positionally."""
    names = [f.name for f in attrs.fields(cls)]
    arguments = ", ".join(f"changes[{n!r}] if {n!r} in changes else instance.{n}" for n in names)
    source = (
        "def replace(instance, changes):\n"
        "    if not changes.keys() <= fields:\n"
        "        unknown = sorted(changes.keys() - fields)\n"
        "        raise TypeError(f'{cls.__name__} has no field(s) {unknown}')\n"
        f"    return cls({arguments})\n"
    )
    namespace: dict[str, Any] = {"cls": cls, "fields": frozenset(names)}
    exec(source, namespace)  # the generated code names only cls and its fields
    function: Callable[..., Any] = namespace["replace"]
    return function


class Mode(enum.IntEnum):
    CLIENT = 0
    SERVER = 1


class Conn(enum.IntEnum):
    """The connection between a node and a peer, seen from the node."""

    NONE = 0
    OUTBOUND = 1  # this node dialed the peer
    INBOUND = 2  # the peer dialed this node (listener side)


class Proto(enum.IntEnum):
    """What identify last said about the peer's kad protocol."""

    UNKNOWN = 0
    SERVER = 1  # /ipfs/kad/1.0.0 advertised
    CLIENT = 2  # identified, kad not advertised


class Addr(enum.IntEnum):
    """The best address a node holds for a peer."""

    NONE = 0
    REMOTE = 1  # only the remote address of an inbound connection: not dialable (RT-04)
    DIALABLE = 2  # announced in identify (public), or dialed successfully


@attrs.frozen(cache_hash=True)
class PeerView:
    """What one node knows about one other node."""

    conn: Conn = Conn.NONE
    proto: Proto = Proto.UNKNOWN
    addr: Addr = Addr.NONE
    in_table: bool = False
    failed: bool = False  # the last dial or request to it failed (RT-06)


class Phase(enum.IntEnum):
    """Where a provide of one key stands."""

    IDLE = 0  # not providing, or finished (see outcome)
    QUEUED = 1  # waiting for Ready, an address, or a retry timer
    LOOKUP = 2  # GetClosestPeers running
    SENDING = 3  # ADD_PROVIDER sent, waiting for delivery


class Outcome(enum.IntEnum):
    """What the node last reported to the caller of provide (or find providers)."""

    NONE = 0
    SUCCEEDED = 1
    FAILED = 2


class Reason(enum.IntEnum):
    """Why a provide or a find failed: the explicit outcome BOOT-05 asks for."""

    NONE = 0  # no failure reported
    NOT_READY = 1  # the node is not Ready yet (empty table, or no self-lookup answered)
    NO_ADDRESS = 2  # Ready, but no address the node may announce (ADDR-07): a NAT-ed client
    NO_PEERS = 3  # the lookup found no peer to ask or none answered
    NONE_DELIVERED = 4  # no ADD_PROVIDER was delivered (PROV-02)


@attrs.frozen(cache_hash=True)
class ProvideState:
    """A node's provide of one key. ``providing`` survives restarts (the reprovider's key store)."""

    providing: bool = False
    phase: Phase = Phase.IDLE
    outcome: Outcome = Outcome.NONE
    reason: Reason = Reason.NONE  # why, when the outcome is FAILED (BOOT-05)
    delivered_to: int = 0  # the count reported with SUCCEEDED (PROV-02)
    attempts: int = 0
    backoff: int = 0
    retry_at: int | None = None
    republish_at: int | None = None
    published_at: int | None = None
    pending: tuple[tuple[int, int | None], ...] = ()  # (peer, deadline) of undelivered ADD_PROVIDER
    acked: frozenset[int] = frozenset()


class Purpose(enum.IntEnum):
    SELF = 0  # bootstrap / refresh self-lookup: FIND_NODE for our own ID
    PROVIDE = 1  # GetClosestPeers(key) before ADD_PROVIDER
    FIND_PROVIDERS = 2  # GET_PROVIDERS lookup
    REFRESH = 3  # refresh of one bucket: FIND_NODE for an ID in it (key = the bucket's cpl)


@attrs.frozen(cache_hash=True)
class Lookup:
    """An iterative lookup (FIND-03, FIND-04). ``key`` indexes Config.keys for PROVIDE and
    FIND_PROVIDERS, is the bucket (common prefix length) for REFRESH, and is unused for SELF."""

    purpose: Purpose
    key: int
    target: int
    seen: frozenset[int]
    inflight: tuple[tuple[int, int | None], ...] = ()  # (peer, deadline)
    answered: frozenset[int] = frozenset()
    failed: frozenset[int] = frozenset()
    providers: frozenset[int] = frozenset()


@attrs.frozen(cache_hash=True)
class Record:
    """A stored provider record: ``provider`` provides ``key`` (an index) until ``expires``."""

    key: int
    provider: int
    expires: int


@attrs.frozen(cache_hash=True)
class FindState:
    """What the node last reported to the caller of find providers for one key (BOOT-05).

    The providers it returned are in ``NodeState.found``; ``at`` is when it reported.
    """

    outcome: Outcome = Outcome.NONE
    reason: Reason = Reason.NONE
    at: int | None = None


NO_FIND = FindState()


@attrs.frozen(cache_hash=True)
class NodeState:
    """One node. ``records`` and ``provides[*].providing`` are on disk and survive a crash."""

    up: bool = False
    mode: Mode = Mode.CLIENT
    setting: ModeSetting = ModeSetting.AUTO
    candidate: bool = False  # an observed address awaits confirmation (ADDR-03)
    confirmed: bool = False  # a confirmed external address (ADDR-03, ADDR-04)
    dial_back_tried: bool = False  # model-only: the AutoNAT probe for the candidate has run
    peers: tuple[PeerView, ...] = ()
    boot_tried: frozenset[int] = frozenset()  # bootstrap peers dialed since the last (re)start
    self_lookup_done: bool = False
    refresh_at: int | None = None
    lookups: tuple[Lookup, ...] = ()
    provides: tuple[ProvideState, ...] = ()
    records: frozenset[Record] = frozenset()
    found: tuple[frozenset[int] | None, ...] = ()  # per key: providers the last find returned
    find_outcomes: tuple[FindState, ...] = ()  # per key: the last find's outcome (BOOT-05)
    #: the observer's record of this node's history (ghost.py): written only by ghost.observe,
    #: read only by checks; never by the node's own logic
    ghost: Ghost = NO_HISTORY

    def table(self) -> tuple[int, ...]:
        """The peers in this node's routing table."""
        return tuple(p for p, view in enumerate(self.peers) if view.in_table)


class Kind(enum.IntEnum):
    """Message kinds, in the protocol's own vocabulary."""

    IDENTIFY = 0
    IDENTIFY_PUSH = 1
    FIND_NODE = 2
    FIND_NODE_REPLY = 3
    GET_PROVIDERS = 4
    GET_PROVIDERS_REPLY = 5
    ADD_PROVIDER = 6


@attrs.frozen(cache_hash=True)
class Message:
    """A message in flight from ``src`` to ``dst``.

    identify: ``server`` (kad advertised) and ``public`` (listen addresses are dialable).
    FIND_NODE / GET_PROVIDERS: ``target``; replies add ``closer`` and ``providers``.
    ADD_PROVIDER: ``key``, ``provider`` (whom the record names) and ``public`` (carries addresses).
    """

    kind: Kind
    src: int
    dst: int
    server: bool = False
    public: bool = False
    target: int = 0
    key: int = 0
    provider: int = 0
    closer: frozenset[int] = frozenset()
    providers: frozenset[int] = frozenset()


#: the faults the environment can inject, each spending one unit of the budget
FAULT_KINDS = ("crash", "restart", "disconnect", "lose", "forge_add_provider")


@attrs.frozen(cache_hash=True)
class Budget:
    """What the environment may still do: the bound that keeps exploration finite."""

    faults: int = 0
    fault_kinds: frozenset[str] = frozenset()
    mode_changes: tuple[tuple[int, ModeSetting], ...] = ()
    provides: tuple[tuple[int, int], ...] = ()  # (node, key index) the user may still provide
    finds: tuple[tuple[int, int], ...] = ()  # (node, key index) the user may still look up
    starts: frozenset[int] = frozenset()  # nodes not yet started


@attrs.frozen(cache_hash=True)
class World:
    """The whole model state."""

    config: Config = attrs.field(eq=False, hash=False, repr=False)  # fixed for a run
    horizon: int = attrs.field(eq=False, hash=False)
    clock: int
    nodes: tuple[NodeState, ...]
    #: one FIFO channel per ordered pair (src * len(nodes) + dst): a connection delivers in order
    network: tuple[tuple[Message, ...], ...]
    budget: Budget

    @classmethod
    def initial(
        cls,
        config: Config,
        *,
        horizon: int,
        faults: int = 0,
        fault_kinds: frozenset[str] = frozenset(),
        provides: tuple[tuple[int, int], ...] = (),
        finds: tuple[tuple[int, int], ...] = (),
        mode_changes: tuple[tuple[int, ModeSetting], ...] = (),
    ) -> World:
        """Every node down and unstarted; the environment may start them in any order."""
        config.validate()
        count = len(config.nodes)
        node = NodeState(
            peers=(PeerView(),) * count,
            provides=(ProvideState(),) * len(config.keys),
            found=(None,) * len(config.keys),
            find_outcomes=(NO_FIND,) * len(config.keys),
        )
        nodes = tuple(
            replace(node, setting=c.mode, mode=initial_mode(c.mode, False)) for c in config.nodes
        )
        return cls(
            config=config,
            horizon=horizon,
            clock=0,
            nodes=nodes,
            network=((),) * (count * count),
            budget=Budget(
                faults=faults,
                fault_kinds=fault_kinds,
                provides=provides,
                finds=finds,
                mode_changes=mode_changes,
                starts=frozenset(range(count)),
            ),
        )

    def with_node(self, index: int, node: NodeState) -> World:
        nodes = list(self.nodes)
        nodes[index] = node
        return World(self.config, self.horizon, self.clock, tuple(nodes), self.network, self.budget)

    def messages(self) -> list[Message]:
        """Every message in flight, channel by channel, oldest first."""
        return [m for channel in self.network for m in channel]

    def channel(self, src: int, dst: int) -> tuple[Message, ...]:
        return self.network[src * len(self.nodes) + dst]

    def connected(self, a: int, b: int) -> bool:
        return self.nodes[a].peers[b].conn is not Conn.NONE

    def ready(self, node: int, ready_requires_self_lookup: bool = True) -> bool:
        """BOOT-05: the table holds a peer and (normally) the first self-lookup finished."""
        state = self.nodes[node]
        has_peer = any(view.in_table for view in state.peers)
        return has_peer and (state.self_lookup_done or not ready_requires_self_lookup)


def initial_mode(setting: ModeSetting, confirmed: bool) -> Mode:
    """ADDR-04: automatic mode is server exactly with a confirmed external address."""
    if setting is ModeSetting.AUTO:
        return Mode.SERVER if confirmed else Mode.CLIENT
    return Mode.SERVER if setting is ModeSetting.SERVER else Mode.CLIENT
