"""The requirements as checks on the model: invariants, step checks and progress properties.

Each check returns a list of violations (empty when the requirement holds), each naming the
node and what is wrong. ``INVARIANTS`` run on every reachable state, ``STEP_CHECKS`` on every
transition, ``PROGRESS`` on every quiescent state. A check reads the state only through what a
running node can show (mode, addresses, connections, table, provide outcomes, stored records),
plus the messages in flight.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from kadspec.models.actions import Action
from kadspec.models.config import ModeSetting, Reach
from kadspec.models.metric import closest
from kadspec.models.policy import Policy
from kadspec.models.requirements_registry import requirement, requirements_of
from kadspec.models.routing import bucket_of, closest_known
from kadspec.models.state import (
    Addr,
    Kind,
    Mode,
    Outcome,
    Phase,
    Proto,
    Purpose,
    World,
)

StateCheck = Callable[[World, Policy], list[str]]
StepCheck = Callable[[World, Action, World, Policy], list[str]]


@attrs.frozen
class Violation:
    """A requirement broken in a state (or by a transition), with what was seen."""

    requirement: str
    detail: str


# --- invariants ---------------------------------------------------------------------------------

@requirement("BOOT-02")
def operations_wait_for_self_lookup(world: World, policy: Policy) -> list[str]:
    found = []
    for n, state in enumerate(world.nodes):
        if not state.up or state.self_lookup_done:
            continue
        if any(lk.purpose is not Purpose.SELF for lk in state.lookups) or any(
            p.phase is Phase.SENDING for p in state.provides
        ):
            found.append(f"{world.config.name(n)} runs a provide or find before its first "
                         "self-lookup finished")
    return found


@requirement("BOOT-03")
def refresh_stays_armed(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} runs with no refresh timer armed"
            for n, s in enumerate(world.nodes) if s.up and s.refresh_at is None]


@requirement("BOOT-04")
def lookups_have_work(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} has a {lk.purpose.name} lookup with no candidate and "
            "nothing in flight (it can only hang)"
            for n, s in enumerate(world.nodes) for lk in s.lookups
            if not lk.inflight and not (lk.seen - lk.failed - lk.answered)]


@requirement("BOOT-05")
def provides_never_dropped(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} dropped its provide of key{k}: no outcome was reported "
            "and nothing is pending"
            for n, s in enumerate(world.nodes) for k, p in enumerate(s.provides)
            if s.up and p.providing and p.phase is Phase.IDLE and p.outcome is Outcome.NONE]


@requirement("ADDR-01")
def advertised_protocols_match_mode(world: World, policy: Policy) -> list[str]:
    found = []
    for m in world.network:
        if m.kind in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH) and world.nodes[m.src].up:
            mode = world.nodes[m.src].mode
            newer_push = any(o.kind is Kind.IDENTIFY_PUSH and o.src == m.src and o.dst == m.dst
                             and o != m for o in world.network)
            if m.server != (mode is Mode.SERVER) and not newer_push and m.kind is Kind.IDENTIFY:
                continue  # superseded by a push already queued behind it
            if m.server != (mode is Mode.SERVER) and m.kind is Kind.IDENTIFY_PUSH and not newer_push:
                found.append(f"{world.config.name(m.src)} advertises kad={m.server} to "
                             f"{world.config.name(m.dst)} while in {mode.name} mode")
    return found


@requirement("ADDR-03")
def confirmed_addresses_are_reachable(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} is behind NAT but holds a confirmed external address"
            for n, s in enumerate(world.nodes)
            if s.confirmed and world.config.nodes[n].reach is Reach.NAT]


@requirement("ADDR-04")
def mode_follows_setting(world: World, policy: Policy) -> list[str]:
    found = []
    for n, s in enumerate(world.nodes):
        if s.setting is ModeSetting.AUTO:
            expected = Mode.SERVER if s.confirmed else Mode.CLIENT
        else:
            expected = Mode.SERVER if s.setting is ModeSetting.SERVER else Mode.CLIENT
        if s.up and s.mode is not expected:
            found.append(f"{world.config.name(n)} is in {s.mode.name} mode, its setting "
                         f"({s.setting.name}, confirmed={s.confirmed}) requires {expected.name}")
    return found


@requirement("ADDR-07")
def provider_records_carry_addresses(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(m.src)} sends ADD_PROVIDER(key{m.key}) to "
            f"{world.config.name(m.dst)} without any address"
            for m in world.network
            if m.kind is Kind.ADD_PROVIDER and m.provider == m.src and not m.public]


@requirement("RT-02")
def table_entries_advertise_server(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} holds {world.config.name(p)} in its table, but identify never "
            f"said {world.config.name(p)} is a kad server (it says {v.proto.name})"
            for n, s in enumerate(world.nodes) for p, v in enumerate(s.peers)
            if v.in_table and v.proto is not Proto.SERVER]


@requirement("RT-03")
def table_entries_have_known_protocols(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} admitted {world.config.name(p)} before identify told its "
            "protocols"
            for n, s in enumerate(world.nodes) for p, v in enumerate(s.peers)
            if v.in_table and v.proto is Proto.UNKNOWN]


@requirement("RT-04")
def table_entries_are_dialable(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} routes to {world.config.name(p)} with only "
            f"{v.addr.name.lower()} address (not dialable)"
            for n, s in enumerate(world.nodes) for p, v in enumerate(s.peers)
            if v.in_table and v.addr is not Addr.DIALABLE]


@requirement("RT-05")
def buckets_hold_at_most_k(world: World, policy: Policy) -> list[str]:
    found = []
    k = world.config.timing.k
    for n, s in enumerate(world.nodes):
        sizes: dict[int, int] = {}
        for p in s.table():
            b = bucket_of(world, n, p)
            sizes[b] = sizes.get(b, 0) + 1
        found += [f"{world.config.name(n)}'s bucket {b} holds {c} peers (k = {k})"
                  for b, c in sizes.items() if c > k]
    return found


@requirement("RT-06")
def failed_peers_leave_the_table(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} keeps {world.config.name(p)} in its table after a failed "
            "request to it"
            for n, s in enumerate(world.nodes) for p, v in enumerate(s.peers)
            if v.in_table and v.failed]


@requirement("RT-07")
def never_self(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} holds itself in its table"
            for n, s in enumerate(world.nodes) if s.peers[n].in_table]


@requirement("PROV-01")
def provider_stores_own_record(world: World, policy: Policy) -> list[str]:
    found = []
    for n, s in enumerate(world.nodes):
        for k, p in enumerate(s.provides):
            if p.phase in (Phase.LOOKUP, Phase.SENDING) and not any(
                r.key == k and r.provider == n for r in s.records
            ):
                found.append(f"{world.config.name(n)} announces key{k} without storing its own "
                             "record first")
            if len(p.pending) + len(p.acked) > world.config.timing.k:
                found.append(f"{world.config.name(n)} sends ADD_PROVIDER(key{k}) to more than k "
                             "peers")
    return found


@requirement("PROV-02")
def provide_success_is_real(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} reports key{k} provided to {p.delivered_to} peers"
            for n, s in enumerate(world.nodes) for k, p in enumerate(s.provides)
            if p.outcome is Outcome.SUCCEEDED and p.delivered_to < 1]


@requirement("PROV-03")
def records_name_real_providers(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} stores a record naming {world.config.name(r.provider)} as "
            f"provider of key{r.key}, which {world.config.name(r.provider)} never provided"
            for n, s in enumerate(world.nodes) for r in s.records
            if not world.nodes[r.provider].provides[r.key].providing]


@requirement("PROV-05")
def republish_scheduled(world: World, policy: Policy) -> list[str]:
    interval = world.config.timing.republish_interval
    found = []
    for n, s in enumerate(world.nodes):
        for k, p in enumerate(s.provides):
            if not (s.up and p.providing and p.outcome is Outcome.SUCCEEDED
                    and p.phase is Phase.IDLE and p.published_at is not None):
                continue
            if p.republish_at is None or p.republish_at > p.published_at + interval:
                found.append(f"{world.config.name(n)} provides key{k} with no republish "
                             f"scheduled within {interval} ticks of publication")
    return found


@requirement("FIND-03")
def alpha_in_flight(world: World, policy: Policy) -> list[str]:
    alpha = world.config.timing.alpha
    return [f"{world.config.name(n)} has {len(lk.inflight)} requests in flight (alpha = {alpha})"
            for n, s in enumerate(world.nodes) for lk in s.lookups if len(lk.inflight) > alpha]


@requirement("FIND-05")
def lookups_ask_known_peers(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)}'s lookup asks {world.config.name(p)}, which it never learned"
            for n, s in enumerate(world.nodes) for lk in s.lookups
            for p, _ in lk.inflight if p not in lk.seen]


# --- step checks --------------------------------------------------------------------------------

@requirement("RT-07")
def admitted_peers_are_connected(pre: World, action: Action, post: World,
                                 policy: Policy) -> list[str]:
    found = []
    for n, s in enumerate(post.nodes):
        for p, v in enumerate(s.peers):
            if v.in_table and not pre.nodes[n].peers[p].in_table and not post.connected(n, p):
                found.append(f"{post.config.name(n)} admitted {post.config.name(p)} after their "
                             "connection had closed")
    return found


def _replies(pre: World, post: World, kind: Kind) -> list[tuple[int, int, frozenset[int],
                                                             frozenset[int], int, int]]:
    new = post.network - pre.network
    return [(m.src, m.dst, m.closer, m.providers, m.target, m.key) for m in new if m.kind is kind]


@requirement("ADDR-01")
def clients_do_not_answer(pre: World, action: Action, post: World, policy: Policy) -> list[str]:
    found = []
    for kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY):
        for src, dst, *_ in _replies(pre, post, kind):
            if pre.nodes[src].mode is Mode.CLIENT:
                found.append(f"{post.config.name(src)} is a client but answers "
                             f"{post.config.name(dst)}'s request")
    if (action.kind == "deliver" and action.message is not None
            and action.message.kind is Kind.ADD_PROVIDER
            and pre.nodes[action.message.dst].mode is Mode.CLIENT
            and post.nodes[action.message.dst].records != pre.nodes[action.message.dst].records):
        found.append(f"{post.config.name(action.message.dst)} is a client but accepts ADD_PROVIDER")
    return found


@requirement("FIND-01")
def find_node_replies_are_closest(pre: World, action: Action, post: World,
                                  policy: Policy) -> list[str]:
    found = []
    for src, dst, closer, _, target, _ in _replies(pre, post, Kind.FIND_NODE_REPLY):
        if src in closer or dst in closer or len(closer) > post.config.timing.k:
            found.append(f"{post.config.name(src)}'s FIND_NODE reply to {post.config.name(dst)} "
                         "holds the responder, the requester, or more than k peers")
        expected = closest_known(pre, src, target, dst)
        if closer and closer != expected:
            found.append(f"{post.config.name(src)}'s FIND_NODE reply is not its k closest peers")
    return found


@requirement("FIND-02")
def own_id_lookups_answered(pre: World, action: Action, post: World, policy: Policy) -> list[str]:
    found = []
    for src, dst, closer, _, target, _ in _replies(pre, post, Kind.FIND_NODE_REPLY):
        if target == post.config.ids[src] and not closer and closest_known(pre, src, target, dst):
            found.append(f"{post.config.name(src)} answers FIND_NODE for its own ID with nothing, "
                         "though its table holds other peers")
    return found


@requirement("PROV-04")
def expired_records_not_served(pre: World, action: Action, post: World,
                               policy: Policy) -> list[str]:
    found = []
    for src, dst, _, providers, _, key in _replies(pre, post, Kind.GET_PROVIDERS_REPLY):
        for r in pre.nodes[src].records:
            if r.key == key and r.provider in providers and r.expires <= pre.clock:
                found.append(f"{post.config.name(src)} serves {post.config.name(r.provider)}'s "
                             f"record for key{key}, expired at {r.expires} (now {pre.clock})")
    return found


@requirement("PROV-07")
def live_records_served(pre: World, action: Action, post: World, policy: Policy) -> list[str]:
    found = []
    for src, dst, _, providers, _, key in _replies(pre, post, Kind.GET_PROVIDERS_REPLY):
        live = {r.provider for r in pre.nodes[src].records if r.key == key and r.expires > pre.clock}
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
            found.append(f"{world.config.name(n)} has an empty table and stopped dialing "
                         "bootstrap peers")
    return found


def _routable_server_pairs(world: World) -> list[tuple[int, int]]:
    """(n, p): both up and connected, n knows p is a public kad server, p's bucket has room."""
    pairs = []
    k = world.config.timing.k
    for n, s in enumerate(world.nodes):
        if not s.up:
            continue
        for p, v in enumerate(s.peers):
            if (p == n or not world.nodes[p].up or not world.connected(n, p) or v.failed
                    or world.nodes[p].mode is not Mode.SERVER or v.proto is not Proto.SERVER
                    or world.config.nodes[p].reach is not Reach.PUBLIC):
                continue
            bucket = bucket_of(world, n, p)
            if sum(1 for q in s.table() if bucket_of(world, n, q) == bucket) < k:
                pairs.append((n, p))
    return pairs


