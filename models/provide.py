"""Provide and provider records: ADD_PROVIDER, GET_PROVIDERS, expiry, republish and retry.

PROV-01..08 live here, with ADDR-07 (what address a record carries) and BOOT-05 (what happens
to a provide that cannot run yet).
"""

from __future__ import annotations

from kadspec.models.config import Reach
from kadspec.models.network import send
from kadspec.models.policy import Policy, Retry
from kadspec.models.requirements_registry import requirement
from kadspec.models.routing import closest_known, mark_failed
from kadspec.models.state import (
    Kind,
    Message,
    Outcome,
    Phase,
    ProvideState,
    Reason,
    Record,
    World,
    replace,
)


def get(world: World, node: int, key: int) -> ProvideState:
    return world.nodes[node].provides[key]


def put(world: World, node: int, key: int, **changes: object) -> World:
    state = world.nodes[node]
    provides = list(state.provides)
    provides[key] = replace(provides[key], **changes)
    return world.with_node(node, replace(state, provides=tuple(provides)))


def store(world: World, holder: int, key: int, provider: int) -> World:
    """Store (or refresh) a provider record at ``holder``; records live on disk."""
    state = world.nodes[holder]
    expires = world.clock + world.config.timing.record_ttl
    kept = frozenset(r for r in state.records if (r.key, r.provider) != (key, provider))
    records = kept | {Record(key=key, provider=provider, expires=expires)}
    return world.with_node(holder, replace(state, records=records))


@requirement("ADDR-07")
def has_announceable_address(world: World, node: int) -> bool:
    """A public listen address or a confirmed external address."""
    return world.config.nodes[node].reach is Reach.PUBLIC or world.nodes[node].confirmed


def _carries_addresses(world: World, policy: Policy, node: int) -> bool:
    if policy.provide_with_listen_addresses:
        return has_announceable_address(world, node)
    return world.nodes[node].confirmed  # rust: only confirmed external addresses go out


@requirement("PROV-01", "BOOT-05")
def user_provide(world: World, policy: Policy, node: int, key: int) -> World:
    """The user asks ``node`` to provide key number ``key``: store locally first, then announce."""
    world = store(world, node, key, node)
    base = world.config.timing.retry_base
    world = put(
        world,
        node,
        key,
        providing=True,
        phase=Phase.QUEUED,
        outcome=Outcome.NONE,
        reason=Reason.NONE,
        backoff=base,
        retry_at=None,
        attempts=0,
    )
    if policy.queue_provide_until_ready:
        return world  # lifecycle.react starts it once Ready (BOOT-05)
    return attempt(world, policy, node, key)


def may_start(world: World, policy: Policy, node: int) -> bool:
    """BOOT-05 / ADDR-07: the node is Ready and has an address worth announcing."""
    ready = world.ready(node, policy.ready_requires_self_lookup)
    return ready and _may_announce(world, policy, node)


def _may_announce(world: World, policy: Policy, node: int) -> bool:
    return has_announceable_address(world, node) or not policy.provide_with_listen_addresses


def waiting(state: ProvideState) -> bool:
    """Queued for Ready or an address (not for a retry timer)."""
    return state.phase is Phase.QUEUED and state.retry_at is None


@requirement("BOOT-05", "ADDR-07")
def report_waiting(world: World, policy: Policy, node: int) -> World:
    """Tell the callers of provides that cannot start why, and keep them queued (BOOT-05).

    Called at each refresh and whenever a Ready node has waiting provides. A node that is not
    Ready reports not-ready (at its refresh: the bound is one refresh interval); a Ready node
    with no address it may announce reports no-address at once. An ADD_PROVIDER must carry
    the provider's addresses (IPFS kad-dht spec; ADDR-07) and the model has no relayed ones,
    so a NAT-ed client in automatic mode, which the spec allows to provide ("DHT Clients MAY
    Provide"), cannot announce anything useful: failing with a reason is its explicit
    outcome, and the provide starts by itself once the node has an address.
    """
    if not policy.report_waiting_provides:
        return world  # the mutant: waits silently, maybe forever (BOOT-05)
    if not world.ready(node, policy.ready_requires_self_lookup):
        reason = Reason.NOT_READY
    elif not _may_announce(world, policy, node):
        reason = Reason.NO_ADDRESS
    else:
        return world  # it can start: lifecycle.react starts it
    for key, state in enumerate(world.nodes[node].provides):
        if waiting(state) and (state.outcome, state.reason) != (Outcome.FAILED, reason):
            world = put(world, node, key, outcome=Outcome.FAILED, reason=reason)
    return world


def attempt(world: World, policy: Policy, node: int, key: int) -> World:
    """Run GetClosestPeers for the key; an empty routing table fails at once."""
    from kadspec.models import lifecycle  # the lookup's end is dispatched there

    state = get(world, node, key)
    world = put(world, node, key, phase=Phase.LOOKUP, retry_at=None, attempts=state.attempts + 1)
    return lifecycle.start_lookup(world, policy, node, lifecycle.Purpose.PROVIDE, key)


