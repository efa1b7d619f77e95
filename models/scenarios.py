"""Named starting points for exploration: small networks plus what the environment may do.

Each scenario is small enough to explore exhaustively and large enough to reach at least one
real bug. IDs are 4-bit; durations are :data:`~kadspec.models.config.MODEL_TIMING`'s (or
:data:`SHORT_LIVED`'s), small integers in the protocol's real order: request deadline <
refresh < republish < expiry.

Each scenario also states its *witnesses*: outcomes the specification must reach in some
explored state (the network forms, every node becomes Ready, a provide reaches the k closest
servers, a find returns the live provider, a republished record outlives the first expiry).
A change that makes nodes do nothing shrinks the state space and breaks no invariant; it
cannot reach the witnesses, so ``kadspec check`` fails on it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from kadspec.models.config import MODEL_TIMING, Config, ModeSetting, NodeConfig, Reach
from kadspec.models.metric import closest
from kadspec.models.policy import SPEC, Policy
from kadspec.models.state import Mode, Outcome, World


@attrs.frozen
class Witness:
    """An outcome the specification must reach in some explored state of a scenario."""

    name: str
    text: str
    holds: Callable[[World], bool] = attrs.field(eq=False, repr=False)


def network_forms() -> Witness:
    """Every node runs with a peer in its routing table."""
    return Witness(
        "network-forms",
        "every node runs with at least one peer in its routing table",
        lambda w: all(s.up and s.table() for s in w.nodes),
    )


def everyone_ready() -> Witness:
    """Every node is Ready: a peer in its table and its first self-lookup answered."""
    return Witness(
        "all-ready",
        "every node is Ready (a peer in its table, its first self-lookup answered)",
        lambda w: all(w.nodes[n].up and w.ready(n) for n in range(len(w.nodes))),
    )


def servers_closest_to(world: World, key: int, provider: int) -> tuple[int, ...]:
    """The k running servers other than ``provider`` closest to key number ``key``."""
    servers = [
        n for n, s in enumerate(world.nodes) if n != provider and s.up and s.mode is Mode.SERVER
    ]
    target = world.config.keys[key]
    return closest(target, servers, world.config.ids, world.config.timing.k)


def provided_at_closest(node: int, key: int) -> Witness:
    """``node`` reports its provide of ``key`` successful and each of the k closest running
    servers holds its live record."""

    def holds(w: World) -> bool:
        if w.nodes[node].provides[key].outcome is not Outcome.SUCCEEDED:
            return False
        holders = servers_closest_to(w, key, node)
        return bool(holders) and all(
            any(
                r.key == key and r.provider == node and r.expires > w.clock
                for r in w.nodes[h].records
            )
            for h in holders
        )

    return Witness(
        f"n{node}-provides-key{key}",
        f"n{node}'s provide of key{key} succeeds and the k closest servers hold its record",
        holds,
    )


def finds_provider(finder: int, key: int, provider: int, *, after: int = 0) -> Witness:
    """``finder``'s find of ``key`` reports success, at ``after`` or later, naming the running
    ``provider``."""

    def holds(w: World) -> bool:
        outcome = w.nodes[finder].find_outcomes[key]
        found = w.nodes[finder].found[key]
        return (
            outcome.outcome is Outcome.SUCCEEDED
            and outcome.at is not None
            and outcome.at >= after
            and found is not None
            and provider in found
            and w.nodes[provider].up
        )

    when = f" at t >= {after}" if after else ""
    return Witness(
        f"n{finder}-finds-n{provider}-key{key}" + ("-after-expiry" if after else ""),
        f"n{finder}'s find of key{key} returns the live provider n{provider}{when}",
        holds,
    )


def routes(node: int, peer: int) -> Witness:
    """``node`` holds ``peer`` in its routing table."""
    return Witness(
        f"n{node}-routes-to-n{peer}",
        f"n{node} holds n{peer} in its routing table",
        lambda w: w.nodes[node].up and w.nodes[node].peers[peer].in_table,
    )


def is_ready(node: int) -> Witness:
    """``node`` is Ready."""
    return Witness(
        f"n{node}-ready",
        f"n{node} is Ready (a peer in its table, its first self-lookup answered)",
        lambda w: w.nodes[node].up and w.ready(node),
    )


def find_succeeds(finder: int, key: int) -> Witness:
    """``finder``'s find of ``key`` reports success (no provider need exist)."""
    return Witness(
        f"n{finder}-find-key{key}-succeeds",
        f"n{finder}'s find of key{key} ends with a successful answer",
        lambda w: w.nodes[finder].find_outcomes[key].outcome is Outcome.SUCCEEDED,
    )


