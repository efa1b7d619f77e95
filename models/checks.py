"""The requirements as checks on the model: invariants, step checks and progress properties.

Each check returns a list of violations (empty when the requirement holds), each naming the
node and what is wrong. ``INVARIANTS`` run on every reachable state, ``STEP_CHECKS`` on every
transition, ``PROGRESS`` on every quiescent state. A check reads the state only through what a
running node can show (mode, addresses, connections, table, provide outcomes, stored records),
plus the messages in flight.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

import attrs

from kadspec.models.actions import Action
from kadspec.models.config import Config, ModeSetting, Reach
from kadspec.models.metric import common_prefix_length
from kadspec.models.policy import Policy
from kadspec.models.requirements_registry import requirement, requirements_of
from kadspec.models.routing import bucket_of, closest_known
from kadspec.models.state import (
    Addr,
    Conn,
    Kind,
    Message,
    Mode,
    NodeState,
    Outcome,
    Phase,
    Proto,
    Purpose,
    World,
)

Observability = Literal["observable", "internal"]

#: Per requirement: whether its check judges only what a running node can show (its observable
#: projection, ``observe.ObservedNode``, the messages on the wire and the observer's ghost) or
#: model internals (timers, lookup bookkeeping, backoff). TIME-* are configuration checks of the
#: node's constants: internal.
OBSERVABILITY: dict[str, Observability] = {
    "BOOT-01": "observable",
    "BOOT-02": "internal",
    "BOOT-03": "internal",
    "BOOT-04": "internal",
    "BOOT-05": "observable",
    "BOOT-06": "observable",
    "ADDR-01": "observable",
    "ADDR-02": "observable",
    "ADDR-03": "observable",
    "ADDR-04": "observable",
    "ADDR-05": "observable",
    "ADDR-06": "observable",
    "ADDR-07": "observable",
    "RT-01": "observable",
    "RT-02": "observable",
    "RT-03": "observable",
    "RT-04": "observable",
    "RT-05": "observable",
    "RT-06": "observable",
    "RT-07": "observable",
    "PROV-01": "internal",
    "PROV-02": "observable",
    "PROV-03": "observable",
    "PROV-04": "observable",
    "PROV-05": "observable",
    "PROV-06": "internal",
    "PROV-07": "observable",
    "PROV-08": "internal",
    "FIND-01": "observable",
    "FIND-02": "observable",
    "FIND-03": "internal",
    "FIND-04": "internal",
    "FIND-05": "internal",
    "TIME-01": "internal",
    "TIME-02": "internal",
    "TIME-03": "internal",
}


def observability(rid: str) -> Observability:
    """Whether requirement ``rid`` is checked on a node's observable projection or on model
    internals. Raises KeyError naming an unknown ID."""
    try:
        return OBSERVABILITY[rid]
    except KeyError:
        raise KeyError(f"no observability recorded for requirement {rid!r}") from None


StateCheck = Callable[[World, Policy], list[str]]
NodeCheck = Callable[[Config, int, NodeState], list[str]]
StepCheck = Callable[[World, Action, World, Policy], list[str]]


@attrs.frozen
class Violation:
    """A requirement broken in a state (or by a transition), with what was seen."""

    requirement: str
    detail: str


# --- invariants ---------------------------------------------------------------------------------
# Node invariants see one node's state (and the fixed configuration); they are memoized per
# node state, because the same node state recurs in many global states.


@requirement("BOOT-02")
def operations_wait_for_self_lookup(config: Config, n: int, s: NodeState) -> list[str]:
    if not s.up or s.self_lookup_done:
        return []
    if any(lk.purpose is not Purpose.SELF for lk in s.lookups) or any(
        p.phase is Phase.SENDING for p in s.provides
    ):
        return [f"{config.name(n)} runs a provide or find before its first self-lookup finished"]
    return []


@requirement("BOOT-03")
def refresh_stays_armed(config: Config, n: int, s: NodeState) -> list[str]:
    return (
        [f"{config.name(n)} runs with no refresh timer armed"]
        if s.up and s.refresh_at is None
        else []
    )


@requirement("BOOT-04")
def lookups_have_work(config: Config, n: int, s: NodeState) -> list[str]:
    return [
        f"{config.name(n)} has a {lk.purpose.name} lookup with no candidate and nothing in "
        "flight (it can only hang)"
        for lk in s.lookups
        if not lk.inflight and not (lk.seen - lk.failed - lk.answered)
    ]


@requirement("BOOT-05")
def provides_never_dropped(config: Config, n: int, s: NodeState) -> list[str]:
    return [
        f"{config.name(n)} dropped its provide of key{k}: no outcome was reported and nothing "
        "is pending"
        for k, p in enumerate(s.provides)
        if s.up and p.providing and p.phase is Phase.IDLE and p.outcome is Outcome.NONE
    ]


@requirement("ADDR-03")
def confirmed_addresses_are_reachable(config: Config, n: int, s: NodeState) -> list[str]:
    if s.confirmed and config.nodes[n].reach is Reach.NAT:
        return [f"{config.name(n)} is behind NAT but holds a confirmed external address"]
    return []


@requirement("ADDR-04")
def mode_follows_setting(config: Config, n: int, s: NodeState) -> list[str]:
    if s.setting is ModeSetting.AUTO:
        expected = Mode.SERVER if s.confirmed else Mode.CLIENT
    else:
        expected = Mode.SERVER if s.setting is ModeSetting.SERVER else Mode.CLIENT
    if s.up and s.mode is not expected:
        return [
            f"{config.name(n)} is in {s.mode.name} mode, its setting ({s.setting.name}, "
            f"confirmed={s.confirmed}) requires {expected.name}"
        ]
    return []


@requirement("RT-02")
def table_entries_advertise_server(config: Config, n: int, s: NodeState) -> list[str]:
    return [
        f"{config.name(n)} holds {config.name(p)} in its table, but identify never said "
        f"{config.name(p)} is a kad server (it says {v.proto.name})"
        for p, v in enumerate(s.peers)
        if v.in_table and v.proto is not Proto.SERVER
    ]


@requirement("RT-03")
def table_entries_have_known_protocols(config: Config, n: int, s: NodeState) -> list[str]:
    return [
        f"{config.name(n)} admitted {config.name(p)} before identify told its protocols"
        for p, v in enumerate(s.peers)
        if v.in_table and v.proto is Proto.UNKNOWN
    ]


@requirement("RT-04")
def table_entries_are_dialable(config: Config, n: int, s: NodeState) -> list[str]:
    return [
        f"{config.name(n)} routes to {config.name(p)} with only a {v.addr.name.lower()} "
        "address (not dialable)"
        for p, v in enumerate(s.peers)
        if v.in_table and v.addr is not Addr.DIALABLE
    ]


@requirement("RT-05")
def buckets_hold_at_most_k(config: Config, n: int, s: NodeState) -> list[str]:
    k = config.timing.k
    sizes = Counter(
        common_prefix_length(config.ids[n], config.ids[p], config.id_bits) for p in s.table()
    )
    return [
        f"{config.name(n)}'s bucket {b} holds {c} peers (k = {k})"
        for b, c in sizes.items()
        if c > k
    ]


@requirement("RT-06")
def failed_peers_leave_the_table(config: Config, n: int, s: NodeState) -> list[str]:
    return [
        f"{config.name(n)} keeps {config.name(p)} in its table after a failed request to it"
        for p, v in enumerate(s.peers)
        if v.in_table and v.failed
    ]


@requirement("RT-07")
def never_self(config: Config, n: int, s: NodeState) -> list[str]:
    return [f"{config.name(n)} holds itself in its table"] if s.peers[n].in_table else []


@requirement("PROV-01")
def provider_stores_own_record(config: Config, n: int, s: NodeState) -> list[str]:
    found = []
    for k, p in enumerate(s.provides):
        if p.phase in (Phase.LOOKUP, Phase.SENDING) and not any(
            r.key == k and r.provider == n for r in s.records
        ):
            found.append(f"{config.name(n)} announces key{k} without storing its own record first")
        if len(p.pending) + len(p.acked) > config.timing.k:
            found.append(f"{config.name(n)} sends ADD_PROVIDER(key{k}) to more than k peers")
    return found


@requirement("PROV-02")
def provide_success_is_real(config: Config, n: int, s: NodeState) -> list[str]:
    return [
        f"{config.name(n)} reports key{k} provided to {p.delivered_to} peers"
        for k, p in enumerate(s.provides)
        if p.outcome is Outcome.SUCCEEDED and p.delivered_to < 1
    ]


@requirement("PROV-05")
def republish_scheduled(config: Config, n: int, s: NodeState) -> list[str]:
    interval = config.timing.republish_interval
    found = []
    for k, p in enumerate(s.provides):
        if not (
            s.up
            and p.providing
            and p.outcome is Outcome.SUCCEEDED
            and p.phase is Phase.IDLE
            and p.published_at is not None
        ):
            continue
        if p.republish_at is None or p.republish_at > p.published_at + interval:
            found.append(
                f"{config.name(n)} provides key{k} with no republish scheduled within "
                f"{interval} ticks of publication"
            )
    return found


@requirement("FIND-03")
def alpha_in_flight(config: Config, n: int, s: NodeState) -> list[str]:
    alpha = config.timing.alpha
    return [
        f"{config.name(n)} has {len(lk.inflight)} requests in flight (alpha = {alpha})"
        for lk in s.lookups
        if len(lk.inflight) > alpha
    ]


@requirement("FIND-05")
def lookups_ask_known_peers(config: Config, n: int, s: NodeState) -> list[str]:
    return [
        f"{config.name(n)}'s lookup asks {config.name(p)}, which it never learned"
        for lk in s.lookups
        for p, _ in lk.inflight
        if p not in lk.seen
    ]


# World invariants look across nodes or at the messages in flight.


@requirement("ADDR-01")
def advertised_protocols_match_mode(world: World, policy: Policy) -> list[str]:
    """The newest identify on each live connection advertises kad exactly for a server."""
    found = []
    count = len(world.nodes)
    # Only a channel with messages in it can hold an identify: most are empty, skip them.
    for index, channel in enumerate(world.network):
        if not channel:
            continue
        src, dst = divmod(index, count)
        state = world.nodes[src]
        if not state.up or not world.connected(src, dst):
            continue
        newest = next((m for m in reversed(channel) if m.kind in _IDENTIFY), None)
        if newest is not None and newest.server != (state.mode is Mode.SERVER):
            found.append(
                f"{world.config.name(src)} advertises kad={newest.server} to "
                f"{world.config.name(dst)} while in {state.mode.name} mode"
            )
    return found


_IDENTIFY = (Kind.IDENTIFY, Kind.IDENTIFY_PUSH)


@requirement("ADDR-07")
def provider_records_carry_addresses(world: World, policy: Policy) -> list[str]:
    return [
        f"{world.config.name(m.src)} sends ADD_PROVIDER(key{m.key}) to "
        f"{world.config.name(m.dst)} without any address"
        for channel in world.network
        if channel
        for m in channel
        if m.kind is Kind.ADD_PROVIDER and m.provider == m.src and not m.public
    ]


@requirement("PROV-03")
def records_name_real_providers(world: World, policy: Policy) -> list[str]:
    return [
        f"{world.config.name(n)} stores a record naming {world.config.name(r.provider)} as "
        f"provider of key{r.key}, which {world.config.name(r.provider)} never provided"
        for n, s in enumerate(world.nodes)
        for r in s.records
        if not world.nodes[r.provider].provides[r.key].providing
    ]


# --- step checks --------------------------------------------------------------------------------


@requirement("RT-07")
def admitted_peers_are_connected(
    pre: World, action: Action, post: World, policy: Policy
) -> list[str]:
    found = []
    for n, s in enumerate(post.nodes):
        for p, v in enumerate(s.peers):
            if v.in_table and not pre.nodes[n].peers[p].in_table and not post.connected(n, p):
                found.append(
                    f"{post.config.name(n)} admitted {post.config.name(p)} after their "
                    "connection had closed"
                )
    return found


def _replies(
    pre: World, action: Action, post: World, kind: Kind
) -> list[tuple[int, int, frozenset[int], frozenset[int], int, int]]:
    return [
        (m.src, m.dst, m.closer, m.providers, m.target, m.key)
        for m in sent_messages(pre, action, post)
        if m.kind is kind
    ]


def sent_messages(pre: World, action: Action, post: World) -> list[Message]:
    """The messages a transition put on the network.

    Channels are FIFO: a step appends to channels, and a delivery or a loss first takes the
    oldest message off the one channel its message travels on.
    """
    # Every step check asks for the same transition's messages in turn: keep the last answer.
    # The cache holds its two worlds, so identity cannot be confused with a recycled id.
    last_pre, last_post, last_sent = _SENT[0]
    if last_pre is pre and last_post is post:
        return last_sent
    popped = -1
    if action.message is not None and action.kind in ("deliver", "lose"):
        popped = action.message.src * len(pre.nodes) + action.message.dst
    sent: list[Message] = []
    for index, (before, after) in enumerate(zip(pre.network, post.network, strict=True)):
        if after is not before:
            sent.extend(after[len(before) - (index == popped) :])
    _SENT[0] = (pre, post, sent)
    return sent


_SENT: list[tuple[World | None, World | None, list[Message]]] = [(None, None, [])]


@requirement("ADDR-01")
def clients_do_not_answer(pre: World, action: Action, post: World, policy: Policy) -> list[str]:
    found = []
    for kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY):
        for src, dst, *_ in _replies(pre, action, post, kind):
            if pre.nodes[src].mode is Mode.CLIENT:
                found.append(
                    f"{post.config.name(src)} is a client but answers "
                    f"{post.config.name(dst)}'s request"
                )
    if (
        action.kind == "deliver"
        and action.message is not None
        and action.message.kind is Kind.ADD_PROVIDER
        and pre.nodes[action.message.dst].mode is Mode.CLIENT
        and post.nodes[action.message.dst].records != pre.nodes[action.message.dst].records
    ):
        found.append(f"{post.config.name(action.message.dst)} is a client but accepts ADD_PROVIDER")
    return found


@requirement("FIND-01")
def find_node_replies_are_closest(
    pre: World, action: Action, post: World, policy: Policy
) -> list[str]:
    found = []
    for src, dst, closer, _, target, _ in _replies(pre, action, post, Kind.FIND_NODE_REPLY):
        if src in closer or dst in closer or len(closer) > post.config.timing.k:
            found.append(
                f"{post.config.name(src)}'s FIND_NODE reply to {post.config.name(dst)} "
                "holds the responder, the requester, or more than k peers"
            )
        expected = closest_known(pre, src, target, dst)
        if closer and closer != expected:
            found.append(f"{post.config.name(src)}'s FIND_NODE reply is not its k closest peers")
    return found


@requirement("FIND-02")
def own_id_lookups_answered(pre: World, action: Action, post: World, policy: Policy) -> list[str]:
    found = []
    for src, dst, closer, _, target, _ in _replies(pre, action, post, Kind.FIND_NODE_REPLY):
        if target == post.config.ids[src] and not closer and closest_known(pre, src, target, dst):
            found.append(
                f"{post.config.name(src)} answers FIND_NODE for its own ID with nothing, "
                "though its table holds other peers"
            )
    return found


@requirement("PROV-04")
def expired_records_not_served(
    pre: World, action: Action, post: World, policy: Policy
) -> list[str]:
    found = []
    for src, _dst, _, providers, _, key in _replies(pre, action, post, Kind.GET_PROVIDERS_REPLY):
        for r in pre.nodes[src].records:
            if r.key == key and r.provider in providers and r.expires <= pre.clock:
                found.append(
                    f"{post.config.name(src)} serves {post.config.name(r.provider)}'s "
                    f"record for key{key}, expired at {r.expires} (now {pre.clock})"
                )
    return found


@requirement("PROV-07")
def live_records_served(pre: World, action: Action, post: World, policy: Policy) -> list[str]:
    found = []
    for src, _dst, _, providers, _, key in _replies(pre, action, post, Kind.GET_PROVIDERS_REPLY):
        live = {
            r.provider for r in pre.nodes[src].records if r.key == key and r.expires > pre.clock
        }
        if not live <= providers:
            found.append(f"{post.config.name(src)} withholds live records for key{key}")
    return found


# --- progress at quiescence ---------------------------------------------------------------------


@requirement("BOOT-01")
def bootstrap_peers_dialed(world: World, policy: Policy) -> list[str]:
    found = []
    for n, s in enumerate(world.nodes):
        configured = world.config.nodes[n].bootstrap
        if not s.up or not configured or s.table():
            continue
        connected = sum(1 for p in configured if world.connected(n, p))
        if connected < 2 and not set(configured) <= s.boot_tried:
            found.append(
                f"{world.config.name(n)} has an empty table and stopped dialing bootstrap peers"
            )
    return found


def _routable_server_pairs(world: World) -> list[tuple[int, int]]:
    """(n, p): both up and connected, n knows p is a public kad server, p's bucket has room."""
    pairs = []
    k = world.config.timing.k
    for n, s in enumerate(world.nodes):
        if not s.up:
            continue
        for p, v in enumerate(s.peers):
            if (
                p == n
                or not world.nodes[p].up
                or not world.connected(n, p)
                or v.failed
                or world.nodes[p].mode is not Mode.SERVER
                or v.proto is not Proto.SERVER
                or world.config.nodes[p].reach is not Reach.PUBLIC
            ):
                continue
            bucket = bucket_of(world, n, p)
            if sum(1 for q in s.table() if bucket_of(world, n, q) == bucket) < k:
                pairs.append((n, p))
    return pairs


