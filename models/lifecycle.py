"""The node lifecycle: start, bootstrap, refresh, crash, timers, and what an ended lookup means.

This module ties the concept modules together. ``react`` applies the consequences that follow
from a state rather than from one event (the first routing-table peer starts the self-lookup;
Ready starts queued provides), so every action ends in a state where they have been taken.
"""

from __future__ import annotations

from collections.abc import Iterable

from kadspec.models import lookup as lookups
from kadspec.models import provide
from kadspec.models.network import can_dial, connect, disconnect, drop_channels
from kadspec.models.policy import Policy
from kadspec.models.requirements_registry import requirement
from kadspec.models.routing import bucket_of, mark_failed, recover_low_table
from kadspec.models.state import (
    NO_FIND,
    FindState,
    Lookup,
    NodeState,
    Outcome,
    PeerView,
    Phase,
    ProvideState,
    Purpose,
    Reason,
    World,
    initial_mode,
    replace,
)

__all__ = ["Purpose", "start_lookup"]


def start_lookup(world: World, policy: Policy, node: int, purpose: Purpose, key: int) -> World:
    world, finished = lookups.start(world, policy, node, purpose, key)
    return finish(world, policy, node, finished)


def finish(world: World, policy: Policy, node: int, finished: Lookup | None) -> World:
    """Act on a lookup that just ended (or do nothing when ``finished`` is None)."""
    if finished is None:
        return world
    if finished.purpose is Purpose.SELF:
        if finished.answered:
            world = world.with_node(node, replace(world.nodes[node], self_lookup_done=True))
        if world.nodes[node].self_lookup_done:
            world = refresh_buckets(world, policy, node, 0)
        return world
    if finished.purpose is Purpose.REFRESH:
        return refresh_buckets(world, policy, node, finished.key + 1)
    if finished.purpose is Purpose.PROVIDE:
        if provide.get(world, node, finished.key).phase is not Phase.LOOKUP:
            return world
        return provide.announce(world, policy, node, finished.key, lookups.result(world, finished))
    # A find ends: the providers with a count (an empty answer counts), or no peer answered.
    if finished.answered:
        return report_find(world, node, finished.key, Outcome.SUCCEEDED, finished.providers)
    return report_find(world, node, finished.key, Outcome.FAILED, frozenset(), Reason.NO_PEERS)


@requirement("BOOT-05")
def report_find(
    world: World,
    node: int,
    key: int,
    outcome: Outcome,
    providers: frozenset[int],
    reason: Reason = Reason.NONE,
) -> World:
    """Answer the caller of find providers: the providers found, or a failure with its reason."""
    state = world.nodes[node]
    found = list(state.found)
    found[key] = providers
    outcomes = list(state.find_outcomes or (NO_FIND,) * len(found))
    outcomes[key] = FindState(outcome=outcome, reason=reason, at=world.clock)
    return world.with_node(node, replace(state, found=tuple(found), find_outcomes=tuple(outcomes)))


@requirement("BOOT-01", "BOOT-03")
def start(world: World, policy: Policy, node: int) -> World:
    """Start (or restart) a node: listen, arm refresh, queue the provides kept on disk."""
    old = world.nodes[node]
    timing = world.config.timing
    provides = tuple(
        ProvideState(providing=True, phase=Phase.QUEUED, backoff=timing.retry_base)
        if p.providing
        else ProvideState()
        for p in old.provides
    )
    state = NodeState(
        up=True,
        mode=initial_mode(old.setting, False),
        setting=old.setting,
        peers=(PeerView(),) * len(old.peers),
        refresh_at=world.clock + timing.refresh_interval,
        provides=provides,
        records=old.records,
        found=(None,) * len(old.found),
        find_outcomes=(NO_FIND,) * len(old.found),
    )
    return world.with_node(node, state)


