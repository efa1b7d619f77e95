"""Breadth-first search partitioned over workers: every core, or a cluster (``distributed.py``).

Each state has an *owner*, a worker chosen by a hash of its content, and only its owner keeps
it in a visited set; so the workers' sets are disjoint and their sizes add up to the number of
distinct states. The search is level-synchronous: in one round every worker expands the states
of the current level it owns, keeps at once the successors it owns itself and had not seen, and
sends each other successor to its owner; in the next every worker takes in what it was sent and
keeps the states it had not seen. What a worker keeps forms its part of the next level, and
its invariants are checked when it is kept. A state is first kept in the round of its
breadth-first depth, so every kept parent link lies on a shortest path and counterexamples
stay shortest.

Workers are :class:`Worker` objects; where they run is the transport's business: in this
process (one worker, as the fingerprint mode's serial run uses), in forked processes
(:func:`explore_parallel`, ``--workers N``) or in Ray actors (``distributed.py``). Each worker
memoizes successors in its own :class:`~kadspec.engines.successors.Successors`, whose integer
keys name interned node states, networks and budgets by ids that mean nothing in another
process: a batch of successors sent to a worker carries the objects behind every id that
worker has not been sent yet, and the receiver maps them onto its own ids.

The owner is a hash of the state's node states (:func:`stable_hash`, by content: Python 3.11
hashes ``None`` by its address), which every worker computes alike only when they share the
hash secret of strings: forked workers inherit it; spawned ones and Ray actors get
``PYTHONHASHSEED`` set, and the workers' answers to a probe are compared before the search
starts (a mismatch would silently count states twice).

The workers meet the same situations (an action and the states of the nodes it touches), so an
effect one of them computes with the model's functions is sent to the others after the round
and adopted there instead of computed again (:meth:`Successors.share`). Effects travel by id,
as successors do: a node state goes to the others once, and a receiver maps the sender's ids
onto its own, so adopting an effect hashes and compares no node state. What is not shared is
each worker's own memo of networks and of what node states decide, the model's own memo of
projections, and the translation of the successors it receives. These are costs per step that
the serial explorer does not pay, and they now weigh more since the serial explorer got
cheaper: on ``trio-forgery`` (hash secrets 1 to 3, CPU times at load 4-5) two workers spend
1.52 to 1.56 times the serial explorer's CPU time in all and the busiest of them 0.76 to 0.80
times, so with a free core each they would finish 1.25 to 1.31 times sooner (1.32 to 1.41
before, when the serial run took 3.5 s of CPU there instead of 2.6 and the busiest worker 2.5
to 2.7 s instead of 2.0 to 2.1). How evenly the states split depends on the hash secret:
owner nodes' state combinations are few (755 there, the largest holding 4.2% of the states),
and 50.6 to 53.5% of the states went to one worker over those secrets
(``benchmarks/explorer_bench.py --only scale`` measures it).

With ``fingerprints`` a worker keeps a 64-bit fingerprint per state instead of its key and its
parent link (Zobrist hashing: a random 64-bit value per (field, interned id), XORed, so two
distinct states collide with probability 2**-64), and the run reports the probability that a
collision made it skip a state. A counterexample's trace is then rebuilt by exploring again
up to its depth (:func:`rebuild_by_reexploration`).

The counts, the violated requirements and the counterexample lengths equal the serial
explorer's on a complete run (``tests/engines/test_parallel.py``); a run stopped by a violation
finishes the level it was found in, so its state count may differ from the serial one's.
Reductions (symmetry, partial order) are not supported here.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import multiprocessing
import os
import random
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Literal

import attrs

from kadspec.engines.explorer import (
    Counterexample,
    Exploration,
    Snapshot,
    StopReason,
    Witness,
    memory_mb,
    rebuild_trace,
)
from kadspec.engines.successors import Exports, Successors
from kadspec.models.actions import Action, apply, enabled
from kadspec.models.checks import Violation, check_quiescent
from kadspec.models.policy import Policy
from kadspec.models.state import World

Kind = Literal["state", "step", "quiescent"]


@attrs.frozen
class Found:
    """Violations a worker found: which requirements, by which checks, where, how long the
    trace to them is. ``index`` is the worker's index of the state (for "step", the state the
    step left; ``position`` is then the step's place among the state's enabled moves)."""

    requirements: tuple[str, ...]
    kind: Kind
    worker: int
    index: int
    position: int
    length: int
    #: fingerprint mode: the state itself (for "step", the state the step left), found again
    #: by re-exploration since no parent links were kept
    world: World | None = None


ProgressCallback = Callable[[Snapshot], None]


@attrs.frozen
class Batch:
    """Successors sent by one worker to another: the objects behind ids the receiver has not
    been sent before (id -> object, in the sender's ids), then per state its key (sender's
    ids), its parent's index at the sender and the position of the move that reached it."""

    nodes: tuple[tuple[int, Any], ...]
    networks: tuple[tuple[int, Any], ...]
    budgets: tuple[tuple[int, Any], ...]
    keys: tuple[int, ...]
    parents: tuple[int, ...]
    positions: tuple[int, ...]


