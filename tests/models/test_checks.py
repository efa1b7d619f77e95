"""Tests for kadspec.models.checks, ghost and observe: each restated check fails on a bad state or
step and passes on a good one; the ghost is not fooled by a node's own flags; observable checks
take only the observable projection."""

from __future__ import annotations

import typing
from typing import Any

import attrs
import pytest

from kadspec.models import checks
from kadspec.models.actions import Action
from kadspec.models.config import Config, ModeSetting, NodeConfig
from kadspec.models.ghost import FIND, PROVIDE, Ghost, observe
from kadspec.models.observe import (
    Event,
    ObservedNode,
    ObservedPeer,
    ObservedStep,
    is_observable,
    project,
    project_all,
)
from kadspec.models.policy import SPEC
from kadspec.models.state import (
    Addr,
    Conn,
    Kind,
    Lookup,
    Message,
    Mode,
    NodeState,
    Outcome,
    PeerView,
    Phase,
    Proto,
    ProvideState,
    Purpose,
    Record,
    World,
    replace,
)
from kadspec.spec import requirements

# n0 = 0000; n1, n2, n3 share bucket 0 of n0's table (common prefix 0); n4 = 0001 sits in bucket 3.
IDS = (0b0000, 0b1000, 0b1100, 0b1110, 0b0001)


def world(k: int = 2, horizon: int = 100) -> World:
    base = Config(nodes=tuple(NodeConfig(id=i) for i in IDS), keys=(0b0110,))
    config = attrs.evolve(base, timing=attrs.evolve(base.timing, k=k))
    w = World.initial(config, horizon=horizon)
    return w.with_node(0, replace(w.nodes[0], up=True))


def node(w: World, n: int, **changes: Any) -> World:
    return w.with_node(n, replace(w.nodes[n], up=True, **changes))


def ghost(w: World, n: int, **changes: Any) -> World:
    return node(w, n, ghost=replace(w.nodes[n].ghost, **changes))


def entries(w: World, n: int, *peers: int, **view: Any) -> World:
    """``n`` holds ``peers`` in its table, connected, identified as servers, dialable."""
    views = list(w.nodes[n].peers)
    for p in peers:
        views[p] = PeerView(
            conn=Conn.OUTBOUND, proto=Proto.SERVER, addr=Addr.DIALABLE, in_table=True, **view
        )
    return node(w, n, peers=tuple(views))


def broken(w: World) -> set[str]:
    """The requirements the node invariants find broken."""
    return {v.requirement for n, s in enumerate(w.nodes) for v in checks.check_node(w.config, n, s)}


def step(
    pre: World,
    post: World,
    *,
    delivered: Message | None = None,
    sent: tuple[Message, ...] = (),
    events: tuple[Event, ...] = (),
) -> ObservedStep:
    return ObservedStep(project_all(pre), project_all(post), pre.clock, delivered, sent, events)


# --- node invariants --------------------------------------------------------------------------


def test_rt02_needs_positive_evidence_not_a_request() -> None:
    w = entries(world(), 0, 1)
    assert "RT-02" in broken(ghost(w, 0, heard=frozenset({1})))  # identified, never as server
    assert "RT-02" not in broken(ghost(w, 0, heard=frozenset({1}), servers=frozenset({1})))


def test_rt03_unknown_protocols_are_no_evidence() -> None:
    w = entries(world(), 0, 1)  # the node's own view says SERVER; the ghost heard nothing
    assert "RT-03" in broken(w)
    assert "RT-03" not in broken(ghost(w, 0, heard=frozenset({1}), servers=frozenset({1})))
    assert "RT-02" not in broken(w)  # unknown protocols are RT-03's case, not RT-02's


def test_addr03_one_observation_never_confirms() -> None:
    w = node(world(), 0, candidate=True, confirmed=True)
    assert "ADDR-03" in broken(ghost(w, 0, observers=frozenset({1})))
    assert "ADDR-03" not in broken(ghost(w, 0, observers=frozenset({1, 2})))
    assert "ADDR-03" not in broken(ghost(w, 0, dialed_back=True))


