"""Trace validation: replay a conformance run through the model, event by event.

The model is instantiated with the run's own nodes: each node's model ID is the Kademlia key of
its real peer ID (sha256 of the peer ID bytes, 256 bits) and each key the runner used is the
sha256 of its key bytes (the key rule), so closest-peer sets, buckets and replies are the real
ones. Nothing is explored; the run is *replayed*, so wide IDs cost nothing.
:class:`ReplayConfig` lifts the explorer's bounds (8 nodes, 8-bit IDs) for replay only. The
policy is the specification's (``policy.SPEC``); the timings are the ones the run started its
nodes with.

How an entry of the run is replayed:

- requests the runner sent (start, restart, provide, find providers, set mode, dial) and the
  replies that confirm a crash or a stop are *environment steps*: the model applies the matching
  action (``start``, ``provide``, ``crash`` ...) where it appears in the log (a request the
  adapter refused changes nothing); a set mode takes effect at the node's own mode_changed
  event between the request and its reply, when it reports one (a node answers the requests
  it read before it switched);
- a crash or a stop (confirmed by its ok reply) and the shutdown's stop of every node take
  effect right after the node's last event between the request and the reply (the end of the
  run for the shutdown), or another node's last receipt of what it sent (up to the node's next
  start, so an identify read late after the reply still finds it up): the adapter halts
  the node while the request is pending, so a peer's request to it in that window meets a
  node that is down (its dial fails), and what the halted node had still to report after a
  crash or a stop is dropped (it would match its events after a restart); kad requests in
  flight to it are kept (the requester holds them: they fail, or go out again on a new dial
  once the node restarted). Nodes the shutdown halts still owe, at the end, what the model
  needed of them before the shutdown;
- every event is an *observation*. A model step yields the observations a node would report for
  it (:func:`observations`: connections opened and closed, identify received, table entries
  added and removed, mode changes, kad requests and responses sent and received with their
  peers and keys, provide and find outcomes). An event is explained when some model behaviour
  from a state that explains the events so far yields it. A step's other observations stay
  *pending* until their events arrive (a node reports them in its own order, not the model's);
  a few events restate the current state instead (a table entry that is already there, a mode
  the node is already in, a second connection between two connected nodes); the identify of
  such a second connection may also be delivered as identify is (a dropped peer comes back);
- steps the adapter cannot show (deliveries nobody reported yet, lookup requests, AutoNAT
  dial-backs, timers) are filled in by a breadth-first search of at most :data:`DEPTH_BOUND`
  hidden steps per event: first only steps the event's node or peer take part in (at most
  :data:`FOCUS_STATE_BOUND` states; every observation of a node comes from a step it takes part
  in, so this search decides), then any node's (at most :data:`STATE_BOUND` states). The states
  explaining the run so far are all kept, up to :data:`FRONTIER_BOUND`;
- where libp2p is finer than the model, the search follows libp2p, with the model's own
  functions: streams of one connection may overtake each other (the model's channel is FIFO);
  a lookup's alpha requests are one step (a node sends them at once, in any order); a request
  to a peer that is down or whose connection closed fails when its stream resets, not only at
  its deadline, and a dial to an unreachable peer fails when its answer comes back, not at once;
- causality is kept: a message is delivered in the model only after its sender reported
  sending it (when the adapter reports sends at all), so a "success" that needs a store the
  provider never sent is not explained;
- at the end of the run, a receipt the model needed (a kad request or response delivered to a
  node that kept running) that the receiver never reported, or a request for a user's key the
  model had to send that the node never reported sending, is unexplained too, and blamed on the
  event that needed it;
- a provide or find whose reply timed out after longer than the model's outcome bound
  (``Timing.outcome_bound``, BOOT-05) is unexplained: every model behaviour answers by then.

Time: the model's clock is the adapter's clock (``time_ms`` of the events, in ms; requests take
the time of the last event before them). Before an event is explained the clock moves to the
event's time. A node's timer whose deadline has passed fires when the search chooses (a real
timer fires late, never early), at its own deadline and one node at a time, and only once the
node has taken the steps of its own it has pending (bootstrap dials, lookup requests, dial-
backs), as the model's tick demands.

The first entry no model behaviour explains is reported (:class:`Unexplained`) with the model
state of the nodes involved and the requirement it would break: the observed step is forced onto
the states the search reached and the model's own invariant and step checks run on it
(``checks.check_state``, ``checks.check_step``). Events the model has no counterpart for (PING,
peers outside the run, unknown kinds) are counted apart, by kind, as not modelled; snapshots are
the judge's and are not replayed.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import attrs

from kadspec.conformance.protocol import Entry, Run, key_bytes, unbase58, wire_key
from kadspec.impl.keyspace import Sha256Keyspace
from kadspec.impl.lookup import refresh_position
from kadspec.models import ghost, lifecycle, provide
from kadspec.models import lookup as lookups
from kadspec.models.actions import (
    ACTIONS,
    Action,
    apply,
    bootstrap_of,
    dial_back_of,
    query_of,
)
from kadspec.models.actions import _refused as refused
from kadspec.models.addresses import on_connected_fail_open
from kadspec.models.checks import check_state, check_step, sent_messages
from kadspec.models.config import (
    Config,
    ConfigError,
    ModeSetting,
    NodeConfig,
    Reach,
    Timing,
)
from kadspec.models.network import can_dial, connect, identify, pop, send, set_view
from kadspec.models.observe import node_events
from kadspec.models.policy import SPEC, Policy
from kadspec.models.routing import routable, try_admit
from kadspec.models.state import (
    Conn,
    Kind,
    Message,
    Mode,
    Outcome,
    Phase,
    Purpose,
    World,
    replace,
)

#: the most hidden model steps tried before one event
DEPTH_BOUND: Final = 5
#: the most model states visited while explaining one event (the wide search: every node)
STATE_BOUND: Final = 4000
#: the most states of the first, focused search (steps involving the event's node and peer)
FOCUS_STATE_BOUND: Final = 10_000
#: the most states kept that explain the events so far (the rest are dropped, oldest last)
FRONTIER_BOUND: Final = 8
#: the CPU seconds one run's replay may take (a run of tens of nodes holds tens of thousands of
#: events); past it the verdict is inconclusive
TIME_BUDGET_S: Final = 120.0
#: replay-only bounds: every real node of a run, with 256-bit IDs
REPLAY_MAX_NODES: Final = 512
REPLAY_ID_BITS: Final = 256

KAD_PROTOCOL: Final = "/ipfs/kad/1.0.0"
_REQUEST_KINDS: Final = {
    Kind.FIND_NODE: "FIND_NODE",
    Kind.GET_PROVIDERS: "GET_PROVIDERS",
    Kind.ADD_PROVIDER: "ADD_PROVIDER",
}
_REPLY_KINDS: Final = {Kind.FIND_NODE_REPLY: "FIND_NODE", Kind.GET_PROVIDERS_REPLY: "GET_PROVIDERS"}
#: marks an expected observation the node may also never report (a client's receipt)
_UNOWED: Final = "unowed"
#: receipts the end of the run may still owe (network-side events of a running receiver)
_RECEIPTS: Final = frozenset({"kad_request_received", "kad_response_received"})
_STATE_EVENTS: Final = frozenset(
    {
        "connection_opened",
        "connection_closed",
        "routing_table_added",
        "routing_table_removed",
        "mode_changed",
        "identify_received",
    }
)


class ReplayError(ValueError):
    """The run cannot be put into the model at all (no peer IDs, too many nodes ...)."""


@attrs.frozen
class ReplayConfig(Config):
    """A model network for replay only: the live nodes' real IDs (up to 256 bits) and up to
    :data:`REPLAY_MAX_NODES` nodes. The explorer never sees one; :class:`Config`'s own
    validation (8 nodes, 8-bit IDs) is unchanged. Nodes and keys are named as in the run."""

    names: tuple[str, ...] = ()
    key_names: tuple[str, ...] = ()

    def name(self, node: int) -> str:
        return self.names[node] if node < len(self.names) else f"n{node}"

    def refresh_target(self, node: int, bucket: int) -> int:
        """The ID the reference node looks up to refresh ``bucket``: the kad position of its
        fixed refresh key (a real node cannot send the model's mirror ID, whose preimage is
        unknown). js and py draw random IDs, which no replay can predict: their bucket
        lookups stay unexplained."""
        position = refresh_position(Sha256Keyspace(self.id_bits), self.ids[node], bucket)
        return 0 if position is None else position

    def validate(self) -> ReplayConfig:
        count = len(self.nodes)
        if not 1 <= count <= REPLAY_MAX_NODES:
            raise ConfigError(f"nodes: {count} given, replay takes 1 to {REPLAY_MAX_NODES}")
        if not 1 <= self.id_bits <= REPLAY_ID_BITS:
            raise ConfigError(f"id_bits: {self.id_bits} is outside 1..{REPLAY_ID_BITS}")
        if len(set(self.ids)) != count:
            raise ConfigError("nodes: two nodes share a Kademlia key")
        limit = 1 << self.id_bits
        for index, node in enumerate(self.nodes):
            if not 0 <= node.id < limit:
                raise ConfigError(f"nodes[{index}].id does not fit in {self.id_bits} bits")
            for peer in node.bootstrap:
                if not 0 <= peer < count or peer == index:
                    raise ConfigError(f"nodes[{index}].bootstrap: {peer} is not another node")
        for key in self.keys:
            if not 0 <= key < limit:
                raise ConfigError(f"keys: {key} does not fit in {self.id_bits} bits")
        # TIME-0x order problems are not the replay's business: the run's timings are what
        # the nodes used, and Validation.notes reports them.
        return self


# --- observations -------------------------------------------------------------------------------


@attrs.frozen
class Obs:
    """One thing a node reports, in model terms (node and peer are indexes of the run's nodes).

    ``detail`` by kind: connection_opened (direction,); identify_received (kad advertised,);
    mode_changed (mode,); kad_request_* (kad type, target, provider or -1); kad_response_*
    (kad type, target, closer peers, provider peers); provide_outcome (key, outcome, count);
    find_outcome (key, providers). A target of None matches any (the adapter did not say).
    ``origin`` is the seq of the entry whose explanation produced an expectation (not compared).
    """

    kind: str
    node: int
    peer: int = -1
    detail: tuple[Any, ...] = ()
    origin: int = attrs.field(default=-1, eq=False)


def _sort_key(o: Obs) -> str:
    return repr((o.kind, o.node, o.peer, o.detail))


def _matches(expected: Obs, seen: Obs, config: Config) -> bool:
    if (expected.kind, expected.node, expected.peer) != (seen.kind, seen.node, seen.peer):
        return False
    e, s = expected.detail, seen.detail
    kind = seen.kind
    if kind.startswith("kad_request"):
        return bool(e[0] == s[0] and (s[1] is None or e[1] == s[1]) and (s[2] < 0 or e[2] == s[2]))
    if kind.startswith("kad_response"):
        if e[0] != s[0] or (s[1] is not None and e[1] != s[1]) or e[3] != s[3]:
            return False
        if e[2] == s[2]:
            return True
        # FIND-01: a reply MAY add the target itself to the k closest
        targets = frozenset(n for n, i in enumerate(config.ids) if i == e[1])
        return s[0] == "FIND_NODE" and bool(targets) and s[2] - e[2] <= targets and e[2] <= s[2]
    if kind == "provide_outcome":
        # the count is compared for a success (PROV-02); a failure's reasons are worded freely
        return e[:2] == s[:2] and (s[1] != "success" or e[2] == s[2])
    if kind == "find_outcome":
        # the node may add providers from its own store to those the lookup found
        return bool(e[0] == s[0] and e[1] <= s[1])
    return e == s


def _target_of(config: Config, m: Message) -> int:
    return config.keys[m.key] if m.kind is Kind.ADD_PROVIDER else m.target


def observations(pre: World, action: Action, post: World, origin: int) -> list[Obs]:
    """What the nodes would report for the model step ``pre --action--> post``."""
    found: list[Obs] = []
    config = post.config
    for n, (a, b) in enumerate(zip(pre.nodes, post.nodes, strict=True)):
        if a is b:
            continue
        if b.up and (not a.up or b.mode != a.mode):  # a start reports its mode too
            found.append(Obs("mode_changed", n, -1, (b.mode.name.lower(),), origin))
        for p, (va, vb) in enumerate(zip(a.peers, b.peers, strict=True)):
            if va is vb:
                continue
            if va.conn is Conn.NONE and vb.conn is not Conn.NONE:
                direction = "outbound" if vb.conn is Conn.OUTBOUND else "inbound"
                found.append(Obs("connection_opened", n, p, (direction,), origin))
            elif va.conn is not Conn.NONE and vb.conn is Conn.NONE and b.up:
                found.append(Obs("connection_closed", n, p, (), origin))
            if vb.in_table and not va.in_table:
                found.append(Obs("routing_table_added", n, p, (), origin))
            elif va.in_table and not vb.in_table and b.up:
                found.append(Obs("routing_table_removed", n, p, (), origin))
        for e in node_events(n, a, b):
            if e.kind.startswith("provide"):
                outcome = "success" if e.kind == "provide-succeeded" else "failure"
                found.append(Obs("provide_outcome", n, -1, (e.key, outcome, e.count), origin))
            else:
                providers = b.found[e.key] or frozenset()
                found.append(Obs("find_outcome", n, -1, (e.key, providers), origin))
    m = action.message
    if action.kind == "deliver" and m is not None and pre.nodes[m.dst].up:
        receiver = pre.nodes[m.dst]
        if m.kind in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
            found.append(Obs("identify_received", m.dst, m.src, (m.server,), origin))
        elif receiver.peers[m.src].conn is not Conn.NONE:
            receipt = _kad_obs("received", config, m, origin)
            if m.kind in _REQUEST_KINDS and receiver.mode is Mode.CLIENT:
                # a client resets a request's stream (ADDR-01), before reading it (a libp2p
                # host without the kad handler) or after: its receipt is never owed
                receipt = attrs.evolve(receipt, detail=(*receipt.detail, _UNOWED))
            found.append(receipt)
    sent = sent_messages(pre, action, post)
    for message in sent:
        if message.kind in _REQUEST_KINDS or message.kind in _REPLY_KINDS:
            found.append(_kad_obs("sent", config, message, origin))
    if action.kind == "query":
        found.extend(_failed_query(pre, action, sent, origin))
    return found


def _failed_query(pre: World, action: Action, sent: list[Message], origin: int) -> list[Obs]:
    """A lookup request whose dial failed: the model marks the peer failed without sending;
    a node reports the request it tried to send all the same."""
    lookup = pre.nodes[action.node].lookups[action.key]
    peer = lookups.next_candidate(pre, lookup)
    if peer is None or any(m.dst == peer for m in sent):
        return []
    kind = Kind.GET_PROVIDERS if lookup.purpose is Purpose.FIND_PROVIDERS else Kind.FIND_NODE
    message = Message(kind, action.node, peer, target=lookup.target, key=lookup.key)
    return [_kad_obs("sent", pre.config, message, origin)]


def _kad_obs(way: str, config: Config, m: Message, origin: int) -> Obs:
    """kad_request_sent/received or kad_response_sent/received for message ``m``."""
    node, peer = (m.src, m.dst) if way == "sent" else (m.dst, m.src)
    if m.kind in _REQUEST_KINDS:
        provider = m.provider if m.kind is Kind.ADD_PROVIDER else -1
        detail: tuple[Any, ...] = (_REQUEST_KINDS[m.kind], _target_of(config, m), provider)
        return Obs(f"kad_request_{way}", node, peer, detail, origin)
    detail = (_REPLY_KINDS[m.kind], m.target, m.closer, m.providers)
    return Obs(f"kad_response_{way}", node, peer, detail, origin)


# --- the replay state ---------------------------------------------------------------------------


@attrs.frozen
class ReplayState:
    """A model state that explains the run so far, and what its steps still owe the run."""

    world: World
    pending: tuple[Obs, ...] = ()

    def key(self) -> tuple[World, tuple[Obs, ...]]:
        return (self.world, self.pending)


def _with(state: ReplayState, world: World, new: Iterable[Obs]) -> ReplayState:
    pending = tuple(sorted((*state.pending, *new), key=_sort_key))
    return ReplayState(world, pending)


def _fire_node_timers(world: World, policy: Policy, node: int, deadline: int) -> World:
    """``node``'s earliest due timers fire, at their deadline (the model's ``fire_timers`` for
    one node, then ``react``); the clock then returns to the real clock. A real timer fires
    late, never early, and each node's on its own: firing every node's due timers at once
    would run one node's deadline before its real one."""
    fired = lifecycle.fire_timers(replace(world, clock=deadline), policy, nodes=(node,))
    after = replace(lifecycle.react(fired, policy), clock=world.clock)
    return ghost.observe(world, Action("tick"), after)


