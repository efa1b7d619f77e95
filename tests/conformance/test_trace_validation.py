"""Trace validation on constructed runs: a correct run is accepted, and one wrong event is
rejected at exactly that event with the requirement the model's checks name."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from kadspec.conformance.protocol import (
    Capabilities,
    Entry,
    Hello,
    NodeRecord,
    Run,
    base58,
    wire_key,
)
from kadspec.conformance.trace_validation import (
    DEPTH_BOUND,
    ReplayConfig,
    Validation,
    _Replayer,
    validate,
)
from kadspec.models.config import MODEL_TIMING, ConfigError, NodeConfig
from kadspec.models.policy import SPEC

KAD = "/ipfs/kad/1.0.0"
HELLO = wire_key("hello")


def peer_id(index: int) -> str:
    """A valid base58 peer ID (an identity multihash), distinct per index."""
    return str(base58(bytes([0x00, 6]) + b"tv" + index.to_bytes(4, "big")))


class RunBuilder:
    """Writes a run entry by entry, the way the runner records one (events carry the adapter's
    time_ms, one ms apart unless told)."""

    def __init__(self, names: list[str], timings: dict[str, int] | None = None) -> None:
        self.names = names
        self.ids = {name: peer_id(i) for i, name in enumerate(names)}
        self.timings = timings or {}
        self.entries: list[Entry] = []
        self.starts: dict[str, dict[str, Any]] = {}
        self.clock = 0
        self.request_id = 0
        self.marks: dict[str, int] = {}

    def _add(
        self, kind: Any, node: str, payload: dict[str, Any], request: int | None = None
    ) -> int:
        seq = len(self.entries)
        self.entries.append(Entry(seq, self.clock, kind, node, payload, request))
        return seq

    def request(self, op: str, node: str, **args: Any) -> int:
        self.request_id += 1
        message = {
            "type": "request",
            "id": self.request_id,
            "op": op,
            "args": {"node": node, **args},
        }
        self._add("request", node, message)
        return self.request_id

    def reply(self, request: int, node: str, result: dict[str, Any] | None = None) -> None:
        message = {"type": "reply", "id": request, "ok": True, "result": result or {}}
        self._add("reply", node, message, request)

    def timeout(self, request: int, node: str, after_ms: int) -> None:
        self.clock += after_ms
        error = {"kind": "timeout", "message": "no outcome"}
        self._add(
            "reply", node, {"type": "reply", "id": request, "ok": False, "error": error}, request
        )

    def start(self, node: str, mode: str = "server", bootstrap: tuple[str, ...] = ()) -> None:
        args = {
            "mode": mode,
            "listen": "/ip4/127.0.0.1/tcp/0",
            "bootstrap": [f"/ip4/127.0.0.1/tcp/4001/p2p/{self.ids[b]}" for b in bootstrap],
            "timings": self.timings,
        }
        self.starts[node] = args
        rid = self.request("start", node, **args)
        self.reply(rid, node, {"peer_id": self.ids[node], "listen_addrs": []})
        self.event(node, "mode_changed", mode="client" if mode == "client" else "server")

    def event(self, node: str, event: str, mark: str | None = None, **fields: Any) -> None:
        self.clock += 1
        if "peer" in fields:
            fields["peer"] = self.ids[fields["peer"]]
        for name in ("closer_peers", "provider_peers", "providers"):
            if name in fields:
                fields[name] = [
                    {"peer_id": self.ids[p], "addrs": ["/ip4/127.0.0.1/tcp/4001"]}
                    for p in fields[name]
                ]
        payload = {"type": "event", "node": node, "time_ms": self.clock, "event": event, **fields}
        seq = self._add("event", node, payload)
        if mark is not None:
            self.marks[mark] = seq

    def connect(self, dialer: str, listener: str) -> None:
        addr = "/ip4/127.0.0.1/tcp/4001"
        self.event(
            dialer, "connection_opened", peer=listener, direction="outbound", remote_addr=addr
        )
        self.event(
            listener, "connection_opened", peer=dialer, direction="inbound", remote_addr=addr
        )

    def identify(self, node: str, peer: str, server: bool = True) -> None:
        protocols = [KAD] if server else []
        self.event(
            node, "identify_received", peer=peer, listen_addrs=[], observed_addr=None,
            protocols=protocols,
        )  # fmt: skip

    def kad(self, event: str, node: str, peer: str, kad_type: str, key: str, **fields: Any) -> None:
        if event.startswith("kad_request"):
            fields.setdefault("providers", [])
        else:
            fields.setdefault("closer_peers", [])
            fields.setdefault("provider_peers", [])
        self.event(node, event, kad_type=kad_type, peer=peer, key=key, **fields)

    def exchange(
        self, asker: str, server: str, kad_type: str, key: str, mark: str | None = None,
        closer: tuple[str, ...] = (), providers: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        """A full request/response: sent, received, answered, answer received."""
        self.kad("kad_request_sent", asker, server, kad_type, key)
        self.kad("kad_request_received", server, asker, kad_type, key)
        self.clock += 1
        self.event(
            server, "kad_response_sent", mark=mark, kad_type=kad_type, peer=asker, key=key,
            closer_peers=list(closer), provider_peers=list(providers),
        )  # fmt: skip
        self.kad(
            "kad_response_received", asker, server, kad_type, key, closer_peers=list(closer),
            provider_peers=list(providers),
        )  # fmt: skip

    def run(self) -> Run:
        hello = Hello("kadspec-adapter/1", "constructed", "0", Capabilities(events=True))
        nodes = tuple(NodeRecord(n, self.starts.get(n, {}), self.ids[n]) for n in self.names)
        return Run(hello, "constructed", nodes, tuple(self.entries))


def joined_pair(timings: dict[str, int] | None = None, names: tuple[str, ...] = ()) -> RunBuilder:
    """a starts; b joins through a; both finish their self-lookups (the reference node's order:
    a bootstrap peer enters the table on connection, identify arrives later)."""
    b = RunBuilder(["a", "b", *names], timings)
    b.start("a")
    b.start("b", bootstrap=("a",))
    b.connect("b", "a")
    b.event("b", "routing_table_added", peer="a", addrs=[])
    b.kad("kad_request_sent", "b", "a", "FIND_NODE", b.ids["b"])
    b.identify("a", "b")
    b.event("a", "routing_table_added", peer="b", addrs=[])
    b.kad("kad_request_sent", "a", "b", "FIND_NODE", b.ids["a"])
    b.kad("kad_request_received", "a", "b", "FIND_NODE", b.ids["b"])
    b.kad("kad_response_sent", "a", "b", "FIND_NODE", b.ids["b"])
    b.identify("b", "a")
    b.kad("kad_response_received", "b", "a", "FIND_NODE", b.ids["b"])
    b.kad("kad_request_received", "b", "a", "FIND_NODE", b.ids["a"])
    b.kad("kad_response_sent", "b", "a", "FIND_NODE", b.ids["a"])
    b.kad("kad_response_received", "a", "b", "FIND_NODE", b.ids["a"])
    return b


def provide_hello(
    b: RunBuilder, *, reply: bool = True, send_store: bool = True, store_received: bool = True,
    lookup_reply: tuple[str, ...] = (),
) -> None:  # fmt: skip
    """b provides "hello": GetClosestPeers through a, ADD_PROVIDER to a, success with 1."""
    rid = b.request("provide", "b", key="hello")
    b.exchange("b", "a", "FIND_NODE", HELLO, mark="lookup reply", closer=lookup_reply)
    if send_store:
        b.kad("kad_request_sent", "b", "a", "ADD_PROVIDER", HELLO, providers=["b"])
    b.event("b", "provide_outcome", mark="outcome", key="hello", outcome="success", count=1,
            reason=None)  # fmt: skip
    if reply:
        b.reply(rid, "b", {"outcome": "success", "count": 1, "reason": None})
    if store_received:
        b.kad("kad_request_received", "a", "b", "ADD_PROVIDER", HELLO, providers=["b"])


def assert_rejected_at(
    v: Validation, seq: int, requirement: str | None, *, event: bool = True
) -> None:
    u = v.first_unexplained
    assert v.verdict == "rejected", v.summary()
    assert u is not None and u.seq == seq, (u, seq)
    if requirement is not None:
        assert requirement in u.requirements, u
    assert u.state.startswith("model clock")
    if event:  # (a blamed reply leaves every event explained)
        assert v.explained < v.modelled


def test_join_and_provide_accepted() -> None:
    b = joined_pair()
    provide_hello(b)
    v = validate(b.run())
    assert v.accepted, v.first_unexplained
    assert v.explained == v.modelled == v.total == 23
    assert v.first_unexplained is None and v.states_tried > 0
    assert 0 < v.deepest <= DEPTH_BOUND
    assert "accepted: 23/23" in v.summary()


def test_find_node_reply_with_the_requester_rejected_at_that_reply() -> None:
    b = joined_pair()
    provide_hello(b, lookup_reply=("b",))
    v = validate(b.run())
    assert_rejected_at(v, b.marks["lookup reply"], "FIND-01")
    assert "closer=[b]" in (v.first_unexplained.event if v.first_unexplained else "")


def test_find_node_reply_may_hold_the_target_itself() -> None:
    """FIND-01: a reply MAY add the target, even when the target is the requester (b's
    self-lookup answered with b)."""
    b = RunBuilder(["a", "b"])
    b.start("a")
    b.start("b", bootstrap=("a",))
    b.connect("b", "a")
    b.event("b", "routing_table_added", peer="a", addrs=[])
    b.identify("a", "b")
    b.event("a", "routing_table_added", peer="b", addrs=[])
    b.exchange("b", "a", "FIND_NODE", b.ids["b"], closer=("b",))
    assert validate(b.run()).accepted


def test_success_without_a_store_sent_rejected_at_the_outcome() -> None:
    b = joined_pair()
    provide_hello(b, send_store=False, store_received=False)
    v = validate(b.run())
    assert_rejected_at(v, b.marks["outcome"], "PROV-02")


def test_success_whose_store_never_arrived_rejected_at_the_outcome() -> None:
    """The store was sent, but the holder never got it: the model can only explain the
    success with a delivery the holder never reports, and blames the outcome."""
    b = joined_pair()
    provide_hello(b, store_received=False)
    v = validate(b.run())
    assert_rejected_at(v, b.marks["outcome"], "PROV-02")
    assert v.first_unexplained is not None and "never reported" in v.first_unexplained.why


def test_client_admitted_to_a_table_rejected_at_the_admission() -> None:
    b = joined_pair(names=("c",))
    b.start("c", mode="client", bootstrap=("a",))
    b.connect("c", "a")
    b.identify("a", "c", server=False)
    b.event("a", "routing_table_added", mark="admission", peer="c", addrs=[])
    v = validate(b.run())
    assert_rejected_at(v, b.marks["admission"], "RT-02")


def test_client_kept_out_accepted() -> None:
    b = joined_pair(names=("c",))
    b.start("c", mode="client", bootstrap=("a",))
    b.connect("c", "a")
    b.identify("a", "c", server=False)
    b.identify("c", "a")
    b.event("c", "routing_table_added", peer="a", addrs=[])
    assert validate(b.run()).accepted


def expired_record_run(served: tuple[str, ...]) -> RunBuilder:
    """b provides with a 1 s record TTL, then a asks b for providers 2 s later."""
    b = joined_pair({"record_ttl": 1000, "republish_interval": 500})
    provide_hello(b)
    b.clock = 2000
    rid = b.request("find_providers", "a", key="hello", deadline_ms=1000)
    b.exchange("a", "b", "GET_PROVIDERS", HELLO, mark="served", providers=served)
    b.event("a", "find_outcome", key="hello", providers=list(served))
    b.reply(rid, "a", {"providers": []})
    return b


def test_expired_record_served_rejected_at_the_reply() -> None:
    b = expired_record_run(served=("b",))
    v = validate(b.run())
    assert_rejected_at(v, b.marks["served"], "PROV-04")
    assert any("timings" in note for note in v.notes)  # the short TTL breaks TIME-03's order


def test_expired_record_withheld_accepted() -> None:
    v = validate(expired_record_run(served=()).run())
    assert v.accepted, v.first_unexplained


def test_provide_left_unanswered_past_the_bound_rejected_at_its_reply() -> None:
    timings = {"refresh_interval": 1000, "request_deadline": 100}
    b = joined_pair(timings)
    rid = b.request("provide", "b", key="hello")
    b.timeout(rid, "b", after_ms=5000)
    v = validate(b.run())
    assert_rejected_at(v, len(b.entries) - 1, "BOOT-05", event=False)


def test_unmodelled_events_are_counted_apart() -> None:
    b = joined_pair()
    b.kad("kad_request_sent", "a", "b", "PING", "")
    b.ids["stranger"] = peer_id(99)  # a peer the run never started
    b.event("a", "connection_opened", peer="stranger", direction="outbound", remote_addr="/x")
    v = validate(b.run())
    assert v.accepted, v.first_unexplained
    assert v.total == v.modelled + 2
    assert sum(v.unmodelled.values()) == 2
    assert any("PING" in why for why in v.unmodelled)


def test_a_spent_time_budget_makes_the_verdict_inconclusive() -> None:
    b = joined_pair()
    provide_hello(b)
    v = validate(b.run(), budget_s=0.0)
    assert v.verdict == "inconclusive" and not v.accepted
    assert v.explained < v.modelled and "time budget" in v.summary()


def test_run_without_peer_ids_is_not_validated() -> None:
    b = joined_pair()
    run = b.run()
    nodes = tuple(NodeRecord(n.name, n.start, None) for n in run.nodes)
    entries = tuple(e for e in run.entries if e.kind != "reply")
    v = validate(Run(run.hello, run.scenario, nodes, entries))
    assert v.verdict == "not validated" and v.notes


def test_replay_config_takes_wide_ids_and_many_nodes_the_explorer_does_not() -> None:
    wide = tuple(NodeConfig(id=(1 << 255) + i) for i in range(20))
    config = ReplayConfig(nodes=wide, keys=(1 << 200,), id_bits=256, timing=MODEL_TIMING)
    assert config.validate() is config
    from kadspec.models.config import Config

    with pytest.raises(ConfigError):
        Config(nodes=wide, keys=(1,), id_bits=256).validate()
    with pytest.raises(ConfigError):
        ReplayConfig(nodes=(NodeConfig(1), NodeConfig(1)), id_bits=256).validate()


# --- runs of reference cores: the scenarios and the five breakages ------------------------------
# ORACLE's simulate() runs a scenario on reference cores in the in-process simulated network and
# records it as an adapter would (virtual time, no sockets): the same Run a live adapter gives.

SCENARIOS_CORRECT = (
    "provide-at-startup",
    "listener-side-join",
    "client-requests",
    "mode-switch",
    "bootstrap-restart",
    "several-keys",
    "record-expiry",
)


@pytest.mark.parametrize("name", SCENARIOS_CORRECT)
def test_reference_core_runs_are_accepted(name: str) -> None:
    from kadspec.conformance.scenarios import SCENARIOS
    from kadspec.conformance.simulate import simulate

    run = simulate(SCENARIOS[name], seed=1)
    v = validate(run)
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.explained == v.modelled > 0 and v.total >= v.modelled


#: breakage -> (the requirement the model's checks name, the event at which the run is rejected)
BROKEN = {
    "admit-client": ("RT-02", "routing_table_added"),
    "serve-expired": ("PROV-04", "kad_response_sent"),
    "success-without-store": ("PROV-02", "provide_outcome"),
    "drop-provide-before-ready": ("PROV-07", "kad_response_sent"),
    "find-node-returns-requester": ("FIND-01", "kad_response_sent"),
    "withhold-records": ("PROV-07", "kad_response_sent"),
    # the identify after which the model admits the joiner; the node never reports it
    "forget-listen-addrs": ("ADDR-06", "identify_received"),
}


def test_every_breakage_is_covered() -> None:
    from kadspec.conformance.breakage import BREAKAGES

    assert set(BREAKAGES) == set(BROKEN)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_breakage_is_rejected_at_its_first_unexplained_event(name: str) -> None:
    """The broken node's run is accepted up to the first event the breakage changes, and
    rejected exactly there: the same scenario's correct run explains that entry (or never
    has it), and the model's checks on the observed step name the broken requirement."""
    from kadspec.conformance.breakage import BREAKAGES
    from kadspec.conformance.scenarios import SCENARIOS
    from kadspec.conformance.simulate import simulate

    breakage = BREAKAGES[name]
    run = simulate(SCENARIOS[breakage.scenario], breakage=breakage, seed=0)
    v = validate(run)
    u = v.first_unexplained
    requirement, event = BROKEN[name]
    assert v.verdict == "rejected" and u is not None, v.summary()
    assert requirement in u.requirements, u
    entry = run.entries[u.seq]
    assert entry.payload.get("event") == event, (entry, u)
    # everything before it is explained: the validation stopped at the breakage, not earlier
    before = [e for e in run.events() if e.seq < u.seq]
    assert v.explained == sum(1 for e in before if e.node in {n.name for n in run.nodes})
    assert 0 < v.explained < v.modelled


