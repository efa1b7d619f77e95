"""The simulated network: 20 cores join, provide at start-up, and find every key."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import MINUTE, SECOND, BootstrapPeer, ModeSetting
from kadspec.impl.provide import Phase
from kadspec.impl.sim import SimNetwork, SimNode, sim_addr, sim_peer_id
from kadspec.impl.wire import KadMessage, MessageType


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
    # the benchmark's traffic figures: every delivered request counted once, by kind; each node's
    # self-lookup asks for its own ID, and every find for a key is a GET_PROVIDERS
    counts = net.requests_by_type
    assert sum(counts.values()) == net.delivered_messages
    assert counts["FIND_NODE for the sender's own ID"] >= len(net.nodes)
    assert counts["GET_PROVIDERS"] >= len(net.nodes) * len(keys)
    assert counts["ADD_PROVIDER"] >= len(keys)


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
    # BOOT-05: the caller hears why it cannot start yet, and the provide stays queued
    assert [(o.ok, o.code, o.final) for o in provides(joiner)] == [(False, "not-ready", False)]
    assert not joiner.core.is_ready and joiner.core.provide_phase(b"k") is Phase.QUEUED
    net.partition(net.nodes[0], joiner, cut=False)
    net.run(until=40 * SECOND)  # the next refresh re-dials the bootstrap peer (BOOT-03)
    assert [o.ok for o in provides(joiner)] == [False, True]


# --- what the test chooses: order, loss, partition, crash and restart, time ----------------------


def pair(hold: bool, **config: Any) -> SimNetwork:
    """Node 0 and a joiner that bootstraps from it."""
    net = SimNetwork(seed=0, hold=hold)
    net.add_node(**config)
    net.add_node(bootstrap=(BootstrapPeer(sim_peer_id(0), (sim_addr(0),)),), **config)
    return net


def test_held_transfers_wait_for_the_test_and_go_in_the_order_it_picks() -> None:
    net = pair(hold=True)
    net.start(net.nodes[0])
    net.start(net.nodes[1])
    assert [(t.kind, t.src, t.dst) for t in net.pending] == [("dial", 1, 0)]
    net.run(until=SECOND)  # time passes, timers may fire, but nothing crosses the network
    assert [t.kind for t in net.pending] == ["dial"] and not net.connected_pairs()
    net.deliver(0)
    assert net.connected_pairs() == {(1, 0)}
    # identify both ways (and perhaps the joiner's first request to its bootstrap peer)
    held = {(t.kind, t.src, t.dst) for t in net.pending}
    assert (
        {("identify", 0, 1), ("identify", 1, 0)}
        <= held
        <= {
            ("identify", 0, 1),
            ("identify", 1, 0),
            ("send", 1, 0),
        }
    )
    assert all(t.message is not None for t in net.pending if t.kind == "send")
    while [t for t in net.pending if t.kind != "response"]:
        net.deliver(next(i for i, t in enumerate(net.pending) if t.kind != "response"))
    # every reply is still held back: deliver the newest first
    assert net.pending and all(t.kind == "response" for t in net.pending)
    assert not net.nodes[1].core.is_ready  # BOOT-05: no self-lookup answered yet
    net.deliver(len(net.pending) - 1)
    net.settle(until=net.now + SECOND)
    assert not net.pending and all(n.core.is_ready for n in net.nodes)


def test_a_dropped_request_is_noticed_through_its_deadline_and_a_dropped_dial_fails() -> None:
    net = pair(hold=True, request_deadline=2 * SECOND)
    joiner = net.nodes[1]
    net.start(net.nodes[0])
    net.start(joiner)
    net.drop(0)  # the dial
    assert any(e.name == "dial.failed" for e in joiner.log)
    net.run(until=11 * MINUTE)  # the refresh re-dials the bootstrap peer (BOOT-03)
    net.deliver(0)
    while net.pending:
        transfer = net.pending[0]
        if transfer.kind == "send":
            net.drop(0)  # the self-lookup's request is lost on the way
        else:
            net.deliver(0)
    net.run(until=net.now + 3 * SECOND)
    assert [e.get("reason") for e in joiner.log if e.name == "request.failed"] == ["deadline"]


def is_up(node: SimNode) -> bool:
    """A fresh read of the flag (mypy keeps an attribute narrowed across the calls that flip it)."""
    return node.up


def test_a_crash_voids_what_is_in_flight_to_the_node_and_restart_starts_it_afresh() -> None:
    net = pair(hold=True)
    node, joiner = net.nodes
    net.start(node)
    net.start(joiner)
    net.deliver(0)  # connected; identify both ways pending
    assert {t.dst for t in net.pending} >= {0, 1}
    net.crash(joiner)
    assert all(t.dst != 1 or t.kind in ("dial", "send") for t in net.pending)
    assert not net.connected_pairs() and not is_up(joiner) and joiner.crashes == 1
    net.restart(joiner)
    assert joiner.up and joiner.core.started and not joiner.core.table
    net.settle(until=net.now + SECOND)
    assert joiner.core.is_ready


def test_a_durable_store_survives_a_crash_and_a_volatile_one_does_not() -> None:
    net = SimNetwork(seed=3)
    boot = (BootstrapPeer(sim_peer_id(0), (sim_addr(0),)),)
    net.add_node()
    disk = net.add_node(bootstrap=boot)
    memory = net.add_node(bootstrap=boot, durable=False)
    for node in net.nodes:
        net.start_at(node, node.index * 10)
    net.run(until=5 * SECOND)
    for node in (disk, memory):
        net.command(node, ev.Provide(net.now, op=1, key=b"k"))
    net.run(until=10 * SECOND)
    assert all(
        any(r.provider == n.peer_id for r in n.store.get(b"k", net.now)) for n in (disk, memory)
    )
    for node in (disk, memory):
        net.restart(node)
    assert disk.peer_id in {r.provider for r in disk.store.get(b"k", net.now)}
    assert memory.store.get(b"k", net.now) == ()
    assert memory.core.store is memory.store  # the fresh core runs on the fresh store


def test_latency_and_loss_can_be_functions_of_the_link() -> None:
    def slow_from_zero(src: int, dst: int) -> int:
        return 500 if src == 0 else 1

    lost: list[tuple[int, int]] = []

    def lose_everything_sent_to_two(src: int, dst: int, message: KadMessage) -> bool:
        if dst == 2:
            lost.append((src, dst))
        return dst == 2

    net = SimNetwork(seed=0, latency=slow_from_zero, loss=lose_everything_sent_to_two)
    boot = (BootstrapPeer(sim_peer_id(0), (sim_addr(0),)),)
    net.add_node()
    for _ in range(2):
        net.add_node(bootstrap=boot, request_deadline=SECOND)
    for node in net.nodes:
        net.start(node)
    first = net.nodes[1].core.peers

    net.run(until=400)  # connected after 1 ms, but node 0's identify takes 500 ms
    assert net.connected_pairs() >= {(1, 0)} and first()[sim_peer_id(0)].protocols is None
    net.run(until=600)
    assert first()[sim_peer_id(0)].protocols is not None
    net.run(until=20 * SECOND)
    assert net.nodes[1].core.is_ready and not net.nodes[2].core.is_ready
    assert lost and all(dst == 2 for _, dst in lost)


def holders(net: SimNetwork, provider: SimNode, key: bytes) -> int:
    """How many other nodes hold ``provider``'s record for ``key`` in their store."""
    return sum(
        any(r.provider == provider.peer_id for r in n.store.get(key, net.now))
        for n in net.nodes
        if n is not provider
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    loss=st.sampled_from([0.0, 0.3]),
    script=st.lists(st.integers(0, 2**16 - 1), max_size=120),
    crash_at=st.none() | st.integers(0, 119),
    black_hole=st.none() | st.integers(0, 4),
)
def test_any_order_and_any_losses_end_every_provide_in_an_honest_outcome(
    seed: int, loss: float, script: list[int], crash_at: int | None, black_hole: int | None
) -> None:
    """Whatever the order of deliveries, whatever is lost (at random, by the script, or every
    ADD_PROVIDER of one node), whether a provider crashes and restarts: once the network
    heals, every provide has an explicit outcome (PROV-02), and a success counts only stores
    that happened (none reported successful without one)."""
    chance = random.Random(seed)

    def lost(src: int, dst: int, message: KadMessage) -> bool:
        if src == black_hole and message.type is MessageType.ADD_PROVIDER:
            return True
        return chance.random() < loss

    net = SimNetwork(seed=seed, loss=lost, hold=True)
    boot = (BootstrapPeer(sim_peer_id(0), (sim_addr(0),)),)
    timings: dict[str, Any] = {
        "request_deadline": SECOND,
        "retry_base": 200,
        "retry_cap": 2 * SECOND,
        "refresh_interval": 5 * SECOND,
        "provide_max_attempts": 3,
    }
    for index in range(5):
        net.add_node(bootstrap=boot if index else (), **timings)
    keys = {n.index: f"key-{n.index}".encode() for n in net.nodes}
    for node in net.nodes:
        net.start(node)
        net.command(node, ev.Provide(net.now, op=node.index, key=keys[node.index]))
    for step, choice in enumerate(script):
        if step == crash_at:  # the process dies and is started again with its --provide
            victim = net.nodes[1 + choice % 4]
            net.restart(victim)
            net.command(victim, ev.Provide(net.now, op=victim.index, key=keys[victim.index]))
        elif net.pending and choice % 8:
            index = (choice >> 3) % len(net.pending)
            # identify rides the connection it describes: a connection whose identify never
            # arrives is a broken host (a node connected only so to its bootstrap peer waits
            # for good, in go too), not a loss the network heals from, so it always arrives
            if choice % 8 == 1 and net.pending[index].kind != "identify":
                net.drop(index)
            else:
                net.deliver(index)
        else:
            net.run(until=net.now + (choice >> 3) % (3 * SECOND))
    net.settle(until=net.now + 10 * SECOND)  # in order, losses as before
    net.loss = 0.0  # the network heals: everything in flight and to come is delivered
    net.settle(until=net.now + 2 * MINUTE)
    assert not net.pending
    for node in net.nodes:
        outcomes = [o for o in provides(node) if o.key == keys[node.index]]
        assert outcomes, f"node {node.index}: provide without an outcome"
        # and it is settled: stored, or given up after the last attempt; a node whose requests
        # to every connected peer were lost wins them back at its refresh (liveness, 03fbce2)
        assert outcomes[-1].ok or outcomes[-1].final, (node.index, outcomes)
        for outcome in outcomes:
            if outcome.ok:
                assert 1 <= outcome.delivered <= holders(net, node, outcome.key), outcome
            else:
                assert outcome.reason and outcome.code, outcome