def _advance(world: World, now: int) -> World:
    """Time passes to ``now`` (the ghost sees it: requests past their deadline went
    unanswered); no timer fires here."""
    if now <= world.clock:
        return world
    return ghost.observe(world, Action("tick"), replace(world, clock=now))


def _reset(world: World, policy: Policy, m: Message) -> World:
    """A request to a peer that is down, or on a connection that closed, fails at once: the
    requester's stream is reset (the model's refusal), rather than waiting for its deadline
    (the model's abstraction of every failure)."""
    after, _ = pop(world, m.src, m.dst)
    after = lifecycle.react(refused(after, policy, m), policy)
    return ghost.observe(world, Action("deliver", message=m), after)


def _reset_unheard(world: World, policy: Policy, m: Message) -> World | None:
    """A client reads a lookup request's stream and resets it, and the requester has not
    heard yet: the model's refusal tells the requester in the same step, a real requester
    when the reset crosses the wire, so its own events may come in between (a reply that
    still names the client, say). The request is consumed; the requester fails it later
    (the ``broken`` step, or its deadline). None when the delivery is no such refusal."""
    receiver = world.nodes[m.dst]
    if (
        m.kind not in (Kind.FIND_NODE, Kind.GET_PROVIDERS)
        or not receiver.up
        or receiver.mode is not Mode.CLIENT
        or receiver.peers[m.src].conn is Conn.NONE
        or not policy.client_refuses_requests
    ):
        return None
    after, _ = pop(world, m.src, m.dst)
    return ghost.observe(world, Action("deliver", message=m), after)