@requirement("BOOT-06")
def fresh_network_forms(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} is connected to server {world.config.name(p)} with a "
            "dialable address yet its table stays empty"
            for n, p in _routable_server_pairs(world)
            if not world.nodes[n].table() and world.nodes[n].peers[p].addr is Addr.DIALABLE]


@requirement("ADDR-06")
def dialers_are_routed(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} never routes to {world.config.name(p)}, a public server "
            f"connected to it (UnroutablePeer)"
            for n, p in _routable_server_pairs(world) if not world.nodes[n].peers[p].in_table]


@requirement("ADDR-02")
def peers_see_current_mode(world: World, policy: Policy) -> list[str]:
    found = []
    for n, s in enumerate(world.nodes):
        for p, v in enumerate(s.peers):
            if (s.up and p != n and world.nodes[p].up and world.connected(n, p)
                    and v.proto is not Proto.UNKNOWN
                    and (v.proto is Proto.SERVER) != (world.nodes[p].mode is Mode.SERVER)):
                found.append(f"{world.config.name(n)} still believes {world.config.name(p)} is "
                             f"{v.proto.name}, but it is in {world.nodes[p].mode.name} mode")
    return found


@requirement("ADDR-05")
def public_candidates_confirmed(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} is public but its candidate address was never confirmed"
            for n, s in enumerate(world.nodes)
            if s.up and s.candidate and not s.confirmed
            and world.config.nodes[n].reach is Reach.PUBLIC]