def test_a_churn_run_is_accepted_within_the_search_bounds() -> None:
    from kadspec.conformance.scenarios import SCENARIOS
    from kadspec.conformance.simulate import simulate

    v = validate(simulate(SCENARIOS["churn"], seed=0))
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.deepest <= DEPTH_BOUND and v.widest >= 1


def _dropped_then_identified_again(server: bool) -> RunBuilder:
    """a drops b after a missed deadline; then b dials a a second time (the reference node
    keeps both connections when two nodes dial each other at once) and that connection's
    identify arrives; b answers the old request late."""
    b = joined_pair(timings={"request_deadline": 1000})
    rid = b.request("find_providers", "a", key="hello", deadline_ms=5000)
    b.kad("kad_request_sent", "a", "b", "GET_PROVIDERS", HELLO)
    b.clock += 1500
    b.event("a", "routing_table_removed", peer="b", addrs=[], reason="deadline")
    b.event("a", "find_outcome", key="hello", providers=[])
    b.reply(rid, "a", {"providers": []})
    b.connect("b", "a")
    b.identify("a", "b", server=server)
    b.event("a", "routing_table_added", mark="back", peer="b", addrs=[])
    b.kad("kad_request_received", "b", "a", "GET_PROVIDERS", HELLO)
    b.kad("kad_response_sent", "b", "a", "GET_PROVIDERS", HELLO)
    return b