@requirement("BOOT-06")
def fresh_network_forms(world: World, policy: Policy) -> list[str]:
    return [
        f"{world.config.name(n)} is connected to server {world.config.name(p)} with a "
        "dialable address yet its table stays empty"
        for n, p in _routable_server_pairs(world)
        if not world.nodes[n].table() and world.nodes[n].peers[p].addr is Addr.DIALABLE
    ]


@requirement("ADDR-06")
def dialers_are_routed(world: World, policy: Policy) -> list[str]:
    return [
        f"{world.config.name(n)} never routes to {world.config.name(p)}, a public server "
        f"connected to it (UnroutablePeer)"
        for n, p in _routable_server_pairs(world)
        if not world.nodes[n].peers[p].in_table
    ]


@requirement("ADDR-02")
def peers_see_current_mode(world: World, policy: Policy) -> list[str]:
    found = []
    for n, s in enumerate(world.nodes):
        for p, v in enumerate(s.peers):
            if (
                s.up
                and p != n
                and world.nodes[p].up
                and world.connected(n, p)
                and v.proto is not Proto.UNKNOWN
                and (v.proto is Proto.SERVER) != (world.nodes[p].mode is Mode.SERVER)
            ):
                found.append(
                    f"{world.config.name(n)} still believes {world.config.name(p)} is "
                    f"{v.proto.name}, but it is in {world.nodes[p].mode.name} mode"
                )
    return found


