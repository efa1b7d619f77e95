"""Memoized successors: each local step of the model is computed once, then replayed.

A global state is a handful of node states and channels, and the same node states recur in
thousands of global states (scenario ``trio``: 35,522 worlds, 293 distinct node states, 5,513
distinct local situations behind 133,157 transitions). Most actions read and write only one or
two nodes: a delivery from ``src`` to ``dst`` reads and writes those two (a reply's admission
probes the sender's table; ADD_PROVIDER and a refused request settle the sender's side), pops
the channel it came from and appends to channels leaving the two. ``query`` and
``dial_bootstrap`` touch the node and the peer it dials, ``dial_back`` only the node, the
user's actions one node and the budget, ``lose`` and ``disconnect`` a pair and the budget.
``crash`` and ``tick`` touch every node. ``lifecycle.react`` looks at each node alone, and a
node the action did not change is already a fixed point of it. No effect reads a channel
beyond the head it pops.

So the effect of an action is a function of its *situation*: the action, the clock, the
states of the nodes it touches ("parties"), and the budget when it spends some. Most deliveries
do not touch their sender at all (``actions.deliver_reads_sender`` decides it from the
receiver's state); their situation is the receiver's state alone. A situation is the world's
key (below) with every other field cleared: one ``&`` with a mask each move keeps.
:class:`Successors` computes it the first time with the public
:func:`~kadspec.models.actions.apply` and :func:`~kadspec.models.checks.check_step`, records
what changed (new party states, channels popped, cleared or appended to, budget, clock, step
violations) and patches that onto every later world in the same situation. Recording refuses an
effect that reaches beyond the parties (it is then recomputed each time), and ``verify=True``
recomputes every patched step with the public functions and fails on the first difference:
the tests run whole scenarios and mutants that way.

Guards and checks are memoized by what they read: a node's own protocol actions, its next
timer and its invariants by its state; starts and the user's actions by the budget and which
nodes are up; deliveries and the checks of messages in flight by the network.

States are also *interned*: every distinct node state, network (all channels) and budget gets
a small integer, and a world is identified by one integer key packing the clock, the budget's,
the network's and each node state's id. Two worlds are equal exactly when their keys are (world
equality ignores the fixed configuration and horizon). The explorer's set of seen states holds
these keys, a few dozen bytes each instead of a world's object graph, and a successor's key is
computed from the effect without building the successor at all when it was seen before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from kadspec.models import actions as transitions
from kadspec.models.actions import Action, apply, deliver_reads_sender, enabled, quiescent
from kadspec.models.checks import (
    WORLD_CHECKS,
    StateCheck,
    Violation,
    check_node,
    check_state,
    check_step,
    exercised_at_quiescence,
    exercised_in_state,
    exercised_in_step,
    node_premises,
    operations_answered_in_time,
    provides_answered_in_time,
)
from kadspec.models.config import Config
from kadspec.models.lifecycle import node_deadline
from kadspec.models.lookup import next_candidate
from kadspec.models.observe import project_node
from kadspec.models.policy import Policy
from kadspec.models.state import Budget, Kind, Message, NodeState, World

#: action kinds that touch one node (``node``) and spend from the budget
_ONE_NODE_SPENDING = frozenset({"start", "restart", "provide", "find_providers", "set_mode"})
#: action kinds that touch a pair of nodes (``node``, ``peer``) and spend from the budget
_TWO_NODES_SPENDING = frozenset({"disconnect", "forge_add_provider"})


class Effect:
    """What a move did in one situation, ready to patch onto another world in the same one.

    ``edits`` are (channel index, dropped, appended): dropped is 1 for a pop, -1 to clear it.
    ``node_ids`` and ``budget_id`` are the interned ids of the new node states and budget, so
    that a successor's key can be computed without building the successor.
    """

    __slots__ = (
        "budget",
        "budget_id",
        "changes",
        "clock",
        "edit_ids",
        "edit_set",
        "edits",
        "exercised",
        "keep",
        "node_ids",
        "put",
        "serial",
        "violations",
    )

    def __init__(
        self,
        changes: tuple[tuple[int, NodeState], ...],
        edits: tuple[tuple[int, int, tuple[Message, ...]], ...],
        budget: Budget | None,
        clock: int | None,
        violations: tuple[Violation, ...],
        exercised: frozenset[str] = frozenset(),
    ) -> None:
        self.changes = changes
        self.exercised = exercised  # the step checks' live premises (checks.exercised_in_step)
        self.edits = edits
        self.budget = budget
        self.clock = clock
        self.violations = violations
        self.serial = 0
        #: the interned id of ``edit_ids``: effects with the same edits lead a network to the
        #: same network, so the cache of networks after an edit is keyed by it
        self.edit_set = 0
        self.node_ids: tuple[tuple[int, int], ...] = ()
        #: the edits as (channel index, interned edit id) (see Successors._patched)
        self.edit_ids: tuple[tuple[int, int], ...] = ()
        self.budget_id = -1
        # A successor's key is ``key & keep | put`` (and, with edits, the next network's id
        # or'ed into the cleared network field): the fields the effect sets, precomputed.
        self.keep = -1
        self.put = 0


class Move:
    """An enabled action, the nodes it touches and its memo of effects by situation.

    ``parties`` None means every node (``tick``, ``crash``).
    """

    __slots__ = (
        "action",
        "alone",
        "cleared",
        "mask",
        "memo",
        "parties",
        "popped",
        "receiver",
        "single",
        "spends",
    )

    def __init__(
        self,
        action: Action,
        parties: tuple[int, ...] | None,
        count: int,
        *,
        spends: bool = False,
    ) -> None:
        self.action = action
        self.parties = parties
        self.spends = spends  # the effect reads and changes the budget
        #: effects by situation: the world's key with every field the move does not read
        #: cleared (``key & mask``, see ``Successors._move``)
        self.memo: dict[int, Effect] = {}
        #: the key's fields the move reads: the clock, its parties' states, and the budget when
        #: it spends (every field but the network's for a move of every node)
        self.mask = -1
        #: for a delivery: the receiver's field of the key (0 for every other move), the mask
        #: of a delivery that ignores its sender (the clock and the receiver's field), and per
        #: receiver state (its field of the key) the mask that applies to it
        self.receiver = 0
        self.single = -1
        self.alone: dict[int, int] = {}
        message = action.message
        #: the channel whose head the action takes (deliver, lose)
        self.popped = (
            message.src * count + message.dst
            if message is not None and action.kind in ("deliver", "lose")
            else -1
        )
        #: the channels the action empties: everything to and from a crashing node
        self.cleared = (
            frozenset(i for i in range(count * count) if action.node in divmod(i, count))
            if action.kind == "crash"
            else frozenset()
        )

    def __repr__(self) -> str:
        return f"Move({self.action!r}, parties={self.parties})"


#: a node's own moves by generator (bootstrap, query, dial-back) and its next timer
Local = tuple[tuple[Move, ...], tuple[Move, ...], tuple[Move, ...], int | None]
#: per node state: its own moves (bootstrap, query, dial-back), next timer, invariants' violations
#: and live premises
NodeEntry = tuple[
    tuple[Move, ...],
    tuple[Move, ...],
    tuple[Move, ...],
    int | None,
    tuple[Violation, ...],
    frozenset[str],
]


class Successors:
    """Enabled actions, successors and checks of one (configuration, policy), memoized.

    Every answer equals the public functions' (``enabled``, ``quiescent``, ``apply`` followed
    by ``check_step``, ``check_state``); only the cost differs.
    """

    #: bits per field of a key; an id that does not fit raises (it never has: trio needs 9 bits)
    NODE_BITS = 24
    NETWORK_BITS = 32
    BUDGET_BITS = 24
    #: entries kept in the (network, effect) -> network cache before it is emptied
    NETWORK_CACHE = 1 << 20
    #: entries kept in the per (clock, budget, node states) cache before it is emptied
    PART_CACHE = 1 << 20

    def __init__(self, initial: World, policy: Policy, *, verify: bool = False) -> None:
        """Successors of the worlds reachable from ``initial`` (they share its configuration
        and horizon)."""
        self.config = config = initial.config
        self.horizon = initial.horizon
        self.policy = policy
        self.verify = verify
        self.replayed = 0  # steps patched from the memo
        self.computed = 0  # steps computed by the public functions
        self.adopted = 0  # effects adopted from other engines (see share)
        #: effects other engines computed, by (action, situation in this engine's ids)
        self.shared: dict[tuple[Action, int], Effect] | None = None
        #: effects computed here since the last take_exports, in this engine's ids
        self.exported: list[Exported] = []
        self._exported_nodes: set[int] = set()  # node state ids whose objects went out
        self._exported_budgets: set[int] = set()
        #: per source engine: its node state and budget ids mapped to ours
        self._imported: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
        self._count = count = len(config.nodes)
        #: the user's moves by budget id and which nodes are up (one bit each)
        self._user: dict[int, tuple[Move, ...]] = {}
        #: per node ``n`` and node state id ``s`` (``n | s << 4``): its own moves and next
        #: timer, its invariants' violations, its live premises
        self._per_node: dict[int, NodeEntry] = {}
        #: per world invariant that splits over nodes: each node's share, by (clock, node state
        #: id, node) packed into an int (see _SPLIT_OVER_NODES)
        self._split_checks: dict[StateCheck, dict[int, tuple[Violation, ...]]] = {}
        self._deliveries: dict[Message, Move] = {}
        self._faults: dict[Action, Move] = {}
        #: per network id: the losses the model offers when the budget allows them
        self._losses: dict[int, tuple[Move, ...]] = {}
        self._no_messages: tuple[tuple[Message, ...], ...] = ((),) * (count * count)
        assert count <= 16, "node indices are packed into 4 bits of the per-node memo's key"
        self._effects = 0
        # interning: object -> id and id -> object, per kind
        self._node_id: dict[NodeState, int] = {}
        self._nodes: list[NodeState] = []
        # A network is interned as the tuple of its channels' ids: patching one replaces a
        # few small ints and hashes a tuple of ints, never a message.
        self._channel_id: dict[tuple[Message, ...], int] = {}
        self._channels: list[tuple[Message, ...]] = []
        self._network_id: dict[tuple[int, ...], int] = {}  # channel ids -> network id
        self._networks: list[tuple[int, ...]] = []  # network id -> channel ids
        #: (dropped, appended) edits of a channel, interned, and a channel's id after one:
        #: channel id | edit id << 32 -> channel id
        self._edit_id: dict[tuple[int, tuple[Message, ...]], int] = {}
        self._edits: list[tuple[int, tuple[Message, ...]]] = []
        self._channel_after: dict[int, int] = {}
        self._budget_id: dict[Budget, int] = {}
        self._budgets: list[Budget] = []
        self._messages: dict[Message, Message] = {}
        #: network id | effect.edit_set << NETWORK_BITS -> the network the edits lead to
        self._next_network: dict[int, int] = {}
        #: the distinct ``Effect.edit_ids`` met, by interned id
        self._edit_sets: dict[tuple[tuple[int, int], ...], int] = {}
        self._by_nodes: dict[int, NodesPart] = {}  # by key with the network's bits cleared
        self._by_network: dict[int, NetworkPart] = {}  # by network id
        # key layout, from the low bits: node 0 .. node count-1, network, budget, clock
        self._network_shift = count * self.NODE_BITS
        self._budget_shift = self._network_shift + self.NETWORK_BITS
        self._clock_shift = self._budget_shift + self.BUDGET_BITS
        self._network_mask = (1 << self.NETWORK_BITS) - 1
        self._nodes_mask = ~(self._network_mask << self._network_shift)
        #: the clock and the node states (the budget and network fields cleared)
        self._nodes_and_clock_mask = self._nodes_mask & ~(
            ((1 << self.BUDGET_BITS) - 1) << self._budget_shift
        )
        self._node_mask = (1 << self.NODE_BITS) - 1
        self._budget_mask = (1 << self.BUDGET_BITS) - 1
        self._node_shifts = tuple(n * self.NODE_BITS for n in range(count))
        #: the world invariants that read the nodes only, in check_state's order, each with its
        #: per-node share where it splits over nodes (see _SPLIT_OVER_NODES)
        self._node_checks = tuple(
            (rid, check, _SPLIT_OVER_NODES.get(check))
            for rid, check in WORLD_CHECKS
            if check in _READ_NODES_ONLY
        )
        for _, check, split in self._node_checks:
            if split is not None:
                self._split_checks[check] = {}
        #: every world invariant reads the nodes only: the nodes' memo holds all violations
        self._nodes_decide_world_checks = all(c in _READ_NODES_ONLY for _, c in WORLD_CHECKS)
        self._tick = self._move(Action("tick"), None)

    # --- interning and keys -------------------------------------------------------------------

    def _intern(self, table: dict[Any, int], objects: list[Any], item: Any, bits: int) -> int:
        found = table.get(item)
        if found is None:
            found = table[item] = len(objects)
            if found >> bits:
                raise OverflowError(f"more than 2**{bits} distinct {type(item).__name__} values")
            objects.append(item)
        return found

    def _network_key(self, network: tuple[tuple[Message, ...], ...]) -> int:
        return self._network_of(tuple([self._channel(channel) for channel in network]))

    def _channel(self, channel: tuple[Message, ...]) -> int:
        found = self._channel_id.get(channel)
        if found is None:
            # Share one object per distinct message, so that comparing channels rarely has to
            # look inside a message.
            messages = self._messages
            channel = tuple([messages.setdefault(m, m) for m in channel])
            found = self._channel_id[channel] = len(self._channels)
            self._channels.append(channel)
        return found

    def _network_of(self, channels: tuple[int, ...]) -> int:
        found = self._network_id.get(channels)
        if found is None:
            found = self._intern(self._network_id, self._networks, channels, self.NETWORK_BITS)
        return found

    def _edit(self, dropped: int, appended: tuple[Message, ...]) -> int:
        edit = (dropped, appended)
        found = self._edit_id.get(edit)
        if found is None:
            found = self._edit_id[edit] = len(self._edits)
            self._edits.append(edit)
        return found

    def key(self, world: World) -> int:
        """The integer identifying ``world`` (among worlds of this configuration)."""
        assert world.config is self.config and world.horizon == self.horizon
        key = world.clock
        key = key << self.BUDGET_BITS | self._intern(
            self._budget_id, self._budgets, world.budget, self.BUDGET_BITS
        )
        key = key << self.NETWORK_BITS | self._network_key(world.network)
        for state in reversed(world.nodes):
            key = key << self.NODE_BITS | self._intern(
                self._node_id, self._nodes, state, self.NODE_BITS
            )
        return key

    def fields(self, key: int) -> tuple[int, int, int, tuple[int, ...]]:
        """A key's parts: clock, budget id, network id and each node's state id."""
        node_mask = (1 << self.NODE_BITS) - 1
        nodes = tuple([(key >> (n * self.NODE_BITS)) & node_mask for n in range(self._count)])
        network = (key >> self._network_shift) & ((1 << self.NETWORK_BITS) - 1)
        budget = (key >> self._budget_shift) & ((1 << self.BUDGET_BITS) - 1)
        return key >> self._clock_shift, budget, network, nodes

    def compose(self, clock: int, budget: int, network: int, nodes: list[int]) -> int:
        """The key with these parts (the inverse of :meth:`fields`)."""
        key = (clock << self.BUDGET_BITS | budget) << self.NETWORK_BITS | network
        for state in reversed(nodes):
            key = key << self.NODE_BITS | state
        return key

    @property
    def nodes_mask(self) -> int:
        """The bits of a key that are not the network's (the clock, budget and node states)."""
        return self._nodes_mask

    @property
    def network_field(self) -> tuple[int, int]:
        """Where a key holds the network's id: (shift, mask)."""
        return self._network_shift, self._network_mask

    def node_id(self, state: NodeState) -> int:
        return self._intern(self._node_id, self._nodes, state, self.NODE_BITS)

    def network_id(self, network: tuple[tuple[Message, ...], ...]) -> int:
        return self._network_key(network)

    def budget_id(self, budget: Budget) -> int:
        return self._intern(self._budget_id, self._budgets, budget, self.BUDGET_BITS)

    def node_state(self, state_id: int) -> NodeState:
        return self._nodes[state_id]

    def network(self, network_id: int) -> tuple[tuple[Message, ...], ...]:
        channels = self._channels
        return tuple([channels[c] for c in self._networks[network_id]])

    def budget(self, budget_id: int) -> Budget:
        return self._budgets[budget_id]

    def world(self, key: int) -> World:
        """The world a key identifies."""
        mask = (1 << self.NODE_BITS) - 1
        nodes = self._nodes
        states = tuple([nodes[(key >> (n * self.NODE_BITS)) & mask] for n in range(self._count)])
        network = self.network((key >> self._network_shift) & ((1 << self.NETWORK_BITS) - 1))
        budget = self._budgets[(key >> self._budget_shift) & ((1 << self.BUDGET_BITS) - 1)]
        return World(self.config, self.horizon, key >> self._clock_shift, states, network, budget)

    # --- guards ---------------------------------------------------------------------------------

    def enabled(self, world: World, key: int | None = None) -> tuple[list[Move], bool]:
        """The enabled moves in :func:`~kadspec.models.actions.enabled`'s order, and whether
        ``world`` is quiescent. ``key`` is the world's key (computed when not given)."""
        if key is None:
            key = self.key(world)
        return self.expand(key, world)

    def expand(self, key: int, world: World | None = None) -> tuple[list[Move], bool]:
        """:meth:`enabled` for the world ``key``, decoded only if the memo lacks a part."""
        nodes_part = self._by_nodes.get(key & self._nodes_mask)
        if nodes_part is None:
            nodes_part = self._nodes_part(world, key)
        network = self._by_network.get((key >> self._network_shift) & self._network_mask)
        if network is None:
            network = self._network_part(world, key)
        moves = list(nodes_part.head)
        if nodes_part.faulty:
            moves.extend(nodes_part.fault_head)
            if nodes_part.loses:
                network_id = (key >> self._network_shift) & self._network_mask
                losses = self._losses.get(network_id)
                if losses is None:
                    losses = self._loss_moves(network_id, world or self.world(key))
                moves.extend(losses)
            moves.extend(nodes_part.fault_tail)
        moves.extend(network.deliveries)
        moves.extend(nodes_part.tail)
        busy = nodes_part.busy or bool(network.deliveries)
        if self.verify:
            world = world or self.world(key)
            expected = enabled(world, self.policy)
            assert [m.action for m in moves] == expected, (moves, expected)
            assert quiescent(world, self.policy) is not busy
        return moves, not busy

    def state_checks(
        self, key: int, world: World | None = None
    ) -> tuple[list[Violation] | tuple[Violation, ...], frozenset[str]]:
        """:meth:`invariants_and_premises` for the world ``key``: read from the memo of the
        node states when every world invariant reads the nodes only (a decoded world is needed
        otherwise, or on a miss)."""
        nodes_part = self._by_nodes.get(key & self._nodes_mask)
        if nodes_part is None:
            nodes_part = self._nodes_part(world, key)
        if nodes_part.state_violations is not None:
            if self.verify:
                world = world or self.world(key)
                assert list(nodes_part.state_violations) == check_state(world, self.policy)
                assert nodes_part.premises == exercised_in_state(world, self.policy)
            return nodes_part.state_violations, nodes_part.premises
        return self.invariants_and_premises(world or self.world(key), key)

    def _nodes_part(self, world: World | None, key: int) -> NodesPart:
        """What depends on the clock, the budget and the node states only (not the network).

        Built from per-node memos (a node's own moves and timer, its invariants, its premises,
        its share of the world invariants that split over nodes), so the world is decoded only
        where one of those misses: most new combinations of node states are made of node
        states met before."""
        nodes_key = key & self._nodes_mask
        part = self._by_nodes.get(nodes_key)
        if part is not None:
            return part
        if len(self._by_nodes) >= self.PART_CACHE:
            self._by_nodes.clear()  # a pure cache: start over rather than grow without bound
        node_mask = self._node_mask
        clock = key >> self._clock_shift
        budget_id = (key >> self._budget_shift) & self._budget_mask
        ids = [(key >> shift) & node_mask for shift in self._node_shifts]
        states = self._nodes
        user_key = budget_id
        for state_id in ids:
            user_key = user_key << 1 | states[state_id].up
        user = self._user.get(user_key)
        if user is None:
            world = world or self.world(key)
            user = self._user[user_key] = self._user_moves(world)
        # Per node and node state id: its own moves and timer, invariant violations, premises.
        per_node = self._per_node
        entries: list[NodeEntry] = []
        for n, state_id in enumerate(ids):
            entry = per_node.get(n | state_id << 4)
            if entry is None:
                world = world or self.world(key)
                state = states[state_id]
                local = self._local_moves(world, n, state)
                entry = per_node[n | state_id << 4] = (
                    *local,
                    check_node(self.config, n, state),
                    node_premises(self.config, n, state),
                )
            entries.append(entry)
        # all nodes' bootstrap dials, then queries, then dial-backs (most nodes have none:
        # concatenate only what is there)
        boot: tuple[Move, ...] = ()
        query: tuple[Move, ...] = ()
        back: tuple[Move, ...] = ()
        found: tuple[Violation, ...] = ()
        for e in entries:
            if e[0]:
                boot += e[0]
            if e[1]:
                query += e[1]
            if e[2]:
                back += e[2]
            if e[4]:
                found += e[4]
        tail = boot + query + back
        head = user
        busy = bool(tail)
        if not busy:
            # A node's own protocol actions are urgent: time passes only when none is enabled.
            deadlines = [e[3] for e in entries if e[3] is not None]
            if deadlines and clock < min(deadlines) <= self.horizon:
                head = (*user, self._tick)
                busy = True
        by_nodes: dict[StateCheck, tuple[Violation, ...]] = {}
        for rid, check, split in self._node_checks:
            if split is None:
                world = world or self.world(key)
                by_nodes[check] = tuple(Violation(rid, d) for d in check(world, self.policy))
                continue
            memo = self._split_checks[check]
            shares: tuple[Violation, ...] = ()
            for n, state_id in enumerate(ids):
                share_key = (clock << self.NODE_BITS | state_id) << 4 | n
                share = memo.get(share_key)
                if share is None:
                    share = memo[share_key] = tuple(
                        Violation(rid, d) for d in split(self.config, n, states[state_id], clock)
                    )
                if share:
                    shares += share
            by_nodes[check] = shares
        premises = entries[0][5]
        for e in entries[1:]:
            if not e[5] <= premises:
                premises = premises | e[5]
        faulty = self._budgets[budget_id].faults > 0
        fault_head: tuple[Move, ...] = ()
        fault_tail: tuple[Move, ...] = ()
        loses = False
        if faulty:
            fault_head, fault_tail, loses = self._node_faults(clock, budget_id, ids)
        every = None
        if self._nodes_decide_world_checks:
            every = found
            for _, check in WORLD_CHECKS:
                if by_nodes[check]:
                    every += by_nodes[check]
        part = NodesPart(
            head,
            tail,
            busy,
            found,
            by_nodes,
            premises,
            faulty,
            every,
            fault_head,
            fault_tail,
            loses,
        )
        self._by_nodes[nodes_key] = part
        return part

    def _network_part(self, world: World | None, key: int) -> NetworkPart:
        """What depends on the network only: deliveries, and checks of messages in flight
        (the world is decoded only if such a check needs it)."""
        network_id = (key >> self._network_shift) & ((1 << self.NETWORK_BITS) - 1)
        part = self._by_network.get(network_id)
        if part is not None:
            return part
        channels = self._channels
        network = [channels[c] for c in self._networks[network_id]]
        deliveries = []
        for channel in network:
            if channel:
                head = channel[0]
                move = self._deliveries.get(head)
                if move is None:
                    action = Action("deliver", message=head)
                    move = self._deliveries[head] = self._move(action, (head.src, head.dst))
                deliveries.append(move)
        kinds = {m.kind for channel in network for m in channel}
        by_network: dict[StateCheck, tuple[Violation, ...]] = {}
        for rid, check in WORLD_CHECKS:
            if check in _READ_NETWORK_ONLY:
                world = world or self.world(key)
                by_network[check] = tuple(Violation(rid, d) for d in check(world, self.policy))
        # ADDR-01 compares the newest identify in flight with its sender's mode: with no
        # identify in flight it has nothing to say, whatever the nodes.
        silent = frozenset(
            check
            for check, needs in _NEEDS_MESSAGES.items()
            if not kinds.intersection(needs) and check not in by_network
        )
        part = NetworkPart(tuple(deliveries), by_network, silent)
        self._by_network[network_id] = part
        return part

    def _user_moves(self, world: World) -> tuple[Move, ...]:
        return tuple(
            self._move(a, (a.node,), spends=True)
            for a in transitions.user_actions(world, self.policy)
        )

    def _node_faults(
        self, clock: int, budget_id: int, ids: list[int]
    ) -> tuple[tuple[Move, ...], tuple[Move, ...], bool]:
        """The fault moves that read the node states and the budget only, split around where
        the model puts losses (crashes and disconnects before, forgeries after), and whether
        the budget allows losses (they read the network: see :meth:`_loss_moves`).

        They are the model's own fault actions in the world of these node states with no
        message in flight, where it offers no loss; ``verify`` compares the whole list."""
        budget = self._budgets[budget_id]
        if budget.faults <= 0:
            return (), (), False
        nodes = self._nodes
        quiet = World(
            self.config,
            self.horizon,
            clock,
            tuple([nodes[i] for i in ids]),
            self._no_messages,
            budget,
        )
        head: list[Move] = []
        tail: list[Move] = []
        for move in self._fault_moves(quiet):
            (tail if tail or move.action.kind == "forge_add_provider" else head).append(move)
        return tuple(head), tuple(tail), "lose" in budget.fault_kinds

    def _loss_moves(self, network_id: int, world: World) -> tuple[Move, ...]:
        """The losses the model offers in ``world``'s network when the budget allows them:
        its fault actions under a budget of losses alone (they read the channels' heads)."""
        only_losses = attrs.evolve(world, budget=_LOSSES_ONLY)
        found = self._losses[network_id] = tuple(self._fault_moves(only_losses))
        return found

    def _fault_moves(self, world: World) -> list[Move]:
        found = []
        for action in transitions.fault_actions(world, self.policy):
            move = self._faults.get(action)
            if move is None:
                parties: tuple[int, ...] | None
                if action.kind == "crash":
                    parties = None
                elif action.kind in _TWO_NODES_SPENDING:
                    parties = (action.node, action.peer)
                else:
                    assert action.kind == "lose" and action.message is not None
                    parties = (action.message.src, action.message.dst)
                move = self._faults[action] = self._move(action, parties, spends=True)
            found.append(move)
        return found

    def _local_moves(self, world: World, node: int, state: NodeState) -> Local:
        boot = tuple(
            self._move(a, (node, a.peer))
            for a in transitions.bootstrap_of(world, self.policy, node)
        )
        query = []
        for a in transitions.query_of(world, self.policy, node):
            peer = next_candidate(world, state.lookups[a.key])
            assert peer is not None
            query.append(self._move(a, (node, peer)))
        back = tuple(
            self._move(a, (node,)) for a in transitions.dial_back_of(world, self.policy, node)
        )
        return boot, tuple(query), back, node_deadline(state)

    # --- effects --------------------------------------------------------------------------------

    def step(self, world: World, key: int, move: Move) -> tuple[int, tuple[Violation, ...]]:
        """The key of the successor of ``world`` (whose key is ``key``) under ``move``, and the
        step checks' violations on that transition."""
        after, violations, _ = self.successor(key, move, world)
        return after, violations

    def step_with_premises(
        self, world: World, key: int, move: Move
    ) -> tuple[int, tuple[Violation, ...], frozenset[str]]:
        """:meth:`step`, and the requirements whose step premise the transition made live
        (:func:`~kadspec.models.checks.exercised_in_step`), memoized with the effect."""
        return self.successor(key, move, world)

    def _move(
        self, action: Action, parties: tuple[int, ...] | None, *, spends: bool = False
    ) -> Move:
        """A move of ``action`` touching ``parties`` (None: every node), with the masks that
        cut its situation out of a world's key.

        A situation is the key with every field the effect does not read cleared: the clock,
        the parties' states, and the budget when the move spends (a move of every node keeps
        every field but the network's, the budget's too unless it spends). A delivery that
        ignores its sender (see ``deliver_reads_sender``) keeps the clock and the receiver's
        state only. Masked fields are zero, so equal ints are equal situations of one move;
        whether a delivery reads its sender is decided by the receiver's state, so for one
        receiver state every situation has the same form."""
        move = Move(action, parties, self._count, spends=spends)
        if parties is None:
            move.mask = self._nodes_mask if spends else self._nodes_and_clock_mask
            return move
        clock = -1 << self._clock_shift
        budget = self._budget_mask << self._budget_shift if spends else 0
        fields = 0
        for n in parties:
            fields |= self._node_mask << self._node_shifts[n]
        move.mask = clock | fields | budget
        if move.popped >= 0 and not spends:
            move.receiver = self._node_mask << self._node_shifts[parties[1]]
            move.single = clock | move.receiver
        return move

    def _delivery_mask(self, key: int, move: Move, world: World | None) -> int:
        """The mask of a delivery's situation for the receiver's state in the world ``key``:
        most deliveries depend on the receiver alone (see ``deliver_reads_sender``)."""
        message = move.action.message
        assert message is not None
        if world is None:
            world = self.world(key)
        alone = not deliver_reads_sender(world, self.policy, message)
        mask = move.alone[key & move.receiver] = move.single if alone else move.mask
        return mask

    def _layout(self, mask: int) -> int:
        """Which fields a situation's mask keeps, for another engine to map its ids: bit 0
        the budget's, bit ``n + 1`` node ``n``'s (see :meth:`_map_situation`)."""
        layout = 1 if (mask >> self._budget_shift) & self._budget_mask else 0
        for n, shift in enumerate(self._node_shifts):
            if (mask >> shift) & self._node_mask:
                layout |= 2 << n
        return layout

    def successor(
        self, key: int, move: Move, world: World | None = None
    ) -> tuple[int, tuple[Violation, ...], frozenset[str]]:
        """The key of the successor of the world ``key`` under ``move``, the step checks'
        violations and the step premises made live; ``world`` is that world if the caller has
        it (it is decoded from the key only when the step is computed, not replayed)."""
        receiver = move.receiver
        if receiver:
            mask = move.alone.get(key & receiver)
            if mask is None:
                mask = self._delivery_mask(key, move, world)
            situation = key & mask
        else:
            situation = key & move.mask
        effect = move.memo.get(situation)
        if effect is None:
            shared = self.shared
            if shared is not None:
                effect = shared.get((move.action, situation))
            if effect is None:
                if world is None:
                    world = self.world(key)
                alone = receiver != 0 and move.alone[key & receiver] == move.single
                return self._compute(world, move, situation, alone, key)
            # computed by another engine in the same situation: adopted, with no world decoded
            # (kept: moves for equal actions are separate objects with memos of their own)
            self.adopted += 1
            if not effect.serial:
                self._register(effect)
            move.memo[situation] = effect
        self.replayed += 1
        after = key & effect.keep | effect.put
        if effect.edits:
            network = (key >> self._network_shift) & self._network_mask
            cached = network | effect.edit_set << self.NETWORK_BITS
            following = self._next_network.get(cached)
            if following is None:
                if len(self._next_network) >= self.NETWORK_CACHE:
                    # A pure cache that would otherwise grow with the transitions: start over.
                    self._next_network.clear()
                following = self._next_network[cached] = self._patched(network, effect)
            after |= following << self._network_shift
        if self.verify:
            if world is None:
                world = self.world(key)
            expected = apply(world, self.policy, move.action)
            assert self.world(after) == expected, (move.action, self.world(after), expected)
            assert effect.violations == tuple(check_step(world, move.action, expected, self.policy))
            assert effect.exercised == exercised_in_step(world, move.action, expected, self.policy)
        return after, effect.violations, effect.exercised

    def _patched(self, network: int, effect: Effect) -> int:
        channels = list(self._networks[network])
        after = self._channel_after
        for index, edit in effect.edit_ids:
            before = channels[index]
            following = after.get(before | edit << 32)
            if following is None:
                dropped, appended = self._edits[edit]
                kept = () if dropped < 0 else self._channels[before][dropped:]
                following = after[before | edit << 32] = self._channel(kept + appended)
            channels[index] = following
        return self._network_of(tuple(channels))

    def _compute(
        self, world: World, move: Move, situation: int, alone: bool, key: int | None = None
    ) -> tuple[int, tuple[Violation, ...], frozenset[str]]:
        """The step computed with the model's functions (``key`` is ``world``'s key, computed
        when not given), its effect memoized (an effect another engine computed in the same
        situation is adopted by :meth:`successor` instead, see :meth:`share`)."""
        self.computed += 1
        after = apply(world, self.policy, move.action)
        violations = tuple(check_step(world, move.action, after, self.policy))
        exercised = exercised_in_step(world, move.action, after, self.policy)
        if key is None:
            key = self.key(world)
        following = self._key_after(key, world, after)
        effect = self._effect(key, following, move, violations, exercised)
        key = following
        if effect is not None and alone:
            # Keyed by the receiver alone: the sender must have stayed as it was.
            sender = move.action.message.src if move.action.message is not None else -1
            if any(n == sender for n, _ in effect.changes):
                effect = None
        if effect is not None:
            self._register(effect)
            move.memo[situation] = effect
            if self.shared is not None:
                mask = move.single if alone else move.mask
                self.exported.append((move.action, situation, self._layout(mask), effect))
        return key, violations, exercised

    def _register(self, effect: Effect) -> None:
        self._effects += 1
        effect.serial = self._effects
        effect.node_ids = tuple((n, self._node_id[state]) for n, state in effect.changes)
        effect.edit_ids = tuple(
            (index, self._edit(dropped, appended)) for index, dropped, appended in effect.edits
        )
        edit_sets = self._edit_sets
        effect.edit_set = edit_sets.setdefault(effect.edit_ids, len(edit_sets))
        if effect.budget is not None:
            effect.budget_id = self._budget_id[effect.budget]
        self._masks(effect)

    # --- sharing effects between engines (parallel workers) ----------------------------------

    def share(self) -> None:
        """Exchange effects with other engines of the same (configuration, policy): each effect
        this engine computes is recorded in ``exported`` (see :meth:`take_exports`), and one
        received from another engine (:meth:`receive`) is adopted instead of being computed
        again when this engine meets its situation."""
        if self.shared is None:
            self.shared = {}
            self.exported = []

    def take_exports(self) -> Exports | None:
        """The effects computed since the last call, for the other engines: each named by its
        action and its situation in this engine's ids, with the objects behind the ids that
        were not sent before (every other engine receives every export, so once is enough).
        Ids and small ints travel instead of node states, and a receiver maps an id it has
        seen once without hashing or comparing the state again."""
        if not self.exported:
            return None
        nodes: list[tuple[int, NodeState]] = []
        budgets: list[tuple[int, Budget]] = []
        sent_nodes, sent_budgets = self._exported_nodes, self._exported_budgets

        def node(ident: int) -> int:
            if ident not in sent_nodes:
                sent_nodes.add(ident)
                nodes.append((ident, self._nodes[ident]))
            return ident

        def budget(ident: int) -> int:
            if ident not in sent_budgets:
                sent_budgets.add(ident)
                budgets.append((ident, self._budgets[ident]))
            return ident

        records = []
        for action, situation, layout, effect in self.exported:
            self._map_situation(situation, layout, node, budget)
            for _, ident in effect.node_ids:
                node(ident)
            if effect.budget_id >= 0:
                budget(effect.budget_id)
            records.append(
                (
                    action,
                    situation,
                    layout,
                    effect.node_ids,
                    effect.edits,
                    effect.budget_id,
                    effect.clock,
                    effect.violations,
                    effect.exercised,
                )
            )
        self.exported = []
        return Exports(tuple(nodes), tuple(budgets), tuple(records))

    def receive(self, source: int, exports: Exports) -> None:
        """Take in the effects engine ``source`` exported (:meth:`take_exports`), in this
        engine's ids, to adopt when a step meets their situation."""
        shared = self.shared
        assert shared is not None, "share() first"
        node_map, budget_map = self._imported.setdefault(source, ({}, {}))
        for ident, state in exports.nodes:
            node_map[ident] = self.node_id(state)
        for ident, value in exports.budgets:
            budget_map[ident] = self.budget_id(value)
        nodes, budgets = self._nodes, self._budgets
        node_of, budget_of = node_map.__getitem__, budget_map.__getitem__
        for (
            action,
            situation,
            layout,
            node_ids,
            edits,
            budget_id,
            clock,
            violations,
            live,
        ) in exports.records:
            local = self._map_situation(situation, layout, node_of, budget_of)
            changes = tuple((n, nodes[node_map[ident]]) for n, ident in node_ids)
            budget = budgets[budget_map[budget_id]] if budget_id >= 0 else None
            shared[(action, local)] = Effect(changes, edits, budget, clock, violations, live)

    def _map_situation(
        self, situation: int, layout: int, node: Callable[[int], int], budget: Callable[[int], int]
    ) -> int:
        """``situation`` (a key with the fields its move does not read cleared, see
        :meth:`_move`) with each node state id it keeps replaced by ``node(id)`` and its budget
        id, if kept, by ``budget(id)``. ``layout`` says which fields it keeps (:meth:`_layout`);
        cleared fields stay zero."""
        clock, budget_id, _, ids = self.fields(situation)
        if layout & 1:
            budget_id = budget(budget_id)
        nodes = [node(i) if layout & (2 << n) else i for n, i in enumerate(ids)]
        return self.compose(clock, budget_id, 0, nodes)

    def _masks(self, effect: Effect) -> None:
        """Fill ``effect.keep`` and ``effect.put`` from the fields it sets."""
        bits = self.NODE_BITS
        keep, put = -1, 0
        for n, state_id in effect.node_ids:
            keep &= ~(((1 << bits) - 1) << (n * bits))
            put |= state_id << (n * bits)
        if effect.edits:
            keep &= ~(self._network_mask << self._network_shift)
        if effect.budget_id >= 0:
            keep &= ~(((1 << self.BUDGET_BITS) - 1) << self._budget_shift)
            put |= effect.budget_id << self._budget_shift
        if effect.clock is not None:
            keep &= (1 << self._clock_shift) - 1
            put |= effect.clock << self._clock_shift
        effect.keep, effect.put = keep, put

    def _key_after(self, key: int, world: World, after: World) -> int:
        """The key of ``after``, a successor of ``world`` (whose key is ``key``): a node state,
        channel or budget the step left as the same object keeps its id (it has the same
        content), so only what the step made is interned."""
        node_mask, shifts = self._node_mask, self._node_shifts
        following = after.clock << self.BUDGET_BITS
        if after.budget is world.budget:
            following |= (key >> self._budget_shift) & self._budget_mask
        else:
            following |= self.budget_id(after.budget)
        network_id = (key >> self._network_shift) & self._network_mask
        if after.network is not world.network:
            channels = list(self._networks[network_id])
            for index, (before, now) in enumerate(zip(world.network, after.network, strict=True)):
                if now is not before:
                    channels[index] = self._channel(now)
            network_id = self._network_of(tuple(channels))
        following = following << self.NETWORK_BITS | network_id
        for n in range(self._count - 1, -1, -1):
            state = after.nodes[n]
            if state is world.nodes[n]:
                state_id = (key >> shifts[n]) & node_mask
            else:
                state_id = self._intern(self._node_id, self._nodes, state, self.NODE_BITS)
            following = following << self.NODE_BITS | state_id
        return following

    def _effect(
        self,
        key: int,
        after: int,
        move: Move,
        violations: tuple[Violation, ...],
        exercised: frozenset[str],
    ) -> Effect | None:
        """What ``move`` changed from the world ``key`` to the world ``after``, read off their
        ids (equal ids, equal content), or None when it reached beyond its situation."""
        parties = move.parties
        budget_before = (key >> self._budget_shift) & self._budget_mask
        budget_after = (after >> self._budget_shift) & self._budget_mask
        if not move.spends and budget_after != budget_before:
            return None
        node_mask, nodes = self._node_mask, self._nodes
        changes = []
        for n, shift in enumerate(self._node_shifts):
            now = (after >> shift) & node_mask
            if now != (key >> shift) & node_mask:
                if parties is not None and n not in parties:
                    return None
                changes.append((n, nodes[now]))
        edits = []
        network_before = self._networks[(key >> self._network_shift) & self._network_mask]
        network_after = self._networks[(after >> self._network_shift) & self._network_mask]
        channels = self._channels
        for index, (before_id, now_id) in enumerate(
            zip(network_before, network_after, strict=True)
        ):
            now_ch = channels[now_id]
            if index in move.cleared:
                edits.append((index, -1, now_ch))
                continue
            # The popped channel is always recorded: popping m and appending an equal m leaves
            # it looking unchanged here, but not in a world with more messages queued.
            dropped = 1 if index == move.popped else 0
            if not dropped and before_id == now_id:
                continue
            before_ch = channels[before_id]
            kept = len(before_ch) - dropped
            if now_ch[:kept] != before_ch[dropped:]:
                return None  # not a FIFO pop and append
            sender = index // self._count
            if len(now_ch) > kept and parties is not None and sender not in parties:
                return None  # a node outside the situation sent something
            edits.append((index, dropped, now_ch[kept:]))
        budget = self._budgets[budget_after] if budget_after != budget_before else None
        clock_before, clock_after = key >> self._clock_shift, after >> self._clock_shift
        clock = clock_after if clock_after != clock_before else None
        return Effect(tuple(changes), tuple(edits), budget, clock, violations, exercised)

    # --- invariants -----------------------------------------------------------------------------

    def invariants(self, world: World, key: int | None = None) -> list[Violation]:
        """:func:`~kadspec.models.checks.check_state`, each check read from the memo of what it
        depends on (``key`` is the world's key, computed when not given)."""
        if key is None:
            key = self.key(world)
        nodes_part = self._nodes_part(world, key)
        network = self._network_part(world, key)
        found = list(nodes_part.violations)
        for rid, check in WORLD_CHECKS:
            known = nodes_part.checks.get(check)
            if known is None:
                known = network.checks.get(check)
            if known is not None:
                found.extend(known)
            elif check not in network.silent:
                found.extend(Violation(rid, d) for d in check(world, self.policy))
        if self.verify:
            assert found == check_state(world, self.policy)
        return found

    def invariants_and_premises(
        self, world: World, key: int | None = None
    ) -> tuple[list[Violation], frozenset[str]]:
        """:meth:`invariants` and :meth:`exercised` together (the second costs two lookups of
        the memo the first filled)."""
        if key is None:
            key = self.key(world)
        found = self.invariants(world, key)  # computes (or finds) both memoized parts
        premises = self._nodes_part(world, key).premises
        if self.verify:
            assert premises == exercised_in_state(world, self.policy)
        return found, premises

    def exercised(self, world: World, key: int | None = None) -> frozenset[str]:
        """:func:`~kadspec.models.checks.exercised_in_state`: the requirements whose invariant
        premise is live in ``world``, read from the per node state and per network memos."""
        if key is None:
            key = self.key(world)
        found = self._nodes_part(world, key).premises
        if self.verify:
            assert found == exercised_in_state(world, self.policy)
        return found

    def exercised_at_quiescence(self, world: World, key: int | None = None) -> frozenset[str]:
        """:func:`~kadspec.models.checks.exercised_at_quiescence` for a quiescent ``world``
        (quiescent states are few: not memoized)."""
        return exercised_at_quiescence(world, self.policy)