def _broken_stream(world: World, policy: Policy, node: int, index: int, peer: int) -> World:
    """A lookup request's stream breaks before its reply (a reset, a transport error): the
    request fails now rather than at its deadline, the model's one way of failing it."""
    failed, finished = lookups.on_failure(world, policy, node, index, peer)
    after = lifecycle.react(lifecycle.finish(failed, policy, node, finished), policy)
    return ghost.observe(world, Action("broken", node=node, peer=peer), after)


def _probe_pending(pre: World, post: World, m: Message) -> World | None:
    """The identify delivery ``pre -> post`` admitted its sender into a full table: a node
    first probes the newcomer and admits it when the answer comes (a later step), the model
    at once. The state with the admission still waiting, or None."""
    if m.kind not in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
        return None
    node, peer = m.dst, m.src
    before, after = pre.nodes[node], post.nodes[node]
    if len(before.table()) < pre.config.timing.k:
        return None
    if before.peers[peer].in_table or not after.peers[peer].in_table:
        return None
    return set_view(post, node, peer, in_table=False)


def _admission_probe(world: World, seen: Obs) -> World | None:
    """A FIND_NODE for the sender's own ID to a connected kad server while the sender's table
    holds k peers: the admission probe (BOOT-06, go's lookupCheck). The model decides that
    admission in one step by looking at the candidate's table; a node asks the candidate,
    so the request is put on the wire here, and its answer goes through the model's own
    delivery (a reply no lookup waits for changes nothing at the asker)."""
    if seen.kind != "kad_request_sent" or seen.detail[0] != "FIND_NODE":
        return None
    node, peer = seen.node, seen.peer
    config = world.config
    state = world.nodes[node]
    if seen.detail[1] != config.ids[node] or len(state.table()) < config.timing.k:
        return None
    view = state.peers[peer]
    if view.conn is Conn.NONE or int(view.proto) != 1:  # Proto.SERVER
        return None
    return send(world, Message(Kind.FIND_NODE, node, peer, target=config.ids[node]))


def _dialed(world: World, policy: Policy, node: int, peer: int) -> World:
    """``node`` dials ``peer`` and the connection opens (the user's dial, or the late dial of
    a deferred request); as the model's bootstrap dial does."""
    after = on_connected_fail_open(connect(world, node, peer), policy, node, peer)
    after = lifecycle.react(after, policy)
    return ghost.observe(world, Action("dial", node=node, peer=peer), after)


def _deferred_query(world: World, policy: Policy, action: Action) -> World | None:
    """A lookup request to a peer that cannot be dialed, failing later rather than at once.

    The model fails such a dial in the query step itself; a real dial takes its time, and
    the node keeps the peer (in its table, in its replies) until the failure comes back. So
    the request is sent as if connected and fails when the ``reset`` step finds nobody at the
    other end. None when the model's own query step dials or sends normally."""
    node = action.node
    lookup = world.nodes[node].lookups[action.key]
    peer = lookups.next_candidate(world, lookup)
    if peer is None or world.connected(node, peer):
        return None
    if routable(policy, world.nodes[node].peers[peer].addr) and can_dial(world, node, peer):
        return None
    pretend = set_view(world, node, peer, conn=Conn.OUTBOUND)
    sent, finished = lookups.query(pretend, policy, node, action.key)
    sent = set_view(sent, node, peer, conn=Conn.NONE)
    after = lifecycle.react(lifecycle.finish(sent, policy, node, finished), policy)
    return ghost.observe(world, action, after)


def _requests_kept(pre: World, post: World, node: int) -> World:
    """``post`` (``node`` halted) with the kad requests in flight to ``node`` put back.

    The model's crash drops them; a libp2p requester whose stream broke with the halting
    node's connection still holds its request, and either fails it (the ``reset`` step) or
    sends it again once a new dial reaches the node after its restart (the late dial of a
    deferred request), without reporting a second send."""
    count = len(pre.nodes)
    network = list(post.network)
    for src in range(count):
        slot = src * count + node
        if src != node:
            network[slot] = tuple(m for m in pre.network[slot] if m.kind in _REQUEST_KINDS)
    return replace(post, network=tuple(network))


def _to_front(world: World, m: Message, index: int) -> World:
    """``world`` with the ``index``-th message of ``m``'s channel moved to its head.

    The model's channel per pair is FIFO; a libp2p connection is not: identify, each kad
    request and each reply travel on streams of their own, so a later stream may overtake an
    earlier one (a FIND_NODE handled before the identify that came with its connection, the
    second of two lookups' requests answered first).
    """
    count = len(world.nodes)
    slot = m.src * count + m.dst
    channel = world.network[slot]
    network = list(world.network)
    network[slot] = (m, *channel[:index], *channel[index + 1 :])
    return replace(world, network=tuple(network))


def _send_pending(pending: tuple[Obs, ...], m: Message, config: Config) -> bool:
    """The sender has not reported sending ``m`` (its kind and target, to ``m.dst``) yet."""
    kind = "kad_request_sent" if m.kind in _REQUEST_KINDS else "kad_response_sent"
    name = _REQUEST_KINDS.get(m.kind) or _REPLY_KINDS.get(m.kind)
    target = _target_of(config, m)
    return any(
        o.kind == kind
        and o.node == m.src
        and o.peer == m.dst
        and o.detail[0] == name
        and o.detail[1] == target
        for o in pending
    )