@requirement("ADDR-05")
def public_candidates_confirmed(world: World, policy: Policy) -> list[str]:
    return [
        f"{world.config.name(n)} is public but its candidate address was never confirmed"
        for n, s in enumerate(world.nodes)
        if s.up and s.candidate and not s.confirmed and world.config.nodes[n].reach is Reach.PUBLIC
    ]


@requirement("RT-01")
def tables_hold_servers(world: World, policy: Policy) -> list[str]:
    return [
        f"{world.config.name(n)} routes to {world.config.name(p)}, a connected client"
        for n, s in enumerate(world.nodes)
        for p in s.table()
        if s.up
        and world.nodes[p].up
        and world.connected(n, p)
        and world.nodes[p].mode is Mode.CLIENT
    ]


@requirement("PROV-06")
def provides_not_abandoned(world: World, policy: Policy) -> list[str]:
    found = []
    for n, s in enumerate(world.nodes):
        for k, p in enumerate(s.provides):
            if (
                s.up
                and p.providing
                and p.phase is Phase.IDLE
                and p.outcome is not Outcome.SUCCEEDED
                and p.retry_at is None
            ):
                found.append(f"{world.config.name(n)} gave up providing key{k} while running")
            if p.backoff > world.config.timing.retry_cap:
                found.append(f"{world.config.name(n)}'s retry backoff for key{k} exceeds the cap")
    return found


