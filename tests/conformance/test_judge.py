"""Tests for kadspec.conformance.judge: live runs judged by the model's own observable checks.

Hand-written runs pin down each status (pass needs a met premise, fail names evidence and
entries, not applicable for internal requirements and missing capabilities, inconclusive for a
premise that never arose or a bound that had not passed). Simulated runs of every scenario on
the correct reference cores show that it passes every applicable requirement, MUST and SHOULD.
"""

from __future__ import annotations

import json

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_observe import KAD, RunBuilder, addr, peer, simulated

from kadspec.conformance.judge import (
    STATUSES,
    Deadlines,
    Result,
    judge,
    must_failures,
    report,
    summary,
)
from kadspec.conformance.observe import LOOPBACK, PUBLIC
from kadspec.conformance.protocol import wire_key
from kadspec.conformance.scenarios import SCENARIOS
from kadspec.models.checks import observability
from kadspec.spec import requirements


def by_id(results: list[Result]) -> dict[str, Result]:
    return {r.requirement: r for r in results}


def served(
    b: RunBuilder, time: int, responder: str, requester: int, target: str, closer: tuple[int, ...]
) -> int:
    return b.kad(
        time,
        responder,
        "kad_response_sent",
        "FIND_NODE",
        requester,
        target,
        closer_peers=[{"peer_id": peer(c), "addrs": [addr(c)]} for c in closer],
        provider_peers=[],
    )


def reports_receptions(b: RunBuilder, time: int, node: str, other: int) -> None:
    """Show that the adapter reports identify and kad responses at all (``node`` hears from
    ``other``), so their absence elsewhere in the run is evidence."""
    b.identified(time, node, other)
    b.kad(
        time,
        node,
        "kad_response_received",
        "FIND_NODE",
        other,
        peer(other),
        closer_peers=[],
        provider_peers=[],
    )


def three_servers() -> RunBuilder:
    """a (1) holds b (2) and c (3) in its table, all servers that identified as such."""
    b = RunBuilder()
    for name, n in (("a", 1), ("b", 2), ("c", 3)):
        b.start(0, name, n)
    for n in (2, 3):
        b.connected(2, "a", n)
        b.identified(3, "a", n)
        b.event(4, "a", "routing_table_added", peer=peer(n), addrs=[addr(n)])
    return b


def test_every_requirement_gets_one_result_with_its_level() -> None:
    results = judge(three_servers().run())
    spec = requirements()
    assert [r.requirement for r in results] == list(spec)
    for r in results:
        assert r.level == spec[r.requirement].level
        assert r.status in STATUSES
        if spec[r.requirement].check == "config" or observability(r.requirement) == "internal":
            assert r.status in ("not applicable", "fail")


def test_find_node_reply_with_the_requester_fails_find_01_with_its_entry() -> None:
    b = three_servers()
    seq = served(b, 10, "a", 2, peer(3), closer=(3, 2))  # b asks a for c; a names b itself
    found = by_id(judge(b.run()))["FIND-01"]
    assert found.status == "fail"
    assert seq in found.entries
    assert "requester" in found.evidence


def test_find_node_reply_that_is_the_closest_peers_passes() -> None:
    b = three_servers()
    served(b, 10, "a", 2, peer(3), closer=(3,))  # the only eligible peer, which is the target
    served(b, 11, "a", 3, wire_key("x"), closer=(2,))
    found = by_id(judge(b.run()))["FIND-01"]
    assert found.status == "pass", found
    assert found.exercised == 2


def test_a_check_whose_premise_never_arose_is_inconclusive_not_pass() -> None:
    b = three_servers()
    key = wire_key("k")
    b.kad(5, "a", "kad_request_received", "GET_PROVIDERS", 2, key, providers=[])
    b.kad(
        6,
        "a",
        "kad_response_sent",
        "GET_PROVIDERS",
        2,
        key,
        closer_peers=[{"peer_id": peer(3), "addrs": [addr(3)]}],
        provider_peers=[],
    )
    found = by_id(judge(b.run()))
    assert found["FIND-01"].status == "inconclusive"  # no FIND_NODE reply was ever sent
    assert found["PROV-04"].status == "inconclusive"  # no record ever expired
    assert "premise never arose" in found["FIND-01"].evidence


def test_internal_and_configuration_requirements_are_not_applicable() -> None:
    found = by_id(judge(three_servers().run()))
    for rid in ("BOOT-04", "FIND-03", "PROV-08", "TIME-01"):
        assert found[rid].status == "not applicable"
    assert "internal" in found["FIND-03"].evidence


def test_unobservable_failed_dials_make_rt_06_not_applicable() -> None:
    assert by_id(judge(three_servers().run()))["RT-06"].status == "not applicable"


def test_without_events_the_ghost_based_requirements_are_not_applicable() -> None:
    b = RunBuilder(events=False)
    b.start(0, "a", 1)
    b.start(0, "b", 2)
    b.snapshot(
        10,
        "a",
        1,
        table=((2, (addr(2),)),),
        connections=((2, "outbound", addr(2)),),
        protocols={peer(2): [KAD]},
    )
    found = by_id(judge(b.run()))
    assert found["RT-03"].status == "not applicable"  # needs identify events
    assert "events" in found["RT-03"].evidence
    assert found["RT-04"].status == "pass"  # snapshots alone show it
    assert found["RT-07"].status == "pass"


