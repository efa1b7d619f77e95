"""The k-bucket routing table: admission, eviction, removal and closest-peer answers.

RT-01..RT-07 and BOOT-06 live here: which evidence admits a peer, which address backs an entry,
what a full bucket does and when a peer leaves.
"""

from __future__ import annotations

from kadspec.models.metric import closest, common_prefix_length
from kadspec.models.network import set_view, view
from kadspec.models.policy import Policy
from kadspec.models.requirements_registry import requirement
from kadspec.models.state import Addr, Conn, Proto, World


def bucket_of(world: World, node: int, peer: int) -> int:
    ids = world.config.ids
    return common_prefix_length(ids[node], ids[peer], world.config.id_bits)


def bucket_members(world: World, node: int, bucket: int) -> list[int]:
    return [p for p in world.nodes[node].table() if bucket_of(world, node, p) == bucket]


def routable(policy: Policy, addr: Addr) -> bool:
    """RT-04: an entry needs a dialable address (listener-side remote addresses are not)."""
    return addr is Addr.DIALABLE or (policy.listener_address_dialable and addr is Addr.REMOTE)


@requirement("RT-02", "RT-03", "RT-04", "RT-05", "RT-07", "BOOT-06")
def try_admit(
    world: World, policy: Policy, node: int, peer: int, *, evidence: bool = True
) -> World:
    """Admit ``peer`` to ``node``'s table if the rules allow it; otherwise leave the world alone.

    ``evidence`` is False for the mutants that admit without identify's word (inbound request,
    unknown protocols); with the spec policy every caller has it.
    """
    if peer == node:
        return world
    current = view(world, node, peer)
    if current.in_table:
        return world
    if evidence and current.proto is not Proto.SERVER:
        return world
    if not routable(policy, current.addr):
        return world
    k = world.config.timing.k
    members = bucket_members(world, node, bucket_of(world, node, peer))
    full = len(members) >= k and policy.bucket_size_enforced
    stale = [p for p in members if view(world, node, p).failed] if full else []
    if full and not stale:
        # RT-05: a full bucket keeps its responsive entries, and costs no probe (go's
        # peerFound asks UsefulNewPeer before lookupCheck)
        return world
    table_size = len(world.nodes[node].table())
    if (not policy.probe_only_when_table_full or table_size >= k) and not _probe_answers(
        world, peer, node
    ):
        return world
    if stale:
        world = set_view(world, node, stale[0], in_table=False)
    return set_view(world, node, peer, in_table=True, failed=False)


def _probe_answers(world: World, candidate: int, asker: int) -> bool:
    """The admission probe (go's lookupCheck): would ``candidate`` return a closer peer?

    Abstracted as a look at the candidate's table instead of a FIND_NODE round trip; in a
    brand-new network the answer is always no, which is the deadlock BOOT-06 forbids.
    """
    state = world.nodes[candidate]
    return state.up and any(p != asker for p in state.table())


def remove(world: World, node: int, peer: int) -> World:
    if not view(world, node, peer).in_table:
        return world
    return set_view(world, node, peer, in_table=False)


@requirement("RT-06")
def mark_failed(world: World, policy: Policy, node: int, peer: int) -> World:
    """A dial or request to ``peer`` failed: note it and (spec) drop the peer from the table.

    A removal that leaves the table below k re-evaluates the other connected peers at once
    (``recover_low_table``), as go does: its routing table's PeerRemoved hook calls
    fixRTIfNeeded, which wakes fixLowPeers. The peer that just failed is not among them: go
    re-adds it only after a fresh FIND_NODE probe answers (lookupCheck), the sign of life it
    just failed to give; here it waits for the next removal or refresh."""
    in_table = view(world, node, peer).in_table
    world = set_view(world, node, peer, failed=True)
    if policy.remove_failed_peers and in_table:
        world = remove(world, node, peer)
        world = recover_low_table(world, policy, node, skip=peer)
    return world


@requirement("BOOT-06", "ADDR-06", "RT-07")
def recover_low_table(world: World, policy: Policy, node: int, skip: int = -1) -> World:
    """A table below k re-evaluates every connected peer (go's fixLowPeers), at each refresh
    and after each removal (``mark_failed``, which passes the peer it removed as ``skip``).

    A peer dropped after a request that failed or timed out on a live connection is still a
    connected server: identify's word stands, so ``try_admit`` applies the usual evidence rules.
    Its failed mark does not keep it out: a request that timed out on a live connection is no
    failed dial (RT-07), and go's fixLowPeers re-adds every connected kad server when the table
    runs low, whatever failed before (go-libp2p-kad-dht PR #420 "try to re-add existing peers
    when the routing table is empty"). Without this a node whose every connected peer missed
    one deadline stays isolated. After a removal the refill stops at k, so that no admission
    probe runs in the middle of another step.
    """
    k = world.config.timing.k
    if len(world.nodes[node].table()) >= k:
        return world
    for peer, peer_view in enumerate(world.nodes[node].peers):
        if skip >= 0 and len(world.nodes[node].table()) >= k:
            break
        if peer_view.conn is not Conn.NONE and peer != skip:
            world = try_admit(world, policy, node, peer)
    return world


@requirement("FIND-01", "RT-06")
def closest_known(
    world: World, node: int, target: int, exclude: int, policy: Policy | None = None
) -> frozenset[int]:
    """FIND_NODE answer: the k table peers closest to ``target``, minus the asker and failed
    peers (with ``policy.reply_with_closest`` off: the k farthest, the FIND-01 mutant)."""
    state = world.nodes[node]
    candidates = [p for p in state.table() if p != exclude and not state.peers[p].failed]
    ids, k = world.config.ids, world.config.timing.k
    if policy is not None and not policy.reply_with_closest:
        return frozenset(sorted(candidates, key=lambda p: ids[p] ^ target, reverse=True)[:k])
    return frozenset(closest(target, candidates, ids, k))


@requirement("FIND-05")
def admit_named_peer(world: World, node: int, peer: int) -> World:
    """The FIND-05 mutant (py-libp2p): a peer a reply named enters the table at once, with no
    evidence and no probe, when its bucket has room."""
    if peer == node or view(world, node, peer).in_table:
        return world
    if len(bucket_members(world, node, bucket_of(world, node, peer))) >= world.config.timing.k:
        return world
    return set_view(world, node, peer, in_table=True)