@requirement("PROV-08", "FIND-04")
def nothing_stalls(world: World, policy: Policy) -> list[str]:
    found = []
    for n, s in enumerate(world.nodes):
        if not s.up:
            continue
        for lk in s.lookups:
            if not any(d is not None for _, d in lk.inflight):
                found.append(
                    f"{world.config.name(n)}'s {lk.purpose.name} lookup waits on "
                    "requests with no deadline and no reply coming: it never ends"
                )
        for k, p in enumerate(s.provides):
            if p.phase is Phase.SENDING and not any(d is not None for _, d in p.pending):
                found.append(
                    f"{world.config.name(n)}'s provide of key{k} waits on ADD_PROVIDER "
                    "with no deadline and no delivery coming: it never ends"
                )
    return found


NODE_INVARIANTS: tuple[NodeCheck, ...] = (
    operations_wait_for_self_lookup,
    refresh_stays_armed,
    lookups_have_work,
    provides_never_dropped,
    confirmed_addresses_are_reachable,
    mode_follows_setting,
    table_entries_advertise_server,
    table_entries_have_known_protocols,
    table_entries_are_dialable,
    buckets_hold_at_most_k,
    failed_peers_leave_the_table,
    never_self,
    provider_stores_own_record,
    provide_success_is_real,
    republish_scheduled,
    alpha_in_flight,
    lookups_ask_known_peers,
)
WORLD_INVARIANTS: tuple[StateCheck, ...] = (
    advertised_protocols_match_mode,
    provider_records_carry_addresses,
    records_name_real_providers,
)
STEP_CHECKS: tuple[StepCheck, ...] = (
    admitted_peers_are_connected,
    clients_do_not_answer,
    find_node_replies_are_closest,
    own_id_lookups_answered,
    expired_records_not_served,
    live_records_served,
)
PROGRESS: tuple[StateCheck, ...] = (
    bootstrap_peers_dialed,
    fresh_network_forms,
    dialers_are_routed,
    peers_see_current_mode,
    public_candidates_confirmed,
    tables_hold_servers,
    provides_not_abandoned,
    nothing_stalls,
)


