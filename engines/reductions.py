"""State-space reductions for the explorer: node symmetry and partial order.

Both are options of :func:`~kadspec.engines.explorer.explore`, off by default. Each comes with
the conditions under which it is sound, and it switches itself off (explores everything) where
they do not hold, rather than claim what it cannot show.

Symmetry
--------
Nodes are told apart by their XOR IDs, so two nodes are never interchangeable by a plain swap:
which one is closer to a target changes. What does preserve everything the model computes
with IDs (XOR distance, closest-first order, bucket index) is an XOR *translation*
``id -> id ^ c``: ``(a ^ c) ^ (b ^ c) == a ^ b``. When a configuration's ID set is closed under
``^ c`` and the node mapped onto has the same reachability, mode setting and (mapped) bootstrap
peers, the node permutation ``pi`` with ``ids[pi(i)] == ids[i] ^ c`` is an automorphism of the
configuration. :class:`Symmetry` finds every such ``c`` and maps a world by renaming node
indexes through ``pi`` and translating the IDs it holds (lookup and FIND_NODE targets) by ``c``.

That mapping is an automorphism of the transition system, and the explorer may store one world
per orbit, only under three further conditions, each closing a place where the model breaks ties
by node index rather than by distance:

* no key activity (no provide, find or forged ADD_PROVIDER in the budget and no provider record
  anywhere): keys are fixed points of nothing but ``c = 0``, and provides start in key order;
* ``policy.remove_failed_peers``: with it, no table entry is ever marked failed, so a full
  bucket never evicts "the first stale peer" (``routing.try_admit``);
* no timer can fire (``horizon <= clock``): ``lifecycle.fire_timers`` fails late requests in
  peer-index order.

Every requirement is stated per node or pair of nodes over the mapped structure, so a world
and its image break the same requirements. Breadth-first search over orbit representatives
(the image with the smallest key) is breadth-first search of the quotient graph: it reaches a
violation of a requirement exactly when the full search does, at the same depth. Traces are
mapped back to real runs by the explorer (each step replayed as the action of the real state
that leads into the stored orbit). The tests check the automorphism property directly, on
every state of symmetric configurations: the successors of an image are the images of the
successors.

The star configurations (one bootstrap server, joiners with different IDs) and every
configuration with a provide have no symmetry under these rules; the reduction then does
nothing. ``configurations.islands`` and ``configurations.mesh`` are built with symmetric roles.

Partial order
-------------
An action reads and writes only its parties (see ``successors``): a delivery from ``a`` to
``b`` touches ``a`` and ``b``, a query the querying node and the peer it asks, and so on. Two
nodes can ever interact only if one of them knows the other: it is in its bootstrap list, its
peer view is not the default one, it appears in one of its lookups, provides, records or
results, or a message between them or naming one to the other is in flight. Knowledge spreads
only along such links (a reply names only peers its sender knows; a node is dialed only by
nodes that know it), so the connected components of the "knows" graph never merge:
transitions of different components are independent forever.

:class:`PartialOrder` expands, at a world where at least two components have enabled actions,
only those of the first component that has an enabled *protocol* action (an ample set), when:

* no fault can be injected and no timer can fire (the fault budget and the clock are shared by
  all nodes: a crash or a tick touches every component);
* every successor by the ample set is a state not seen before (else the world is expanded
  fully: this is the cycle proviso, which makes every cycle of the reduced graph contain a
  fully expanded world).

Why nothing is lost: take a path from an expanded world ``s`` to a violating world ``t``. If
it contains an action of the chosen component ``C``, the first one commutes to the front (the
actions before it touch other components), and the rest of the path is one step shorter. If
it contains none, the violation's witness (a node, a pair of nodes that know each other, a
channel) lies either in ``C``, whose part of ``t`` is then ``s``'s own, so ``s`` is violating
already; or outside ``C``, and then any ample action taken first leaves it in place. Step
checks read only the parties of their step, so they too survive the reordering. A quiescent
world (no protocol action enabled) cannot lie on a path avoiding ``C`` entirely, because
``C``'s protocol action stays enabled along it; so every quiescent world of the full graph
is in the reduced one, and the progress checks see the same worlds. The cycle proviso turns
the remaining case (an endless detour through ample steps) into a fully expanded world.

What it does not keep: the set of states (that is the point), shortest counterexamples, and
the number of transitions. Like symmetry, it only helps where components exist: in a network
that shares one bootstrap server every node soon knows every other, and the reduction finds no
ample set (the benchmark reports the factor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from kadspec.models.actions import ACTIONS, Family
from kadspec.models.config import Config
from kadspec.models.policy import Policy
from kadspec.models.state import (
    Budget,
    Kind,
    Lookup,
    Message,
    NodeState,
    PeerView,
    ProvideState,
    Purpose,
    Record,
    World,
)

if TYPE_CHECKING:
    from kadspec.engines.successors import Move, Successors

# --- symmetry -----------------------------------------------------------------------------------


@attrs.frozen
class Automorphism:
    """``pi`` (node ``i`` becomes node ``order[i]``) induced by the ID translation ``^ mask``."""

    order: tuple[int, ...]
    mask: int

    def node(self, state: NodeState) -> NodeState:
        order = self.order
        peers: list[PeerView] = list(state.peers)
        for p, view in enumerate(state.peers):
            peers[order[p]] = view
        return NodeState(
            state.up,
            state.mode,
            state.setting,
            state.candidate,
            state.confirmed,
            state.dial_back_tried,
            tuple(peers),
            self._set(state.boot_tried),
            state.self_lookup_done,
            state.refresh_at,
            tuple(self.lookup(lk) for lk in state.lookups),
            tuple(self.provide(p) for p in state.provides),
            frozenset(
                Record(key=r.key, provider=order[r.provider], expires=r.expires)
                for r in state.records
            ),
            tuple(None if f is None else self._set(f) for f in state.found),
            state.find_outcomes,  # outcomes and reasons: nothing to rename
            state.ghost.permuted(self.order, self.mask),
        )

    def lookup(self, lookup: Lookup) -> Lookup:
        order = self.order
        # Only a self-lookup targets an ID; key targets are fixed (no key activity).
        target = lookup.target ^ self.mask if lookup.purpose is Purpose.SELF else lookup.target
        return Lookup(
            lookup.purpose,
            lookup.key,
            target,
            self._set(lookup.seen),
            tuple(sorted((order[p], d) for p, d in lookup.inflight)),
            self._set(lookup.answered),
            self._set(lookup.failed),
            self._set(lookup.providers),
        )

    def provide(self, state: ProvideState) -> ProvideState:
        if not state.pending and not state.acked:
            return state
        order = self.order
        return attrs.evolve(
            state,
            pending=tuple((order[p], d) for p, d in state.pending),
            acked=self._set(state.acked),
        )

    def message(self, m: Message) -> Message:
        order = self.order
        translated = m.kind in (Kind.FIND_NODE, Kind.FIND_NODE_REPLY)
        return Message(
            m.kind,
            order[m.src],
            order[m.dst],
            m.server,
            m.public,
            m.target ^ self.mask if translated else m.target,
            m.key,
            order[m.provider] if m.kind is Kind.ADD_PROVIDER else m.provider,
            self._set(m.closer),
            self._set(m.providers),
        )

    def budget(self, budget: Budget) -> Budget:
        order = self.order
        return attrs.evolve(
            budget,
            mode_changes=tuple(sorted((order[n], s) for n, s in budget.mode_changes)),
            starts=self._set(budget.starts),
        )

    def network(self, network: tuple[tuple[Message, ...], ...]) -> tuple[tuple[Message, ...], ...]:
        order = self.order
        count = len(order)
        mapped: list[tuple[Message, ...]] = list(network)
        for index, channel in enumerate(network):
            src, dst = divmod(index, count)
            mapped[order[src] * count + order[dst]] = tuple(self.message(m) for m in channel)
        return tuple(mapped)

    def world(self, world: World) -> World:
        nodes: list[NodeState] = list(world.nodes)
        for n, state in enumerate(world.nodes):
            nodes[self.order[n]] = self.node(state)
        return World(
            world.config,
            world.horizon,
            world.clock,
            tuple(nodes),
            self.network(world.network),
            self.budget(world.budget),
        )

    def _set(self, items: frozenset[int]) -> frozenset[int]:
        order = self.order
        return frozenset(order[p] for p in items)


def automorphisms(config: Config) -> tuple[Automorphism, ...]:
    """The ID translations (other than the identity) that map the configuration onto itself."""
    ids = config.ids
    index = {node_id: n for n, node_id in enumerate(ids)}
    found = []
    for mask in range(1, 1 << config.id_bits):
        if any(node_id ^ mask not in index for node_id in ids):
            continue
        order = tuple(index[node_id ^ mask] for node_id in ids)
        if all(_same_role(config, n, order) for n in range(len(ids))):
            found.append(Automorphism(order, mask))
    return tuple(found)


def _same_role(config: Config, n: int, order: tuple[int, ...]) -> bool:
    mine, image = config.nodes[n], config.nodes[order[n]]
    return (
        mine.reach == image.reach
        and mine.mode == image.mode
        and {order[p] for p in mine.bootstrap} == set(image.bootstrap)
    )


def symmetry_conditions(initial: World, policy: Policy) -> list[str]:
    """Why the symmetry reduction may not be used from ``initial`` (empty when it may)."""
    budget = initial.budget
    found = []
    if budget.provides or budget.finds or "forge_add_provider" in budget.fault_kinds:
        found.append("the budget holds key activity (provide, find or forged ADD_PROVIDER)")
    if any(s.records or any(p.providing for p in s.provides) for s in initial.nodes):
        found.append("a node already holds provider records or provides a key")
    if not policy.remove_failed_peers:
        found.append("failed peers stay in tables: bucket eviction picks by node index")
    if initial.horizon > initial.clock:
        found.append("timers may fire: late requests are failed in node-index order")
    if tuple(sorted(budget.mode_changes)) != budget.mode_changes:
        found.append("the budget's mode changes are not in sorted order")
    return found


class Symmetry:
    """Canonical orbit representatives under the configuration's automorphisms."""

    def __init__(self, group: tuple[Automorphism, ...]) -> None:
        self.group = group
        # Per automorphism, the image of each interned node state, network and budget (by id):
        # states recur, so each is mapped once.
        self._images: list[tuple[dict[int, int], dict[int, int], dict[int, int]]] = [
            ({}, {}, {}) for _ in group
        ]

    @classmethod
    def of(cls, initial: World, policy: Policy) -> Symmetry:
        """The symmetry of ``initial``'s configuration; the trivial one unless every
        condition holds and ``initial`` itself is fixed by each automorphism."""
        if symmetry_conditions(initial, policy):
            return cls(())
        group = tuple(g for g in automorphisms(initial.config) if g.world(initial) == initial)
        return cls(group)

    def canonical(self, key: int, engine: Successors) -> int:
        """The key of the representative of ``key``'s orbit: the smallest key of its images
        (a key, once given, never changes, so the choice is a function of the orbit)."""
        clock, budget, network, nodes = engine.fields(key)
        best = key
        for g, (node_images, network_images, budget_images) in zip(
            self.group, self._images, strict=True
        ):
            image = list(nodes)
            for n, state in enumerate(nodes):
                mapped = node_images.get(state)
                if mapped is None:
                    mapped = node_images[state] = engine.node_id(g.node(engine.node_state(state)))
                image[g.order[n]] = mapped
            mapped_network = network_images.get(network)
            if mapped_network is None:
                mapped_network = network_images[network] = engine.network_id(
                    g.network(engine.network(network))
                )
            mapped_budget = budget_images.get(budget)
            if mapped_budget is None:
                mapped_budget = budget_images[budget] = engine.budget_id(
                    g.budget(engine.budget(budget))
                )
            best = min(best, engine.compose(clock, mapped_budget, mapped_network, image))
        return best