def crash(world: World, node: int) -> World:
    """The process dies: connections close, memory is lost, the disk (records, keys) stays."""
    world = drop_channels(world, node)
    for peer in range(len(world.nodes)):
        if world.connected(node, peer):
            world = disconnect(world, node, peer)
    old = world.nodes[node]
    state = NodeState(
        up=False,
        mode=initial_mode(old.setting, False),
        setting=old.setting,
        peers=(PeerView(),) * len(old.peers),
        provides=tuple(ProvideState(providing=p.providing) for p in old.provides),
        records=old.records,
        found=(None,) * len(old.found),
        find_outcomes=(NO_FIND,) * len(old.found),
    )
    return world.with_node(node, state)


def bootstrap_candidates(world: World, node: int) -> tuple[int, ...]:
    """BOOT-01: bootstrap peers still to dial (until two are connected or all were tried)."""
    state = world.nodes[node]
    configured = world.config.nodes[node].bootstrap
    connected = sum(1 for p in configured if world.connected(node, p))
    if not state.up or connected >= 2:
        return ()
    return tuple(p for p in configured if p not in state.boot_tried)


def dial_bootstrap(world: World, policy: Policy, node: int, peer: int) -> World:
    state = world.nodes[node]
    world = world.with_node(node, replace(state, boot_tried=state.boot_tried | {peer}))
    if world.connected(node, peer):
        return world
    if can_dial(world, node, peer):
        return connect(world, node, peer)
    return mark_failed(world, policy, node, peer)


@requirement("BOOT-02", "BOOT-03", "BOOT-04", "BOOT-05")
def refresh(world: World, policy: Policy, node: int) -> World:
    """Periodic refresh: re-dial bootstrap peers if the table is empty, then look up self.

    Provides still waiting for Ready are told so (not-ready) and stay queued: a provide's
    caller hears within one refresh interval (BOOT-05, ``Timing.outcome_bound``)."""
    world = provide.report_waiting(world, policy, node)
    world = recover_low_table(world, policy, node)
    state = world.nodes[node]
    empty = not state.table()
    rearm = not empty or policy.rearm_refresh_when_empty
    next_refresh = world.clock + world.config.timing.refresh_interval if rearm else None
    redial = empty and policy.redial_bootstrap_when_empty
    state = replace(
        state, refresh_at=next_refresh, boot_tried=frozenset() if redial else state.boot_tried
    )
    world = world.with_node(node, state)
    if lookups.find_index(world, node, Purpose.SELF, 0) is None:
        world = start_lookup(world, policy, node, Purpose.SELF, 0)
    return world


#: the deepest bucket a refresh looks up (go's kbucket maxCplForRefresh: its table of IDs with a
#: chosen prefix covers 16 bits)
MAX_REFRESH_BUCKET = 15


def next_refresh_bucket(world: World, node: int, first: int) -> int | None:
    """The first bucket from ``first`` on that a refresh run looks up: an empty one no deeper
    than the deepest non-empty bucket (nor than 15); None when none is left or the table is
    empty."""
    buckets = {bucket_of(world, node, p) for p in world.nodes[node].table()}
    if not buckets:
        return None
    for bucket in range(first, min(max(buckets), MAX_REFRESH_BUCKET + 1)):
        if bucket not in buckets:
            return bucket
    return None


@requirement("BOOT-03")
def refresh_buckets(world: World, policy: Policy, node: int, first: int) -> World:
    """Refresh the next empty bucket of this run: one lookup at a time, after the self-lookup
    (a run that starts while the last one still looks a bucket up starts over: ``first`` 0).

    The IPFS kad-dht spec ("Routing Table Refresh"): buckets that are not full "MUST be
    replenished with fresh, online peers ... by either adding recently connected peers or by
    executing a FIND_NODE ... with a randomly generated Peer ID matching the bucket. FIND_NODE
    requests should only be run for buckets up to the last non-empty bucket"; go's doRefresh
    looks up one ID per bucket up to common prefix length 15, in turn, after its self-lookup.
    The model looks up the buckets that hold no peer at all, the holes a lookup cannot route
    through; a bucket with a peer has a contact already, and the self-lookup covers the
    deepest ones. Looking up every bucket that is not full, as go does, made the exhaustive
    state space too large to explore (a three-node network: 35,522 states -> over 2 million),
    and is allowed, not required. Peers the lookup meets are admitted as in every lookup (its
    responders, once identify vouched for them).
    """
    if not policy.refresh_far_buckets:
        return world
    if first == 0:
        # A new run starts: a bucket lookup the last run left open gives way to it (the run
        # starts over from the farthest bucket), so one lookup at a time still holds.
        index = next(
            (i for i, lk in enumerate(world.nodes[node].lookups) if lk.purpose is Purpose.REFRESH),
            None,
        )
        if index is not None:
            world = lookups.drop(world, node, index)
    bucket = next_refresh_bucket(world, node, first)
    if bucket is None:
        return world
    return start_lookup(world, policy, node, Purpose.REFRESH, bucket)


