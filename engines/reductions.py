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
:class:`PartialOrder` expands, at some worlds, only an *ample set* ``A`` of the enabled moves.
It tries two kinds of ample set, in this order, and expands everything when neither applies.

Footprints. Every move reads and writes the states of its parties only (``successors``: the
memo keys each effect by them and ``verify=True`` tests check it), plus channel heads it pops
and channel tails it appends to (no effect reads a channel beyond its head). Refined per world:
a delivery of identify, a reply or a FIND_NODE/GET_PROVIDERS request that
``actions.deliver_reads_sender`` says ignores its sender touches only its receiver (the
observer's ghost changes a sender only for ADD_PROVIDER and an unanswered request, both decided
by the receiver); a query or bootstrap dial on a live connection only sends, so it touches only
the dialer; user calls and ``dial_back`` touch their node (and the budget). Two moves with
disjoint footprints commute: FIFO channels make "pop the head" and "append at the tail" commute
on a non-empty channel, and budget edits of different user calls compose either way.

Global condition (both kinds): no fault can be injected and no timer can fire
(``clock >= horizon``), since ``tick`` and faults touch every node.

1. *A component* (as before): knowledge spreads only along "knows" links (a reply names only
   peers its sender knows; a node is dialed only by nodes that know it), so the connected
   components of that graph never merge. ``A`` = the moves of the first component that has a
   protocol move, when at least two components have moves.

