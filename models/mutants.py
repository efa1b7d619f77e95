"""Mutants: the real bugs, each written as a policy set that differs from the spec in one behaviour.

Every mutant names its source (an issue, a pull request or a code reading), the requirement it
is expected to violate, and the scenario in which the bug shows. ``kadspec mutants`` runs each
and passes only when every mutant is detected violating its expected requirement: that shows
each requirement has teeth, and that the model would catch the bug in a real node.

``kind`` says what the source shows: ``"bug"``, a defect someone reported or fixed; or
``"robustness"``, the deliberate default of a maintained implementation that one of kadspec's
own SHOULD-level robustness rules flags (so a report lists it as a SHOULD deviation, never as a
MUST failure). Requirements with no mutant are in :data:`NO_MUTANT`, each with the reason.
"""

from __future__ import annotations

import attrs

from kadspec.models.policy import SPEC, Policy, Retry
from kadspec.models.requirements_registry import requirement as _check_id
from kadspec.models.scenarios import SCENARIOS, Scenario


@attrs.frozen
class Mutant:
    """A named bug: the policy set that reproduces it and what it must break."""

    name: str
    source: str
    summary: str
    expected: str  # the requirement ID the bug violates
    scenario: str  # a key of SCENARIOS
    policy: Policy
    kind: str = "bug"  # "bug" or "robustness" (see the module docstring)

    @property
    def scenario_spec(self) -> Scenario:
        """The scenario, with any network it starts from formed under this mutant's policy."""
        scenario = SCENARIOS[self.scenario]
        if not scenario.running:
            return scenario
        return attrs.evolve(scenario, prelude_policy=self.policy)


def _mutant(
    name: str,
    source: str,
    summary: str,
    expected: str,
    scenario: str,
    *,
    kind: str = "bug",
    **knobs: object,
) -> Mutant:
    _check_id(expected)(lambda: None)  # an unknown ID fails at import, naming the ID
    if scenario not in SCENARIOS:
        raise KeyError(f"mutant {name}: unknown scenario {scenario!r}")
    if kind not in ("bug", "robustness"):
        raise ValueError(f"mutant {name}: kind {kind!r} is not 'bug' or 'robustness'")
    policy = attrs.evolve(SPEC, **knobs)  # type: ignore[arg-type]
    return Mutant(name, source, summary, expected, scenario, policy, kind)


MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        _mutant(
            "provide-before-ready-error-dropped",
            "dominant-strategies/go-quai #1802",
            "provide runs at start-up before the table has a peer; the error is discarded",
            "BOOT-05",
            "join",
            queue_provide_until_ready=False,
            retry=Retry.DROP_ERROR,
        ),
        _mutant(
            "fixed-retry-gives-up",
            "dominant-strategies/go-quai PR #1798 (the fix)",
            "provide retries at a fixed interval a few times, then gives up for good",
            "PROV-06",
            "join",
            queue_provide_until_ready=False,
            retry=Retry.FIXED_THEN_GIVE_UP,
        ),
        _mutant(
            "identify-addresses-not-routed",
            "libp2p/rust-libp2p #5445",
            "identify listen addresses never reach the routing table, so the bootstrap node "
            "holds only the joiner's ephemeral address and never routes to it",
            "ADDR-06",
            "join",
            feed_identify_addresses=False,
        ),
        _mutant(
            "listener-address-dialable",
            "ipvm-wg/homestar PR #201 (the ephemeral port of an inbound connection was added "
            "to Kademlia as the peer's address)",
            "the remote address of an inbound connection is taken as dialable",
            "RT-04",
            "nat-server-joins",
            listener_address_dialable=True,
        ),
        _mutant(
            "admit-on-inbound-request",
            "libp2p/go-libp2p-kad-dht #162, #281; py-libp2p",
            "the sender of any kad request is admitted to the routing table",
            "RT-02",
            "client-joins",
            admit_on_inbound_request=True,
        ),
        _mutant(
            "admit-unknown-protocols",
            "py-libp2p routing_table.py (fail-open)",
            "a freshly connected peer is admitted before identify told its protocols",
            "RT-03",
            "client-joins",
            admit_unknown_protocols=True,
        ),
        _mutant(
            "lookup-check-deadlock",
            "libp2p/go-libp2p-kad-dht #808, PR #970",
            "every candidate must first return a closer peer, so a new network never forms",
            "BOOT-06",
            "join",
            probe_only_when_table_full=False,
        ),
        _mutant(
            "find-node-own-id-empty",
            "libp2p/rust-libp2p #5269, PR #5270",
            "FIND_NODE for the responder's own ID is answered with no peers",
            "FIND-02",
            "trio",
            answer_lookup_for_own_id=False,
        ),
        _mutant(
            "observed-address-promoted",
            "Zilliqa/zq2 PR #2464 review",
            "an identify observed address is confirmed without a dial-back",
            "ADDR-03",
            "nat-joins",
            confirm_needs_dial_back=False,
        ),
        _mutant(
            "mode-change-not-pushed",
            "js-libp2p without identifyPush; py-libp2p switch_mode",
            "a node changes mode without telling its connected peers",
            "ADDR-02",
            "mode-change",
            push_mode_changes=False,
        ),
        _mutant(
            "provide-success-without-acks",
            "go-libp2p-kad-dht classicProvide (code reading); js content-routing",
            "a provide whose every ADD_PROVIDER failed is reported as a success",
            "PROV-02",
            "join-lossy",
            fail_provide_without_acks=False,
        ),
        _mutant(
            "foreign-provider-accepted",
            "ipfs/specs src/routing/kad-dht.md (a provider record MUST name the sender); no "
            "maintained implementation stores foreign providers today: go, js and rust check "
            "the sender, and go PR #1065 only changed the reply to an invalid ADD_PROVIDER",
            "a provider record naming someone other than the sender is stored (the attack the "
            "sender check exists to stop)",
            "PROV-03",
            "trio-forgery",
            validate_provider_records=False,
        ),
        _mutant(
            "expired-records-served",
            "go providers_manager.go; rust-libp2p PR #5980",
            "records past their expiry are served until garbage collection runs",
            "PROV-04",
            "expiry",
            check_expiry_when_serving=False,
        ),
        _mutant(
            "no-republish",
            "py-libp2p commit 0618ef10",
            "provider records are never republished, so they vanish after 48 h",
            "PROV-05",
            "join",
            republish=False,
        ),
        _mutant(
            "no-per-request-deadline",
            "py-libp2p #1434; go-libp2p-kad-dht PR #1222",
            "requests have no deadline, so one lost message stalls a provide forever",
            "PROV-08",
            "join-lossy",
            per_request_deadline=False,
        ),
        _mutant(
            "client-mode-serves",
            "py-libp2p commit 36530dff",
            "a node in client mode still answers kad requests",
            "ADDR-01",
            "mode-change",
            client_refuses_requests=False,
        ),
        _mutant(
            "bootstrap-not-redialed",
            "libp2p/go-libp2p-kad-dht #294 (after a network fault the table stayed empty and "
            "the node never reconnected to its seed peers; the user had to dial them by hand "
            "until #387 / PR #384 made bootstrapping active)",
            "each bootstrap peer is dialed once per start: a refresh that finds the table empty "
            "does not dial them again",
            "BOOT-01",
            "join-crash",
            redial_bootstrap_when_empty=False,
        ),
        _mutant(
            "refresh-lookups-skipped",
            "kadspec's own reference core and model before issue 8's far-bucket refresh (a "
            "1,000-node simulation found 474 nodes with no contact in the far half of the key "
            "space twenty seconds in, and a key provided to the wrong 20 nodes); the libp2p and "
            "IPFS kad-dht specs, go, js and py-libp2p all look up an ID per bucket",
            "a bootstrap or refresh run looks up only the node's own ID: empty far buckets are "
            "never looked up",
            "BOOT-03",
            "crowd-unresponsive-find",
            refresh_far_buckets=False,
        ),
        _mutant(
            "refresh-not-rearmed",
            "kadspec robustness rule; libp2p/rust-libp2p PR #5349 fixed the opposite failure "
            "of the same code path (a bootstrap with no known peers re-fired in a busy loop "
            "instead of waiting for the periodic timer); no report of a lost timer is known",
            "a refresh that finds the table empty does not re-arm the refresh timer",
            "BOOT-03",
            "join",
            rearm_refresh_when_empty=False,
        ),
        _mutant(
            "empty-lookup-waits",
            "libp2p/js-libp2p PR #2169 (a query on an empty table waited for a first peer, "
            "forever, until the self-query timeout bounded it; the wait itself came from "
            "js-libp2p-kad-dht PR #457)",
            "a lookup with no peers waits, with no bound, instead of failing or ending",
            "BOOT-04",
            "join",
            empty_lookup_fails_fast=False,
        ),
        _mutant(
            "ready-without-self-lookup",
            "the default of go classic Provide, rust and py (work starts once the table is "
            "non-empty); libp2p/specs kad-dht 'Bootstrap process' says a node should look "
            "itself up first",
            "a node counts as Ready as soon as its table has a peer",
            "BOOT-02",
            "join",
            kind="robustness",
            ready_requires_self_lookup=False,
        ),
        _mutant(
            "failed-peers-kept",
            "the deliberate default of js-libp2p (maintainers declined removal, js-libp2p "
            "#3536) and rust-libp2p (kept as Disconnected, #1771); ipfs/specs kad-dht says "
            "unresponsive peers SHOULD NOT be served",
            "a peer whose dial failed stays in the routing table and is offered to others",
            "RT-06",
            "join-crash",
            kind="robustness",
            remove_failed_peers=False,
        ),
        _mutant(
            "provider-record-without-addresses",
            "rust-libp2p start_providing (code reading)",
            "ADD_PROVIDER carries only confirmed external addresses, none before AutoNAT",
            "ADDR-07",
            "join",
            provide_with_listen_addresses=False,
        ),
        _mutant(
            "nat-provide-waits-forever",
            "libp2p/go-libp2p-kad-dht PR #1180 (the sweeping provider defers providing while "
            "the node has no address, with no word to the caller); the first kadspec model",
            "a NAT-ed node in automatic mode, asked to provide, has no address it may announce "
            "and waits silently, forever",
            "BOOT-05",
            "nat-provides",
            report_waiting_provides=False,
        ),
        _mutant(
            "alpha-ignored",
            "js-libp2p kad-dht query/manager.ts and query-path.ts (20 disjoint paths, each "
            "with alpha requests in flight)",
            "a lookup sends every candidate a request at once, ignoring alpha",
            "FIND-03",
            "crowd",
            respect_alpha=False,
        ),
        _mutant(
            "bucket-overfilled",
            "kadence/kadence #52 (two flows evicting the same stale contact: the second "
            "newcomer was added anyway, 'Contact index cannot be greater than K')",
            "a full bucket admits a newcomer without evicting anyone",
            "RT-05",
            "crowd",
            bucket_size_enforced=False,
        ),
        _mutant(
            "farthest-peers-returned",
            "libp2p/cpp-libp2p PR #266 ('priority_queue order was reversed': replies and "
            "lookups took the farthest peers)",
            "a FIND_NODE reply holds the k table peers farthest from the target",
            "FIND-01",
            "five",
            reply_with_closest=False,
        ),
        _mutant(
            "closer-peers-admitted",
            "py-libp2p peer_routing.py (every peer a reply names is added to the table)",
            "peers named in a reply's closerPeers enter the routing table before they answered",
            "FIND-05",
            "trio",
            admit_closer_peers=True,
        ),
        _mutant(
            "client-peer-kept",
            "js-libp2p kad-dht topology listener (no onDisconnect: a peer that switches to "
            "client mode stays in the table; code reading in kad-lifecycle-facts)",
            "a peer whose identify push says it became a client stays in the routing table",
            "RT-01",
            "mode-change",
            remove_peers_turned_client=False,
        ),
        _mutant(
            "auto-mode-stays-client",
            "libp2p/go-libp2p-kad-dht #564, #569 (ModeAuto too strict: nodes stayed clients "
            "and private networks never formed a DHT)",
            "automatic mode never becomes server, even with a confirmed external address",
            "ADDR-04",
            "join",
            auto_mode_follows_confirmation=False,
        ),
        _mutant(
            "no-dial-back",
            "libp2p/go-libp2p-kad-dht #564 (no AutoNAT service reachable: reachability stayed "
            "Unknown and no address was ever confirmed)",
            "observed candidate addresses are never dialed back, so none is ever confirmed",
            "ADDR-05",
            "join",
            dial_back_candidates=False,
        ),
    )
}