@attrs.frozen
class Expanded:
    """A worker's share of one level's expansion."""

    batches: tuple[Batch | None, ...]  # per receiving worker (None: nothing for it)
    effects: Exports | None  # effects computed this round, for the others
    transitions: int
    found: tuple[Found, ...]
    timed_out: bool


@attrs.frozen
class Absorbed:
    """A worker's share of the next level: how many new states it kept, what they broke."""

    new: int
    found: tuple[Found, ...]
    states: int  # distinct states it owns so far
    memory_mb: float


@attrs.frozen
class Totals:
    """A worker's counters at the end of a run."""

    quiescent_states: int
    state_sets: dict[frozenset[str], int]
    step_sets: dict[frozenset[str], int]
    reached: frozenset[str]
    states: int
    cpu_seconds: float  # the worker process's CPU time so far


def stable_hash(value: Any) -> int:
    """A hash of ``value``'s content that processes agree on when they share the hash secret
    of strings: Python 3.11 hashes ``None`` (and any object without ``__hash__`` of its own)
    by its address, which differs between processes that were not forked from one another.
    Attrs classes, tuples, frozensets, enums, strings, numbers and None are hashed by content.
    """
    if value is None:
        return 0x5EED
    if isinstance(value, (bool, int, str, float, bytes)):
        return hash(value)
    if isinstance(value, enum.Enum):
        return hash((type(value).__name__, value.name))
    if isinstance(value, tuple):
        return hash(tuple(stable_hash(v) for v in value))
    if isinstance(value, frozenset):
        return hash(frozenset(stable_hash(v) for v in value))
    names = _FIELDS.get(type(value))
    if names is None:
        if not attrs.has(type(value)):
            raise TypeError(f"no stable hash for {type(value).__name__}")
        names = _FIELDS[type(value)] = tuple(f.name for f in attrs.fields(type(value)))
    return hash((type(value).__name__, *(stable_hash(getattr(value, n)) for n in names)))


_FIELDS: dict[type, tuple[str, ...]] = {}


#: keys remembered as sent to other workers before the cache starts over
SENT_CACHE = 2_000_000


def hash_probe() -> int:
    """A value every worker must compute alike for ownership to agree (the hash secret)."""
    return stable_hash(("kadspec", "owner-probe", None, 1))