class _Replayer:
    """Replays one run; see the module docstring."""

    def __init__(self, run: Run, policy: Policy) -> None:
        self.run = run
        self.policy = policy
        self.notes: list[str] = []
        self.names = tuple(n.name for n in run.nodes)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.peer_index = self._peer_ids()
        self.key_texts = self._keys()
        self.wire_to_key = {wire_key(text): i for i, text in enumerate(self.key_texts)}
        self.config = self._config()
        self.reports_sends = any(
            e.payload.get("event") in ("kad_request_sent", "kad_response_sent")
            for e in run.events()
        )
        self.reports_table = any(
            e.payload.get("event") == "routing_table_added" for e in run.events()
        )
        self.reports_receipts = {
            str(e.payload.get("event")) for e in run.events() if e.payload.get("event") in _RECEIPTS
        }
        world = World.initial(self.config, horizon=1 << 62)
        self.frontier: list[ReplayState] = [ReplayState(world)]
        self.started: set[int] = set()
        self.now = 0
        self.states_tried = 0
        self.deepest = 0
        self.widest = 1
        self.outcomes_seen: list[tuple[int, int, int, Obs]] = []  # (seq, node, key, obs)
        self.request_at: dict[int, tuple[int, Entry]] = {}  # request id -> (adapter ms, entry)
        self.shutdown_seq: int | None = None
        self.halted_by_shutdown: set[int] = set()
        self.halts = self._halts()
        self.mode_switches = self._mode_switches()
        #: seq of a mode_changed event -> the set_mode step that takes effect at it
        self.deferred_modes: dict[int, tuple[int, ModeSetting, int]] = {}

    def _mode_switches(self) -> dict[int, int]:
        """Where each set_mode request takes effect: at the node's own mode_changed event
        between the request and its reply, when it reports one. A node reads requests already
        on its streams before it switches (the reference node answered two FIND_NODEs as a
        server between set_mode and its mode_changed); applied at the request, the model's
        client would have to answer them, which ADDR-01 forbids. Maps the request's seq to the
        event's seq; a request with no such event takes effect where it appears."""
        switches: dict[int, int] = {}
        entries = self.run.entries
        for position, entry in enumerate(entries):
            p = entry.payload
            if entry.kind != "request" or p.get("op") != "set_mode":
                continue
            node = str((p.get("args") or {}).get("node", entry.node))
            answer = self.run.reply_to(int(p.get("id", -1)))
            for later in entries[position + 1 :]:
                if answer is not None and later.seq == answer.seq:
                    break
                if (
                    later.kind == "event"
                    and later.node == node
                    and later.payload.get("event") == "mode_changed"
                ):
                    switches[entry.seq] = later.seq
                    break
        return switches

    def _halts(self) -> dict[int, list[tuple[int, bool]]]:
        """When each confirmed crash or stop, and the shutdown's stop of every node, takes
        effect: right after the node's last event between the request and its reply (the end
        of the run for a shutdown), or at the request when it reports none. The adapter halts
        the node while the request is pending, and a real halt takes its time (connections
        close, the host stops): applying it only at the reply lets the search explain a peer's
        request to the halted node with a dial that succeeds, whose connection events are
        then owed across the restart. After its last event the node does nothing seen, so it
        is down there. Maps an entry's seq to (node, from the shutdown) pairs."""
        halts: dict[int, list[tuple[int, bool]]] = {}
        entries = self.run.entries
        for position, entry in enumerate(entries):
            p = entry.payload
            op = p.get("op")
            if entry.kind != "request" or op not in ("crash", "stop", "shutdown"):
                continue
            if op == "shutdown":
                self.shutdown_seq = entry.seq
                nodes = list(range(len(self.names)))
                end = len(entries)
            else:
                node = self.index.get(str((p.get("args") or {}).get("node", entry.node)))
                answer = self.run.reply_to(int(p.get("id", -1)))
                if node is None or answer is None or not answer.payload.get("ok"):
                    continue
                nodes = [node]
                end = next(
                    (i for i in range(position, len(entries)) if entries[i].seq == answer.seq),
                    len(entries),
                )
            for node in nodes:
                last = entry.seq
                for later in entries[position + 1 : end]:
                    if later.kind == "event" and self._halt_after(later, node):
                        last = later.seq
                last = self._late_receipts(entries, end, node, last)
                halts.setdefault(last, []).append((node, op == "shutdown"))
        return halts

    def _late_receipts(self, entries: tuple[Entry, ...], end: int, node: int, last: int) -> int:
        """After the reply, until the node's next start or restart: what it sent before it
        halted may still be received (a loaded receiver reads its identify late). The halt
        waits for the last such receipt, with no event of the node itself in between."""
        for later in entries[end:]:
            p = later.payload
            named = self.index.get(str((p.get("args") or {}).get("node", later.node)))
            if later.kind == "request" and p.get("op") in ("start", "restart") and named == node:
                break
            if later.kind != "event":
                continue
            if self.index.get(later.node) == node:
                break
            if self._halt_after(later, node):
                last = later.seq
        return last

    def _halt_after(self, entry: Entry, node: int) -> bool:
        """``node`` was still up at ``entry``: an event of its own, or another node's receipt
        of what it sent (the model's crash drops the messages in flight, a real reply already
        written still arrives)."""
        if self.index.get(entry.node) == node:
            return True
        event = entry.payload.get("event")
        receipt = event in _RECEIPTS or event == "identify_received"
        return receipt and self._peer(entry.payload.get("peer")) == node

    # --- mapping the run onto the model ---------------------------------------------------

    def _peer_ids(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for i, record in enumerate(self.run.nodes):
            peer_id = record.peer_id or self._peer_id_from_replies(record.name)
            if peer_id is None:
                raise ReplayError(f"node {record.name} has no peer ID in the run")
            found[peer_id] = i
        return found

    def _peer_id_from_replies(self, name: str) -> str | None:
        starts = {
            e.payload.get("id")
            for e in self.run.entries
            if e.kind == "request" and e.payload.get("op") == "start" and e.node == name
        }
        for e in self.run.entries:
            if e.kind == "reply" and e.request in starts and e.payload.get("ok"):
                peer_id = e.payload.get("result", {}).get("peer_id")
                if isinstance(peer_id, str):
                    return peer_id
        return None

    def _keys(self) -> tuple[str, ...]:
        texts: dict[str, None] = {}
        for e in self.run.entries:
            p = e.payload
            if e.kind == "request" and p.get("op") in ("provide", "find_providers"):
                texts.setdefault(str(p.get("args", {}).get("key")), None)
            elif e.kind == "event" and p.get("event") in ("provide_outcome", "find_outcome"):
                texts.setdefault(str(p.get("key")), None)
        return tuple(texts)

    def _config(self) -> ReplayConfig:
        nodes = []
        timings: dict[str, int] = {}
        for i, record in enumerate(self.run.nodes):
            start = record.start
            setting = {
                "server": ModeSetting.SERVER,
                "client": ModeSetting.CLIENT,
            }.get(str(start.get("mode", "auto")), ModeSetting.AUTO)
            bootstrap = []
            for addr in start.get("bootstrap", ()):
                peer = self._peer_of_addr(str(addr))
                if peer is None:
                    self.notes.append(f"{record.name}: bootstrap {addr} is outside the run")
                elif peer != i:
                    bootstrap.append(peer)
            ident = _kad_key(unbase58(self._peer_id_of(i)))
            nodes.append(
                NodeConfig(ident, self._reach(record.name, setting), setting, tuple(bootstrap))
            )
            for name, value in dict(start.get("timings") or {}).items():
                if timings.setdefault(name, value) != value:
                    self.notes.append(f"timing {name} differs between nodes; the first is used")
        known = {f.name for f in attrs.fields(Timing)}
        used = {k: int(v) for k, v in timings.items() if k in known}
        timing = Timing(**used)
        for problem in timing.problems():
            self.notes.append(f"the run's timings: {problem}")
        keys = tuple(_kad_key(key_bytes(t)) for t in self.key_texts) or (0,)
        key_names = self.key_texts or ("(none)",)
        config = ReplayConfig(
            nodes=tuple(nodes),
            keys=keys,
            id_bits=REPLAY_ID_BITS,
            timing=timing,
            names=self.names,
            key_names=key_names,
        )
        try:
            return config.validate()
        except ConfigError as error:
            raise ReplayError(str(error)) from error

    def _reach(self, name: str, setting: ModeSetting) -> Reach:
        """Loopback and LAN addresses are dialable (the loopback profile), so every node is
        public, except a client throughout the run: a node that never serves announces no
        address (its provides fail for want of one, ADDR-07), which the model expresses as a
        node behind a NAT. A node that shows a confirmed external address, turns server or is
        set to another mode is public."""
        if setting is not ModeSetting.CLIENT:
            return Reach.PUBLIC
        for entry in self.run.entries:
            if entry.node != name:
                continue
            p = entry.payload
            if (
                (entry.kind == "snapshot" and p.get("external_addrs"))
                or (entry.kind == "event" and p.get("event") == "mode_changed"
                    and p.get("mode") == "server")
                or (entry.kind == "request" and p.get("op") == "set_mode")
            ):  # fmt: skip
                return Reach.PUBLIC
        return Reach.NAT

    def _peer_id_of(self, node: int) -> str:
        for peer_id, i in self.peer_index.items():
            if i == node:
                return peer_id
        raise ReplayError(f"node {self.names[node]} has no peer ID")

    def _peer_of_addr(self, addr: str) -> int | None:
        if "/p2p/" in addr:
            return self.peer_index.get(addr.rsplit("/p2p/", 1)[1])
        for e in self.run.entries:
            if e.kind == "reply" and e.payload.get("ok"):
                result = e.payload.get("result", {})
                if addr in result.get("listen_addrs", ()) and result.get("peer_id"):
                    return self.peer_index.get(result["peer_id"])
        for i, record in enumerate(self.run.nodes):
            if record.start.get("listen") == addr:
                return i
        return None

    def _peer(self, text: object) -> int | None:
        return self.peer_index.get(text) if isinstance(text, str) else None

    def _peers(self, infos: object) -> frozenset[int] | None:
        found = set()
        for info in infos if isinstance(infos, list) else ():
            peer = self._peer(info.get("peer_id") if isinstance(info, dict) else None)
            if peer is None:
                return None
            found.add(peer)
        return frozenset(found)

    def _target(self, wire: object) -> int | None:
        if not isinstance(wire, str):
            return None
        try:
            return _kad_key(unbase58(wire))
        except ValueError:
            return None

    def observation(self, entry: Entry) -> Obs | str:
        """The event as an observation, or why the model has no counterpart for it."""
        p = entry.payload
        kind = str(p.get("event"))
        node = self.index.get(entry.node)
        if node is None:
            return "node outside the run"
        seq = entry.seq
        if kind in ("mode_changed",):
            return Obs(kind, node, -1, (str(p.get("mode")),), seq)
        if kind in ("provide_outcome", "find_outcome"):
            key = self.key_texts.index(str(p.get("key")))
            if kind == "provide_outcome":
                return Obs(kind, node, -1, (key, p.get("outcome"), int(p.get("count", 0))), seq)
            providers = self._peers(p.get("providers"))
            if providers is None:
                return "a provider outside the run"
            return Obs(kind, node, -1, (key, providers), seq)
        if kind not in _STATE_EVENTS and not kind.startswith("kad_"):
            return "event kind the model does not have"
        peer = self._peer(p.get("peer"))
        if peer is None:
            return "peer outside the run"
        if kind == "connection_opened":
            return Obs(kind, node, peer, (str(p.get("direction")),), seq)
        if kind == "identify_received":
            protocols = p.get("protocols") or ()
            return Obs(kind, node, peer, (KAD_PROTOCOL in protocols,), seq)
        if kind in ("connection_closed", "routing_table_added", "routing_table_removed"):
            return Obs(kind, node, peer, (), seq)
        kad_type = str(p.get("kad_type", p.get("type")))
        if kad_type not in ("FIND_NODE", "GET_PROVIDERS", "ADD_PROVIDER"):
            return f"kad {kad_type} (the model has no such message)"
        target = self._target(p.get("key"))
        if kind.startswith("kad_request"):
            provider = -1
            if kad_type == "ADD_PROVIDER":
                providers = self._peers(p.get("providers"))
                if providers is None:
                    return "a provider outside the run"
                provider = min(providers) if len(providers) == 1 else -1
            return Obs(kind, node, peer, (kad_type, target, provider), seq)
        closer = self._peers(p.get("closer_peers"))
        providers = self._peers(p.get("provider_peers"))
        if closer is None or providers is None:
            return "a peer outside the run in a response"
        return Obs(kind, node, peer, (kad_type, target, closer, providers), seq)

    # --- the search -----------------------------------------------------------------------

    def hidden_steps(
        self, state: ReplayState, origin: int, focus: frozenset[int] | None
    ) -> Iterator[ReplayState]:
        """The unobserved steps the model may take from ``state``; with ``focus``, only those
        involving one of those nodes (what the search tries first)."""
        world = state.world

        def near(*nodes: int) -> bool:
            return focus is None or not focus.isdisjoint(nodes)

        count = len(world.nodes)
        nodes = range(count) if focus is None else sorted(focus)
        for node in nodes:
            deadline = lifecycle.node_deadline(world.nodes[node])
            if deadline is not None and deadline <= world.clock and not self._busy(world, node):
                after = _fire_node_timers(world, self.policy, node, deadline)
                yield _with(state, after, observations(world, Action("tick"), after, origin))
        for node in range(count):
            for action in bootstrap_of(world, self.policy, node):
                # (a dial of a bootstrap peer it is connected to already changes nothing seen)
                if near(node, action.peer) and not world.connected(node, action.peer):
                    after = apply(world, self.policy, action)
                    yield _with(state, after, observations(world, action, after, origin))
        for node in nodes:
            for action in dial_back_of(world, self.policy, node):
                if world.nodes[node].setting is not ModeSetting.AUTO:
                    continue  # a pinned mode: confirming an address changes nothing seen
                after = apply(world, self.policy, action)
                yield _with(state, after, observations(world, action, after, origin))
            for action in query_of(world, self.policy, node):
                yield from self._queries(state, action, origin)
                late = self._started_late(state, action)
                if late is not None:
                    yield from self._queries(late, action, origin)
            yield from self._probes_answered(state, node, origin)
            if focus is not None:
                continue  # broken streams only in the wide search: they multiply the states
            for index, lookup in enumerate(world.nodes[node].lookups):
                for peer, _ in lookup.inflight:
                    after = _broken_stream(world, self.policy, node, index, peer)
                    step = Action("broken", node=node, peer=peer)
                    yield _with(state, after, observations(world, step, after, origin))
        if focus is None:
            slots: Iterable[int] = range(count * count)
        else:
            outgoing = {n * count + d for n in focus for d in range(count)}
            slots = sorted(outgoing | {d * count + n for n in focus for d in range(count)})
        network = world.network
        for channel in (network[slot] for slot in slots):
            if not channel:
                continue
            head = channel[0]
            if not self._unsent(state, head):
                action = Action("deliver", message=head)
                after = apply(world, self.policy, action)
                yield _with(state, after, observations(world, action, after, origin))
                waiting = _probe_pending(world, after, head)
                if waiting is not None:
                    yield _with(state, waiting, observations(world, action, waiting, origin))
                unheard = _reset_unheard(world, self.policy, head)
                if unheard is not None:
                    yield _with(state, unheard, observations(world, action, unheard, origin))
            for index in range(1, len(channel)):
                m = channel[index]
                if m in channel[:index] or self._unsent(state, m):
                    continue  # (an equal message ahead of it is the same step)
                action = Action("deliver", message=m)
                reordered = _to_front(world, m, index)
                after = apply(reordered, self.policy, action)
                yield _with(state, after, observations(reordered, action, after, origin))
            m = channel[0]
            receiver = world.nodes[m.dst]
            if (
                m.kind in _REQUEST_KINDS
                and (not receiver.up or receiver.peers[m.src].conn is Conn.NONE)
                and not self._unsent(state, m)
            ):
                after = _reset(world, self.policy, m)
                yield _with(state, after, observations(world, Action("reset"), after, origin))
                if not world.connected(m.src, m.dst) and can_dial(world, m.src, m.dst):
                    # the dial of a deferred request reaches a peer that (re)started meanwhile
                    dial = Action("dial", node=m.src, peer=m.dst)
                    after = _dialed(world, self.policy, m.src, m.dst)
                    yield _with(state, after, observations(world, dial, after, origin))

    def _queries(self, state: ReplayState, first: Action, origin: int) -> Iterator[ReplayState]:
        """One lookup's next requests, one to alpha of them as one step each: a real node
        sends its alpha requests at once and reports them in any order, the model one by one
        closest first, so reaching the farthest of them would cost alpha search levels."""
        world, node, index = state.world, first.node, first.key
        lookup = world.nodes[node].lookups[index]
        own = apply(world, self.policy, first)
        deferred = _deferred_query(world, self.policy, first)
        if deferred is not None:  # the model's own step too: the dial fails at once
            yield _with(state, own, observations(world, first, own, origin))
        found: list[Obs] = []
        for _ in range(self.config.timing.alpha):
            after = _deferred_query(world, self.policy, first)
            if after is None:
                after = apply(world, self.policy, first)
            found += observations(world, first, after, origin)
            yield _with(state, after, found)
            world = after
            lookups_now = world.nodes[node].lookups
            if (
                index >= len(lookups_now)
                or (lookups_now[index].purpose, lookups_now[index].key)
                != (lookup.purpose, lookup.key)
                or not lookups.can_query(world, self.policy, node, index)
            ):
                break

    def _busy(self, world: World, node: int) -> bool:
        """The node still has a step of its own to take (a bootstrap dial, a lookup
        request): the model takes those before any of its timers fires (a node's own steps
        take no time next to the protocol's timers, see the model's tick). A bootstrap peer it
        is connected to already (through another dial) does not count, nor does an AutoNAT
        dial-back: another peer carries that one out, over the network."""
        return any(
            not world.connected(node, a.peer) for a in bootstrap_of(world, self.policy, node)
        ) or any(True for _ in query_of(world, self.policy, node))

    def _started_late(self, state: ReplayState, query: Action) -> ReplayState | None:
        """The state with the lookup of ``query`` started later than the model's earliest
        moment, seeded from the table as it is now; None when that changes nothing.

        The model starts its self-lookup the moment the table has a peer
        (``lifecycle.react``); js-libp2p runs it on a timer, a second after start, seeded with
        every peer admitted meanwhile. A lookup shows nothing until its first request, so
        until then one started now looks like the model's with the seeds of now. (Offered
        beside the first request, at the same search depth: as a step of its own it would be
        one level deeper, and the search keeps only the shallowest explanations.)"""
        world, node = state.world, query.node
        s = world.nodes[node]
        lookup = s.lookups[query.key]
        if lookup.inflight or lookup.answered or lookup.failed:
            return None
        seeds = lookups.seeds(s)
        if not seeds or seeds == lookup.seen:
            return None
        reseeded = lookups.with_lookup(world, node, query.key, replace(lookup, seen=seeds))
        return ReplayState(reseeded, state.pending)

    def _probes_answered(self, state: ReplayState, node: int, origin: int) -> Iterator[ReplayState]:
        """A full table's admission probe was answered: the model's admission, with its own
        look at the candidate's table, runs now (see :func:`_probe_pending`)."""
        world = state.world
        if len(world.nodes[node].table()) < world.config.timing.k:
            return
        for peer, view in enumerate(world.nodes[node].peers):
            if view.in_table or view.conn is Conn.NONE or int(view.proto) != 1:
                continue
            admitted = try_admit(world, self.policy, node, peer)
            if admitted is not world:
                after = ghost.observe(world, Action("probed", node=node, peer=peer), admitted)
                step = Action("probed", node=node, peer=peer)
                yield _with(state, after, observations(world, step, after, origin))

    def _unsent(self, state: ReplayState, m: Message) -> bool:
        return (
            self.reports_sends
            and m.kind not in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH)
            and _send_pending(state.pending, m, self.config)
        )

    def consume(self, state: ReplayState, seen: Obs) -> list[ReplayState]:
        """The states in which ``seen`` is explained without a further step."""
        found: dict[Any, ReplayState] = {}
        for index, expected in enumerate(state.pending):
            if _matches(expected, seen, self.config):
                rest = state.pending[:index] + state.pending[index + 1 :]
                after = ReplayState(state.world, rest)
                found.setdefault(after.key(), after)
        if not found and self._holds(state.world, seen):
            found[state.key()] = state
            again = self._identify_again(state, seen)
            if again is not None:
                found.setdefault(again.key(), again)
        if not found:
            probe = _admission_probe(state.world, seen)
            if probe is not None:
                after = ReplayState(probe, state.pending)
                found[after.key()] = after
        return list(found.values())

    def _identify_again(self, state: ReplayState, seen: Obs) -> ReplayState | None:
        """An identify on a second connection between two connected nodes (both dialed at
        once) is a delivery of its own: the model keeps one connection per pair and sends
        identify once, but the receiver weighs the new identify as it weighs any (a peer it
        dropped after a missed deadline comes back, as the model's admission allows). The
        state with that identify delivered, or None when it changes nothing."""
        if seen.kind != "identify_received":
            return None
        world = state.world
        m = identify(world, seen.peer, seen.node, push=False)
        waiting = len(world.network[seen.peer * len(world.nodes) + seen.node])
        front = _to_front(send(world, m), m, waiting)
        action = Action("deliver", message=m)
        after = apply(front, self.policy, action)
        if after.nodes[seen.node] == world.nodes[seen.node]:
            return None
        new = observations(front, action, after, seen.origin)
        rest = [o for o in new if o != seen]
        if len(rest) == len(new):
            return None
        return _with(state, after, rest)

    def _holds(self, world: World, seen: Obs) -> bool:
        """Events that restate the current model state are explained by it."""
        if seen.kind not in _STATE_EVENTS:
            return False
        s = world.nodes[seen.node]
        if seen.kind == "mode_changed":
            return s.up and s.mode.name.lower() == seen.detail[0]
        view = s.peers[seen.peer]
        if seen.kind.startswith("connection_") and not world.nodes[seen.peer].up:
            # A connection to a node that is down opens at the transport and dies (an adapter
            # whose "crash" leaves the listening socket open a moment): the model has no
            # process there to connect to, and nothing changes.
            return True
        if seen.kind == "connection_opened":
            # The model keeps one connection per pair; a second one (both dialed at once), or
            # the one the model opened from the other side, restates that they are connected.
            return view.conn is not Conn.NONE
        if seen.kind == "connection_closed":
            return view.conn is Conn.NONE
        if seen.kind == "routing_table_added":
            return view.in_table
        if seen.kind == "routing_table_removed":
            return not view.in_table
        # identify again on a live connection, saying what the node already knows
        wanted_proto = 1 if seen.detail[0] else 2
        return view.conn is not Conn.NONE and int(view.proto) == wanted_proto

    def explain(self, seen: Obs, now: int) -> tuple[list[ReplayState], list[ReplayState], str]:
        """(states explaining ``seen``, every state visited, how the search ended).

        Breadth-first over hidden steps, first only the steps involving the event's node or
        peer: every observation of a node comes from a step it takes part in, so that search
        alone decides the event when it ends within its bounds ("exhausted"). A wider search
        over every node's steps follows, as a second chance ("capped" when that one stopped
        at its bound too and the first did as well: inconclusive).
        """
        start = [replace(s, world=_advance(s.world, now)) for s in self.frontier]
        focus = frozenset({seen.node, seen.peer} - {-1})
        found, order, focus_capped = self._search(start, seen, focus, FOCUS_STATE_BOUND)
        if found:
            return found, order, "explained"
        found, wider, wide_capped = self._search(start, seen, None, STATE_BOUND)
        if found:
            return found, order + wider, "explained"
        if not focus_capped:
            return [], order + wider, "exhausted" if not wide_capped else "exhausted-focus"
        return [], order + wider, "capped" if wide_capped else "exhausted"

    def _search(
        self, start: list[ReplayState], seen: Obs, focus: frozenset[int] | None, bound: int
    ) -> tuple[list[ReplayState], list[ReplayState], bool]:
        layer = start
        visited: dict[Any, ReplayState] = {s.key(): s for s in layer}
        order = list(layer)
        found: dict[Any, ReplayState] = {}
        for state in layer:
            for after in self.consume(state, seen):
                found.setdefault(after.key(), after)
        for depth in range(1, DEPTH_BOUND + 1):
            if found:
                break
            following: list[ReplayState] = []
            capped = False
            for state in layer:
                for after in self.hidden_steps(state, seen.origin, focus):
                    self.states_tried += 1
                    if after.key() in visited:
                        continue
                    if len(visited) >= bound:
                        capped = True
                        break
                    visited[after.key()] = after
                    following.append(after)
                    order.append(after)
                    # the goal is tested as states are made, so a bound that cuts a level
                    # short keeps the explanations found in it
                    for explained in self.consume(after, seen):
                        found.setdefault(explained.key(), explained)
                if capped:
                    break
            if found:
                self.deepest = max(self.deepest, depth)
                break
            if capped:
                return [], order, True
            layer = following
            if not layer:
                break
        return list(found.values())[:FRONTIER_BOUND], order, False

    def environment(self, step: str, node: int, **fields: Any) -> None:
        """Apply an environment step the run shows (a request, a confirmed crash) to every
        state of the frontier."""
        following: dict[Any, ReplayState] = {}
        for state in self.frontier:
            world = _advance(state.world, self.now)
            after = self._environment_world(world, step, node, fields)
            if after is None:
                continue
            if after is world:
                new = replace(state, world=world)
            else:
                action = Action(step if step in ACTIONS else "dial", node=node)
                new = _with(state, after, observations(world, action, after, fields["origin"]))
            if step == "crash" and "forget" in fields and after is not world:
                new = ReplayState(_requests_kept(world, new.world, node), new.pending)
            if step == "crash" and fields.get("forget"):
                # what the halted node had still to report it never will: it reported its
                # last event already (kept, these would match its events after a restart)
                new = ReplayState(new.world, tuple(o for o in new.pending if o.node != node))
            following.setdefault(new.key(), new)
        if following:
            self.frontier = list(following.values())[:FRONTIER_BOUND]

    def _environment_world(
        self, world: World, step: str, node: int, fields: Mapping[str, Any]
    ) -> World | None:
        s = world.nodes[node]
        if step in ("start", "restart"):
            if s.up:
                return world
            return apply(world, self.policy, Action(step, node=node))
        if step == "crash":
            return apply(world, self.policy, Action("crash", node=node)) if s.up else world
        if not s.up:
            return world
        if step in ("provide", "find_providers"):
            return apply(world, self.policy, Action(step, node=node, key=fields["key"]))
        if step == "set_mode":
            return apply(world, self.policy, Action(step, node=node, setting=fields["setting"]))
        if step == "disconnect":
            if not world.connected(node, fields["peer"]):
                return world
            action = Action("disconnect", node=node, peer=fields["peer"])
            return apply(world, self.policy, action)
        if step == "dial":
            peer = fields["peer"]
            if world.connected(node, peer) or not can_dial(world, node, peer):
                return world
            return _dialed(world, self.policy, node, peer)
        return world

    # --- explaining an unexplained event -------------------------------------------------

    def blame(self, seen: Obs, visited: list[ReplayState]) -> tuple[tuple[str, ...], str]:
        """The requirements the observed step breaks in the first visited state where the
        model's checks fail on it, with what they say."""
        for state in visited[:400]:
            candidate = _candidate(state.world, seen, self.policy)
            if candidate is None:
                continue
            pre, post = candidate
            before = {(v.requirement, v.detail) for v in check_state(pre, self.policy)}
            found = [
                v for v in check_state(post, self.policy) if (v.requirement, v.detail) not in before
            ]
            found += check_step(pre, Action("observed"), post, self.policy)
            if found:
                rids = tuple(dict.fromkeys(v.requirement for v in found))
                return rids, "; ".join(dict.fromkeys(v.detail for v in found))
        return (), ""

    def describe(self, o: Obs) -> str:
        name = self.config.name
        d = o.detail
        text = f"{name(o.node)} {o.kind}"
        if o.peer >= 0:
            text += f" {'from' if o.kind.endswith('received') else 'peer'} {name(o.peer)}"
        if o.kind.startswith("kad_"):
            text += f" {d[0]}({self._target_name(d[1])})"
            if o.kind.startswith("kad_response"):
                text += f" closer=[{_names(d[2], name)}] providers=[{_names(d[3], name)}]"
            elif d[2] >= 0:
                text += f" provider={name(d[2])}"
        elif o.kind == "provide_outcome":
            text += f" {self.key_texts[d[0]]!r} {d[1]} count={d[2]}"
        elif o.kind == "find_outcome":
            text += f" {self.key_texts[d[0]]!r} providers=[{_names(d[1], name)}]"
        elif d:
            text += f" {d[0]}"
        return text

    def _target_name(self, target: int | None) -> str:
        if target is None:
            return "?"
        for i, ident in enumerate(self.config.ids):
            if ident == target:
                return self.config.name(i)
        for i, key in enumerate(self.config.keys):
            if key == target and i < len(self.key_texts):
                return repr(self.key_texts[i])
        return f"{target:064x}"[:12] + "…"

    def state_text(self, world: World, nodes: Iterable[int]) -> str:
        lines = [f"model clock {world.clock} ms"]
        name = self.config.name
        for n in dict.fromkeys(nodes):
            if n < 0:
                continue
            s = world.nodes[n]
            conns = ", ".join(
                f"{name(p)}:{v.conn.name.lower()}" for p, v in enumerate(s.peers) if v.conn
            )
            records = ", ".join(
                f"{self.key_texts[r.key] if r.key < len(self.key_texts) else r.key!r}"
                f" by {name(r.provider)} until {r.expires}"
                for r in sorted(s.records, key=lambda r: (r.key, r.provider))
            )
            provides = ", ".join(
                f"{self.key_texts[k]!r}: {p.phase.name.lower()}/{p.outcome.name.lower()}"
                for k, p in enumerate(s.provides)
                if p.providing and k < len(self.key_texts)
            )
            lines.append(
                f"{name(n)}: {'up' if s.up else 'down'}, {s.mode.name.lower()}, "
                f"ready={world.ready(n)}, table=[{_names(s.table(), name)}], "
                f"connections=[{conns}], records=[{records}], provides=[{provides}], "
                f"lookups={len(s.lookups)}"
            )
        return "\n".join(lines)