@requirement("PROV-02", "PROV-06", "BOOT-05")
def fail(world: World, policy: Policy, node: int, key: int, reason: Reason) -> World:
    """The attempt failed (no peers, or no ADD_PROVIDER delivered): report it with its reason
    and retry after a backoff (PROV-06)."""
    state = get(world, node, key)
    timing = world.config.timing
    if policy.retry is Retry.DROP_ERROR:
        # go-quai #1802: the error is discarded, nothing is retried, the caller is told nothing.
        return put(world, node, key, phase=Phase.IDLE, pending=(), acked=frozenset())
    if policy.retry is Retry.FIXED_THEN_GIVE_UP:
        if state.attempts >= policy.give_up_after:
            return put(
                world,
                node,
                key,
                phase=Phase.IDLE,
                outcome=Outcome.FAILED,
                reason=reason,
                retry_at=None,
                pending=(),
                acked=frozenset(),
            )
        return put(
            world,
            node,
            key,
            phase=Phase.QUEUED,
            outcome=Outcome.FAILED,
            reason=reason,
            retry_at=world.clock + timing.retry_base,
            pending=(),
            acked=frozenset(),
        )
    backoff = max(state.backoff, timing.retry_base)
    return put(
        world,
        node,
        key,
        phase=Phase.QUEUED,
        outcome=Outcome.FAILED,
        reason=reason,
        retry_at=world.clock + backoff,
        backoff=min(2 * backoff, timing.retry_cap),
        pending=(),
        acked=frozenset(),
    )


@requirement("PROV-01", "PROV-08", "ADDR-07")
def announce(world: World, policy: Policy, node: int, key: int, peers: tuple[int, ...]) -> World:
    """Send ADD_PROVIDER to the closest peers GetClosestPeers returned, without a dial: they
    answered over a live connection (abstraction (b) in ``kadspec.models``)."""
    if not peers:
        return fail(world, policy, node, key, Reason.NO_PEERS)
    public = _carries_addresses(world, policy, node)
    deadline = (
        world.clock + world.config.timing.request_deadline if policy.per_request_deadline else None
    )
    for peer in peers:
        world = send(
            world, Message(Kind.ADD_PROVIDER, node, peer, key=key, provider=node, public=public)
        )
    return put(
        world,
        node,
        key,
        phase=Phase.SENDING,
        pending=tuple((p, deadline) for p in peers),
        acked=frozenset(),
    )


@requirement("PROV-02", "PROV-05")
def conclude(world: World, policy: Policy, node: int, key: int) -> World:
    """Every ADD_PROVIDER was delivered or failed: report the outcome with its count."""
    state = get(world, node, key)
    if not state.acked and policy.fail_provide_without_acks:
        return fail(world, policy, node, key, Reason.NONE_DELIVERED)
    timing = world.config.timing
    world = store(world, node, key, node)
    return put(
        world,
        node,
        key,
        phase=Phase.IDLE,
        outcome=Outcome.SUCCEEDED,
        reason=Reason.NONE,
        delivered_to=len(state.acked),
        published_at=world.clock,
        republish_at=world.clock + timing.republish_interval if policy.republish else None,
        backoff=timing.retry_base,
        retry_at=None,
        pending=(),
    )


def settle_pending(
    world: World, policy: Policy, node: int, key: int, peer: int, delivered: bool
) -> World:
    """One ADD_PROVIDER to ``peer`` was delivered, refused or timed out."""
    state = get(world, node, key)
    if state.phase is not Phase.SENDING or peer not in {p for p, _ in state.pending}:
        return world
    pending = tuple(e for e in state.pending if e[0] != peer)
    acked = state.acked | {peer} if delivered else state.acked
    world = put(world, node, key, pending=pending, acked=acked)
    if not delivered:
        world = mark_failed(world, policy, node, peer)
    if not pending:
        world = conclude(world, policy, node, key)
    return world


@requirement("PROV-03")
def on_add_provider(world: World, policy: Policy, node: int, message: Message) -> World:
    """A server receives ADD_PROVIDER; the sender's stream write completes."""
    own = message.provider == message.src
    if (own and message.public) or not policy.validate_provider_records:
        world = store(world, node, message.key, message.provider)
    if not own:
        return world  # a forgery: the forger's own announcement to this holder is still pending
    return settle_pending(world, policy, message.src, message.key, node, delivered=True)


@requirement("PROV-04", "PROV-07")
def providers_to_serve(world: World, policy: Policy, node: int, key: int) -> frozenset[int]:
    """GET_PROVIDERS answer: stored records for the key that have not expired."""
    return frozenset(
        r.provider
        for r in world.nodes[node].records
        if r.key == key and (r.expires > world.clock or not policy.check_expiry_when_serving)
    )


def on_get_providers(world: World, policy: Policy, node: int, message: Message) -> World:
    reply = Message(
        Kind.GET_PROVIDERS_REPLY,
        node,
        message.src,
        target=message.target,
        key=message.key,
        providers=providers_to_serve(world, policy, node, message.key),
        closer=closest_known(world, node, message.target, message.src, policy),
    )
    return send(world, reply)