class Worker:
    """One partition of a breadth-first search (see the module docstring)."""

    def __init__(
        self,
        index: int,
        count: int,
        initial: World,
        policy: Policy,
        *,
        fingerprints: bool = False,
        witnesses: Sequence[Witness] = (),
        seed: int = 0,
        owner_nodes: Sequence[int] | None = None,
    ) -> None:
        """Worker ``index`` of ``count``; ``owner_nodes`` are the nodes whose states decide
        which worker owns a state (default: every node; every worker must be given the same,
        see :func:`choose_owner_nodes`)."""
        self.index = index
        self.count = count
        self.initial = initial
        self.policy = policy
        self.fingerprints = fingerprints
        self.engine = engine = Successors(initial, policy)
        if count > 1:
            engine.share()  # the workers meet the same situations: compute each effect once
        self._waiting = list(witnesses)
        self._reached: set[str] = set()
        self._bits = engine.NODE_BITS
        self._nodes = len(initial.nodes)
        # owned states: the visited set (keys, or fingerprints) and, without fingerprints,
        # per state in the order kept: its parent (worker, index there) and move position
        self._seen: set[int] = set()
        self._parent_worker = array("h")
        self._parent_index = array("q")
        self._position = array("h")
        self._owned = 0  # states kept so far (their indices are 0 .. owned-1)
        self._level: list[int] = []  # keys of the current level's owned states
        self._level_first = 0  # the index of the level's first state
        self._next: list[int] = []  # keys of the next level's owned states, as they are kept
        self._level_fingerprints: list[int] = []  # fingerprint mode: their fingerprints
        self._depth = 0
        # per other worker: component ids already sent to it, and its ids mapped to ours
        self._sent: list[tuple[set[int], set[int], set[int]]] = [
            (set(), set(), set()) for _ in range(count)
        ]
        self._mapped: list[tuple[dict[int, int], dict[int, int], dict[int, int]]] = [
            ({}, {}, {}) for _ in range(count)
        ]
        # owner hashes per component id (Python's hash of the object, alike in every worker)
        self._node_hash: dict[int, int] = {}
        self._owners: dict[int, int] = {}  # by the owner nodes' state ids (see owner)
        self._owner_nodes = tuple(range(self._nodes) if owner_nodes is None else owner_nodes)
        self._owner_mask = sum(
            ((1 << engine.NODE_BITS) - 1) << (n * engine.NODE_BITS) for n in self._owner_nodes
        )
        self._sent_states: set[int] = set()  # keys sent to other workers (a bounded cache)
        self._shift, self._network_mask = engine.network_field
        # per other worker: the parts of keys (all but the network) sent to it, and its parts
        # mapped to ours
        self._sent_parts: list[set[int]] = [set() for _ in range(count)]
        self._part_map: list[dict[int, int]] = [{} for _ in range(count)]
        self._nodes_mask = engine.nodes_mask
        # Zobrist values per (field, id), fingerprint mode only; the seed makes runs repeatable
        self._random = random.Random(seed)
        self._zobrist: list[dict[int, int]] = [{} for _ in range(self._nodes + 3)]
        self._state_sets: dict[frozenset[str], int] = {}
        self._step_sets: dict[frozenset[str], int] = {}
        self._quiescent = 0

    # --- ownership, translation and fingerprints --------------------------------------------

    def owner(self, key: int) -> int:
        """The worker that owns the state ``key`` (this worker's ids).

        The owner is a hash of the owner nodes' states only: successors share them far more
        often than whole states, so the answer is memoized per combination; a move that
        changes none of them leaves its successor with the worker that expanded it."""
        part = key & self._owner_mask
        found = self._owners.get(part)
        if found is None:
            engine = self.engine
            hashes = self._node_hash
            parts = []
            states = engine.fields(key)[3]
            for state in [states[n] for n in self._owner_nodes]:
                value = hashes.get(state)
                if value is None:
                    value = hashes[state] = stable_hash(engine.node_state(state))
                parts.append(value)
            found = self._owners[part] = hash(tuple(parts)) % self.count
        return found

    def fingerprint(self, key: int) -> int:
        """The state's 64-bit Zobrist fingerprint (meaningful within this worker only; a
        state is always fingerprinted by its owner)."""
        clock, budget, network, nodes = self.engine.fields(key)
        zobrist = self._zobrist
        value = self._zobrist_of(zobrist[0], clock)
        value ^= self._zobrist_of(zobrist[1], budget)
        value ^= self._zobrist_of(zobrist[2], network)
        for n, state in enumerate(nodes):
            value ^= self._zobrist_of(zobrist[3 + n], state)
        return value

    def _zobrist_of(self, table: dict[int, int], ident: int) -> int:
        found = table.get(ident)
        if found is None:
            found = table[ident] = self._random.getrandbits(64)
        return found

    def _translate(self, source: int, batch: Batch) -> list[int]:
        """The batch's keys in this worker's ids (interning the objects it carries).

        A key is translated as two parts, each memoized: its clock, budget and node states
        (whose combinations recur) and its network."""
        engine = self.engine
        node_map, network_map, budget_map = self._mapped[source]
        part_map = self._part_map[source]
        for ident, node in batch.nodes:
            node_map[ident] = engine.node_id(node)
        for ident, network in batch.networks:
            network_map[ident] = engine.network_id(network)
        for ident, budget in batch.budgets:
            budget_map[ident] = engine.budget_id(budget)
        keys = []
        nodes_mask, shift, network_mask = self._nodes_mask, self._shift, self._network_mask
        fields, compose = engine.fields, engine.compose
        for key in batch.keys:
            part = key & nodes_mask
            local = part_map.get(part)
            if local is None:
                clock, budget, _, nodes = fields(part)
                local = part_map[part] = compose(
                    clock, budget_map[budget], 0, [node_map[s] for s in nodes]
                )
            keys.append(local | network_map[(key >> shift) & network_mask] << shift)
        return keys

    def _batch(
        self, target: int, keys: list[int], parents: list[int], positions: list[int]
    ) -> Batch:
        """A batch of successors for worker ``target``, with the objects it lacks."""
        engine = self.engine
        sent_nodes, sent_networks, sent_budgets = self._sent[target]
        sent_parts = self._sent_parts[target]
        nodes, networks, budgets = [], [], []
        nodes_mask, shift, network_mask = self._nodes_mask, self._shift, self._network_mask
        for key in keys:
            part = key & nodes_mask
            if part not in sent_parts:
                sent_parts.add(part)
                _, budget, _, states = engine.fields(key)
                if budget not in sent_budgets:
                    sent_budgets.add(budget)
                    budgets.append((budget, engine.budget(budget)))
                for state in states:
                    if state not in sent_nodes:
                        sent_nodes.add(state)
                        nodes.append((state, engine.node_state(state)))
            network = (key >> shift) & network_mask
            if network not in sent_networks:
                sent_networks.add(network)
                networks.append((network, engine.network(network)))
        return Batch(
            tuple(nodes),
            tuple(networks),
            tuple(budgets),
            tuple(keys),
            tuple(parents),
            tuple(positions),
        )

    # --- the rounds ------------------------------------------------------------------------

    def start(self) -> Absorbed:
        """Keep the initial state if this worker owns it; check it."""
        key = self.engine.key(self.initial)
        if self.owner(key) != self.index:
            return Absorbed(0, (), 0, memory_mb())
        found = self._keep([key], [-1], [-1], [-1], depth=0)
        self._next_level()
        return Absorbed(1, found, self._owned, memory_mb())

    def expand(self, seconds: float | None = None) -> Expanded:
        """Expand the current level's owned states; the successors go to their owners.
        ``seconds`` is the time left (a duration: the workers' clocks may not agree)."""
        deadline = None if seconds is None else time.perf_counter() + seconds
        engine = self.engine
        policy = self.policy
        count = self.count
        me = self.index
        expand, successor, owner = engine.expand, engine.successor, self.owner
        owners, owner_mask = self._owners, self._owner_mask
        seen, sent, fingerprints = self._seen, self._sent_states, self.fingerprints
        fingerprint, take = self.fingerprint, self._take
        self._next = []  # own successors are kept at once; absorb adds the others'
        out_keys: list[list[int]] = [[] for _ in range(count)]
        out_parents: list[list[int]] = [[] for _ in range(count)]
        out_positions: list[list[int]] = [[] for _ in range(count)]
        found: list[Found] = []
        transitions = 0
        timed_out = False
        depth = self._depth
        step_sets = self._step_sets
        alone = count == 1
        for offset, key in enumerate(self._level):
            index = self._level_first + offset
            moves, quiet = expand(key)
            if quiet:
                world = engine.world(key)
                self._quiescent += 1
                live = engine.exercised_at_quiescence(world, key)
                if live:
                    self._state_sets[live] = self._state_sets.get(live, 0) + 1
                stalled = check_quiescent(world, policy)
                if stalled:
                    found.append(self._found(stalled, "quiescent", index, -1, depth, key))
            transitions += len(moves)
            for position, move in enumerate(moves):
                after, violations, premises = successor(key, move)
                if premises:
                    step_sets[premises] = step_sets.get(premises, 0) + 1
                if violations:
                    found.append(self._found(violations, "step", index, position, depth + 1, key))
                target = me if alone else owners.get(after & owner_mask, -1)
                if target < 0:
                    target = owner(after)
                if target == me:
                    # Ours: kept now, at the depth it is first reached (this level + 1), so it
                    # needs no second pass in absorb. A state another worker sends us later
                    # in this round is then found in the visited set there.
                    name = fingerprint(after) if fingerprints else after
                    if name in seen:
                        continue
                    seen.add(name)
                    kept = take(after, me, index, position, depth + 1)
                    if kept is not None:
                        found.append(kept)
                    continue
                if after in sent:
                    continue  # sent to its owner before: kept there at that level or earlier
                else:
                    if len(sent) >= SENT_CACHE:
                        sent.clear()  # a cache only: a state sent again is dropped there
                    sent.add(after)
                out_keys[target].append(after)
                out_parents[target].append(index)
                out_positions[target].append(position)
            if deadline is not None and not offset & 63 and time.perf_counter() > deadline:
                timed_out = True
                break
        batches: list[Batch | None] = []
        for target in range(count):
            if not out_keys[target]:
                batches.append(None)
            else:
                batches.append(
                    self._batch(
                        target, out_keys[target], out_parents[target], out_positions[target]
                    )
                )
        effects = engine.take_exports() if engine.shared is not None else None
        return Expanded(tuple(batches), effects, transitions, tuple(found), timed_out)

    def absorb(
        self, batches: Sequence[Batch | None], effects: Sequence[tuple[int, Exports]] = ()
    ) -> Absorbed:
        """Take in the successors sent by each worker (``batches[w]`` from worker ``w``);
        those not seen before join this worker's part of the next level (its own successors
        were kept in expand). ``effects`` are the other workers' newly computed effects, as
        (worker, exports): adopted instead of computed again."""
        for source, exports in effects:
            self.engine.receive(source, exports)
        self._depth += 1
        keys: list[int] = []
        parent_workers: list[int] = []
        parents: list[int] = []
        positions: list[int] = []
        for source, batch in enumerate(batches):
            if batch is None or source == self.index:
                continue  # our own successors were kept in expand
            keys.extend(self._translate(source, batch))
            parent_workers.extend([source] * len(batch.keys))
            parents.extend(batch.parents)
            positions.extend(batch.positions)
        found = self._keep(keys, parent_workers, parents, positions, depth=self._depth)
        new = self._next_level()
        return Absorbed(new, found, self._owned, memory_mb())

    def _next_level(self) -> int:
        """Make the states kept since the last level the current level; their number."""
        self._level_first = self._owned - len(self._next)
        self._level, self._next = self._next, []
        return len(self._level)

    def _keep(
        self,
        keys: list[int],
        parent_workers: list[int],
        parents: list[int],
        positions: list[int],
        depth: int,
    ) -> tuple[Found, ...]:
        """Keep the keys not seen before (into the next level); check their invariants."""
        seen = self._seen
        fingerprint = self.fingerprint if self.fingerprints else None
        take = self._take
        found: list[Found] = []
        for key, parent_worker, parent, position in zip(
            keys, parent_workers, parents, positions, strict=True
        ):
            name = key if fingerprint is None else fingerprint(key)
            if name in seen:
                continue
            seen.add(name)
            kept = take(key, parent_worker, parent, position, depth)
            if kept is not None:
                found.append(kept)
        return tuple(found)

    def _take(
        self, key: int, parent_worker: int, parent: int, position: int, depth: int
    ) -> Found | None:
        """Keep a state just added to the visited set: its parent link, its place in the
        next level, the witnesses it reaches; what its invariants find."""
        if not self.fingerprints:
            self._parent_worker.append(parent_worker)
            self._parent_index.append(parent)
            self._position.append(position)
        index = self._owned
        self._owned += 1
        self._next.append(key)
        world = None
        if self._waiting:
            world = self.engine.world(key)
            for witness in [w for w in self._waiting if w.holds(world)]:
                self._waiting.remove(witness)
                self._reached.add(witness.name)
        violations, live = self.engine.state_checks(key, world)
        if live:
            self._state_sets[live] = self._state_sets.get(live, 0) + 1
        if violations:
            return self._found(violations, "state", index, -1, depth, key)
        return None

    def _found(
        self,
        violations: Iterable[Violation],
        kind: Kind,
        index: int,
        position: int,
        length: int,
        key: int,
    ) -> Found:
        rids = tuple(sorted({v.requirement for v in violations}))
        world = self.engine.world(key) if self.fingerprints else None
        return Found(rids, kind, self.index, index, position, length, world)

    # --- afterwards ------------------------------------------------------------------------

    def parent(self, index: int) -> tuple[int, int, int]:
        """The parent of owned state ``index``: (worker, index there, move position); the
        initial state's is (-1, -1, -1)."""
        return (self._parent_worker[index], self._parent_index[index], self._position[index])

    def path(self, index: int) -> list[tuple[int, int, int]]:
        """Parent links from ``index`` back while they stay in this worker (one round trip
        for a run of local ancestors)."""
        links = []
        while True:
            link = self.parent(index)
            links.append(link)
            if link[0] != self.index or link[1] < 0:
                return links
            index = link[1]

    def totals(self) -> Totals:
        return Totals(
            self._quiescent,
            dict(self._state_sets),
            dict(self._step_sets),
            frozenset(self._reached),
            self._owned,
            time.process_time(),
        )

    def probe(self) -> int:
        return hash_probe()