def _tagged(checks: tuple[Callable[..., list[str]], ...]) -> tuple[tuple[str, Any], ...]:
    return tuple((requirements_of(c)[0], c) for c in checks)


_NODE = _tagged(NODE_INVARIANTS)
_WORLD = _tagged(WORLD_INVARIANTS)
#: (requirement ID, world invariant) pairs, in the order check_state runs them
WORLD_CHECKS: tuple[tuple[str, StateCheck], ...] = _WORLD
_STEP = _tagged(STEP_CHECKS)
_PROGRESS = _tagged(PROGRESS)
NodeCache = dict[tuple[int, NodeState], tuple[Violation, ...]]
#: id(config) -> (config, its memo). The entry holds the configuration itself, so the id cannot
#: be recycled by another configuration while the memo lives.
_NODE_CACHES: dict[int, tuple[Config, NodeCache]] = {}


def node_cache(config: Config) -> NodeCache:
    """The memo of node invariants for one configuration (node states recur across worlds)."""
    entry = _NODE_CACHES.get(id(config))
    if entry is None or entry[0] is not config:
        if len(_NODE_CACHES) > 64:
            _NODE_CACHES.clear()
        entry = _NODE_CACHES[id(config)] = (config, {})
    return entry[1]


def check_node(config: Config, n: int, state: NodeState) -> tuple[Violation, ...]:
    """Every node invariant on one node, memoized per (configuration, node, state)."""
    cache = node_cache(config)
    found = cache.get((n, state))
    if found is None:
        if len(cache) > 500_000:
            cache.clear()
        found = cache[(n, state)] = tuple(
            Violation(rid, d) for rid, c in _NODE for d in c(config, n, state)
        )
    return found