#: Requirements no mutant shows necessary, each with the reason (issue 6: where no realistic
#: bug exists, say why).
NO_MUTANT: dict[str, str] = {
    "FIND-04": "A SHOULD about when a lookup may stop; go stops when the beta = 3 closest "
    "answered, js and rust when the k closest did, py when no closer peer appears. No "
    "implementation is known to keep querying after that, and a lookup that did would still "
    "end when its candidates run out: there is no real bug to reproduce.",
    "PROV-01": "go, rust, js and py all store the record locally, run GetClosestPeers and send "
    "ADD_PROVIDER to what it returned; the known deviations are in how many peers answer "
    "(go-libp2p-kad-dht PR #20: fewer than k), which PROV-01 allows. No bug sends to more than "
    "k peers or announces without storing locally.",
    "PROV-07": "Every implementation read serves its stored records for the key plus closer "
    "peers; the deviations (rust leaves out the requester's own record and caps at 20, go caps "
    "by message size) are allowed by PROV-07 as restated. Serving expired records is PROV-04's "
    "mutant.",
    "RT-07": "Its connection clause was dropped: go PR #520 decoupled table membership from "
    "connections, so the old go race (#358, PR #472: an identify processed after its connection "
    "closed inserted the peer) is no longer a bug, and an identify is evidence whenever it "
    "arrives. The failed-dial clause has no known bug (go, rust and js all drop or skip a peer "
    "whose dial just failed), and neither has 'never self': every implementation filters its "
    "own ID before inserting.",
    "TIME-01": "A constant, not a behaviour: check_timing_defaults() tests the defaults, and an "
    "implementation's k and alpha are read from its configuration by the conformance runner.",
    "TIME-02": "A constant, not a behaviour: check_timing_defaults() tests 48 h and 22 h, and "
    "Timing.problems() rejects a republish interval not shorter than the expiry.",
    "TIME-03": "Defaults, not conformance: check_timing_defaults() and Timing.problems() test "
    "whole milliseconds and the real order of the durations.",
}

