"""Low-table recovery (go's fixLowPeers): a node whose table empties wins its connected servers
back at the next refresh (BOOT-06, ADDR-06), even those it dropped after a missed deadline,
without admitting a peer whose dial failed and that showed no sign of life since (RT-07).

Scenario crowd-unresponsive-find: n0 (the bootstrap server) looks a key up while one node may
crash; n0 can lose every entry (a crashed peer, a reply that came too late) although servers
stay connected to it.
"""

from __future__ import annotations

import pytest

from kadspec.engines.explorer import Counterexample, explore
from kadspec.models import lifecycle, routing
from kadspec.models.actions import apply, enabled
from kadspec.models.checks import check_quiescent, check_state, check_step
from kadspec.models.policy import SPEC
from kadspec.models.scenarios import SCENARIOS
from kadspec.models.state import Conn

SCENARIO = SCENARIOS["crowd-unresponsive-find"]


def _without_recovery_counterexample(monkeypatch: pytest.MonkeyPatch) -> Counterexample:
    """The model as it was: no recovery, so BOOT-06/ADDR-06 break (the gap this closes)."""
    with monkeypatch.context() as m:
        m.setattr(lifecycle, "recover_low_table", lambda world, policy, node: world)
        m.setattr(routing, "recover_low_table", lambda world, policy, node, skip=-1: world)
        result = explore(SCENARIO.initial(), SPEC)
    assert result.violated == {"BOOT-06", "ADDR-06"}
    assert result.counterexample is not None
    return result.counterexample


def _refresh_of_an_empty_table(trace: Counterexample) -> int:
    """The index of the tick whose refresh of n0 left n0's table empty (no recovery)."""
    assert trace.initial.nodes[0].table(), "n0 starts formed"
    pre = trace.initial
    for i, step in enumerate(trace.steps):
        due = pre.nodes[0].refresh_at
        fired = step.action.kind == "tick" and due is not None and due <= step.world.clock
        if fired and not step.world.nodes[0].table():
            return i
        pre = step.world
    raise AssertionError("the trace has no refresh that leaves n0's table empty")


def test_table_empties_then_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = _without_recovery_counterexample(monkeypatch)
    at = _refresh_of_an_empty_table(trace)
    # Replay the same moves under the spec with the refresh's recovery on (the recovery right
    # after a removal stays off, see the test below): identical up to that refresh.
    at_refresh_only = routing.recover_low_table
    monkeypatch.setattr(
        routing,
        "recover_low_table",
        lambda world, policy, node, skip=-1: (
            world if skip >= 0 else at_refresh_only(world, policy, node)
        ),
    )
    world = SCENARIO.initial()
    assert world == trace.initial
    for i, step in enumerate(trace.steps[: at + 1]):
        assert step.action in enabled(world, SPEC)
        post = apply(world, SPEC, step.action)
        assert check_step(world, step.action, post, SPEC) == []
        assert check_state(post, SPEC) == []
        if i < at:
            assert post == step.world
        world = post
    emptied = trace.steps[at].world.nodes[0]  # the same tick without recovery: table empty
    assert not emptied.table()
    recovered = world.nodes[0].table()
    assert recovered, "the refresh re-admits n0's connected servers"
    for p in recovered:
        assert emptied.peers[p].conn is not Conn.NONE
        assert p not in world.nodes[0].ghost.unresponsive  # RT-07
    # A peer removed after a missed deadline is still a connected server: it comes back too
    # (the liveness bug of issue 8 kept such peers out, and isolated the node for good).
    assert any(emptied.peers[p].failed for p in recovered)
    # The recovered world settles without a broken progress requirement.
    while True:
        moves = [a for a in enabled(world, SPEC) if a.kind not in ("crash", "tick")]
        if not moves:
            break
        post = apply(world, SPEC, moves[0])
        assert check_step(world, moves[0], post, SPEC) == []
        assert check_state(post, SPEC) == []
        world = post
    if not [a for a in enabled(world, SPEC) if a.kind == "tick"]:
        assert check_quiescent(world, SPEC) == []


@pytest.mark.slow
def test_spec_passes_the_scenario() -> None:
    result = explore(SCENARIO.initial(), SPEC)
    assert result.stop_reason == "complete"
    assert not result.violated


def test_a_removal_re_admits_the_other_connected_servers_at_once() -> None:
    """go's PeerRemoved hook wakes fixLowPeers: a removal that leaves the table below k
    re-admits the connected servers dropped before, at once, not at the next refresh; the peer
    that just failed stays out (go re-adds it only once a fresh probe answers)."""
    world = SCENARIO.initial()
    n0 = world.nodes[0]
    servers = [p for p, v in enumerate(n0.peers) if v.conn is not Conn.NONE]
    assert len(servers) > world.config.timing.k, "more connected servers than the table holds"
    for peer in [*n0.table(), *n0.table()]:  # each entry fails, then the newcomers too
        if peer not in world.nodes[0].table():
            continue
        world = routing.mark_failed(world, SPEC, 0, peer)
        table = world.nodes[0].table()
        assert peer not in table  # RT-06: the peer that failed leaves
        assert len(table) == world.config.timing.k  # refilled from the connected servers
        assert set(table) <= set(servers) - {peer}
    assert all(world.nodes[0].peers[p].failed or p in world.nodes[0].table() for p in servers)