def _names(peers: Iterable[int], name: Any) -> str:
    return ",".join(name(p) for p in sorted(peers))


def _kad_key(data: bytes) -> int:
    """The Kademlia key of a peer ID or content key: sha256 of its bytes, 256 bits."""
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def _candidate(world: World, seen: Obs, policy: Policy) -> tuple[World, World] | None:
    """The observed step forced onto ``world``: (pre, post) for the model's checks, or None
    when the observation is not a step the checks can judge."""
    n, p, d = seen.node, seen.peer, seen.detail
    if not world.nodes[n].up:
        return None
    if seen.kind == "routing_table_added":
        return world, set_view(world, n, p, in_table=True)
    if seen.kind == "kad_response_sent" and d[1] is not None:
        kind = Kind.FIND_NODE_REPLY if d[0] == "FIND_NODE" else Kind.GET_PROVIDERS_REPLY
        key = world.config.keys.index(d[1]) if d[1] in world.config.keys else 0
        reply = Message(kind, n, p, target=d[1], key=key, closer=d[2], providers=d[3])
        return world, send(world, reply)
    if seen.kind == "provide_outcome" and d[1] == "success":
        after = provide.put(
            world, n, d[0], phase=Phase.IDLE, outcome=Outcome.SUCCEEDED, delivered_to=d[2]
        )
        return world, ghost.observe(world, Action("observed", node=n), after)
    if seen.kind == "mode_changed":
        mode = Mode.SERVER if d[0] == "server" else Mode.CLIENT
        s = world.nodes[n]
        return world, world.with_node(n, replace(s, mode=mode))
    return None


