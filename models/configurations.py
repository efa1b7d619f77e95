"""Configurations for measuring the explorer: the same star scenario at 2, 3 and 4 nodes.

``star(n)`` is scenario ``trio`` grown or shrunk: one bootstrap server and ``n - 1`` joiners
that bootstrap through it, untimed (horizon 0), no faults, and the first joiner provides a key
equal to the bootstrap server's ID. ``star(3)`` is ``trio`` itself.
"""

from __future__ import annotations

from kadspec.models.config import MODEL_TIMING, Config, ModeSetting, NodeConfig
from kadspec.models.scenarios import SCENARIOS, Scenario

#: the joiners' IDs, in the order they are added; the first two are trio's
JOINER_IDS = (0b0011, 0b0101, 0b0110, 0b1101)
BOOTSTRAP_ID = 0b1000


def star(count: int) -> Scenario:
    """A bootstrap server and ``count - 1`` joiners; the first joiner provides one key."""
    if not 2 <= count <= len(JOINER_IDS) + 1:
        raise ValueError(f"count: {count} is outside 2..{len(JOINER_IDS) + 1}")
    joiners = tuple(NodeConfig(id=i, bootstrap=(0,)) for i in JOINER_IDS[: count - 1])
    nodes = (NodeConfig(id=BOOTSTRAP_ID, mode=ModeSetting.SERVER), *joiners)
    config = Config(nodes=nodes, keys=(BOOTSTRAP_ID,), id_bits=4, timing=MODEL_TIMING).validate()
    return Scenario(
        f"star-{count}",
        f"{count - 1} joiner(s) bootstrap through one server; the first provides a key",
        config,
        horizon=0,
        provides=((1, 0),),
    )


assert star(3).initial() == SCENARIOS["trio"].initial()


def islands(count: int) -> Scenario:
    """``count`` public nodes in automatic mode, in pairs that bootstrap through each other.

    Built for the reductions: IDs ``0b1000 | i`` are closed under XOR with 1 (swap the nodes of
    each pair) and, with four nodes, with 2 (swap the pairs), so the symmetry reduction applies;
    two pairs never learn of each other, so the partial-order reduction applies. Nobody
    provides (key activity has no symmetry). With an odd count the last node is alone.
    """
    if not 1 <= count <= 4:
        raise ValueError(f"count: {count} is outside 1..4")
    nodes = tuple(
        NodeConfig(id=0b1000 | i, bootstrap=(i ^ 1,) if i ^ 1 < count else ()) for i in range(count)
    )
    config = Config(nodes=nodes, keys=(0b0110,), id_bits=4, timing=MODEL_TIMING).validate()
    return Scenario(
        f"islands-{count}",
        f"{count} nodes in pairs that bootstrap through each other, no provides",
        config,
        horizon=0,
    )