def test_prov03_records_name_their_sender() -> None:
    w = node(world(), 0, records=frozenset({Record(key=0, provider=2, expires=50)}))
    assert "PROV-03" in broken(w)
    assert "PROV-03" not in broken(ghost(w, 0, publishes=frozenset({(0, 2, 3)})))


def test_boot02_judges_the_ghost_not_the_nodes_flag() -> None:
    lookup = Lookup(purpose=Purpose.PROVIDE, key=0, target=0b0110, seen=frozenset({1}))
    w = node(world(), 0, lookups=(lookup,), self_lookup_done=True)  # the node says: done
    assert "BOOT-02" in broken(w)  # but no reply to its self-lookup ever arrived
    assert "BOOT-02" not in broken(ghost(w, 0, self_answered=True))


def test_find04_lookup_stops_when_the_closest_answered() -> None:
    done = Lookup(Purpose.SELF, 0, 0, seen=frozenset({1}), answered=frozenset({1}))
    assert "FIND-04" in broken(node(world(), 0, lookups=(done,)))
    going = Lookup(Purpose.SELF, 0, 0, seen=frozenset({1, 2}), inflight=((1, 5),))
    assert "FIND-04" not in broken(node(world(), 0, lookups=(going,)))


def test_prov05_republish_timer_before_expiry() -> None:
    w = world()
    ttl, interval = w.config.timing.record_ttl, w.config.timing.republish_interval
    late = ProvideState(providing=True, outcome=Outcome.SUCCEEDED, published_at=0, republish_at=ttl)
    assert "PROV-05" in broken(node(w, 0, provides=(late,)))
    assert "PROV-05" not in broken(node(w, 0, provides=(replace(late, republish_at=interval),)))


def test_rt05_bucket_size() -> None:
    assert "RT-05" in broken(entries(world(k=2), 0, 1, 2, 3))
    assert "RT-05" not in broken(entries(world(k=2), 0, 1, 2, 4))


# --- step checks ------------------------------------------------------------------------------


def _reply(src: int, dst: int, target: int, closer: set[int]) -> Message:
    return Message(Kind.FIND_NODE_REPLY, src, dst, target=target, closer=frozenset(closer))


def test_find01_the_k_closest_and_the_target() -> None:
    w = entries(world(k=2), 0, 1, 2, 3)
    target = IDS[3]  # closest to 1110: n3, then n2, then n1
    good = step(w, w, sent=(_reply(0, 4, target, {3, 2}),))
    assert checks.find_node_replies_are_closest(good) == []
    assert checks.find_node_replies_are_closest(step(w, w, sent=(_reply(0, 4, target, {1, 2}),)))
    # the target may be added even when it is the requester (go prepends it): k + 1 peers
    requester = IDS[4]
    ok = step(w, w, sent=(_reply(0, 4, requester, {4, 1, 2}),))
    assert checks.find_node_replies_are_closest(ok) == []
    too_many = step(w, w, sent=(_reply(0, 4, requester, {4, 1, 2, 3}),))
    assert checks.find_node_replies_are_closest(too_many)
    # ... but not otherwise the requester or the responder
    assert checks.find_node_replies_are_closest(step(w, w, sent=(_reply(0, 4, target, {3, 4}),)))


def test_rt02_a_request_never_admits() -> None:
    pre = world()
    post = entries(pre, 0, 1)
    request = Message(Kind.FIND_NODE, 1, 0, target=0)
    assert checks.requests_do_not_admit(step(pre, post, delivered=request))
    assert checks.requests_do_not_admit(step(pre, post, delivered=_reply(1, 0, 0, set()))) == []


def test_rt06_unresponsive_peers_are_not_served_whatever_the_flag_says() -> None:
    w = entries(world(), 0, 1, 2, failed=False)  # the node's own flag says all is well
    w = ghost(w, 0, unresponsive=frozenset({2}))
    assert checks.failed_peers_leave_and_are_not_served(step(w, w, sent=(_reply(0, 4, 0, {2}),)))
    assert (
        checks.failed_peers_leave_and_are_not_served(step(w, w, sent=(_reply(0, 4, 0, {1}),))) == []
    )