def test_an_entry_without_evidence_fails_rt_03_at_its_admission() -> None:
    """Invariants run at every admission too, not only on snapshots."""
    b = RunBuilder()
    b.start(0, "a", 1)
    b.start(0, "b", 2)
    b.connected(2, "a", 2)
    seq = b.event(3, "a", "routing_table_added", peer=peer(2), addrs=[addr(2)])
    reports_receptions(b, 4, "b", 1)
    found = by_id(judge(b.run()))["RT-03"]
    assert found.status == "fail"
    assert found.entries == (seq,)


def test_a_client_entry_fails_rt_02() -> None:
    b = RunBuilder()
    b.start(0, "a", 1)
    b.start(0, "c", 2, mode="client")
    b.connected(2, "a", 2, "inbound", remote=50)
    b.identified(3, "a", 2, ("/ipfs/id/1.0.0",))
    seq = b.event(4, "a", "routing_table_added", peer=peer(2), addrs=[addr(2)])
    reports_receptions(b, 5, "c", 1)
    found = by_id(judge(b.run()))["RT-02"]
    assert found.status == "fail" and seq in found.entries


def test_an_unanswered_provide_fails_boot_05_only_once_its_bound_passed() -> None:
    def run(end: int) -> Result:
        b = three_servers()
        b.request(100, "provide", node="a", key="k")
        b.snapshot(end, "a", 1)
        return by_id(judge(b.run(), deadlines=Deadlines(outcome_ms=1000)))["BOOT-05"]

    early, late = run(500), run(1500)
    assert early.status == "inconclusive", early
    assert late.status == "fail" and late.deadline_ms == 1000
    assert "no outcome" in late.evidence


def test_an_answered_provide_passes_boot_05() -> None:
    b = three_servers()
    b.request(100, "provide", node="a", key="k")
    b.kad(
        150, "b", "kad_request_received", "FIND_NODE", 1, peer(2), providers=[]
    )  # the adapter reports receptions
    b.event(200, "a", "provide_outcome", key="k", outcome="success", count=1, reason=None)
    b.snapshot(1500, "a", 1)
    found = by_id(judge(b.run(), deadlines=Deadlines(outcome_ms=1000)))
    assert found["BOOT-05"].status == "pass"
    assert found["PROV-02"].status == "fail"  # success reported, no holder stored it


def test_a_failure_without_a_reason_fails_boot_05() -> None:
    b = three_servers()
    b.request(100, "provide", node="a", key="k")
    seq = b.event(200, "a", "provide_outcome", key="k", outcome="failure", count=0, reason=None)
    found = by_id(judge(b.run()))["BOOT-05"]
    assert found.status == "fail" and seq in found.entries


def test_progress_is_judged_only_in_rounds_past_the_deadline() -> None:
    """A client left in a table fails RT-01 in a settled round; the same state right after a
    disturbing request is still within its bound."""

    def run(round_at: int) -> Result:
        b = RunBuilder()
        b.start(0, "a", 1)
        b.start(0, "c", 2, mode="client")
        b.snapshot(
            round_at, "a", 1, table=((2, (addr(2),)),), connections=((2, "outbound", addr(2)),)
        )
        b.snapshot(round_at, "c", 2, mode="client", connections=((1, "inbound", addr(50)),))
        return by_id(judge(b.run(), deadlines=Deadlines(progress_ms=1000)))["RT-01"]

    assert run(500).status == "inconclusive"
    late = run(1500)
    assert late.status == "fail" and late.deadline_ms == 1000
    assert "1000 ms" in late.evidence


def test_serving_an_expired_record_fails_prov_04_with_the_publication_time() -> None:
    b = three_servers()
    ttl = {"record_ttl": 1000}
    b.nodes[0] = b.nodes[0]  # a's timings come from its start request below
    b.start(0, "h", 4, timings=ttl)
    key = wire_key("k")
    b.kad(
        100,
        "h",
        "kad_request_received",
        "ADD_PROVIDER",
        2,
        key,
        providers=[{"peer_id": peer(2), "addrs": [addr(2)]}],
    )
    fresh = b.kad(
        500,
        "h",
        "kad_response_sent",
        "GET_PROVIDERS",
        3,
        key,
        closer_peers=[],
        provider_peers=[{"peer_id": peer(2), "addrs": [addr(2)]}],
    )
    stale = b.kad(
        2000,
        "h",
        "kad_response_sent",
        "GET_PROVIDERS",
        3,
        key,
        closer_peers=[],
        provider_peers=[{"peer_id": peer(2), "addrs": [addr(2)]}],
    )
    found = by_id(judge(b.run()))
    assert found["PROV-04"].status == "fail"
    assert stale in found["PROV-04"].entries and fresh not in found["PROV-04"].entries
    assert "published at 100" in found["PROV-04"].evidence
    assert f"key {key}" in found["PROV-04"].evidence  # a key known only on the wire