def findable_after_expiry(finder: int, key: int, provider: int, config: Config) -> Witness:
    """A find answered after the first copies of the record expired still names the provider:
    the republished record outlived the first expiry."""
    return finds_provider(finder, key, provider, after=config.timing.record_ttl)


@attrs.frozen
class Scenario:
    """A configuration, a time horizon and the environment's budget."""

    name: str
    summary: str
    config: Config
    horizon: int
    faults: int = 0
    #: which faults the budget may be spent on (see state.FAULT_KINDS)
    fault_kinds: frozenset[str] = frozenset({"crash", "disconnect", "lose"})
    provides: tuple[tuple[int, int], ...] = ()
    finds: tuple[tuple[int, int], ...] = ()
    mode_changes: tuple[tuple[int, ModeSetting], ...] = ()
    #: outcomes the specification must reach in some explored state
    witnesses: tuple[Witness, ...] = ()
    #: nodes already running when exploration begins, started in this order at t = 0 (the
    #: interleavings of their starts are left out, which keeps larger networks explorable)
    running: tuple[int, ...] = ()
    #: let the running nodes form their network first, along one fixed schedule of the
    #: specification (the first enabled protocol action each time, no time passing), so the
    #: exploration spends its states on what follows: provides, finds, faults and time
    formed: bool = False
    #: the policy the running nodes start and form their network under (None: the spec's); a
    #: mutant's scenario sets its own, so its bug acts from the first step
    prelude_policy: Policy | None = attrs.field(default=None, repr=False)

    def initial(self) -> World:
        world = World.initial(
            self.config,
            horizon=self.horizon,
            faults=self.faults,
            fault_kinds=self.fault_kinds,
            provides=self.provides,
            finds=self.finds,
            mode_changes=self.mode_changes,
        )
        if not self.running:
            return world
        from kadspec.models.actions import Action, apply  # actions imports this module's users

        policy = self.prelude_policy or SPEC
        for node in self.running:
            world = apply(world, policy, Action("start", node=node))
        if self.formed:
            world = settle(world, policy)
        return world


def settle(world: World, policy: Policy = SPEC, limit: int = 10_000) -> World:
    """Run the protocol actions, always the first enabled one, until none is left (time does
    not pass): one fixed schedule of how a network forms under ``policy``."""
    from kadspec.models.actions import apply, enabled, is_protocol

    for _ in range(limit):
        move = next((a for a in enabled(world, policy) if is_protocol(a)), None)
        if move is None:
            return world
        world = apply(world, policy, move)
    raise RuntimeError(f"the network did not settle within {limit} protocol steps")


def _config(*nodes: NodeConfig, keys: tuple[int, ...] = (0b0110,)) -> Config:
    return Config(nodes=nodes, keys=keys, id_bits=4, timing=MODEL_TIMING).validate()


#: records that expire soon: deadline 1 < refresh 2 < republish 3 < expiry 4 (the real order)
SHORT_LIVED = attrs.evolve(
    MODEL_TIMING,
    request_deadline=1,
    retry_base=1,
    retry_cap=1,
    refresh_interval=2,
    republish_interval=3,
    record_ttl=4,
)

BOOTSTRAP = NodeConfig(id=0b1000, mode=ModeSetting.SERVER)
JOINER = NodeConfig(id=0b0011, bootstrap=(0,))
PAIR = _config(BOOTSTRAP, JOINER)
TRIO = _config(BOOTSTRAP, JOINER, NodeConfig(id=0b0101, bootstrap=(0,)), keys=(0b1000,))


def _server(node_id: int, *bootstrap: int) -> NodeConfig:
    return NodeConfig(id=node_id, mode=ModeSetting.SERVER, bootstrap=bootstrap or (0,))