def test_rt06_a_failed_dial_removes_the_entry() -> None:
    pre = entries(world(), 0, 1)
    post = ghost(pre, 0, unresponsive=frozenset({1}))
    assert checks.failed_peers_leave_and_are_not_served(step(pre, post))
    removed = ghost(node(pre, 0, peers=(PeerView(),) * 5), 0, unresponsive=frozenset({1}))
    assert checks.failed_peers_leave_and_are_not_served(step(pre, removed)) == []


def test_rt07_no_admission_after_a_failed_dial() -> None:
    pre = ghost(world(), 0, unresponsive=frozenset({1}))
    post = entries(pre, 0, 1)
    assert checks.failed_peers_not_admitted(step(pre, post))
    fresh = ghost(post, 0, unresponsive=frozenset())
    assert checks.failed_peers_not_admitted(step(pre, fresh)) == []


def test_rt05_evicts_only_failed_entries() -> None:
    pre = entries(world(k=2), 0, 1, 2)
    views = list(pre.nodes[0].peers)
    views[1] = replace(views[1], in_table=False)
    views[3] = replace(views[2])
    post = node(pre, 0, peers=tuple(views))
    assert checks.eviction_only_of_failed_entries(step(pre, post))
    pre_failed = ghost(pre, 0, unresponsive=frozenset({1}))
    post_failed = ghost(post, 0, unresponsive=frozenset({1}))
    assert checks.eviction_only_of_failed_entries(step(pre_failed, post_failed)) == []


def test_prov02_count_is_judged_by_the_stores_the_ghost_saw() -> None:
    w = ghost(world(), 0, stored=frozenset({(0, 1)}))
    said = (Event(0, "provide-succeeded", 0, count=2),)  # the node claims two deliveries
    assert checks.provide_success_is_real(step(w, w, events=said))
    none = (Event(0, "provide-succeeded", 0, count=0),)
    assert checks.provide_success_is_real(step(w, w, events=none))
    honest = (Event(0, "provide-succeeded", 0, count=1),)
    assert checks.provide_success_is_real(step(w, w, events=honest)) == []


def _providers_reply(src: int, dst: int, providers: set[int]) -> Message:
    return Message(Kind.GET_PROVIDERS_REPLY, src, dst, key=0, providers=frozenset(providers))


def test_prov04_expiry_from_the_ghost_publish_time_not_the_stored_field() -> None:
    w = world()
    ttl = w.config.timing.record_ttl
    w = replace(w, clock=ttl)
    # the holder's record claims to live on, but it was published at 0 and is ttl old
    w = node(w, 0, records=frozenset({Record(key=0, provider=2, expires=3 * ttl)}))
    expired = ghost(w, 0, publishes=frozenset({(0, 2, 0)}))
    assert checks.expired_records_not_served(
        step(expired, expired, sent=(_providers_reply(0, 1, {2}),))
    )
    fresh = ghost(w, 0, publishes=frozenset({(0, 2, 1)}))
    assert (
        checks.expired_records_not_served(step(fresh, fresh, sent=(_providers_reply(0, 1, {2}),)))
        == []
    )


def test_prov07_every_live_record_but_the_requesters_own() -> None:
    w = node(world(), 0, records=frozenset({Record(key=0, provider=2, expires=50)}))
    w = ghost(w, 0, publishes=frozenset({(0, 2, 0)}))
    assert checks.live_records_served(step(w, w, sent=(_providers_reply(0, 1, set()),)))
    assert checks.live_records_served(step(w, w, sent=(_providers_reply(0, 1, {2}),))) == []
    assert checks.live_records_served(step(w, w, sent=(_providers_reply(0, 2, set()),))) == []