# --- partial order ------------------------------------------------------------------------------


def components(world: World) -> list[int]:
    """For each node, the smallest node of its component in the "knows" graph."""
    return _union(
        len(world.nodes),
        [(n, p) for n, state in enumerate(world.nodes) for p in _knows(world.config, n, state)],
        _message_links(world.network, len(world.nodes)),
    )


def _union(count: int, *links: Iterable[tuple[int, int]]) -> list[int]:
    root = list(range(count))

    def find(n: int) -> int:
        while root[n] != n:
            n = root[n]
        return n

    for group in links:
        for a, b in group:
            a, b = find(a), find(b)
            if a != b:
                root[max(a, b)] = min(a, b)
    return [find(n) for n in range(count)]


def _knows(config: Config, n: int, state: NodeState) -> frozenset[int]:
    """The nodes node ``n`` may send to, dial, read or hear of, from its own state."""
    known: set[int] = set(config.nodes[n].bootstrap)
    blank = PeerView()
    known.update(p for p, view in enumerate(state.peers) if view != blank)
    known.update(state.boot_tried)
    for lk in state.lookups:
        known.update(lk.seen, lk.answered, lk.failed, lk.providers, (p for p, _ in lk.inflight))
    for provide in state.provides:
        known.update(p for p, _ in provide.pending)
        known.update(provide.acked)
    known.update(r.provider for r in state.records)
    for found in state.found:
        known.update(found or ())
    known.discard(n)
    return frozenset(known)