def check_state(world: World, policy: Policy) -> list[Violation]:
    """Every invariant on one state."""
    found = [v for n, s in enumerate(world.nodes) for v in check_node(world.config, n, s)]
    return found + [Violation(rid, d) for rid, c in _WORLD for d in c(world, policy)]


def check_step(pre: World, action: Action, post: World, policy: Policy) -> list[Violation]:
    """Every step check on one transition."""
    return [Violation(rid, d) for rid, c in _STEP for d in c(pre, action, post, policy)]


def check_quiescent(world: World, policy: Policy) -> list[Violation]:
    """Every progress property on one quiescent state."""
    return [Violation(rid, d) for rid, c in _PROGRESS for d in c(world, policy)]


# --- premises: where a requirement has teeth ----------------------------------------------------
# A check that passes in a state where its premise is dead proves nothing (a bucket that is never
# full cannot show RT-05's eviction rule). ``exercised_*`` name the requirements whose premise is
# live in a state, a transition or a quiescent state; the explorer counts them per requirement so
# that a requirement exercised nowhere is reported as such rather than as "holds".


def _node_premises(config: Config, n: int, s: NodeState) -> frozenset[str]:
    """The premises one node's state makes live (memoized per node state, like check_node)."""
    if not s.up:
        records = {"PROV-03"} if any(r.provider != n for r in s.records) else set()
        return frozenset(records)
    live: set[str] = {"BOOT-03"}  # a running node must keep its refresh armed
    k, alpha = config.timing.k, config.timing.alpha
    table = s.table()
    if table:
        live.update({"RT-02", "RT-07", "TIME-01"})
    if any(v.conn is not Conn.NONE and v.proto is Proto.UNKNOWN for v in s.peers):
        live.add("RT-03")  # a connected peer whose protocols are still unknown
    if any(v.addr is Addr.REMOTE for v in s.peers):
        live.add("RT-04")  # a peer known only by a listener-side remote address
    sizes = Counter(
        common_prefix_length(config.ids[n], config.ids[p], config.id_bits) for p in table
    )
    if any(c >= k for c in sizes.values()):
        live.add("RT-05")
    if any(v.failed for v in s.peers):
        live.add("RT-06")
    if s.candidate:
        live.add("ADDR-03")
    if s.setting is ModeSetting.AUTO:
        live.add("ADDR-04")
    if s.lookups:
        live.update({"BOOT-04", "TIME-01"})
    if not s.self_lookup_done and (s.lookups or any(p.phase is not Phase.IDLE for p in s.provides)):
        live.add("BOOT-02")  # work is waiting while the first self-lookup has not answered
    for lk in s.lookups:
        if len(lk.seen) > alpha:
            live.add("FIND-03")
        if lk.inflight:
            live.update({"FIND-05", "PROV-08"})
        if lk.answered and lk.seen - lk.answered - lk.failed:
            live.add("FIND-04")  # the end condition is being decided with candidates left
    for p in s.provides:
        if p.providing and p.phase is not Phase.IDLE:
            live.add("BOOT-05")
        if p.phase in (Phase.LOOKUP, Phase.SENDING):
            live.add("PROV-01")
        if p.pending:
            live.add("PROV-08")
        if p.outcome is Outcome.SUCCEEDED:
            live.update({"PROV-02", "PROV-05"})
    if s.records:
        live.add("TIME-02")
        if any(r.provider != n for r in s.records):
            live.add("PROV-03")
    if s.refresh_at is not None or any(p.retry_at is not None for p in s.provides):
        live.add("TIME-03")
    return frozenset(live)


