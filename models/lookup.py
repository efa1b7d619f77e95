"""Iterative lookups: FIND_NODE / GET_PROVIDERS with at most alpha requests in flight.

Lookup functions return the world and, when the lookup just ended, the finished Lookup; what an
ended lookup means (Ready, ADD_PROVIDER, found providers) is decided by ``lifecycle``.
"""

from __future__ import annotations

from kadspec.models.metric import closest
from kadspec.models.network import can_dial, connect, send, set_view, view
from kadspec.models.policy import Policy
from kadspec.models.requirements_registry import requirement
from kadspec.models.routing import admit_named_peer, mark_failed, routable, try_admit
from kadspec.models.state import Addr, Kind, Lookup, Message, NodeState, Purpose, World, replace

Finished = Lookup | None


def with_lookup(world: World, node: int, index: int, lookup: Lookup | None) -> World:
    """The world with the node's lookup at ``index`` replaced (None: removed)."""
    lookups = list(world.nodes[node].lookups)
    if lookup is None:
        del lookups[index]
    else:
        lookups[index] = lookup
    return world.with_node(node, replace(world.nodes[node], lookups=tuple(lookups)))


def drop(world: World, node: int, index: int) -> World:
    """Abandon a lookup: its replies still on the way are then late (answer nothing)."""
    return with_lookup(world, node, index, None)


def inflight_peers(lookup: Lookup) -> frozenset[int]:
    return frozenset(p for p, _ in lookup.inflight)


def next_candidate(world: World, lookup: Lookup) -> int | None:
    """The closest peer seen but not yet asked (the spec queries closest first)."""
    asked = lookup.answered | lookup.failed | inflight_peers(lookup)
    pool = lookup.seen - asked
    if not pool:
        return None
    return closest(lookup.target, pool, world.config.ids, 1)[0]


@requirement("FIND-04")
def is_finished(world: World, lookup: Lookup) -> bool:
    """The k closest live peers seen have all answered, or nothing is left to ask or await."""
    k = world.config.timing.k
    live = lookup.seen - lookup.failed
    top = closest(lookup.target, live, world.config.ids, k)
    if top and all(p in lookup.answered for p in top):
        return True
    return next_candidate(world, lookup) is None and not lookup.inflight


def find_index(world: World, node: int, purpose: Purpose, key: int) -> int | None:
    for index, lookup in enumerate(world.nodes[node].lookups):
        if lookup.purpose is purpose and lookup.key == key:
            return index
    return None


@requirement("BOOT-03")
def refresh_target(world: World, node: int, bucket: int) -> int:
    """The ID a refresh of ``bucket`` looks up: one that shares exactly ``bucket`` leading bits
    with the node's ID (``Config.refresh_target``: its own with that bit flipped)."""
    return world.config.refresh_target(node, bucket)


def seeds(state: NodeState) -> frozenset[int]:
    """The peers a lookup starts from: the table's, but those marked failed (RT-06)."""
    return frozenset(p for p in state.table() if not state.peers[p].failed)


@requirement("BOOT-04")
def start(
    world: World, policy: Policy, node: int, purpose: Purpose, key: int
) -> tuple[World, Finished]:
    """Start a lookup seeded from the routing table; with no candidate it fails at once."""
    state = world.nodes[node]
    if purpose is Purpose.SELF:
        target = world.config.ids[node]
    elif purpose is Purpose.REFRESH:
        target = refresh_target(world, node, key)
    else:
        target = world.config.keys[key]
    seen = seeds(state)
    lookup = Lookup(purpose=purpose, key=key, target=target, seen=seen)
    if not seen and policy.empty_lookup_fails_fast:
        return world, lookup  # ended at once: 'no peers in table'
    lookups = (*state.lookups, lookup)
    return world.with_node(node, replace(state, lookups=lookups)), None


def can_query(world: World, policy: Policy, node: int, index: int) -> bool:
    lookup = world.nodes[node].lookups[index]
    if policy.respect_alpha and len(lookup.inflight) >= world.config.timing.alpha:
        return False
    return next_candidate(world, lookup) is not None and not is_finished(world, lookup)