def test_identify_on_a_second_connection_readmits_a_dropped_peer() -> None:
    """The model sends identify once per pair; a second connection's identify was taken as
    a mere restatement, so the re-admission it brings (live churn run, n3 re-adding n4) was
    unexplained."""
    v = validate(_dropped_then_identified_again(server=True).run())
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.explained == v.modelled == 25


def test_identify_without_kad_on_a_second_connection_admits_nobody() -> None:
    """(rejected already at that identify: b said it speaks kad on the first connection)"""
    b = _dropped_then_identified_again(server=False)
    assert_rejected_at(validate(b.run()), b.marks["back"] - 1, None)


# --- saved live runs: crash, restart and shutdown ------------------------------------------------
# Runs of the reference adapter (py-libp2p hosts on 127.0.0.1, 12:00 on 2026-11-30) that the
# replay once rejected: the adapter halts a node while its crash/stop/shutdown request is
# pending, so the halt has to take effect where the node's own events end, not at the reply.

RUNS = Path(__file__).parent / "runs"

#: The saved reference runs were recorded before the core refreshed its empty buckets (BOOT-03's
#: bucket lookups, landed later that day): they replay against the spec policy without those.
BEFORE_BUCKET_REFRESH = attrs.evolve(SPEC, refresh_far_buckets=False)