# --- the coordinator ---------------------------------------------------------------------------


class Transport:
    """How the coordinator reaches its workers: every call goes to all of them at once and
    returns their answers in worker order."""

    count: int
    #: the workers run in processes of their own (their CPU time is not this process's)
    remote: bool = True

    def start(self) -> list[Absorbed]:
        raise NotImplementedError

    def expand(self, seconds: float | None) -> list[Expanded]:
        """Each worker expands its part of the level, for at most ``seconds``."""
        raise NotImplementedError

    def absorb(
        self, inboxes: list[list[Batch | None]], effects: list[tuple[tuple[int, Exports], ...]]
    ) -> list[Absorbed]:
        """``inboxes[w]`` for worker ``w``; ``effects[w]`` are the effects the others computed."""
        raise NotImplementedError

    def path(self, worker: int, index: int) -> list[tuple[int, int, int]]:
        raise NotImplementedError

    def totals(self) -> list[Totals]:
        raise NotImplementedError

    def probes(self) -> list[int]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers (every transport ends its own processes)."""


class LocalTransport(Transport):
    """Workers in this process (one, normally: the fingerprint mode's serial run)."""

    remote = False

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self.count = len(workers)

    def start(self) -> list[Absorbed]:
        return [w.start() for w in self.workers]

    def expand(self, seconds: float | None) -> list[Expanded]:
        return [w.expand(seconds) for w in self.workers]

    def absorb(
        self, inboxes: list[list[Batch | None]], effects: list[tuple[tuple[int, Exports], ...]]
    ) -> list[Absorbed]:
        return [
            w.absorb(inbox, shared)
            for w, inbox, shared in zip(self.workers, inboxes, effects, strict=True)
        ]

    def path(self, worker: int, index: int) -> list[tuple[int, int, int]]:
        return self.workers[worker].path(index)

    def totals(self) -> list[Totals]:
        return [w.totals() for w in self.workers]

    def probes(self) -> list[int]:
        return [w.probe() for w in self.workers]


def _serve(connection: Any, make: Callable[[], Worker]) -> None:
    """A worker process's loop: build the worker, then answer (method, args) requests."""
    # The search never makes reference cycles worth collecting (see explorer.explore).
    gc.disable()
    worker = make()
    while True:
        request = connection.recv()
        if request is None:
            connection.close()
            return
        method, args = request
        try:
            answer = (True, getattr(worker, method)(*args))
        except BaseException as error:
            import traceback

            answer = (False, f"worker {method} failed: {error!r}\n{traceback.format_exc()}")
        connection.send(answer)


class RemoteTransport(Transport):
    """A transport whose every round is one message per worker, sent together and answered in
    worker order (``_all``): worker processes here, Ray actors in ``distributed``."""

    def _all(self, method: str, args: list[tuple[Any, ...]] | None = None) -> list[Any]:
        """Call ``method`` on every worker, worker ``n`` with ``args[n]`` (none by default)."""
        raise NotImplementedError

    def start(self) -> list[Absorbed]:
        return self._all("start")

    def expand(self, seconds: float | None) -> list[Expanded]:
        return self._all("expand", [(seconds,)] * self.count)

    def absorb(
        self, inboxes: list[list[Batch | None]], effects: list[tuple[tuple[int, Exports], ...]]
    ) -> list[Absorbed]:
        return self._all(
            "absorb", [(inbox, shared) for inbox, shared in zip(inboxes, effects, strict=True)]
        )

    def totals(self) -> list[Totals]:
        return self._all("totals")

    def probes(self) -> list[int]:
        return self._all("probe")


class ProcessTransport(RemoteTransport):
    """Workers in forked processes (spawned where fork is unavailable), one pipe each."""

    def __init__(self, makers: list[Callable[[], Worker]]) -> None:
        method = "fork" if sys.platform == "linux" else "spawn"
        if method == "spawn":
            os.environ.setdefault("PYTHONHASHSEED", "0")
        context: Any = multiprocessing.get_context(method)
        self.count = len(makers)
        self._pipes = []
        self._processes = []
        for make in makers:
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, make), daemon=True)
            process.start()
            theirs.close()
            self._pipes.append(ours)
            self._processes.append(process)

    def _all(self, method: str, args: list[tuple[Any, ...]] | None = None) -> list[Any]:
        for n, pipe in enumerate(self._pipes):
            pipe.send((method, () if args is None else args[n]))
        return [self._answer(pipe) for pipe in self._pipes]

    @staticmethod
    def _answer(pipe: Any) -> Any:
        ok, value = pipe.recv()
        if not ok:
            raise RuntimeError(value)
        return value

    def path(self, worker: int, index: int) -> list[tuple[int, int, int]]:
        pipe = self._pipes[worker]
        pipe.send(("path", (index,)))
        answer: list[tuple[int, int, int]] = self._answer(pipe)
        return answer

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send(None)
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


