"""Connections and messages: the primitives every concept module builds its effects from."""

from __future__ import annotations

from kadspec.models.state import Addr, Conn, Kind, Message, PeerView, World, replace


def view(world: World, node: int, peer: int) -> PeerView:
    return world.nodes[node].peers[peer]


def set_view(world: World, node: int, peer: int, **changes: object) -> World:
    """Replace fields of ``node``'s view of ``peer``."""
    state = world.nodes[node]
    peers = list(state.peers)
    peers[peer] = replace(peers[peer], **changes)
    return world.with_node(node, replace(state, peers=tuple(peers)))


def send(world: World, message: Message) -> World:
    """Append ``message`` to its channel."""
    index = message.src * len(world.nodes) + message.dst
    network = list(world.network)
    network[index] = (*network[index], message)
    return replace(world, network=tuple(network))


def pop(world: World, src: int, dst: int) -> tuple[World, Message]:
    """Take the oldest message off the channel from ``src`` to ``dst``."""
    index = src * len(world.nodes) + dst
    network = list(world.network)
    head, *rest = network[index]
    network[index] = tuple(rest)
    return replace(world, network=tuple(network)), head


def drop_channels(world: World, node: int) -> World:
    """Everything in flight to or from ``node`` dies with its process."""
    count = len(world.nodes)
    network = tuple(
        () if index // count == node or index % count == node else channel
        for index, channel in enumerate(world.network)
    )
    return replace(world, network=network)


def identify(world: World, src: int, dst: int, *, push: bool) -> Message:
    """What ``src`` tells ``dst`` about itself in identify: its protocols and listen addresses."""
    node = world.nodes[src]
    reachable = world.config.nodes[src].reach == 0  # Reach.PUBLIC: listen addresses dialable
    return Message(
        Kind.IDENTIFY_PUSH if push else Kind.IDENTIFY,
        src,
        dst,
        server=bool(node.mode),
        public=reachable,
    )


def can_dial(world: World, node: int, peer: int) -> bool:
    """A dial from ``node`` to ``peer`` succeeds: the peer runs and is publicly reachable."""
    return world.nodes[peer].up and world.config.nodes[peer].reach == 0


def connect(world: World, dialer: int, listener: int) -> World:
    """Open a connection; both sides start identify at once."""
    world = set_view(world, dialer, listener, conn=Conn.OUTBOUND, addr=Addr.DIALABLE)
    remote = view(world, listener, dialer)
    # The listener sees the dialer's ephemeral remote address only (RT-04).
    addr = remote.addr if remote.addr is Addr.DIALABLE else Addr.REMOTE
    world = set_view(world, listener, dialer, conn=Conn.INBOUND, addr=addr)
    world = send(world, identify(world, dialer, listener, push=False))
    return send(world, identify(world, listener, dialer, push=False))


def disconnect(world: World, a: int, b: int) -> World:
    """Close the connection between a and b. Messages already in flight stay in flight: the
    host may still hand a late identify to the DHT after the close (go-libp2p-kad-dht #358); a
    kad message is dropped on arrival unless the pair reconnected (abstraction (a) in
    ``kadspec.models``)."""
    world = set_view(world, a, b, conn=Conn.NONE)
    return set_view(world, b, a, conn=Conn.NONE)