def test_addr01_identify_judged_by_the_mode_at_send_time() -> None:
    w = node(world(), 0, mode=Mode.CLIENT)
    lying = Message(Kind.IDENTIFY, 0, 1, server=True)
    assert checks.identify_matches_mode(step(w, w, sent=(lying,)))
    pushed = Message(Kind.IDENTIFY_PUSH, 0, 1, server=False)
    assert checks.identify_matches_mode(step(w, w, sent=(lying, pushed))) == []


def test_addr07_add_provider_carries_an_address() -> None:
    w = world()
    bare = Message(Kind.ADD_PROVIDER, 0, 1, key=0, provider=0, public=False)
    assert checks.provider_records_carry_addresses(step(w, w, sent=(bare,)))
    assert (
        checks.provider_records_carry_addresses(step(w, w, sent=(replace(bare, public=True),)))
        == []
    )


def test_boot05_failures_name_a_reason() -> None:
    w = world()
    assert checks.failures_name_a_reason(step(w, w, events=(Event(0, "provide-failed", 0),)))
    named = (Event(0, "provide-failed", 0, reason=1), Event(0, "find-failed", 0, reason=3))
    assert checks.failures_name_a_reason(step(w, w, events=named)) == []


def test_find05_a_reply_admits_at_most_its_responder() -> None:
    pre = world()
    post = entries(pre, 0, 2)
    reply = _reply(1, 0, 0, {2})
    assert checks.replies_do_not_admit_closer_peers(step(pre, post, delivered=reply))
    post = entries(pre, 0, 1)
    assert checks.replies_do_not_admit_closer_peers(step(pre, post, delivered=reply)) == []


# --- progress ---------------------------------------------------------------------------------


def quiet(w: World) -> set[str]:
    return {v.requirement for v in checks.check_quiescent(w, SPEC)}


def test_boot05_an_ignored_call_fails_at_rest() -> None:
    pre = node(world(horizon=1000), 0)
    # The user asks; the node changes nothing at all (it ignores the call).
    post = observe(pre, Action("provide", node=0, key=0), pre)
    assert (PROVIDE, 0, 0) in post.nodes[0].ghost.asked
    assert "BOOT-05" in quiet(post)
    # A call whose bound ends past the horizon cannot be judged yet.
    assert "BOOT-05" not in quiet(replace(post, horizon=0))
    asked_find = observe(pre, Action("find_providers", node=0, key=0), pre)
    assert (FIND, 0, 0) in asked_find.nodes[0].ghost.asked


def test_boot05_an_outcome_answers_the_call() -> None:
    pre = node(world(horizon=1000), 0)
    asked = observe(pre, Action("provide", node=0, key=0), pre)
    failed = ProvideState(providing=True, phase=Phase.QUEUED, outcome=Outcome.FAILED)
    answered = observe(asked, Action("tick"), node(asked, 0, provides=(failed,)))
    assert answered.nodes[0].ghost.asked == frozenset()
    assert "BOOT-05" not in quiet(answered)


def test_addr04_mode_follows_reachability_at_rest() -> None:
    w = node(world(), 0, setting=ModeSetting.AUTO, confirmed=True, mode=Mode.CLIENT)
    assert "ADDR-04" in quiet(w)
    assert "ADDR-04" not in quiet(node(w, 0, mode=Mode.SERVER))


def test_a_timer_already_due_at_rest_is_flagged_by_its_requirement() -> None:
    w = replace(world(), clock=5)
    assert "BOOT-03" in quiet(node(w, 0, refresh_at=5))
    assert "BOOT-03" not in quiet(node(w, 0, refresh_at=6))
    retry = ProvideState(providing=True, phase=Phase.QUEUED, outcome=Outcome.FAILED, retry_at=5)
    assert "PROV-06" in quiet(node(w, 0, refresh_at=9, provides=(retry,)))


def test_boot04_a_lookup_with_no_peer_to_ask_ends() -> None:
    empty = Lookup(Purpose.FIND_PROVIDERS, 0, 0b0110, seen=frozenset())
    assert "BOOT-04" in quiet(node(world(), 0, lookups=(empty,)))
    assert "BOOT-04" not in quiet(world())


