"""Mutants: the real bugs, each written as a policy set that differs from the spec in one behaviour.

Every mutant names its source (an issue, a pull request or a code reading), the requirement it
is expected to violate, and the scenario in which the bug shows. ``kadspec mutants`` runs each
and passes only when every mutant is detected violating its expected requirement: that shows
each requirement has teeth, and that the model would catch the bug in a real node.
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

    @property
    def scenario_spec(self) -> Scenario:
        return SCENARIOS[self.scenario]


def _mutant(
    name: str, source: str, summary: str, expected: str, scenario: str, **knobs: object
) -> Mutant:
    _check_id(expected)(lambda: None)  # an unknown ID fails at import, naming the ID
    if scenario not in SCENARIOS:
        raise KeyError(f"mutant {name}: unknown scenario {scenario!r}")
    return Mutant(name, source, summary, expected, scenario, attrs.evolve(SPEC, **knobs))  # type: ignore[arg-type]


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
            "libp2p/rust-libp2p behaviour.rs (code reading)",
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
            "identify-after-disconnect",
            "libp2p/go-libp2p-kad-dht #358, PR #472",
            "identify processed after its connection closed inserts a peer that is gone",
            "RT-07",
            "join-disconnect",
            discard_identify_after_close=False,
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
            "libp2p/go-libp2p-kad-dht PR #1065",
            "a provider record naming someone other than the sender is stored",
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
            "refresh-not-rearmed",
            "libp2p/rust-libp2p PR #5349",
            "a refresh that finds the table empty does not re-arm the refresh timer",
            "BOOT-03",
            "join",
            rearm_refresh_when_empty=False,
        ),
        _mutant(
            "empty-lookup-waits",
            "js-libp2p-kad-dht PR #457, js-libp2p PR #2169",
            "a lookup with no peers waits instead of failing",
            "BOOT-04",
            "join",
            empty_lookup_fails_fast=False,
        ),
        _mutant(
            "ready-without-self-lookup",
            "libp2p/specs kad-dht 'Bootstrap process'",
            "a node counts as Ready as soon as its table has a peer",
            "BOOT-02",
            "join",
            ready_requires_self_lookup=False,
        ),
        _mutant(
            "failed-peers-kept",
            "js-libp2p kad-dht routing table (code reading)",
            "a peer whose request failed stays in the routing table",
            "RT-06",
            "join-crash",
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
    )
}
