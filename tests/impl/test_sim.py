"""The simulated network: 20 cores join, provide at start-up, and find every key."""

from __future__ import annotations

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import MINUTE, SECOND, BootstrapPeer, ModeSetting
from kadspec.impl.sim import SimNetwork, SimNode, sim_addr, sim_peer_id


def build(size: int, seed: int) -> SimNetwork:
    """Node 0 and 1 are the bootstrap peers of everyone; every node is a server."""
    net = SimNetwork(seed=seed)
    boot = (
        BootstrapPeer(net.add_node().peer_id, (sim_addr(0),)),
        BootstrapPeer(net.add_node(bootstrap=()).peer_id, (sim_addr(1),)),
    )
    for _ in range(size - 2):
        net.add_node(bootstrap=boot)
    return net


def provides(node: SimNode) -> list[fx.ProvideOutcome]:
    return [o for o in node.outcomes if isinstance(o, fx.ProvideOutcome)]


def finds(node: SimNode) -> list[fx.FindOutcome]:
    return [o for o in node.outcomes if isinstance(o, fx.FindOutcome)]


def test_twenty_nodes_provide_at_start_up_and_every_key_is_found_from_every_node() -> None:
    net = build(20, seed=7)
    keys = [f"key-{n.index}".encode() for n in net.nodes]
    for node, key in zip(net.nodes, keys, strict=True):
        net.start_at(node, node.index * 50, provide=key)  # before any peer is known

    def all_provided() -> bool:
        return all(any(o.ok for o in provides(n)) for n in net.nodes)

    assert net.run(until=10 * MINUTE, done=all_provided), [
        (n.index, provides(n)) for n in net.nodes if not any(o.ok for o in provides(n))
    ]
    for node in net.nodes:
        for outcome in provides(node):
            # PROV-02: success only with a delivered store, failure only with a reason
            assert outcome.delivered >= 1 if outcome.ok else outcome.reason
    # the rust-libp2p seed bug: the bootstrap node routes to every joiner
    bootstrap = net.nodes[0].core.table
    assert {n.peer_id for n in net.nodes[1:]} <= {e.peer for e in bootstrap}

    start = net.now
    for node in net.nodes:
        for op, key in enumerate(keys):
            net.command(node, ev.FindProviders(start, op=op, key=key))
    net.run(until=start + MINUTE, done=lambda: all(len(finds(n)) == len(keys) for n in net.nodes))
    for node in net.nodes:
        found = {o.key: {p.id for p in o.providers} for o in finds(node)}
        for provider, key in zip(net.nodes, keys, strict=True):
            assert provider.peer_id in found[key], (node.index, key)


def test_the_same_seed_replays_the_same_run_with_or_without_the_codec() -> None:
    def run(seed: int, wire: bool = True) -> tuple[int, list[str]]:
        net = build(6, seed)
        net.through_wire = wire
        for node in net.nodes:
            net.start_at(node, node.index * 10)
        net.run(until=30 * SECOND)
        return net.delivered_messages, [e.name for n in net.nodes for e in n.log]

    assert run(3) == run(3) == run(3, wire=False)


def test_a_crashed_provider_restarts_with_its_records_and_provides_again() -> None:
    net = build(5, seed=1)
    for node in net.nodes:
        net.start_at(node, node.index * 10)
    net.run(until=5 * SECOND)
    victim = net.nodes[4]
    net.command(victim, ev.Provide(net.now, op=1, key=b"k"))
    net.run(until=10 * SECOND)
    assert any(o.ok for o in provides(victim))
    net.crash(victim)
    assert victim.store.get(b"k", net.now)  # the disk survives
    net.run(until=15 * SECOND)
    net.start(victim)
    net.command(victim, ev.Provide(net.now, op=2, key=b"k"))
    net.run(until=30 * SECOND)
    assert [o.op for o in provides(victim) if o.ok][-1] == 2


def test_a_client_node_is_never_routed_to() -> None:
    net = build(4, seed=2)
    client = net.add_node(
        mode=ModeSetting.CLIENT, bootstrap=(BootstrapPeer(net.nodes[0].peer_id, (sim_addr(0),)),)
    )
    for node in net.nodes:
        net.start_at(node, node.index * 10)
    net.run(until=30 * SECOND)
    assert client.core.is_ready  # a client uses the DHT ...
    for node in net.nodes[:-1]:
        assert client.peer_id not in node.core.table  # ... but no table holds it (RT-01)


def test_provides_survive_message_loss_through_deadlines_and_retries() -> None:
    net = SimNetwork(seed=11, loss=0.2)
    boot = (BootstrapPeer(net.add_node().peer_id, (sim_addr(0),)),)
    for _ in range(7):
        net.add_node(bootstrap=boot, request_deadline=2 * SECOND, retry_cap=10 * SECOND)
    for node in net.nodes:
        net.start_at(node, node.index * 10, provide=f"lossy-{node.index}".encode())
    assert net.run(
        until=5 * MINUTE, done=lambda: all(any(o.ok for o in provides(n)) for n in net.nodes)
    )
    failures = [o for n in net.nodes for o in provides(n) if not o.ok]
    assert all(o.reason and o.retry_at is not None for o in failures)  # PROV-02, PROV-06


def test_records_outlive_their_ttl_through_republish_and_expire_without_it() -> None:
    net = SimNetwork(seed=5)
    boot = (BootstrapPeer(sim_peer_id(0), (sim_addr(0),)),)
    for index in range(4):
        net.add_node(
            bootstrap=boot if index else (),
            record_ttl=10 * MINUTE,
            republish_interval=4 * MINUTE,
            gc_interval=MINUTE,
        )
    for node in net.nodes:
        net.start_at(node, node.index * 10)
    keeper, quitter, finder = net.nodes[1], net.nodes[2], net.nodes[3]
    net.at(SECOND, lambda: net.command(keeper, ev.Provide(net.now, op=1, key=b"kept")))
    net.at(SECOND, lambda: net.command(quitter, ev.Provide(net.now, op=1, key=b"gone")))
    net.run(until=30 * SECOND)
    net.crash(quitter)  # no one republishes b"gone" any more
    net.run(until=25 * MINUTE)  # well past two TTLs
    net.command(finder, ev.FindProviders(net.now, op=1, key=b"kept"))
    net.command(finder, ev.FindProviders(net.now, op=2, key=b"gone"))
    net.run(until=net.now + MINUTE)
    found = {o.key: {p.id for p in o.providers} for o in finds(finder)}
    assert found[b"kept"] == {keeper.peer_id}  # PROV-05
    assert found[b"gone"] == set()  # PROV-04


def test_a_partitioned_joiner_keeps_its_provide_queued_until_the_partition_heals() -> None:
    net = SimNetwork(seed=4)
    boot = (BootstrapPeer(sim_peer_id(0), (sim_addr(0),)),)
    net.add_node()
    joiner = net.add_node(bootstrap=boot, refresh_interval=5 * SECOND)
    net.partition(net.nodes[0], joiner)
    net.start_at(net.nodes[0], 0)
    net.start_at(joiner, 0, provide=b"k")
    net.run(until=20 * SECOND)
    assert provides(joiner) == [] and not joiner.core.is_ready  # BOOT-05: queued, not lost
    net.partition(net.nodes[0], joiner, cut=False)
    net.run(until=40 * SECOND)  # the next refresh re-dials the bootstrap peer (BOOT-03)
    assert [o.ok for o in provides(joiner)] == [True]