def network_premises(world: World) -> frozenset[str]:
    """The premises the messages in flight make live (a function of the network only)."""
    live: set[str] = set()
    for channel in world.network:
        for m in channel:
            if m.kind in _IDENTIFY:
                live.add("ADDR-01")
            elif m.kind is Kind.ADD_PROVIDER:
                live.add("ADDR-07")
    return frozenset(live)


PremiseCache = dict[tuple[int, NodeState], frozenset[str]]
_PREMISE_CACHES: dict[int, tuple[Config, PremiseCache]] = {}


def premise_cache(config: Config) -> PremiseCache:
    """The memo of node premises for one configuration."""
    entry = _PREMISE_CACHES.get(id(config))
    if entry is None or entry[0] is not config:
        if len(_PREMISE_CACHES) > 64:
            _PREMISE_CACHES.clear()
        entry = _PREMISE_CACHES[id(config)] = (config, {})
    return entry[1]


def node_premises(config: Config, n: int, state: NodeState) -> frozenset[str]:
    """:func:`_node_premises` memoized per (configuration, node, state)."""
    cache = premise_cache(config)
    found = cache.get((n, state))
    if found is None:
        if len(cache) > 500_000:
            cache.clear()
        found = cache[(n, state)] = _node_premises(config, n, state)
    return found