2. *One node* ``m``: ``A`` = every enabled move whose footprint contains ``m``, when

   * A1: each of them touches ``m`` alone, checked by taking it here (only ``m``'s state,
     channels, and for a user call the budget, change) and by the footprint rules above;
   * A2: ``m`` is up and ``A`` holds a protocol move (a delivery, query, dial or dial-back:
     it stays enabled until a move of ``A`` is taken, so no quiescent world lies beyond ``A``;
     a user call alone may be put off forever);
   * A3: no move outside ``A`` touches ``m`` now (``A`` holds them all by construction);
   * A4: no other node can send into a channel towards ``m`` before a move of ``A`` is taken,
     except on a channel whose head ``A`` delivers (FIFO: what comes later stays behind). A
     node ``y`` is harmless when it is in another component, or *quiet* (not to be started, no
     user call due, up with its self-lookup done, no lookup, every provide idle, no bootstrap
     dial left, a mode that cannot change, and no request from ``m`` waiting for its answer),
     or it does not know ``m``, no message in flight to it names ``m``, and ``m`` is *secret*
     (no table or record holds ``m``, no message in flight names it, and nothing ``m`` sent
     can get it admitted): then ``y`` cannot learn of ``m`` before ``m`` moves;
   * A5: a node whose channel head towards ``m`` is in ``A`` is connected to ``m`` (it will
     not dial ``m``, which would write ``m``'s side of the connection);
   * A6: no message ``m`` already sent can, when delivered, write ``m`` or read what ``A``
     changes: no ADD_PROVIDER; a request only to a server whose mode cannot change (and not
     under ``admit_on_inbound_request``); identify from a server and replies only if the
     admission probe (``routing._probe_answers``: is ``m`` up, does its table hold another
     peer) reads the same before and after each move of ``A``, or no table can reach k.

These are the ample-set conditions of Clarke, Grumberg and Peled: C0 (``A`` is non-empty and a
proper subset), C1 (on every path from the world, no move dependent on ``A`` is taken before a
move of ``A``: A3-A6 for kind 2; separate components for kind 1), C3 (the cycle proviso: if a
move of ``A`` leads to a state seen before the current breadth-first level began, the world
is expanded fully, so every cycle of the reduced graph has a fully expanded world). C2
(invisibility) is replaced by an argument per kind of check, because every check here is a
disjunction of per-node or per-step predicates:

* invariants: ``checks.NODE_INVARIANTS`` read one node; the one world invariant reads each
  node's projection (``observe.project_node``) and the clock. Take a path from an expanded
  world ``s`` to a violating world ``t``. If it contains a move of ``A``, the first one
  commutes to the front and the rest is one step shorter (induction). If it contains none, no
  move on it touched ``m`` (C1), so ``m``'s state in ``t`` is its state in ``s``: a violation
  at ``m`` is already one at ``s``; a violation at another node ``n`` survives taking any
  ``a`` of ``A`` first (``a`` touches only ``m``, and every move of the path stays enabled);
* step checks (``checks.STEP_CHECKS``) and step premises read the projections of the nodes the
  step changes or sends from, the delivered and sent messages and the clock: the step's own
  footprint, which the commutation leaves as it was;
* progress checks and quiescence: a quiescent world has no message in flight and no protocol
  move enabled, so every path from ``s`` to one takes a move of ``A`` (a move of ``A`` stays
  enabled until taken); by induction every quiescent world of the full graph is in the reduced
  one, and the progress checks see exactly the same quiescent worlds;
* premises counted for the vacuity report: a requirement's premise is live somewhere in the
  reduced graph exactly when it is in the full one (same arguments; the counts differ);
* witnesses: a witness predicate over several nodes could hold only in a world the reduction
  skips, so that case has no proof here; the tests check on the scenarios that the same
  witnesses are reached with and without the reduction.

What it does not keep: the number of states (that is the point) and transitions, and the
length of counterexamples: a trace is a real run, but may be longer than a shortest one.
:func:`shortest_counterexample` rebuilds a shortest one by exploring again without the
reduction, for the requirement found violated. The tests check, on every mutant, that the
reduced search reports the same violated requirements as the plain one, and, on the check
scenarios, the same verdicts, witnesses and live premises.

Measured (``benchmarks/reduction_bench.py``, ``results/bench-reductions.json``): star-3 35,522
-> 33,289 states (complete, the same depth 39, the same quiescent worlds, as the
tests check); star-4 under a cap of 200,001 states: within depth 20, 122,218 -> 91,911 states
(-25%), and the gap widens with depth; two-bootstraps 437 -> 175; mode-change 1,881 -> 1,597
(3,893 -> 2,972 on the model after issue 8's liveness fix: counts move with the model, and the
tests pin none of them, only that both searches agree).
The savings are modest in a star: once the hub has admitted every joiner, any node with a
lookup under way can learn of any other, and A4 fails; they are large where nodes work apart.
Each reduced expansion takes the candidate moves once more, so the reduced search is slower
per state (about 2x on trio).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from kadspec.models import lifecycle
from kadspec.models.actions import ACTIONS, Family, deliver_reads_sender
from kadspec.models.config import Config, ModeSetting
from kadspec.models.policy import Policy
from kadspec.models.state import (
    Budget,
    Kind,
    Lookup,
    Message,
    Mode,
    NodeState,
    PeerView,
    Phase,
    ProvideState,
    Purpose,
    Record,
    World,
)

if TYPE_CHECKING:
    from kadspec.engines.explorer import Counterexample
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
        # Self and refresh lookups target IDs (own, or own with one bit flipped); key targets
        # are fixed (no key activity).
        translated = lookup.purpose in (Purpose.SELF, Purpose.REFRESH)
        target = lookup.target ^ self.mask if translated else lookup.target
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
        # The images of each interned node state, network and budget (by id) under every
        # automorphism, in group order: states recur, so each is mapped once, and one lookup
        # per part serves the whole group.
        self._node_images: dict[int, tuple[int, ...]] = {}
        self._network_images: dict[int, tuple[int, ...]] = {}
        self._budget_images: dict[int, tuple[int, ...]] = {}

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
        group = self.group
        node_images = self._node_images
        per_node = []
        for state in nodes:
            mapped = node_images.get(state)
            if mapped is None:
                world_state = engine.node_state(state)
                mapped = node_images[state] = tuple(
                    engine.node_id(g.node(world_state)) for g in group
                )
            per_node.append(mapped)
        networks = self._network_images.get(network)
        if networks is None:
            channels = engine.network(network)
            networks = self._network_images[network] = tuple(
                engine.network_id(g.network(channels)) for g in group
            )
        budgets = self._budget_images.get(budget)
        if budgets is None:
            held = engine.budget(budget)
            budgets = self._budget_images[budget] = tuple(
                engine.budget_id(g.budget(held)) for g in group
            )
        best = key
        compose = engine.compose
        image = list(nodes)
        for i, g in enumerate(group):
            for n, order in enumerate(g.order):
                image[order] = per_node[n][i]
            candidate = compose(clock, budgets[i], networks[i], image)
            if candidate < best:
                best = candidate
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


#: deliveries whose effect on their *sender* is decided by the receiver alone (see
#: ``ghost.observe``: only ADD_PROVIDER and an unanswered request change the sender's ghost)
_SENDER_SAFE_KINDS = frozenset(
    {
        Kind.IDENTIFY,
        Kind.IDENTIFY_PUSH,
        Kind.FIND_NODE,
        Kind.FIND_NODE_REPLY,
        Kind.GET_PROVIDERS,
        Kind.GET_PROVIDERS_REPLY,
    }
)
_REQUEST_KINDS = frozenset({Kind.FIND_NODE, Kind.GET_PROVIDERS, Kind.ADD_PROVIDER})
_USER_KINDS = frozenset({"provide", "find_providers", "set_mode"})


class PartialOrder:
    """Ample sets: of an independent component, else of one node's own moves (see the module
    docstring, "Partial order", for the conditions and the argument)."""

    def __init__(self, initial: World, policy: Policy) -> None:
        self.policy = policy
        self.reduced = 0  # worlds expanded with an ample set
        self.full = 0  # worlds expanded fully
        self.by_component = 0  # of the reduced: by a component's moves
        self.by_node = 0  # of the reduced: by one node's moves
        self.proviso = 0  # candidates dropped by the cycle proviso
        count = len(initial.nodes)
        #: a routing table can reach k entries (then admission probes the candidate's table)
        self._probes_possible = (
            not policy.probe_only_when_table_full or initial.config.timing.k <= count - 1
        )
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
        chosen = None
        by_component = False
        if len(moves) >= 2 and _no_global_moves(world):
            owner = self._components(world, key, engine)
            chosen = self._candidate(moves, owner)
            by_component = chosen is not None
            if chosen is None:
                chosen = self._node_local(world, key, moves, engine, owner)
        if chosen is not None and any(old(engine.step(world, key, m)[0]) for m in chosen):
            self.proviso += 1
            chosen = None  # cycle proviso (C3): an ample step goes back; expand fully
        if chosen is None:
            self.full += 1
            return moves
        self.reduced += 1
        if by_component:
            self.by_component += 1
        else:
            self.by_node += 1
        return chosen

    # --- ample sets of a component ----------------------------------------------------------

    def _candidate(self, moves: list[Move], owner: list[int]) -> list[Move] | None:
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

    # --- ample sets of one node --------------------------------------------------------------

    def _node_local(
        self,
        world: World,
        key: int,
        moves: list[Move],
        engine: Successors,
        owner: list[int],
    ) -> list[Move] | None:
        """The enabled moves touching one node ``m``, when each touches nothing but ``m`` and
        no other move can touch ``m`` before one of them is taken (conditions A1-A6)."""
        count = len(world.nodes)
        touching: list[list[Move]] = [[] for _ in range(count)]
        local_only = [True] * count
        for move in moves:
            touched = self._touches(world, move)
            if touched is None:
                return None
            for n in touched:
                touching[n].append(move)
                if len(touched) > 1:
                    local_only[n] = False
        best: list[Move] | None = None
        for m in range(count):
            group = touching[m]
            if not group or not local_only[m] or len(group) == len(moves):
                continue
            if not any(ACTIONS[move.action.kind].family is Family.PROTOCOL for move in group):
                continue  # quiescent worlds must not be skipped by putting off a user call
            if best is not None and len(group) >= len(best):
                continue
            if not self._shielded(world, m, group, owner, None):
                continue
            afters = self._only_m_changes(world, key, m, group, engine)
            if afters is not None and self._shielded(world, m, group, owner, afters):
                best = group
                if len(best) == 1:
                    break
        return best

    def _touches(self, world: World, move: Move) -> tuple[int, ...] | None:
        """The nodes whose state ``move`` may read or write in ``world`` (A1); None: every
        node or the budget's faults."""
        action = move.action
        kind = action.kind
        message = action.message
        if kind == "deliver":
            assert message is not None
            if message.kind in _SENDER_SAFE_KINDS and not deliver_reads_sender(
                world, self.policy, message
            ):
                return (message.dst,)
            return (message.src, message.dst)
        if kind == "query":
            assert move.parties is not None
            node, peer = move.parties
            # A query on a live connection only sends; a dial opens the peer's side too.
            return (node,) if world.connected(node, peer) else (node, peer)
        if kind == "dial_bootstrap":
            return (
                (action.node,)
                if world.connected(action.node, action.peer)
                else (
                    action.node,
                    action.peer,
                )
            )
        if kind in ("dial_back", "start") or kind in _USER_KINDS:
            return (action.node,)
        return None  # tick, faults

    def _shielded(
        self,
        world: World,
        m: int,
        group: list[Move],
        owner: list[int],
        afters: list[NodeState] | None,
    ) -> bool:
        """No move outside ``group`` can touch ``m`` before one of ``group`` is taken (C1).

        ``afters`` are ``m``'s states after each move of ``group``; without them (a first,
        cheap pass, before the moves are taken) a delivery that may probe ``m`` is let pass,
        and the second pass decides it."""
        state = world.nodes[m]
        if not state.up:
            return False
        senders = {
            move.action.message.src
            for move in group
            if move.action.kind == "deliver" and move.action.message is not None
        }
        count = len(world.nodes)
        # A6: what m already sent never reaches back into m when delivered.
        for y in range(count):
            if y != m and not all(
                self._harmless_to_sender(
                    world, msg, afters is None or _probe_kept(state, afters, y)
                )
                for msg in world.channel(m, y)
            ):
                return False
        secret: bool | None = None  # computed when first needed
        for y in range(count):
            if y == m or owner[y] != owner[m]:
                continue  # another component never reaches m (see components)
            if y in senders:
                # A5: the channel y -> m is FIFO behind the ample delivery; y must not dial m.
                if not world.connected(y, m):
                    return False
                continue
            if world.channel(y, m):
                return False  # a delivery into m outside the group (cannot happen: A3)
            if self._quiet(world, y, m):
                continue
            if secret is None:
                secret = self._secret(world, m)
            if not secret or m in _knows(world.config, y, world.nodes[y]) or _names(world, y, m):
                return False
        return True

    def _quiet(self, world: World, y: int, m: int) -> bool:
        """A4: ``y`` will send nothing to ``m`` and dial nobody until ``m`` acts: it has no
        work of its own left (no start or user call due, no lookup, no provide under way, no
        bootstrap dial, a mode that cannot change) and m asked it nothing."""
        budget = world.budget
        if y in budget.starts or any(
            n == y for n, _ in (*budget.provides, *budget.finds, *budget.mode_changes)
        ):
            return False
        state = world.nodes[y]
        if not state.up:
            return True  # no fault can restart it
        if (
            not state.self_lookup_done
            or state.lookups
            or any(p.phase is not Phase.IDLE for p in state.provides)
            or lifecycle.bootstrap_candidates(world, y)
            or not self._mode_fixed(state)
        ):
            return False
        return not any(msg.kind in _REQUEST_KINDS for msg in world.channel(m, y))

    def _mode_fixed(self, state: NodeState) -> bool:
        """The node's mode cannot change without an operator call (none is due): pinned, or
        automatic and already confirmed, or automatic under a policy that never follows."""
        return (
            state.setting is not ModeSetting.AUTO
            or state.confirmed
            or not self.policy.auto_mode_follows_confirmation
        )

    def _secret(self, world: World, m: int) -> bool:
        """Nobody can tell anybody of ``m`` until ``m`` acts: no table or record names it, no
        message in flight names it, and nothing ``m`` sent can get it admitted."""
        for z, state in enumerate(world.nodes):
            if z != m and (state.peers[m].in_table or any(r.provider == m for r in state.records)):
                return False
        for channel in world.network:
            for msg in channel:
                if m in msg.closer or m in msg.providers:
                    return False
                if msg.kind is Kind.ADD_PROVIDER and msg.provider == m:
                    return False
                if msg.src == m and _may_admit_sender(self.policy, msg):
                    return False
        return True

    def _harmless_to_sender(self, world: World, msg: Message, probe_kept: bool) -> bool:
        """Delivering ``msg``, whenever it happens, neither writes its sender nor reads
        anything of it the ample moves change (``probe_kept``: they leave what an admission
        probe reads of the sender as it was)."""
        policy = self.policy
        if msg.kind is Kind.ADD_PROVIDER:
            return False
        if msg.kind in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
            return not msg.server or not self._probes_possible or probe_kept
        if msg.kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY):
            return not self._probes_possible or probe_kept
        # a request: the receiver admits its sender, or may refuse it as a client
        if policy.admit_on_inbound_request:
            return False
        receiver = world.nodes[msg.dst]
        answers = receiver.mode is Mode.SERVER and self._mode_fixed(receiver)
        return answers or not policy.client_refuses_requests

    def _only_m_changes(
        self, world: World, key: int, m: int, group: list[Move], engine: Successors
    ) -> list[NodeState] | None:
        """``m``'s state after each ample move, if each changes only ``m``'s state here (and
        the budget, for a user call); None otherwise."""
        clock, budget, _, nodes = engine.fields(key)
        afters = []
        for move in group:
            after = engine.step(world, key, move)[0]
            clock_after, budget_after, _, nodes_after = engine.fields(after)
            if clock_after != clock:
                return None
            if budget_after != budget and move.action.kind not in (*_USER_KINDS, "start"):
                return None
            pairs = enumerate(zip(nodes, nodes_after, strict=True))
            if any(a != b for n, (a, b) in pairs if n != m):
                return None
            afters.append(engine.node_state(nodes_after[m]))
        return afters