def _message_links(
    network: tuple[tuple[Message, ...], ...], count: int
) -> frozenset[tuple[int, int]]:
    """Sender and receiver of each message in flight, and the receiver and each node the
    message names (it will learn of them)."""
    links = set()
    for index, channel in enumerate(network):
        src, dst = divmod(index, count)
        for m in channel:
            links.add((src, dst))
            links.update((dst, p) for p in (*m.closer, *m.providers))
            if m.kind is Kind.ADD_PROVIDER:
                links.add((dst, m.provider))
    return frozenset(links)


class PartialOrder:
    """Ample sets of independent components (see the module docstring for the argument)."""

    def __init__(self, initial: World, policy: Policy) -> None:
        self.policy = policy
        self.reduced = 0  # worlds expanded with an ample set
        self.full = 0  # worlds expanded fully
        # Knowledge is read from node states and networks, which recur: memoize both.
        self._known: dict[tuple[int, NodeState], frozenset[int]] = {}
        self._links: dict[int, frozenset[tuple[int, int]]] = {}  # per network id

    def ample(
        self,
        world: World,
        key: int,
        moves: list[Move],
        engine: Successors,
        old: Callable[[int], bool],
    ) -> list[Move]:
        """``moves`` or an ample subset of them. ``old(key)`` says whether a state was seen
        before the current breadth-first level began (the cycle proviso's test)."""
        chosen = self._candidate(world, key, moves, engine)
        if chosen is not None and any(old(engine.step(world, key, m)[0]) for m in chosen):
            chosen = None  # cycle proviso: an ample step goes back; expand fully
        if chosen is None:
            self.full += 1
            return moves
        self.reduced += 1
        return chosen

    def _candidate(
        self, world: World, key: int, moves: list[Move], engine: Successors
    ) -> list[Move] | None:
        if len(moves) < 2:
            return None
        budget = world.budget
        if (budget.faults > 0 and budget.fault_kinds) or world.clock < world.horizon:
            return None
        owner = self._components(world, key, engine)
        by_component: dict[int, list[Move]] = {}
        for move in moves:
            if move.parties is None:
                return None  # touches every node
            first = owner[move.parties[0]]
            if any(owner[p] != first for p in move.parties):
                return None  # cannot happen (parties know each other); be safe
            by_component.setdefault(first, []).append(move)
        if len(by_component) < 2:
            return None
        for component in sorted(by_component):
            group = by_component[component]
            if any(ACTIONS[m.action.kind].family is Family.PROTOCOL for m in group):
                return group
        return None

    def _components(self, world: World, key: int, engine: Successors) -> list[int]:
        """:func:`components`, from memoized per-node and per-network parts."""
        count = len(world.nodes)
        node_links: list[tuple[int, int]] = []
        for n, state in enumerate(world.nodes):
            known = self._known.get((n, state))
            if known is None:
                known = self._known[(n, state)] = _knows(world.config, n, state)
            node_links.extend((n, p) for p in known)
        network = engine.fields(key)[2]
        links = self._links.get(network)
        if links is None:
            links = self._links[network] = _message_links(world.network, count)
        return _union(count, node_links, links)


__all__ = [
    "Automorphism",
    "PartialOrder",
    "Symmetry",
    "automorphisms",
    "components",
    "symmetry_conditions",
]