def _due(deadline: int | None, now: int) -> bool:
    return deadline is not None and deadline <= now


def next_deadline(world: World) -> int | None:
    """The earliest armed timer of any running node, or None."""
    times = [t for t in map(node_deadline, world.nodes) if t is not None]
    return min(times) if times else None


def node_deadline(state: NodeState) -> int | None:
    """The earliest armed timer of one node, or None (a node that is down has none)."""
    if not state.up:
        return None
    times: list[int] = []
    if state.refresh_at is not None:
        times.append(state.refresh_at)
    for p in state.provides:
        times.extend(t for t in (p.retry_at, p.republish_at) if t is not None)
        times.extend(d for _, d in p.pending if d is not None)
    for lk in state.lookups:
        times.extend(d for _, d in lk.inflight if d is not None)
    return min(times) if times else None


@requirement("PROV-05", "PROV-06", "PROV-08")
def fire_timers(world: World, policy: Policy, nodes: Iterable[int] | None = None) -> World:
    """Fire every timer due at the current clock, node by node: deadlines, retries, refresh.

    ``nodes`` limits the firing to those nodes (trace validation fires the timers of the one
    node whose real timer fired); None fires every node's.
    """
    now = world.clock
    for node in range(len(world.nodes)) if nodes is None else nodes:
        if not world.nodes[node].up:
            continue
        # Per-request deadlines of lookups.
        index = 0
        while index < len(world.nodes[node].lookups):
            lk = world.nodes[node].lookups[index]
            late = [p for p, d in lk.inflight if _due(d, now)]
            if not late:
                index += 1
                continue
            world, finished = lookups.on_failure(world, policy, node, index, late[0])
            world = finish(world, policy, node, finished)
            index = 0
        for key in range(len(world.config.keys)):
            p = provide.get(world, node, key)
            for peer, deadline in p.pending:
                if _due(deadline, now):
                    world = provide.settle_pending(world, policy, node, key, peer, delivered=False)
            p = provide.get(world, node, key)
            if p.phase is Phase.QUEUED and _due(p.retry_at, now):
                world = provide.attempt(world, policy, node, key)
            elif p.phase is Phase.IDLE and _due(p.republish_at, now):
                world = provide.put(world, node, key, republish_at=None)
                world = provide.attempt(world, policy, node, key)
        if _due(world.nodes[node].refresh_at, now):
            world = refresh(world, policy, node)
    return world


@requirement("BOOT-02", "BOOT-05")
def react(world: World, policy: Policy) -> World:
    """Take the consequences that follow from the state itself, for every running node."""
    for node, state in enumerate(world.nodes):
        if not state.up:
            continue
        if (
            not state.self_lookup_done
            and state.table()
            and lookups.find_index(world, node, Purpose.SELF, 0) is None
        ):
            world = start_lookup(world, policy, node, Purpose.SELF, 0)
        # Cheapest test first: most nodes have no provide waiting to start.
        if not policy.queue_provide_until_ready or not any(map(provide.waiting, state.provides)):
            continue
        if provide.may_start(world, policy, node):
            for key, p in enumerate(world.nodes[node].provides):
                if provide.waiting(p):
                    world = provide.attempt(world, policy, node, key)
        elif world.ready(node, policy.ready_requires_self_lookup):
            world = provide.report_waiting(world, policy, node)  # Ready, no address: say so
    return world