# --- the result ---------------------------------------------------------------------------------


@attrs.frozen
class Unexplained:
    """The first entry of a run that no model behaviour explains."""

    seq: int
    node: str
    event: str  # the entry in model terms, e.g. "b kad_response_sent peer a FIND_NODE(...)"
    time_ms: int
    why: str  # what was searched, or which bound stopped the search
    state: str  # the model state of the nodes involved, readable
    pending: tuple[str, ...]  # what the model expected of these nodes and had not seen yet
    requirements: tuple[str, ...]  # the requirements the model's checks say it breaks
    violations: str  # what the checks say

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Validation:
    """How much of a run the model explains, and the first entry it does not."""

    scenario: str
    implementation: str
    verdict: str  # "accepted", "rejected", "inconclusive" (a search bound) or "not validated"
    explained: int  # events explained
    modelled: int  # events the model has a counterpart for
    total: int  # events in the run
    requests: int  # requests and replies replayed as environment steps
    unmodelled: Mapping[str, int]  # why -> how many events were not modelled
    first_unexplained: Unexplained | None
    depth_bound: int = DEPTH_BOUND
    state_bound: int = STATE_BOUND
    states_tried: int = 0
    deepest: int = 0  # the most hidden steps one event needed
    widest: int = 0  # the most states kept at once
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.verdict == "accepted"

    def summary(self) -> str:
        """One line for the runner's report."""
        head = (
            f"trace validation {self.verdict}: {self.explained}/{self.modelled} modelled events "
            f"explained ({self.total} events; {self.total - self.modelled} not modelled)"
        )
        u = self.first_unexplained
        if u is not None:
            rids = ", ".join(u.requirements) or "no single requirement"
            head += f"; first unexplained #{u.seq} [{u.node}] {u.event} (breaks {rids})"
        elif self.verdict == "inconclusive" and self.notes:
            head += f"; {self.notes[-1]}"
        return head

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["accepted"] = self.accepted
        data["summary"] = self.summary()
        return data


