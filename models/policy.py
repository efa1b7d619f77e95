"""Policies: the knobs on which real implementations differ or went wrong.

The specification is one policy set, :data:`SPEC`. Each real bug is another policy set (a
mutant, see ``mutants.py``) that differs from SPEC in one knob. Every knob is read in exactly one
place of the model, next to the requirement it decides.
"""

from __future__ import annotations

import enum

import attrs


class Retry(enum.Enum):
    """How a provide that could not complete is retried."""

    CAPPED_EXPONENTIAL = "capped-exponential"  # PROV-06
    FIXED_THEN_GIVE_UP = "fixed-then-give-up"  # go-quai's fix: every tick, a few times, then stop
    DROP_ERROR = "drop-error"  # go-quai #1802: the error is discarded, nothing is retried


@attrs.frozen
class Policy:
    """One complete policy set. Field defaults are the specification's choices."""

    #: BOOT-05: a provide before Ready is queued; off = start at once and drop the error (go-quai)
    queue_provide_until_ready: bool = True
    #: BOOT-05: a provide that cannot start reports why (not-ready at the next refresh,
    #: no-address at once when Ready) and stays queued; off = it waits silently, maybe forever
    report_waiting_provides: bool = True
    #: PROV-06
    retry: Retry = Retry.CAPPED_EXPONENTIAL
    #: fixed-then-give-up: attempts before giving up
    give_up_after: int = 2
    #: BOOT-02: Ready needs a finished self-lookup; off = Ready as soon as the table has a peer
    ready_requires_self_lookup: bool = True
    #: BOOT-03: re-arm the refresh timer after a refresh found the table empty
    rearm_refresh_when_empty: bool = True
    #: BOOT-03: each bootstrap and refresh run looks up an ID in every bucket that is not full,
    #: up to the deepest non-empty one; off = the self-lookup only
    refresh_far_buckets: bool = True
    #: BOOT-04: a lookup with no candidate fails at once; off = it waits (js before PR #457's fix)
    empty_lookup_fails_fast: bool = True
    #: BOOT-06: probe a candidate (it must return a closer peer) only when the table holds k peers
    probe_only_when_table_full: bool = True
    #: ADDR-01: a client resets inbound kad requests
    client_refuses_requests: bool = True
    #: ADDR-02: push the new protocol list to connected peers on a mode change
    push_mode_changes: bool = True
    #: ADDR-03: an observed address needs a successful dial-back to be confirmed
    confirm_needs_dial_back: bool = True
    #: ADDR-06: identify listen addresses are handed to the routing table
    feed_identify_addresses: bool = True
    #: ADDR-07: ADD_PROVIDER carries listen addresses; off = only confirmed external ones (rust)
    provide_with_listen_addresses: bool = True
    #: RT-02: admit the sender of an inbound kad request
    admit_on_inbound_request: bool = False
    #: RT-03: admit a freshly connected peer before identify told its protocols
    admit_unknown_protocols: bool = False
    #: RT-04: treat the remote address of an inbound connection as dialable
    listener_address_dialable: bool = False
    #: RT-06: remove a peer from the table when a dial or request to it fails
    remove_failed_peers: bool = True
    #: BOOT-01: a refresh that finds the table empty dials the bootstrap peers again; off = each
    #: is dialed once per start (go-libp2p-kad-dht #294)
    redial_bootstrap_when_empty: bool = True
    #: RT-07: discard identify that arrives after its connection closed
    discard_identify_after_close: bool = True
    #: FIND-02: answer FIND_NODE for our own ID like any other target
    answer_lookup_for_own_id: bool = True
    #: FIND-03: keep at most alpha requests in flight per lookup
    respect_alpha: bool = True
    #: RT-05: a full bucket admits a newcomer only in place of an entry that failed; off = it
    #: admits it anyway and the bucket overflows (kadence/kadence #52)
    bucket_size_enforced: bool = True
    #: FIND-01: FIND_NODE and GET_PROVIDERS replies hold the k closest table peers; off = the k
    #: farthest (a reversed priority queue, libp2p/cpp-libp2p PR #266)
    reply_with_closest: bool = True
    #: FIND-05: peers named in a reply's closerPeers enter the routing table directly
    #: (py-libp2p peer_routing.py); the spec keeps them lookup candidates
    admit_closer_peers: bool = False
    #: RT-01: a peer whose identify push says it became a client leaves the table; off = it stays
    #: (js-libp2p topology listener without onDisconnect)
    remove_peers_turned_client: bool = True
    #: ADDR-04: automatic mode becomes server once an external address is confirmed; off = it
    #: stays client (go-libp2p-kad-dht #564, #569)
    auto_mode_follows_confirmation: bool = True
    #: ADDR-05: an observed candidate address is dialed back (AutoNAT); off = never probed
    dial_back_candidates: bool = True
    #: PROV-02: a provide with zero delivered ADD_PROVIDER is a failure
    fail_provide_without_acks: bool = True
    #: PROV-03: store a provider record only from the provider itself, with addresses
    validate_provider_records: bool = True
    #: PROV-04: check expiry when serving
    check_expiry_when_serving: bool = True
    #: PROV-05
    republish: bool = True
    #: PROV-08: a deadline per outstanding request
    per_request_deadline: bool = True


SPEC = Policy()