def _saved_run(name: str) -> Run:
    with gzip.open(RUNS / f"{name}.reference-live.run.json.gz", "rt", encoding="utf-8") as f:
        return Run.from_json(json.load(f))


def test_saved_bootstrap_restart_run_is_accepted() -> None:
    """a's lookup request to the crashed boot (#95) comes before the crash's reply (#97); with
    boot still up there the replay explained it with a dial that succeeded, and the identify
    of the real reconnection after the restart (#111) was unexplained."""
    run = _saved_run("bootstrap-restart")
    v = validate(run, BEFORE_BUCKET_REFRESH)
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.explained == v.modelled == 308
    # boot halts after its last event (#94, its connections closing), before a's request
    assert run.entries[95].payload["event"] == "kad_request_sent"
    assert run.nodes[0].name == "boot"
    assert _Replayer(run, BEFORE_BUCKET_REFRESH).halts[94] == [(0, False)]


def test_saved_bootstrap_restart_run_with_a_request_broken_by_the_halt_is_accepted() -> None:
    """While boot halts (crash #90, reply #105) a reconnects to it and b's FIND_NODE (#102)
    goes out on a connection that then closes (#103); after the restart b dials boot again
    and boot answers that request (#119) with no second send. The model's crash dropped the
    request, so b's new dial (#113) was unexplained."""
    run = _saved_run("bootstrap-restart-halting")
    v = validate(run, BEFORE_BUCKET_REFRESH)
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.explained == v.modelled == 309
    assert run.entries[102].payload["event"] == "kad_request_sent"
    assert run.entries[105].kind == "reply"