def validate(
    run: Run, policy: Policy = SPEC, *, budget_s: float | None = TIME_BUDGET_S
) -> Validation:
    """Replay ``run`` through the model (``policy``, the specification by default).

    ``budget_s`` bounds the CPU time: past it the replay stops and the verdict is
    "inconclusive", with the events explained so far (None: no bound)."""
    started = time.perf_counter()
    total = sum(1 for _ in run.events())
    try:
        replayer = _Replayer(run, policy)
    except (ReplayError, ConfigError, KeyError, ValueError) as error:
        return Validation(
            run.scenario, run.hello.implementation, "not validated", 0, 0, total, 0, {}, None,
            notes=(f"the run cannot be put into the model: {error}",),
        )  # fmt: skip
    return _replay(replayer, run, total, started, budget_s)


def _replay(
    r: _Replayer, run: Run, total: int, started: float, budget_s: float | None = None
) -> Validation:
    unmodelled: Counter[str] = Counter()
    for e in run.entries:
        seen = r.observation(e) if e.kind == "event" else None
        if isinstance(seen, str):
            unmodelled[f"{e.payload.get('event')}: {seen}"] += 1
        elif e.kind == "snapshot":
            unmodelled["snapshot (judged by the oracle, not replayed)"] += 1
    explained = requests = 0
    modelled = total - sum(v for k, v in unmodelled.items() if not k.startswith("snapshot"))
    first: Unexplained | None = None
    verdict = "accepted"
    cpu_start = time.process_time()
    for entry in run.entries:
        if budget_s is not None and time.process_time() - cpu_start > budget_s:
            verdict = "inconclusive"
            r.notes.append(
                f"time budget of {budget_s:g} s CPU reached at entry #{entry.seq}: the events "
                "after it were not replayed"
            )
            break
        if entry.kind == "event":
            seen = r.observation(entry)
            r.now = max(r.now, int(entry.payload.get("time_ms", r.now)))
            if isinstance(seen, str):
                continue
            if seen.kind == "connection_closed":
                r.environment("disconnect", seen.node, peer=seen.peer, origin=entry.seq)
            if entry.seq in r.deferred_modes:
                node, setting, origin = r.deferred_modes.pop(entry.seq)
                r.environment("set_mode", node, setting=setting, origin=origin)
            if seen.kind == "provide_outcome":
                r.outcomes_seen.append((entry.seq, seen.node, seen.detail[0], seen))
            states, visited, ended = r.explain(seen, r.now)
            if not states:
                verdict = "inconclusive" if ended == "capped" else "rejected"
                first = _unexplained(r, entry, seen, visited, ended)
                break
            r.frontier = states
            r.widest = max(r.widest, len(states))
            explained += 1
        elif entry.kind in ("request", "reply"):
            requests += 1
            problem = _environment_entry(r, entry)
            if problem is not None:
                verdict = "rejected"
                first = problem
                break
        for node, shutdown in r.halts.get(entry.seq, ()):
            r.environment("crash", node, origin=entry.seq, forget=not shutdown)
            if shutdown:
                r.halted_by_shutdown.add(node)
    if first is None and verdict == "accepted":
        first = _owed_events(r)
        if first is not None:
            verdict = "rejected"
    if first is not None:
        # events after the first unexplained one count as not validated (a blamed receipt
        # points back to an earlier event)
        explained = sum(
            1 for e in run.events() if e.seq < first.seq and isinstance(r.observation(e), Obs)
        )
    return Validation(
        scenario=run.scenario,
        implementation=run.hello.implementation,
        verdict=verdict,
        explained=explained,
        modelled=modelled,
        total=total,
        requests=requests,
        unmodelled=dict(unmodelled),
        first_unexplained=first,
        states_tried=r.states_tried,
        deepest=r.deepest,
        widest=r.widest,
        seconds=round(time.perf_counter() - started, 3),
        notes=tuple(r.notes),
    )