def shortest_counterexample(
    initial: World,
    policy: Policy,
    requirement: str,
    *,
    max_states: int | None = None,
    max_seconds: float | None = None,
) -> Counterexample | None:
    """A shortest counterexample for ``requirement``, by breadth-first search without any
    reduction (a reduced search's trace is real but may be longer). None when the capped
    search does not reach one."""
    from kadspec.engines.explorer import explore  # the explorer imports this module

    found = explore(
        initial, policy, target=requirement, max_states=max_states, max_seconds=max_seconds
    )
    return found.counterexample


def _probe_kept(before: NodeState, afters: list[NodeState], asker: int) -> bool:
    """What ``routing._probe_answers`` reads of a candidate asked by ``asker`` (is it up, does
    its table hold another peer) is the same in ``before`` and each of ``afters``."""
    seen = _probe_view(before, asker)
    return all(_probe_view(after, asker) == seen for after in afters)


def _probe_view(state: NodeState, asker: int) -> bool:
    return state.up and any(p != asker for p in state.table())


def _no_global_moves(world: World) -> bool:
    """No fault can be injected and no timer can ever fire: both touch every node."""
    budget = world.budget
    return not (budget.faults > 0 and budget.fault_kinds) and world.clock >= world.horizon


def _names(world: World, y: int, m: int) -> bool:
    """A message in flight to ``y`` names ``m``."""
    count = len(world.nodes)
    for src in range(count):
        for msg in world.network[src * count + y]:
            if (
                m in msg.closer
                or m in msg.providers
                or (msg.kind is Kind.ADD_PROVIDER and msg.provider == m)
            ):
                return True
    return False


def _may_admit_sender(policy: Policy, msg: Message) -> bool:
    """Delivering ``msg`` may put its sender in the receiver's table."""
    if msg.kind in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
        return msg.server
    if msg.kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY):
        return True
    return policy.admit_on_inbound_request


__all__ = [
    "Automorphism",
    "PartialOrder",
    "Symmetry",
    "automorphisms",
    "components",
    "shortest_counterexample",
    "symmetry_conditions",
]