def test_saved_churn_run_is_accepted_through_the_shutdown() -> None:
    """During the shutdown the adapter stops the nodes one by one while the others keep
    working (a lookup request to a stopped node fails, a reply written by a node just
    stopped still arrives); the replay had every node running to the end."""
    run = _saved_run("churn")
    v = validate(run, BEFORE_BUCKET_REFRESH)
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.explained == v.modelled == 1706
    r = _Replayer(run, BEFORE_BUCKET_REFRESH)
    shutdown = r.shutdown_seq
    assert shutdown is not None
    halted = {node for seq, pairs in r.halts.items() for node, by_shutdown in pairs if by_shutdown}
    assert halted == set(range(len(run.nodes)))
    assert all(seq >= shutdown for seq, pairs in r.halts.items() if any(s for _, s in pairs))


def test_saved_churn_run_with_a_stopped_nodes_identify_read_late_is_accepted() -> None:
    """While n3 stops (request #518, reply #614) n0 dials it again (#599); n3's identify on
    that connection is read by n0 only after the stop's reply (#641). The halt waits for
    that receipt; it used to come at the reply and drop the identify in flight."""
    run = _saved_run("churn-late-identify")
    v = validate(run, BEFORE_BUCKET_REFRESH)
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.explained == v.modelled == 1642
    assert run.entries[614].kind == "reply"
    assert run.entries[641].payload["event"] == "identify_received"