#: states explored (serially) to choose the owner nodes of a partitioned run
OWNER_SAMPLE = 500


def choose_owner_nodes(
    initial: World, policy: Policy, sample: int = OWNER_SAMPLE
) -> tuple[int, ...]:
    """The nodes whose states decide a state's owner: all but the node whose state the
    transitions of a short breadth-first sample (``sample`` states) change most often.

    A successor moves to another worker only when an owner node's state changes, and then it
    is batched, pickled, sent and translated, and its successors find the receiver's memos
    cold. The node that changes most often (the hub of a star: every joiner's exchange changes
    it) would send most successors away; leaving it out keeps them with the worker that found
    them. On ``trio-forgery`` with 2 workers the workers' CPU time in all fell from 1.5-1.9
    to about 1.4 times the serial explorer's, the two loads within a few per cent (CPU times
    measured under load, ``benchmarks/explorer_bench.py --only scale``)."""
    count = len(initial.nodes)
    if count < 2:
        return tuple(range(count))
    engine = Successors(initial, policy)
    changes = [0] * count
    root = engine.key(initial)
    seen, order = {root}, [root]
    for key in order:
        before = engine.fields(key)[3]
        for move in engine.expand(key)[0]:
            after = engine.successor(key, move)[0]
            for n, (old, new) in enumerate(zip(before, engine.fields(after)[3], strict=True)):
                changes[n] += old != new
            if after not in seen and len(seen) < sample:
                seen.add(after)
                order.append(after)
    busiest = max(range(count), key=lambda n: changes[n])
    return tuple(n for n in range(count) if n != busiest)