#: an effect computed here, for the other engines: (action, situation, its layout (see
#: Successors._map_situation), effect)
Exported = tuple[Action, int, int, Effect]


@attrs.frozen
class Exports:
    """Effects one engine computed, for the others (:meth:`Successors.take_exports`): the
    objects behind the ids not sent before, then per effect its action, its situation and how
    that is packed, and the effect's content with node states and budgets as ids."""

    nodes: tuple[tuple[int, NodeState], ...]
    budgets: tuple[tuple[int, Budget], ...]
    records: tuple[tuple[Any, ...], ...]


class NodesPart:
    """What the clock, the budget and the node states decide, for every network (a plain
    slotted class: one is built per new combination of node states, thousands per run)."""

    __slots__ = (
        "busy",
        "checks",
        "fault_head",
        "fault_tail",
        "faulty",
        "head",
        "loses",
        "premises",
        "state_violations",
        "tail",
        "violations",
    )

    def __init__(
        self,
        head: tuple[Move, ...],
        tail: tuple[Move, ...],
        busy: bool,
        violations: tuple[Violation, ...],
        checks: dict[StateCheck, tuple[Violation, ...]],
        premises: frozenset[str] = frozenset(),
        faulty: bool = False,
        state_violations: tuple[Violation, ...] | None = None,
        fault_head: tuple[Move, ...] = (),
        fault_tail: tuple[Move, ...] = (),
        loses: bool = False,
    ) -> None:
        #: starts, the user's actions, tick: before faults and deliveries
        self.head = head
        #: the nodes' own protocol actions: after deliveries
        self.tail = tail
        #: a protocol action or a timer is due (the world is not quiescent)
        self.busy = busy
        #: the node invariants
        self.violations = violations
        #: world invariants that read only the nodes
        self.checks = checks
        #: node premises live (checks.node_premises)
        self.premises = premises
        #: the budget allows faults (their moves read the whole world)
        self.faulty = faulty
        #: every invariant's violations, when the world invariants all read the nodes only
        self.state_violations = state_violations
        #: with ``faulty``: the fault moves before the losses (crashes, disconnects) and after
        #: them (forgeries), and whether the budget allows losses (see Successors._node_faults)
        self.fault_head = fault_head
        self.fault_tail = fault_tail
        self.loses = loses