def test_saved_mode_switch_run_a_request_to_a_new_client_is_no_receipt() -> None:
    """a's FIND_NODE to the switcher (#201) reaches it after it turned client (set_mode
    #196): a client resets the stream unread (ADDR-01) and reports no receipt, which the
    replay used to owe at the end of the run (blamed on a's next request, #223)."""
    run = _saved_run("mode-switch")
    v = validate(run, BEFORE_BUCKET_REFRESH)
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.explained == v.modelled == 263
    assert run.entries[196].payload["op"] == "set_mode"


def test_saved_mode_switch_run_a_requester_hears_a_clients_reset_late() -> None:
    """A live mode-switch run (16:18 on 2026-11-30) with the switcher's two receipts (#205,
    #206) logged before the replies its requesters send next, the order a fresh-clone CI's
    verify saw: b's reply to a (#208) still names the switcher, since b hears the reset
    only after. The replay's one refusal step told b at once, so it rejected #208
    (FIND-01), as that CI did; the client's read-and-reset now comes apart from the
    requester's failure (the ``broken`` step, #212 here)."""
    run = _saved_run("mode-switch-reset-unheard")
    v = validate(run, BEFORE_BUCKET_REFRESH)
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.explained == v.modelled == 259
    receipt, reply = run.entries[205].payload, run.entries[208].payload
    assert (receipt["event"], receipt["node"]) == ("kad_request_received", "switcher")
    assert reply["event"] == "kad_response_sent" and reply["closer_peers"]