def _id_set(ids: Iterable[str] | None) -> frozenset[str] | None:
    return None if ids is None else frozenset(ids)


@attrs.frozen(kw_only=True)
class SearchOptions:
    """What bounds and steers a partitioned search, whatever transport carries it: the keyword
    arguments of :func:`~kadspec.engines.explorer.explore` that :func:`coordinate` honours, and
    the fingerprint mode. :func:`explore_parallel` and ``distributed.explore_ray`` build one from
    their keywords and hand it to :func:`coordinate` unchanged."""

    max_states: int | None = None
    max_seconds: float | None = None
    keep_going: bool = False
    stop_at: frozenset[str] | None = attrs.field(default=None, converter=_id_set)
    witnesses: tuple[Witness, ...] = attrs.field(default=(), converter=tuple)
    progress: ProgressCallback | None = None
    target: str | None = None
    fingerprints: bool = False


def explore_parallel(
    initial: World,
    policy: Policy,
    options: SearchOptions | None = None,
    *,
    workers: int | None = None,
    in_process: bool = False,
    **search: Any,
) -> Exploration:
    """:func:`~kadspec.engines.explorer.explore` over ``workers`` processes (default: every
    usable core), with the same results on a complete run. ``options`` (or the keywords of
    :class:`SearchOptions`, which override it) bound and steer the search.

    ``in_process`` runs the workers in this process (for one worker: no process at all).
    """
    chosen = attrs.evolve(options or SearchOptions(), **search)
    count = workers or usable_cores()
    makers: list[Callable[[], Worker]] = [
        partial(Worker, *args, **keywords)
        for args, keywords in worker_arguments(initial, policy, count, chosen)
    ]
    transport: Transport
    # Workers in this process allocate what the serial explorer does: no garbage cycles, so
    # the cyclic collector would only rescan them (explorer.explore turns it off too; worker
    # processes do in _serve): 2-3% of the fingerprint mode's one-worker run on trio-forgery.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if in_process or count == 1:
            transport = LocalTransport([make() for make in makers])
        else:
            transport = ProcessTransport(makers)
        try:
            return coordinate(transport, initial, policy, chosen)
        finally:
            transport.close()
    finally:
        if collecting:
            gc.enable()


