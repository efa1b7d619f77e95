"""Refresh lookups of empty buckets (BOOT-03): a node whose far bucket is empty while a peer
for it is reachable gets the bucket filled by its next refresh run, and not without the
bucket lookups.

The network: n0 (0100) is the bootstrap server, X = n1 (0001) and A = n2 (0000) join through
it, G = n3 (1100) through n0 and X, with k = 1, so every bucket holds one peer and every reply
names one. Formed without bucket lookups (the mutant's prelude), A knows n0 and X but nobody in
its far bucket 0, although X holds G there: X answers A's self-lookup with n0, nearer to A, and
G's self-lookup ends at n0, which is nearer to G than A is. A lookup of A's bucket 0 asks X
first (X is nearer to that bucket's target than n0), and X names G. Runs then go on from that
network, under random schedules, until nothing is left to do before the horizon (one refresh
run).
"""

from __future__ import annotations

import random

import attrs

from kadspec.models.actions import apply, enabled
from kadspec.models.config import MODEL_TIMING, Config, ModeSetting, NodeConfig
from kadspec.models.lifecycle import next_refresh_bucket
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC, Policy
from kadspec.models.routing import bucket_members
from kadspec.models.scenarios import Scenario
from kadspec.models.state import World

X, A, G = 1, 2, 3
SKIPPED = MUTANTS["refresh-lookups-skipped"].policy


def _server(node_id: int, *bootstrap: int) -> NodeConfig:
    return NodeConfig(id=node_id, mode=ModeSetting.SERVER, bootstrap=bootstrap)


CONFIG = Config(
    nodes=(_server(0b0100), _server(0b0001, 0), _server(0b0000, 0), _server(0b1100, 0, 1)),
    keys=(0b0110,),
    id_bits=4,
    timing=attrs.evolve(MODEL_TIMING, k=1),
).validate()
SCENARIO = Scenario(
    "far-bucket-hole",
    "A's far bucket is empty while n0 holds G there",
    CONFIG,
    horizon=MODEL_TIMING.refresh_interval,
    running=(0, 1, 2, 3),
    formed=True,
    prelude_policy=SKIPPED,
)


def _run(world: World, policy: Policy, seed: int) -> World:
    """One random schedule (every enabled action alike, time included) until none is left."""
    rng = random.Random(seed)
    for _ in range(10_000):
        moves = enabled(world, policy)
        if not moves:
            return world
        world = apply(world, policy, rng.choice(moves))
    raise AssertionError("the run did not end")


def test_the_hole_is_there_and_reachable() -> None:
    world = SCENARIO.initial()
    assert not bucket_members(world, A, 0), "A's far bucket starts empty"
    assert next_refresh_bucket(world, A, 0) == 0, "and a refresh run owes it a lookup"
    assert X in world.nodes[A].table()
    assert bucket_members(world, X, 0) == [G], "X, in A's table, holds G in that bucket"


def test_refresh_fills_the_far_bucket() -> None:
    start = SCENARIO.initial()
    for seed in range(40):
        end = _run(start, SPEC, seed)
        assert end.clock == SCENARIO.horizon, seed
        assert bucket_members(end, A, 0) == [G], f"seed {seed}: A's far bucket stays empty"


def test_without_bucket_lookups_the_hole_stays() -> None:
    start = SCENARIO.initial()
    for seed in range(40):
        end = _run(start, SKIPPED, seed)
        assert end.clock == SCENARIO.horizon, seed
        assert not bucket_members(end, A, 0), f"seed {seed}: filled without bucket lookups"