@attrs.frozen
class NetworkPart:
    """What the messages in flight decide, for every clock, budget and node states."""

    deliveries: tuple[Move, ...]
    checks: dict[StateCheck, tuple[Violation, ...]]  # world invariants that read only the network
    silent: frozenset[StateCheck]  # world invariants that cannot fire with these messages


#: a budget that allows losses and nothing else (see Successors._loss_moves)
_LOSSES_ONLY = Budget(faults=1, fault_kinds=frozenset({"lose"}))

#: world invariants by what they read; an invariant in neither set is run on every world.
#: Those reading the nodes only may read the clock too: the nodes' memo is keyed by it.
_READ_NODES_ONLY: frozenset[StateCheck] = frozenset({provides_answered_in_time})
_READ_NETWORK_ONLY: frozenset[StateCheck] = frozenset()
_NEEDS_MESSAGES: dict[StateCheck, tuple[Kind, ...]] = {}


def _answered_in_time_at(config: Config, n: int, state: NodeState, clock: int) -> list[str]:
    """Node ``n``'s share of :func:`~kadspec.models.checks.provides_answered_in_time`: that
    check runs :func:`~kadspec.models.checks.operations_answered_in_time` on each node's
    projection in node order, and has nothing to say of a node the user asked nothing."""
    if not state.ghost.asked:
        return []
    return operations_answered_in_time(project_node(config, n, state), clock)


#: world invariants that read the nodes and the clock only and are the concatenation, in node
#: order, of a per-node share: check(world) == [d for n, s in enumerate(world.nodes) for d in
#: share(config, n, s, world.clock)]. Each share is memoized per (node, state, clock); the
#: ``verify`` mode compares the whole with check_state on every state.
_SPLIT_OVER_NODES: dict[StateCheck, Callable[[Config, int, NodeState, int], list[str]]] = {
    provides_answered_in_time: _answered_in_time_at,
}


__all__ = ["Effect", "Exports", "Move", "Successors"]