def exercised_in_state(world: World, policy: Policy) -> frozenset[str]:
    """Requirement IDs whose invariant premise is live in ``world``."""
    live: set[str] = set()
    for n, s in enumerate(world.nodes):
        live |= node_premises(world.config, n, s)
    return frozenset(live | network_premises(world))


def exercised_in_step(pre: World, action: Action, post: World, policy: Policy) -> frozenset[str]:
    """Requirement IDs whose step-check premise is live on the transition ``pre -> post``."""
    live: set[str] = set()
    config = post.config
    k = config.timing.k
    for m in sent_messages(pre, action, post):
        responder = pre.nodes[m.src]
        if m.kind is Kind.FIND_NODE_REPLY:
            eligible = [p for p in responder.table() if p != m.dst]
            if len(eligible) > k:
                live.add("FIND-01")  # the responder had to choose the k closest
            if m.target == config.ids[m.src] and eligible:
                live.add("FIND-02")
        elif m.kind is Kind.GET_PROVIDERS_REPLY:
            for r in responder.records:
                if r.key != m.key:
                    continue
                if r.expires <= pre.clock:
                    live.add("PROV-04")  # an expired record was on the shelf
                elif r.provider != m.dst:
                    live.add("PROV-07")  # a live record of someone else was on the shelf
    message = action.message
    if action.kind == "deliver" and message is not None:
        receiver = pre.nodes[message.dst]
        if message.kind in (Kind.FIND_NODE, Kind.GET_PROVIDERS, Kind.ADD_PROVIDER) and receiver.up:
            if receiver.mode is Mode.CLIENT:
                live.add("ADDR-01")  # a client was asked to serve
            elif not receiver.peers[message.src].in_table:
                live.add("RT-02")  # a request from a peer not in the table
    for before, after in zip(pre.nodes, post.nodes, strict=True):
        if before is after:
            continue
        if any(v.in_table and not before.peers[p].in_table for p, v in enumerate(after.peers)):
            live.add("RT-07")  # an admission happened
    return frozenset(live)


def exercised_at_quiescence(world: World, policy: Policy) -> frozenset[str]:
    """Requirement IDs whose progress premise is live in the quiescent state ``world``."""
    live: set[str] = set()
    config = world.config
    for n, s in enumerate(world.nodes):
        if not s.up:
            continue
        live.add("PROV-08")  # a running node at rest: any timer must not be already due
        if config.nodes[n].bootstrap:
            live.add("BOOT-01")
        changed = s.setting is not config.nodes[n].mode or (
            s.setting is ModeSetting.AUTO and s.confirmed
        )
        if changed and any(v.conn is not Conn.NONE for v in s.peers):
            live.add("ADDR-02")  # its mode changed while peers were connected
        if s.candidate and config.nodes[n].reach is Reach.PUBLIC:
            live.add("ADDR-05")
        if s.setting is ModeSetting.AUTO:
            live.add("ADDR-04")
        if s.self_lookup_done or any(f is not None for f in s.found):
            live.update({"BOOT-04", "FIND-04"})  # lookups ran and had to end
        for p in s.provides:
            if p.providing:
                live.add("BOOT-05")
            if p.attempts > 1 or p.outcome is Outcome.FAILED:
                live.add("PROV-06")
        if any(f is not None for f in s.found):
            live.add("BOOT-05")
        for q in s.table():
            if world.nodes[q].up and world.connected(n, q):
                live.add("RT-01")
    pairs = _routable_server_pairs(world)
    if pairs:
        live.add("ADDR-06")
        if any(world.nodes[n].peers[p].addr is Addr.DIALABLE for n, p in pairs):
            live.add("BOOT-06")
    return frozenset(live)
