"""Named starting points for exploration: small networks plus what the environment may do.

Each scenario is small enough to explore exhaustively and large enough to reach at least one
real bug. IDs are 4-bit; timing is in ticks with the spec's ordering (deadline < refresh <
republish < expiry is not required, only republish < expiry).
"""

from __future__ import annotations

import attrs

from kadspec.models.config import MODEL_TIMING, Config, ModeSetting, NodeConfig, Reach
from kadspec.models.state import World


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

    def initial(self) -> World:
        return World.initial(
            self.config,
            horizon=self.horizon,
            faults=self.faults,
            fault_kinds=self.fault_kinds,
            provides=self.provides,
            finds=self.finds,
            mode_changes=self.mode_changes,
        )


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


def _scenarios(*items: Scenario) -> dict[str, Scenario]:
    return {s.name: s for s in items}


SCENARIOS: dict[str, Scenario] = _scenarios(
    Scenario(
        "join",
        "a public node joins through a bootstrap server and provides a key, at "
        "any moment from start-up on",
        PAIR,
        horizon=4,
        provides=((1, 0),),
    ),
    Scenario(
        "join-lossy",
        "join, and one request or reply may be lost",
        PAIR,
        horizon=4,
        faults=1,
        fault_kinds=frozenset({"lose"}),
        provides=((1, 0),),
    ),
    Scenario(
        "join-disconnect",
        "join, and the connection may close once",
        PAIR,
        horizon=3,
        faults=1,
        fault_kinds=frozenset({"disconnect"}),
    ),
    Scenario(
        "join-crash",
        "join, and one node may crash (and restart)",
        PAIR,
        horizon=4,
        faults=2,
        fault_kinds=frozenset({"crash", "restart"}),
    ),
    Scenario(
        "client-joins",
        "a public node pinned to client mode joins and looks itself up",
        _config(BOOTSTRAP, attrs.evolve(JOINER, mode=ModeSetting.CLIENT)),
        horizon=3,
    ),
    Scenario(
        "nat-joins",
        "a node behind NAT in automatic mode joins",
        _config(BOOTSTRAP, attrs.evolve(JOINER, reach=Reach.NAT)),
        horizon=3,
    ),
    Scenario(
        "nat-server-joins",
        "a node behind NAT, pinned to server mode, joins",
        _config(BOOTSTRAP, attrs.evolve(JOINER, reach=Reach.NAT, mode=ModeSetting.SERVER)),
        horizon=3,
    ),
    Scenario(
        "mode-change",
        "a pinned server joins, then its operator switches it to client",
        _config(BOOTSTRAP, attrs.evolve(JOINER, mode=ModeSetting.SERVER)),
        horizon=3,
        mode_changes=((1, ModeSetting.CLIENT),),
    ),
    Scenario(
        "trio",
        "two nodes join through a bootstrap server; one provides a key equal to "
        "the bootstrap node's ID",
        TRIO,
        horizon=0,
        provides=((1, 0),),
    ),
    Scenario(
        "trio-forgery",
        "three nodes join; a faulty one may forge an ADD_PROVIDER",
        TRIO,
        horizon=0,
        faults=1,
        fault_kinds=frozenset({"forge_add_provider"}),
    ),
    Scenario(
        "expiry",
        "a node provides and later looks its own key up, by which time its "
        "record at the bootstrap node may have expired (records live 2 ticks); one node "
        "may crash",
        attrs.evolve(PAIR, timing=SHORT_LIVED),
        horizon=4,
        faults=1,
        fault_kinds=frozenset({"crash"}),
        provides=((1, 0),),
        finds=((1, 0),),
    ),
)