#: Four servers: n1, n2 and n3 all fall into bucket 0 of n0 (k = 2: it fills and refuses the
#: third), n1 (0011) holds three peers, so its FIND_NODE replies choose k of more than k, and a
#: lookup from any joiner has three candidates for alpha = 2 requests. The key 0111 is closest
#: to n3, then n2, n1, n0: n1 provides it and n0, whose full bucket refused n3, looks it up.
CROWD = _config(BOOTSTRAP, _server(0b0011), _server(0b0101), _server(0b0110), keys=(0b0111,))
#: Five nodes, two keys: CROWD plus n4 (1101, automatic mode, public) bootstrapping through
#: both n0 and n1. Key 1100 is closest to n4 and n0; n2 looks it up.
FIVE = _config(
    BOOTSTRAP,
    _server(0b0011),
    _server(0b0101),
    _server(0b0110),
    NodeConfig(id=0b1101, bootstrap=(0, 1)),
    keys=(0b0111, 0b1100),
)
#: two bootstrap servers that know each other, and a joiner that may dial both
TWO_BOOTSTRAPS = _config(BOOTSTRAP, _server(0b0100), NodeConfig(id=0b0011, bootstrap=(0, 1)))
SHORT_PAIR = attrs.evolve(PAIR, timing=SHORT_LIVED)
_JOINED = (network_forms(), everyone_ready())


def _scenarios(*items: Scenario) -> dict[str, Scenario]:
    return {s.name: s for s in items}