def test_saved_mode_switch_run_requests_read_before_the_switch_are_answered_as_a_server() -> None:
    """From a fresh-clone CI's verify (b495ab3, recorded with the bucket refresh): between
    set_mode client (#338) and its mode_changed (#343) the switcher reads a's and b's
    FIND_NODEs and answers both as a server (#340, #342). With the switch applied at the
    request the model's client had to answer them, and #340 was rejected (ADDR-01); the
    switch now takes effect at the node's own mode_changed event."""
    run = _saved_run("mode-switch-read-before-switch")
    v = validate(run)
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.explained == v.modelled == 466
    assert run.entries[338].payload["op"] == "set_mode"
    assert run.entries[340].payload["event"] == "kad_response_sent"
    assert run.entries[343].payload["event"] == "mode_changed"
    assert _Replayer(run, SPEC).mode_switches[338] == 343


def test_saved_js_run_a_self_lookup_started_on_a_timer_is_explained() -> None:
    """js-libp2p (libp2p 3.3.11, kad-dht 16.4.5, 16:24 on 2026-11-30) runs its self-lookup a
    second after start, seeded with both peers b admitted by then (#57, #58); the model
    starts it when the first peer arrives, with that peer alone. The replay once explained
    #58 only by b dropping boot, and rejected b's next reply (#71) for naming boot. Now it
    goes on to a real difference: js's GET_PROVIDERS reply names the requester c (#118),
    which the model's replies never do (FIND-01: SHOULD NOT hold the requester)."""
    with gzip.open(RUNS / "provide-at-startup.js-libp2p-live.run.json.gz", "rt") as f:
        run = Run.from_json(json.load(f))
    v = validate(run)
    assert v.verdict == "rejected" and v.first_unexplained is not None
    assert v.first_unexplained.seq == 118 and v.explained == 107
    assert "GET_PROVIDERS" in v.first_unexplained.event
    reply = run.entries[118].payload
    requester = next(n.peer_id for n in run.nodes if n.name == "c")
    assert requester in {p["peer_id"] for p in reply["closer_peers"]}


def test_a_receipt_owed_before_the_shutdown_is_still_owed() -> None:
    """Halting the nodes at the shutdown must not excuse what they owed before it: a store
    never received is still blamed on the success that needed it."""
    b = joined_pair()
    provide_hello(b, store_received=False)
    b.request("shutdown", "")
    v = validate(b.run())
    assert_rejected_at(v, b.marks["outcome"], "PROV-02")


# --- live: the reference adapter (py-libp2p hosts on 127.0.0.1) through the runner --------------


def _live_run(scenario: str, breakage: str | None = None) -> Run:
    import importlib.util
    import os

    import psutil

    from kadspec.conformance.runner import reference_command, run_scenario
    from kadspec.conformance.scenarios import SCENARIOS

    if importlib.util.find_spec("libp2p") is None and os.environ.get("CI") != "true":
        pytest.skip("py-libp2p is not installed (outside CI)")
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    run, _ = run_scenario(reference_command(breakage), SCENARIOS[scenario])
    left = {c.pid for c in psutil.Process().children(recursive=True)} - before
    assert not left, f"processes left behind: {left}"
    assert run.aborted is None, run.aborted
    return run


def test_live_reference_node_run_is_accepted() -> None:
    run = _live_run("listener-side-join")
    v = validate(run)
    assert v.accepted, (v.summary(), v.first_unexplained)
    assert v.explained == v.modelled > 20


def test_live_admit_client_run_is_rejected_at_the_admission() -> None:
    run = _live_run("client-requests", breakage="admit-client")
    v = validate(run)
    u = v.first_unexplained
    assert v.verdict == "rejected" and u is not None, v.summary()
    assert "RT-02" in u.requirements, u
    entry = run.entries[u.seq]
    assert entry.payload.get("event") == "routing_table_added"
    assert run.peer_names().get(str(entry.payload.get("peer"))) == "client"