def test_prov05_copies_must_be_republished_before_they_expire() -> None:
    w = world()
    w = replace(w, clock=w.config.timing.record_ttl)
    lapsed = ghost(entries(w, 0, 1), 0, kept=frozenset({(0, 0)}))
    assert "PROV-05" in quiet(lapsed)
    assert "PROV-05" not in quiet(ghost(lapsed, 0, retried=frozenset({0})))


# --- ghost ------------------------------------------------------------------------------------


def test_ghost_sees_a_self_lookup_answered_only_from_a_reply() -> None:
    pre = entries(world(), 0, 1)
    flagged = node(pre, 0, self_lookup_done=True)
    assert not observe(pre, Action("tick"), flagged).nodes[0].ghost.self_answered
    reply = _reply(1, 0, IDS[0], set())
    got = observe(pre, Action("deliver", message=reply), pre)
    assert got.nodes[0].ghost.self_answered


def test_ghost_keeps_publishes_across_a_crash_and_forgets_the_rest() -> None:
    pre = ghost(world(), 0, publishes=frozenset({(0, 2, 1)}), heard=frozenset({1}))
    crashed = pre.with_node(
        0,
        NodeState(
            peers=pre.nodes[0].peers, provides=pre.nodes[0].provides, found=pre.nodes[0].found
        ),
    )
    after = observe(pre, Action("crash", node=0), crashed).nodes[0].ghost
    assert after.publishes == frozenset({(0, 2, 1)})
    assert after.heard == frozenset()


def test_ghost_stays_small() -> None:
    """Booleans, small sets of peer indices and a few clock values: nothing that grows with
    the length of a run."""
    for field in attrs.fields(Ghost):
        assert str(field.type) in {
            "bool",
            "int",  # one clock value (BOOT-01's emptied_at)
            "frozenset[int]",
            "frozenset[tuple[int, int]]",
            "frozenset[tuple[int, int, int]]",
            "tuple[tuple[int, int, int], ...]",
        }, field


# --- observable projection --------------------------------------------------------------------

_OBSERVED_TYPES = {ObservedNode, ObservedStep, tuple[ObservedNode, ...]}


def _all_checks() -> tuple[Any, ...]:
    return checks.NODE_INVARIANTS + checks.WORLD_INVARIANTS + checks.STEP_CHECKS + checks.PROGRESS


@pytest.mark.parametrize(
    "check", [c for c in _all_checks() if is_observable(c)], ids=lambda c: c.__name__
)
def test_observable_checks_take_only_the_projection(check: Any) -> None:
    hints = typing.get_type_hints(check, globalns=vars(checks))
    first = next(iter(hints.values()))
    assert first in _OBSERVED_TYPES
    others = [t for name, t in hints.items() if name != "return"][1:]
    assert all(t is int for t in others)  # the clock and the horizon, nothing of the model


def test_an_observable_check_refuses_a_model_state() -> None:
    with pytest.raises(AttributeError):
        checks.never_self(NodeState())  # type: ignore[arg-type]


def test_the_projection_holds_no_model_internals() -> None:
    internal = {
        "failed",
        "refresh_at",
        "lookups",
        "retry_at",
        "backoff",
        "republish_at",
        "published_at",
        "pending",
        "acked",
        "self_lookup_done",
        "boot_tried",
        "dial_back_tried",
        "attempts",
        "phase",
    }
    for cls in (ObservedNode, ObservedPeer):
        assert not internal & {f.name for f in attrs.fields(cls)}
    w = entries(world(), 0, 1)
    assert project(w, 0).table() == (1,)


def test_observability_covers_every_requirement() -> None:
    for rid in requirements():
        assert checks.observability(rid) in ("observable", "internal")
    assert checks.observability("BOOT-03") == "internal"  # a timer
    assert checks.observability("RT-02") == "observable"
    assert checks.observability("TIME-01") == "internal"
    with pytest.raises(KeyError):
        checks.observability("NOPE-01")