SCENARIOS: dict[str, Scenario] = _scenarios(
    Scenario(
        "join",
        "a public node joins through a bootstrap server and provides a key, at "
        "any moment from start-up on",
        PAIR,
        horizon=5,
        provides=((1, 0),),
        witnesses=(*_JOINED, provided_at_closest(1, 0)),
    ),
    Scenario(
        "join-lossy",
        "join, and one request or reply may be lost (a request of the self-lookup or of the "
        "provide's lookup times out)",
        PAIR,
        horizon=4,
        faults=1,
        fault_kinds=frozenset({"lose"}),
        provides=((1, 0),),
        witnesses=(*_JOINED, provided_at_closest(1, 0)),
    ),
    Scenario(
        "join-disconnect",
        "join, and the connection may close once",
        PAIR,
        horizon=3,
        faults=1,
        fault_kinds=frozenset({"disconnect"}),
        witnesses=_JOINED,
    ),
    Scenario(
        "join-crash",
        "join, and one node may crash (and restart) during bootstrap",
        PAIR,
        horizon=4,
        faults=2,
        fault_kinds=frozenset({"crash", "restart"}),
        witnesses=_JOINED,
    ),
    Scenario(
        "client-joins",
        "a public node pinned to client mode joins and looks itself up",
        _config(BOOTSTRAP, attrs.evolve(JOINER, mode=ModeSetting.CLIENT)),
        horizon=3,
        witnesses=(routes(1, 0), is_ready(1)),
    ),
    Scenario(
        "nat-joins",
        "a node behind NAT in automatic mode joins",
        _config(BOOTSTRAP, attrs.evolve(JOINER, reach=Reach.NAT)),
        horizon=3,
        witnesses=(routes(1, 0), is_ready(1)),
    ),
    Scenario(
        "nat-provides",
        "a node behind NAT in automatic mode joins and is asked to provide: with no address "
        "it may announce, it must say so (BOOT-05, ADDR-07)",
        _config(BOOTSTRAP, attrs.evolve(JOINER, reach=Reach.NAT)),
        horizon=5,
        provides=((1, 0),),
        witnesses=(routes(1, 0), is_ready(1)),
    ),
    Scenario(
        "nat-server-joins",
        "a node behind NAT, pinned to server mode, joins",
        _config(BOOTSTRAP, attrs.evolve(JOINER, reach=Reach.NAT, mode=ModeSetting.SERVER)),
        horizon=3,
        witnesses=(routes(1, 0), is_ready(1)),
    ),
    Scenario(
        "mode-change",
        "a pinned server joins, then its operator switches it to client",
        _config(BOOTSTRAP, attrs.evolve(JOINER, mode=ModeSetting.SERVER)),
        horizon=3,
        mode_changes=((1, ModeSetting.CLIENT),),
        witnesses=_JOINED,
    ),
    Scenario(
        "trio",
        "two nodes join through a bootstrap server; one provides a key equal to "
        "the bootstrap node's ID",
        TRIO,
        horizon=0,
        provides=((1, 0),),
        witnesses=(*_JOINED, provided_at_closest(1, 0)),
    ),
    Scenario(
        "trio-forgery",
        "three nodes join; a faulty one may forge an ADD_PROVIDER",
        TRIO,
        horizon=0,
        faults=1,
        fault_kinds=frozenset({"forge_add_provider"}),
        witnesses=_JOINED,
    ),
    Scenario(
        "expiry",
        "a node provides and later looks its own key up, by which time its "
        "record at the bootstrap node may have expired (records live 4 ms, republished every "
        "3); one node may crash after the records are stored",
        SHORT_PAIR,
        horizon=4,
        faults=1,
        fault_kinds=frozenset({"crash"}),
        provides=((1, 0),),
        finds=((1, 0),),
        running=(0, 1),
        formed=True,
        witnesses=(provided_at_closest(1, 0), finds_provider(1, 0, 1)),
    ),
    Scenario(
        "republish",
        "a joined node provides, republishes, and finds its record again after the first "
        "copies expired",
        SHORT_PAIR,
        horizon=5,
        provides=((1, 0),),
        finds=((1, 0),),
        running=(0, 1),
        formed=True,
        witnesses=(provided_at_closest(1, 0), findable_after_expiry(1, 0, 1, SHORT_PAIR)),
    ),
    Scenario(
        "two-bootstraps",
        "a joiner with two bootstrap servers, which already know each other, joins",
        TWO_BOOTSTRAPS,
        horizon=0,
        running=(0, 1),
        formed=True,
        witnesses=_JOINED,
    ),
    Scenario(
        "crowd",
        "four servers have formed a network; n1 provides a key and n0 looks it up: n0's "
        "full bucket meets a newcomer, replies choose k of more peers, lookups have more "
        "candidates than alpha",
        CROWD,
        horizon=0,
        provides=((1, 0),),
        finds=((0, 0),),
        running=(0, 1, 2, 3),
        formed=True,
        witnesses=(*_JOINED, provided_at_closest(1, 0), finds_provider(0, 0, 1)),
    ),
    Scenario(
        "crowd-unresponsive",
        "crowd, and one node may crash while n1 provides: an unresponsive peer among the k "
        "closest, whose requests time out",
        CROWD,
        horizon=2,
        faults=1,
        fault_kinds=frozenset({"crash"}),
        provides=((1, 0),),
        running=(0, 1, 2, 3),
        formed=True,
        witnesses=(provided_at_closest(1, 0),),
    ),
    Scenario(
        "crowd-unresponsive-find",
        "crowd, n0 looks key 0111 up and one node may crash: n0 can lose every table entry (a "
        "crashed peer, a reply that came too late) and must win its connected servers back at "
        "the next refresh",
        attrs.evolve(CROWD, timing=attrs.evolve(SHORT_LIVED, alpha=1)),
        horizon=2,
        faults=1,
        fault_kinds=frozenset({"crash"}),
        finds=((0, 0),),
        running=(0, 1, 2, 3),
        formed=True,
        witnesses=(find_succeeds(0, 0),),
    ),
    Scenario(
        "crowd-lossy-find",
        "crowd, and one GET_PROVIDERS request or reply may be lost: the find's lookup times out",
        CROWD,
        horizon=2,
        faults=1,
        fault_kinds=frozenset({"lose"}),
        finds=((3, 0),),
        running=(0, 1, 2, 3),
        formed=True,
        witnesses=(find_succeeds(3, 0),),
    ),
    Scenario(
        "five",
        "five nodes, two keys, a joiner in automatic mode with two bootstrap peers: n1 and n4 "
        "provide different keys",
        FIVE,
        horizon=0,
        provides=((1, 0), (4, 1)),
        running=(0, 1, 2, 3, 4),
        formed=True,
        witnesses=(*_JOINED, provided_at_closest(1, 0), provided_at_closest(4, 1)),
    ),
    Scenario(
        "five-find",
        "five nodes: n4 provides key 1100 and n2, far from it, looks it up, each from its "
        "own view of the k closest",
        FIVE,
        horizon=0,
        provides=((4, 1),),
        finds=((2, 1),),
        running=(0, 1, 2, 3, 4),
        formed=True,
        witnesses=(*_JOINED, provided_at_closest(4, 1), finds_provider(2, 1, 4)),
    ),
)