@requirement("RT-01")
def tables_hold_servers(world: World, policy: Policy) -> list[str]:
    return [f"{world.config.name(n)} routes to {world.config.name(p)}, a connected client"
            for n, s in enumerate(world.nodes) for p in s.table()
            if s.up and world.nodes[p].up and world.connected(n, p)
            and world.nodes[p].mode is Mode.CLIENT]


@requirement("PROV-06")
def provides_not_abandoned(world: World, policy: Policy) -> list[str]:
    found = []
    for n, s in enumerate(world.nodes):
        for k, p in enumerate(s.provides):
            if (s.up and p.providing and p.phase is Phase.IDLE
                    and p.outcome is not Outcome.SUCCEEDED and p.retry_at is None):
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
                found.append(f"{world.config.name(n)}'s {lk.purpose.name} lookup waits on "
                             "requests with no deadline and no reply coming: it never ends")
        for k, p in enumerate(s.provides):
            if p.phase is Phase.SENDING and not any(d is not None for _, d in p.pending):
                found.append(f"{world.config.name(n)}'s provide of key{k} waits on ADD_PROVIDER "
                             "with no deadline and no delivery coming: it never ends")
    return found


INVARIANTS: tuple[StateCheck, ...] = (
    operations_wait_for_self_lookup, refresh_stays_armed, lookups_have_work,
    provides_never_dropped, advertised_protocols_match_mode, confirmed_addresses_are_reachable,
    mode_follows_setting, provider_records_carry_addresses, table_entries_advertise_server,
    table_entries_have_known_protocols, table_entries_are_dialable, buckets_hold_at_most_k,
    failed_peers_leave_the_table, never_self, provider_stores_own_record,
    provide_success_is_real, records_name_real_providers, republish_scheduled, alpha_in_flight,
    lookups_ask_known_peers,
)
STEP_CHECKS: tuple[StepCheck, ...] = (
    admitted_peers_are_connected, clients_do_not_answer, find_node_replies_are_closest,
    own_id_lookups_answered, expired_records_not_served, live_records_served,
)
PROGRESS: tuple[StateCheck, ...] = (
    bootstrap_peers_dialed, fresh_network_forms, dialers_are_routed, peers_see_current_mode,
    public_candidates_confirmed, tables_hold_servers, provides_not_abandoned, nothing_stalls,
)


def _tag(check: Callable[..., list[str]], details: list[str]) -> list[Violation]:
    rid = requirements_of(check)[0]
    return [Violation(rid, d) for d in details]


def check_state(world: World, policy: Policy) -> list[Violation]:
    return [v for c in INVARIANTS for v in _tag(c, c(world, policy))]


def check_step(pre: World, action: Action, post: World, policy: Policy) -> list[Violation]:
    return [v for c in STEP_CHECKS for v in _tag(c, c(pre, action, post, policy))]


def check_quiescent(world: World, policy: Policy) -> list[Violation]:
    return [v for c in PROGRESS for v in _tag(c, c(world, policy))]


_ = closest
