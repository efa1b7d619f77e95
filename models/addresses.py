"""Address announcement: identify, observed and confirmed addresses, client/server mode.

ADDR-01..06 live here. Identify tells a node a peer's protocols (is it a kad server?) and listen
addresses, and tells the receiver the address the peer observed for it (a candidate). Only a
dial-back confirms a candidate; in automatic mode a confirmed address makes a server.
"""

from __future__ import annotations

from kadspec.models.config import ModeSetting, Reach
from kadspec.models.network import identify, send, set_view, view
from kadspec.models.policy import Policy
from kadspec.models.requirements_registry import requirement
from kadspec.models.routing import remove, try_admit
from kadspec.models.state import Addr, Conn, Kind, Message, Proto, World, initial_mode, replace


@requirement("ADDR-03", "ADDR-06", "ADDR-02", "RT-07")
def on_identify(world: World, policy: Policy, node: int, message: Message) -> World:
    """Identify (or identify push) from ``message.src`` reaches ``node``."""
    peer = message.src
    if view(world, node, peer).conn is Conn.NONE and policy.discard_identify_after_close:
        return world  # RT-07: the connection it describes is gone
    changes: dict[str, object] = {"proto": Proto.SERVER if message.server else Proto.CLIENT}
    if message.public and policy.feed_identify_addresses:
        changes["addr"] = Addr.DIALABLE
    world = set_view(world, node, peer, **changes)
    if message.kind is Kind.IDENTIFY:
        # The peer tells us the address it saw us at: a candidate, nothing more (ADDR-03).
        state = world.nodes[node]
        world = world.with_node(node, replace(state, candidate=True))
        if not policy.confirm_needs_dial_back:
            world = confirm(world, policy, node)
    if message.server:
        return try_admit(world, policy, node, peer)
    if not policy.remove_peers_turned_client:
        return world  # the RT-01 mutant: the client stays in the table
    return remove(world, node, peer)  # ADDR-02: a peer that became a client leaves the table


@requirement("ADDR-03", "ADDR-05")
def dial_back(world: World, policy: Policy, node: int) -> World:
    """AutoNAT: a peer dials the candidate back; only a public node can be reached."""
    state = replace(world.nodes[node], dial_back_tried=True)
    world = world.with_node(node, state)
    if world.config.nodes[node].reach is Reach.PUBLIC:
        world = confirm(world, policy, node)
    return world


def confirm(world: World, policy: Policy, node: int) -> World:
    state = replace(world.nodes[node], confirmed=True)
    return update_mode(world.with_node(node, state), policy, node)


@requirement("ADDR-01", "ADDR-02", "ADDR-04")
def update_mode(world: World, policy: Policy, node: int) -> World:
    """Recompute the mode; a change is pushed to every connected peer (identify push)."""
    state = world.nodes[node]
    confirmed = state.confirmed and policy.auto_mode_follows_confirmation
    mode = initial_mode(state.setting, confirmed)
    if mode == state.mode:
        return world
    world = world.with_node(node, replace(state, mode=mode))
    if policy.push_mode_changes:
        for peer, peer_view in enumerate(state.peers):
            if peer_view.conn is not Conn.NONE:
                world = send(world, identify(world, node, peer, push=True))
    return world


def set_mode(world: World, policy: Policy, node: int, setting: ModeSetting) -> World:
    """The operator pins a mode, or restores automatic mode."""
    world = world.with_node(node, replace(world.nodes[node], setting=setting))
    return update_mode(world, policy, node)


def on_connected_fail_open(world: World, policy: Policy, node: int, peer: int) -> World:
    """py-libp2p's fail-open admission on connect, while protocols are still unknown (RT-03)."""
    if policy.admit_unknown_protocols and view(world, node, peer).proto is Proto.UNKNOWN:
        return try_admit(world, policy, node, peer, evidence=False)
    return world