def _unexplained(
    r: _Replayer, entry: Entry, seen: Obs, visited: list[ReplayState], ended: str
) -> Unexplained:
    if ended == "capped":
        why = (
            f"the search stopped at its bounds ({FOCUS_STATE_BOUND} states of steps involving "
            f"{entry.node}, {STATE_BOUND} of any node's) before finding an explanation "
            "(inconclusive)"
        )
    else:
        why = (
            f"no model behaviour of up to {DEPTH_BOUND} hidden steps involving the nodes of "
            f"the event, from any of {len(r.frontier)} states, explains it ({len(visited)} "
            "states tried)"
        )
        if ended == "exhausted-focus":
            why += f"; a search over every node's steps stopped at {STATE_BOUND} states"
    rids, detail = r.blame(seen, visited)
    world = visited[0].world if visited else r.frontier[0].world
    involved = (seen.node, seen.peer)
    pending = tuple(r.describe(o) for o in r.frontier[0].pending if o.node in involved)[:12]
    return Unexplained(
        seq=entry.seq,
        node=entry.node,
        event=r.describe(seen),
        time_ms=r.now,
        why=why,
        state=r.state_text(world, involved),
        pending=pending,
        requirements=rids,
        violations=detail,
    )


def _environment_entry(r: _Replayer, entry: Entry) -> Unexplained | None:
    """Replay a request (or a reply that confirms a crash or a stop); check a provide's reply
    against the outcomes the node reported."""
    p = entry.payload
    if entry.kind == "request":
        op = str(p.get("op"))
        args = p.get("args", {}) or {}
        r.request_at[int(p.get("id", -1))] = (r.now, entry)
        node = r.index.get(str(args.get("node", entry.node)))
        if node is None:
            return None
        origin = entry.seq
        answer = r.run.reply_to(int(p.get("id", -1)))
        refused = ("bad-request", "unsupported", "unknown-node")
        if answer is not None and (answer.payload.get("error") or {}).get("kind") in refused:
            return None  # refused before the node saw it: nothing happened
        if op == "start":
            r.environment("restart" if node in r.started else "start", node, origin=origin)
            r.started.add(node)
        elif op == "restart":
            r.environment("crash", node, origin=origin)
            r.environment("restart", node, origin=origin)
        elif op in ("provide", "find_providers"):
            key = r.key_texts.index(str(args.get("key")))
            r.environment(op, node, key=key, origin=origin)
        elif op == "set_mode":
            setting = {"server": ModeSetting.SERVER, "client": ModeSetting.CLIENT}.get(
                str(args.get("mode")), ModeSetting.AUTO
            )
            switch = r.mode_switches.get(entry.seq)
            if switch is not None:
                r.deferred_modes[switch] = (node, setting, origin)
            else:
                r.environment("set_mode", node, setting=setting, origin=origin)
        elif op == "dial":
            peer = r._peer_of_addr(str(args.get("addr")))
            if peer is not None:
                r.environment("dial", node, peer=peer, origin=origin)
        return None
    request = r.request_at.get(int(entry.request if entry.request is not None else -1))
    if request is None:
        return None
    _, asked = request
    op = str(asked.payload.get("op"))
    args = asked.payload.get("args", {}) or {}
    node = r.index.get(str(args.get("node", asked.node)))
    if node is None:
        return None
    if op in ("crash", "stop"):
        return None  # the halt takes effect where the node's events end (_Replayer._halts)
    if op in ("provide", "find_providers") and not p.get("ok"):
        return _timed_out(r, entry, asked, node, op)
    if op == "provide" and p.get("ok"):
        result = p.get("result", {}) or {}
        key = r.key_texts.index(str(args.get("key")))
        detail = (key, result.get("outcome"), int(result.get("count", 0)))
        reply = Obs("provide_outcome", node, -1, detail, entry.seq)
        told = [o for seq, n, k, o in r.outcomes_seen if seq > asked.seq and (n, k) == (node, key)]
        if any(_matches(o, reply, r.config) for o in told):
            return None
        if told:
            return Unexplained(
                entry.seq, entry.node, f"{r.describe(reply)} (the provide's reply)", r.now,
                "the reply's outcome is none of the outcomes the node reported for this call",
                r.state_text(r.frontier[0].world, (node,)), tuple(r.describe(o) for o in told),
                ("BOOT-05",), "a provide's caller is told an outcome the node never reported",
            )  # fmt: skip
    return None


def _timed_out(r: _Replayer, entry: Entry, asked: Entry, node: int, op: str) -> Unexplained | None:
    """A provide or find that got no outcome: past the model's bound, BOOT-05 is broken."""
    error = (entry.payload.get("error") or {}).get("kind")
    waited = entry.time_ms - asked.time_ms
    bound = r.config.timing.outcome_bound(len(r.config.nodes))
    if error != "timeout" or waited <= bound:
        return None
    if not all(s.world.nodes[node].up for s in r.frontier):
        return None
    return Unexplained(
        entry.seq, entry.node, f"{op} by {entry.node} got no outcome in {waited} ms", r.now,
        f"every model behaviour reports an outcome within {bound} ms "
        "(Timing.outcome_bound: one refresh interval plus a request deadline per node)",
        r.state_text(r.frontier[0].world, (node,)), (), ("BOOT-05",),
        f"{entry.node} left a {op} call unanswered for {waited} ms (bound {bound} ms)",
    )  # fmt: skip


def _owed_events(r: _Replayer) -> Unexplained | None:
    """At the end: receipts the explanation needed and a running receiver never reported,
    requests for a user's key (a provide's or a find's lookup, ADD_PROVIDER) the model sent
    and a running node never reported sending, and table entries the model made (and still
    holds) that the node never reported adding."""
    best: tuple[int, Obs] | None = None
    keys = frozenset(r.config.keys)
    for state in r.frontier:
        owed = [
            o
            for o in state.pending
            if (
                state.world.nodes[o.node].up
                or (o.node in r.halted_by_shutdown and o.origin < (r.shutdown_seq or -1))
            )
            and o.detail[-1:] != (_UNOWED,)
            and (
                o.kind in r.reports_receipts
                or (o.kind == "kad_request_sent" and r.reports_sends and o.detail[1] in keys)
                or (o.kind == "routing_table_added" and r.reports_table and _still_added(state, o))
            )
        ]
        if not owed:
            return None
        first = min(owed, key=lambda o: o.origin)
        if best is None or first.origin > best[0]:
            best = (first.origin, first)
    if best is None:
        return None
    origin, owed_obs = best
    entry = next((e for e in r.run.entries if e.seq == origin), None)
    event = r.observation(entry) if entry is not None else None
    return Unexplained(
        seq=origin,
        node=entry.node if entry is not None else "",
        event=r.describe(event) if isinstance(event, Obs) else f"entry #{origin}",
        time_ms=r.now,
        why=(
            "the model explains it only with a step whose event the node never reported by the "
            f"end of the run: {r.describe(owed_obs)}"
        ),
        state=r.state_text(r.frontier[0].world, (owed_obs.node, owed_obs.peer)),
        pending=(r.describe(owed_obs),),
        requirements=_owed_requirements(owed_obs),
        violations=f"expected and never seen: {r.describe(owed_obs)}",
    )


def _still_added(state: ReplayState, added: Obs) -> bool:
    """The model still holds the table entry ``added`` reports. A node the shutdown halted
    has an empty table in the model; its entry counts as held unless the model removed it
    again (its removal is pending too)."""
    node = state.world.nodes[added.node]
    if node.up:
        return node.peers[added.peer].in_table
    return not any(
        o.kind == "routing_table_removed" and (o.node, o.peer) == (added.node, added.peer)
        for o in state.pending
    )


def _owed_requirements(owed: Obs) -> tuple[str, ...]:
    if owed.kind == "kad_request_received" and owed.detail[0] == "ADD_PROVIDER":
        return ("PROV-02",)  # a success counted a store nobody received
    if owed.kind == "kad_request_sent":
        return ("BOOT-05",)  # a call the node should have been working on went silent
    if owed.kind == "routing_table_added":
        return ("ADDR-06",)  # a peer identify vouched for never entered the table
    return ()


__all__ = [
    "DEPTH_BOUND",
    "FRONTIER_BOUND",
    "STATE_BOUND",
    "TIME_BUDGET_S",
    "Obs",
    "ReplayConfig",
    "ReplayError",
    "Unexplained",
    "Validation",
    "observations",
    "validate",
]