@requirement("FIND-03", "FIND-05", "PROV-08")
def query(world: World, policy: Policy, node: int, index: int) -> tuple[World, Finished]:
    """Ask the closest unasked candidate, dialing it first if needed."""
    lookup = world.nodes[node].lookups[index]
    peer = next_candidate(world, lookup)
    assert peer is not None, "query() called without a candidate"
    if not world.connected(node, peer):
        if routable(policy, view(world, node, peer).addr) and can_dial(world, node, peer):
            world = connect(world, node, peer)
        else:
            world = mark_failed(world, policy, node, peer)
            return _settle(world, node, index, replace(lookup, failed=lookup.failed | {peer}))
    kind = Kind.FIND_NODE if lookup.purpose is not Purpose.FIND_PROVIDERS else Kind.GET_PROVIDERS
    # FIND_NODE's receiver reads only the target; a refresh's key is its bucket, not a key index
    key = 0 if lookup.purpose is Purpose.REFRESH else lookup.key
    world = send(world, Message(kind, node, peer, target=lookup.target, key=key))
    deadline = (
        world.clock + world.config.timing.request_deadline if policy.per_request_deadline else None
    )
    inflight = tuple(sorted((*lookup.inflight, (peer, deadline)), key=lambda e: e[0]))
    return _settle(world, node, index, replace(lookup, inflight=inflight))


def _settle(world: World, node: int, index: int, lookup: Lookup) -> tuple[World, Finished]:
    if is_finished(world, lookup):
        return with_lookup(world, node, index, None), lookup
    return with_lookup(world, node, index, lookup), None


def _matching(world: World, node: int, message: Message, peer: int) -> int | None:
    purpose_kinds = {
        Kind.FIND_NODE_REPLY: (Purpose.SELF, Purpose.PROVIDE, Purpose.REFRESH),
        Kind.GET_PROVIDERS_REPLY: (Purpose.FIND_PROVIDERS,),
    }
    for index, lookup in enumerate(world.nodes[node].lookups):
        if (
            lookup.purpose in purpose_kinds.get(message.kind, ())
            and lookup.target == message.target
            and peer in inflight_peers(lookup)
        ):
            return index
    return None


@requirement("FIND-05")
def on_reply(world: World, policy: Policy, node: int, message: Message) -> tuple[World, Finished]:
    """A reply: closer peers become candidates, never table entries; the responder, which has
    just shown it serves kad, is (re)admitted if identify vouched for it (go validPeerFound)."""
    index = _matching(world, node, message, message.src)
    if index is None:
        return world, None  # late reply for a request that already timed out
    lookup = world.nodes[node].lookups[index]
    closer = message.closer - {node}
    for peer in closer:
        if view(world, node, peer).addr is not Addr.DIALABLE:  # closerPeers carry addresses
            world = set_view(world, node, peer, addr=Addr.DIALABLE)
        if policy.admit_closer_peers:
            world = admit_named_peer(world, node, peer)
    world = set_view(world, node, message.src, failed=False)
    world = try_admit(world, policy, node, message.src)
    lookup = replace(
        lookup,
        inflight=tuple(e for e in lookup.inflight if e[0] != message.src),
        answered=lookup.answered | {message.src},
        seen=lookup.seen | closer,
        providers=lookup.providers | message.providers,
    )
    return _settle(world, node, index, lookup)


def on_failure(
    world: World, policy: Policy, node: int, index: int, peer: int
) -> tuple[World, Finished]:
    """A request to ``peer`` was refused or missed its deadline."""
    lookup = world.nodes[node].lookups[index]
    world = mark_failed(world, policy, node, peer)
    lookup = replace(
        lookup,
        inflight=tuple(e for e in lookup.inflight if e[0] != peer),
        failed=lookup.failed | {peer},
    )
    return _settle(world, node, index, lookup)


def result(world: World, lookup: Lookup) -> tuple[int, ...]:
    """The k closest peers that answered: what GetClosestPeers returns."""
    return closest(lookup.target, lookup.answered, world.config.ids, world.config.timing.k)