def test_withholding_a_live_record_fails_prov_07() -> None:
    b = three_servers()
    key = wire_key("k")
    b.kad(
        100,
        "a",
        "kad_request_received",
        "ADD_PROVIDER",
        2,
        key,
        providers=[{"peer_id": peer(2), "addrs": [addr(2)]}],
    )
    seq = b.kad(
        200, "a", "kad_response_sent", "GET_PROVIDERS", 3, key, closer_peers=[], provider_peers=[]
    )
    found = by_id(judge(b.run()))["PROV-07"]
    assert found.status == "fail" and seq in found.entries


def test_a_confirmation_is_inconclusive_without_dial_back_events() -> None:
    b = RunBuilder()
    b.start(0, "a", 1)
    b.start(0, "b", 2)
    b.identified(5, "a", 2, observed="/ip4/8.8.8.8/tcp/4001")
    b.snapshot(10, "a", 1, external=("/ip4/8.8.8.8/tcp/4001",))
    assert by_id(judge(b.run(), PUBLIC))["ADDR-03"].status == "inconclusive"


def test_the_report_is_json_with_profile_deadlines_and_every_result() -> None:
    run = three_servers().run()
    deadlines = Deadlines()
    results = judge(run, LOOPBACK, deadlines)
    document = json.loads(json.dumps(report(run, results, LOOPBACK, deadlines)))
    assert document["format"] == "kadspec-conformance/1"
    assert document["profile"]["name"] == "loopback"
    assert document["deadlines"]["progress_ms"] == deadlines.progress_ms
    assert len(document["results"]) == len(requirements())
    assert sum(summary(results).values()) == len(results)
    assert {"requirement", "level", "status", "evidence", "entries"} <= set(document["results"][0])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_correct_reference_passes_every_applicable_requirement(name: str) -> None:
    """Simulated reference cores: nothing fails, MUST or SHOULD, in any scenario, and each
    scenario's own requirements are exercised (pass) unless noted."""
    scenario = SCENARIOS[name]
    results = by_id(judge(simulated(name), LOOPBACK, scenario.deadlines))
    failed = {r.requirement: r.evidence for r in results.values() if r.status == "fail"}
    assert not failed
    assert not must_failures(list(results.values()))
    for rid in scenario.exercises:
        if observability(rid) == "observable":
            assert results[rid].status == "pass", (rid, results[rid])


@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(st.data())
def test_the_judge_survives_runs_cut_short_or_missing_entries(data: st.DataObject) -> None:
    """An aborted adapter leaves a run cut anywhere, and events may arrive for nodes whose
    start reply never came: the judge still gives one result per requirement."""
    run = simulated("bootstrap-restart")
    cut = data.draw(st.integers(0, len(run.entries)), label="cut")
    dropped = data.draw(st.sets(st.integers(0, max(0, cut - 1)), max_size=30), label="dropped")
    entries = tuple(e for e in run.entries[:cut] if e.seq not in dropped)
    results = judge(attrs.evolve(run, entries=entries, aborted="cut short"))
    assert [r.requirement for r in results] == list(requirements())


def test_a_requirement_built_from_an_event_kind_the_adapter_never_reports_is_not_applicable() -> (
    None
):
    """Events are optional one by one: a holder's record with no kad_request_received events
    in the whole run is no evidence that the provider never sent it (PROV-03)."""
    b = three_servers()
    b.snapshot(
        10, "a", 1, table=((2, (addr(2),)), (3, (addr(3),))), records=((wire_key("k"), 2, 99_999),)
    )
    found = by_id(judge(b.run()))["PROV-03"]
    assert found.status == "not applicable"
    assert "kad_request_received" in found.evidence
    b.kad(11, "a", "kad_request_received", "FIND_NODE", 3, peer(3), providers=[])
    b.snapshot(
        12, "a", 1, table=((2, (addr(2),)), (3, (addr(3),))), records=((wire_key("k"), 2, 99_999),)
    )
    assert by_id(judge(b.run()))["PROV-03"].status == "fail"  # now the silence is evidence


def test_a_store_logged_just_after_the_success_report_still_counts_for_prov_02() -> None:
    """The holder's report of the ADD_PROVIDER may come after the sender's outcome (different
    nodes): the success is judged once the grace window passed."""
    b = three_servers()
    key = wire_key("k")
    b.request(100, "provide", node="a", key="k")
    b.kad(
        110,
        "a",
        "kad_request_sent",
        "ADD_PROVIDER",
        2,
        key,
        providers=[{"peer_id": peer(1), "addrs": [addr(1)]}],
    )
    seq = b.event(120, "a", "provide_outcome", key="k", outcome="success", count=1, reason=None)
    b.kad(
        125,
        "b",
        "kad_request_received",
        "ADD_PROVIDER",
        1,
        key,
        providers=[{"peer_id": peer(1), "addrs": [addr(1)]}],
    )
    found = by_id(judge(b.run(), deadlines=Deadlines(grace_ms=100)))["PROV-02"]
    assert found.status == "pass", found
    assert found.entries == (seq,)