def test_every_requirement_has_a_premise_somewhere_in_the_checks() -> None:
    """Every requirement the model checks can be reported exercised: its ID appears among the
    premises a state, a step or a quiescent state can make live."""
    import inspect

    source = inspect.getsource(checks)
    for rid in requirements():
        assert f'"{rid}"' in source.split("# --- premises")[1], rid


# --- premises ---------------------------------------------------------------------------------


def test_premises_of_a_full_bucket_and_a_long_reply() -> None:
    w = entries(world(k=2), 0, 1, 2)
    assert "RT-05" in checks.exercised_in_state(w, SPEC)
    w3 = entries(world(k=2), 0, 1, 2, 3)
    pre = replace(w3, network=tuple(() for _ in w3.network))
    post = replace(
        pre, network=tuple((_reply(0, 4, 0, {1, 2}),) if i == 4 else () for i in range(25))
    )
    assert "FIND-01" in checks.exercised_in_step(pre, Action("tick"), post, SPEC)
    assert "FIND-01" not in checks.exercised_in_step(w, Action("tick"), w, SPEC)


def test_boot01_judges_the_dials_the_ghost_saw() -> None:
    base = Config(nodes=tuple(NodeConfig(id=i) for i in IDS[:3]))
    config = attrs.evolve(
        base, nodes=(attrs.evolve(base.nodes[0], bootstrap=(1, 2)), *base.nodes[1:])
    )
    w = World.initial(config, horizon=10)
    w = node(w, 0, boot_tried=frozenset({1, 2}))  # the node says it tried both
    assert "BOOT-01" in quiet(w)  # the observer saw no dial
    assert "BOOT-01" not in quiet(ghost(w, 0, boot_dialed=frozenset({1, 2})))


def test_addr06_a_connected_public_server_is_routed_unless_it_went_quiet() -> None:
    w = node(world(), 1, mode=Mode.SERVER)
    views = list(w.nodes[0].peers)
    views[1] = PeerView(conn=Conn.OUTBOUND, proto=Proto.SERVER, addr=Addr.DIALABLE)
    w = node(w, 0, peers=tuple(views))
    assert "ADDR-06" in quiet(w)
    assert "ADDR-06" not in quiet(ghost(w, 0, unanswered=frozenset({1})))


def test_rt01_no_connected_client_in_a_table() -> None:
    w = node(entries(world(), 0, 1), 1, mode=Mode.CLIENT)
    assert "RT-01" in quiet(w)
    assert "RT-01" not in quiet(node(w, 1, mode=Mode.SERVER))


def test_prov08_nothing_waits_without_a_deadline() -> None:
    hung = Lookup(Purpose.SELF, 0, 0, seen=frozenset({1}), inflight=((1, None),))
    assert "PROV-08" in quiet(node(world(), 0, lookups=(hung,)))
    timed = Lookup(Purpose.SELF, 0, 0, seen=frozenset({1}), inflight=((1, 50),))
    assert "PROV-08" not in quiet(node(world(), 0, lookups=(timed,), refresh_at=60))


def test_find02_own_id_is_answered_with_the_closest() -> None:
    w = entries(world(), 0, 1, 2)
    assert checks.own_id_lookups_answered(step(w, w, sent=(_reply(0, 1, IDS[0], set()),)))
    assert checks.own_id_lookups_answered(step(w, w, sent=(_reply(0, 1, IDS[0], {2}),))) == []


def test_a_ghost_renamed_by_a_symmetry_keeps_its_meaning() -> None:
    g = Ghost(
        heard=frozenset({1}),
        servers=frozenset({1}),
        waiting=((2, 5, 0b0011),),
        stored=frozenset({(0, 2)}),
        publishes=frozenset({(0, 1, 3)}),
    )
    assert g.permuted((0, 1, 2), 0) == g
    swapped = g.permuted((0, 2, 1), 0b0001)
    assert swapped.heard == frozenset({2})
    assert swapped.waiting == ((1, 5, 0b0010),)
    assert swapped.stored == frozenset({(0, 1)})
    assert swapped.publishes == frozenset({(0, 2, 3)})
    assert swapped.permuted((0, 2, 1), 0b0001) == g