def worker_arguments(
    initial: World, policy: Policy, count: int, options: SearchOptions
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Per worker of ``count``, the (positional, keyword) arguments of :class:`Worker` for a
    search with ``options``: every transport builds its workers alike (processes here, Ray
    actors in ``distributed``), with one choice of owner nodes for all of them."""
    owners = choose_owner_nodes(initial, policy) if count > 1 else None
    keywords: dict[str, Any] = {
        "fingerprints": options.fingerprints,
        "witnesses": options.witnesses,
        "owner_nodes": owners,
    }
    return [((index, count, initial, policy), keywords) for index in range(count)]


def coordinate(
    transport: Transport,
    initial: World,
    policy: Policy,
    options: SearchOptions | None = None,
) -> Exploration:
    """Run the level-synchronous search over the transport's workers."""
    options = options or SearchOptions()
    max_seconds, max_states = options.max_seconds, options.max_states
    keep_going, target, progress = options.keep_going, options.target, options.progress
    fingerprints = options.fingerprints
    started = time.perf_counter()
    cpu_started = time.process_time()
    deadline = None if max_seconds is None else started + max_seconds
    probes = set(transport.probes())
    if len(probes) != 1:
        raise RuntimeError(
            "the workers hash differently (set PYTHONHASHSEED alike for all of them): "
            "ownership of states would not agree"
        )
    stop_set = options.stop_at
    count = transport.count
    shortest: dict[str, Found] = {}  # per requirement, the shortest violation found
    first: list[str] = []  # requirements in the order their first violation was found
    also: set[str] = set()
    transitions = 0
    states = 0
    widths: list[int] = []
    depth = 0
    memory = 0.0
    peak_memory = 0.0

    def record(found: Iterable[Found]) -> str | None:
        """Note violations (shortest per requirement); the requirement that stops the
        search, if any."""
        stopping = None
        for f in sorted(found, key=lambda f: f.length):
            for rid in f.requirements:
                if target is not None and rid != target:
                    also.add(rid)
                if rid not in shortest or f.length < shortest[rid].length:
                    if rid not in shortest:
                        first.append(rid)
                    shortest[rid] = f
                if stopping is None:
                    if target is not None:
                        stopping = rid if rid == target else None
                    elif not keep_going and (stop_set is None or rid in stop_set):
                        stopping = rid
        return stopping

    def report(frontier: int) -> None:
        if progress is not None:
            progress(
                Snapshot(
                    states, transitions, depth, frontier, time.perf_counter() - started, memory
                )
            )

    def finish(reason: StopReason, stopping: str | None) -> Exploration:
        totals = transport.totals()
        exercised: dict[str, int] = {}
        for t in totals:
            for sets in (t.state_sets, t.step_sets):
                for ids, times in sets.items():
                    for rid in ids:
                        exercised[rid] = exercised.get(rid, 0) + times
        traces: dict[Found, Counterexample] = {}

        def trace_of(f: Found, rid: str) -> Counterexample:
            if f not in traces:
                traces[f] = _trace(transport, initial, policy, f, rid, fingerprints)
            return traces[f]

        wanted = [target] if target is not None else first
        counterexamples = {rid: trace_of(shortest[rid], rid) for rid in wanted if rid in shortest}
        if target is not None:
            counterexamples = {}
            chosen = trace_of(shortest[target], target) if target in shortest else None
        else:
            chosen = counterexamples[stopping] if stopping is not None else None
            if chosen is None and first:
                chosen = counterexamples[first[0]]
        report(0)
        cpu = time.process_time() - cpu_started
        if transport.remote:
            cpu += sum(t.cpu_seconds for t in totals)
        states = sum(t.states for t in totals)
        return Exploration(
            states,
            transitions,
            depth,
            time.perf_counter() - started,
            reason == "complete",
            chosen,
            frozenset(also),
            reason,
            exercised,
            sum(t.quiescent_states for t in totals),
            counterexamples,
            frozenset().union(*(t.reached for t in totals)),
            tuple(widths),
            workers=count,
            fingerprints=fingerprints,
            omission_probability=omission_probability(states) if fingerprints else None,
            peak_memory_mb=peak_memory,
            cpu_seconds=cpu,
            worker_cpu_seconds=tuple(t.cpu_seconds for t in totals) if transport.remote else (),
        )

    started_level = transport.start()
    memory = peak_memory = memory_mb() + (
        sum(a.memory_mb for a in started_level) if transport.remote else 0
    )
    states = sum(a.states for a in started_level)
    widths.append(sum(a.new for a in started_level))
    stopping = record(f for a in started_level for f in a.found)
    if stopping is not None:
        return finish("violation", stopping)
    frontier = widths[-1]
    while frontier:
        report(frontier)
        expanded = transport.expand(
            None if deadline is None else max(0.0, deadline - time.perf_counter())
        )
        transitions += sum(e.transitions for e in expanded)
        stopping = record(f for e in expanded for f in e.found)
        inboxes = [[e.batches[w] for e in expanded] for w in range(count)]
        effects = [
            tuple(
                (n, e.effects) for n, e in enumerate(expanded) if n != w and e.effects is not None
            )
            for w in range(count)
        ]
        absorbed = transport.absorb(inboxes, effects)
        states = sum(a.states for a in absorbed)
        memory = memory_mb() + (sum(a.memory_mb for a in absorbed) if transport.remote else 0)
        peak_memory = max(peak_memory, memory)
        frontier = sum(a.new for a in absorbed)
        stopping = record(f for a in absorbed for f in a.found) or stopping
        if stopping is not None:
            return finish("violation", stopping)
        if any(e.timed_out for e in expanded):
            return finish("time-cap", None)
        if frontier:
            depth += 1
            widths.append(frontier)
            if max_states is not None and states >= max_states:
                return finish("state-cap", None)
            if deadline is not None and time.perf_counter() > deadline:
                return finish("time-cap", None)
    return finish("complete", None)


def _trace(
    transport: Transport,
    initial: World,
    policy: Policy,
    found: Found,
    wanted: str,
    fingerprints: bool,
) -> Counterexample:
    """The counterexample behind ``found``: positions of the moves from the initial state,
    read from the parent links (or, with fingerprints, found by exploring again)."""
    if fingerprints:
        assert found.world is not None
        depth = found.length - 1 if found.kind == "step" else found.length
        positions = rebuild_by_reexploration(initial, policy, found.world, depth)
    else:
        positions = []
        worker, index = found.worker, found.index
        while True:
            links = transport.path(worker, index)
            for link in links:
                if link[1] < 0:
                    break
                positions.append(link[2])
            last = links[-1]
            if last[1] < 0:
                break
            worker, index = last[0], last[1]
        positions.reverse()
    if found.kind == "step":
        positions.append(found.position)
    actions = actions_at(initial, policy, positions)
    return rebuild_trace(initial, policy, actions, found.kind, wanted)


def actions_at(initial: World, policy: Policy, positions: Sequence[int]) -> list[Action]:
    """The actions taken at each position of the enabled list, from ``initial``."""
    world = initial
    actions = []
    for position in positions:
        action = enabled(world, policy)[position]
        actions.append(action)
        world = apply(world, policy, action)
    return actions


def rebuild_by_reexploration(initial: World, policy: Policy, goal: World, depth: int) -> list[int]:
    """The move positions of a shortest path from ``initial`` to ``goal``, which lies at
    breadth-first depth ``depth``: a search to that depth that keeps parent links this time
    (the fingerprint mode's run kept none), so it costs the memory of the states up to there.
    """
    engine = Successors(initial, policy)
    # the goal may come from another process: its configuration is an equal copy
    wanted = engine.key(attrs.evolve(goal, config=initial.config))
    root = engine.key(initial)
    links: dict[int, tuple[int, int]] = {root: (-1, -1)}
    level = [root]
    for _ in range(depth + 1):
        if wanted in links:
            break
        following = []
        for key in level:
            moves, _ = engine.expand(key)
            for position, move in enumerate(moves):
                after = engine.successor(key, move)[0]
                if after not in links:
                    links[after] = (key, position)
                    following.append(after)
        level = following
    if wanted not in links:
        raise AssertionError(f"re-exploration did not reach the state at depth {depth}")
    positions = []
    key = wanted
    while key != root:
        key, position = links[key]
        positions.append(position)
    positions.reverse()
    return positions


def usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def omission_probability(states: int) -> float:
    """The chance that a 64-bit fingerprint collision hid a state, for ``states`` distinct
    fingerprints drawn uniformly (the birthday bound n(n-1)/2 / 2**64)."""
    return min(1.0, states * (states - 1) / 2 / 2.0**64)


__all__ = [
    "Absorbed",
    "Batch",
    "Expanded",
    "Found",
    "LocalTransport",
    "ProcessTransport",
    "RemoteTransport",
    "SearchOptions",
    "Snapshot",
    "Transport",
    "Worker",
    "choose_owner_nodes",
    "coordinate",
    "explore_parallel",
    "omission_probability",
    "usable_cores",
    "worker_arguments",
]