#: Requirements whose every mutant some other requirement catches too, each with the reason: with
#: this requirement's checks switched off no mutant escapes, so no bug here shows the
#: requirement necessary on its own (issue 6: each requirement's necessity, or why not).
#: tests/models/test_mutants.py recomputes this from full explorations and fails when it is stale.
SHARED_CATCH: dict[str, str] = {
    "BOOT-06": "A network that never forms (lookup-check-deadlock) leaves every connected server "
    "unrouted, which is ADDR-06's violation too: BOOT-06 is the empty-table case of ADDR-06, "
    "kept apart because it names the deadlock (go PR #970) rather than the missing route.",
    "ADDR-02": "A mode change that is never pushed (mode-change-not-pushed) leaves the peers "
    "routing to a node that became a client, which RT-01 forbids; ADDR-02 names the cause, "
    "RT-01 the harm.",
    "ADDR-07": "An ADD_PROVIDER without addresses (provider-record-without-addresses) is refused "
    "by the holders, yet the provider reports it delivered, which PROV-02 also catches (the "
    "reported count exceeds the stores made).",
    "RT-01": "A peer that turned client and stays in the table (client-peer-kept) is an entry "
    "whose newest identify withdrew kad, which RT-02's evidence rule also forbids.",
    "PROV-06": "A provide that gives up for good (fixed-retry-gives-up) also starts before the "
    "first self-lookup answered, as go-quai's fix did, which BOOT-02 flags.",
    "FIND-05": "Admitting the closer peers of a reply (closer-peers-admitted) admits peers with no "
    "evidence, which RT-02 and RT-03 forbid: FIND-05 is their lookup-path case.",
}
