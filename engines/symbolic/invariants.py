"""The safety requirements as formulas over the symbolic state, and the auxiliary invariants
that make their conjunction inductive.

Each requirement invariant is named after the check in ``checks.py`` it restates and carries that
check's requirement ID; each step property restates a step check over (pre-state, step outputs,
post-state). Auxiliary invariants carry no requirement ID: they are lemmas the induction needs,
each stated here with the reason it holds, and each proved like the others (initiation and
consecution for every transition). Requirements the symbolic layer does not encode are listed in
:data:`NOT_ENCODED` with the reason.

Every formula is a claim about one entry (a node, a channel, a provide, a lookup slot, ...) made
universal by :func:`forall` over the encoding's own index sets; step properties about replies are
built by :func:`on_reply_to`, those about served records by :func:`providers_served`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import attrs

from kadspec.engines.symbolic.encoding import (
    FIELD,
    GHOST_FIELDS,
    GHOST_KEPT,
    MAX_REFRESH_CPLS,
    Idx,
    Instance,
    Outputs,
    Shape,
    SymConfig,
    SymState,
    class_family,
    class_key,
    class_target,
    closest,
    each_channel,
    each_node,
    each_provide,
    each_record,
    each_send,
    each_slot,
    each_slot_peer,
    each_view,
    identify_count,
    initial_mode,
    lookup_finished,
    lookup_of,
    sent_in_step,
    slot_distances,
)
from kadspec.engines.symbolic.terms import (
    Term,
    add,
    all_,
    and_,
    any_,
    card,
    eq,
    implies,
    ite,
    le,
    lt,
    ne,
    not_,
    or_,
)
from kadspec.models.config import REPUBLISH_MARGIN, ModeSetting
from kadspec.models.state import Addr, Conn, Outcome, Phase, Proto

StateFormula = Callable[[SymState, SymConfig], Term]
StepFormula = Callable[[SymState, Instance, Outputs, SymState, SymConfig], Term]


@attrs.frozen
class Invariant:
    """A claim about every reachable state. ``requirements`` is empty for an auxiliary."""

    name: str
    requirements: tuple[str, ...]
    statement: str
    formula: StateFormula = attrs.field(repr=False)

    @property
    def auxiliary(self) -> bool:
        return not self.requirements


@attrs.frozen
class StepProperty:
    """A claim about every step from a reachable state (a step check, or an auxiliary)."""

    name: str
    requirements: tuple[str, ...]
    statement: str
    formula: StepFormula = attrs.field(repr=False)


_FAILED = int(Outcome.FAILED)

# --- builders -------------------------------------------------------------------------------

Claim = Callable[..., Term]
"""A claim about one entry: ``claim(st, cfg, *idx)`` for an index of an index set."""


def forall(over: Callable[[Shape], Iterable[Idx]], claim: Claim) -> StateFormula:
    """The state formula: ``claim`` holds at every index of ``over`` (one of the encoding's index
    sets, so a claim ranges over exactly the entries its fields have)."""

    def formula(st: SymState, cfg: SymConfig) -> Term:
        return all_(claim(st, cfg, *idx) for idx in over(st.shape))

    formula.__name__ = f"forall_{getattr(claim, '__name__', 'claim')}"
    return formula


def table_entries(claim: Claim) -> StateFormula:
    """Every table entry (n holds p) satisfies ``claim(st, cfg, n, p)``."""

    def entry(st: SymState, cfg: SymConfig, n: int, p: int) -> Term:
        return implies(st("in_table", n, p), claim(st, cfg, n, p))

    entry.__name__ = getattr(claim, "__name__", "entry")
    return forall(each_view, entry)


def conjunction_of(*formulas: StateFormula) -> StateFormula:
    """One state formula holding when all of ``formulas`` hold."""

    def formula(st: SymState, cfg: SymConfig) -> Term:
        return and_(*(f(st, cfg) for f in formulas))

    return formula


def _others(st: SymState, n: int) -> list[int]:
    return [p for p in range(st.shape.nodes) if p != n]


def _phase_in(st: SymState, n: int, k: int, *phases: Phase) -> Term:
    return or_(*(eq(st("phase", n, k), int(p)) for p in phases))


def _count(st: SymState, a: int, b: int, cls: str) -> Term:
    return st("count", a, b, st.shape.classes.index(cls))


# --- requirement invariants (claims per entry) ----------------------------------------------

# Each restates the node invariant of checks.py with the same name; those that judge history
# read the ghost's variables (g_*), as the checks read NodeState.ghost.


def _self_lookup_first(st: SymState, cfg: SymConfig, n: int) -> Term:
    return implies(
        and_(st("up", n), not_(st("g_self_answered", n))),
        and_(
            *(not_(st("active", n, q)) for q in range(1, st.shape.slots)),
            *(ne(st("phase", n, k), int(Phase.SENDING)) for k in range(st.shape.keys)),
        ),
    )


def _refresh_armed(st: SymState, cfg: SymConfig, n: int) -> Term:
    return implies(st("up", n), st("refresh_armed", n))


def _confirmation_evidence(st: SymState, cfg: SymConfig, n: int) -> Term:
    observers = card(st("g_observer", n, p) for p in _others(st, n))
    return implies(st("confirmed", n), or_(st("g_dialed_back", n), le(2, observers)))


def _positive_evidence(st: SymState, cfg: SymConfig, n: int, p: int) -> Term:
    if p == n:
        return True  # a node never hears from itself
    return implies(and_(st("in_table", n, p), st("g_heard", n, p)), st("g_server", n, p))


def _protocols_heard(st: SymState, cfg: SymConfig, n: int, p: int) -> Term:
    if p == n:
        return not_(st("in_table", n, n))  # a node never hears from itself
    return implies(st("in_table", n, p), st("g_heard", n, p))


def _dialable(st: SymState, cfg: SymConfig, n: int, p: int) -> Term:
    return eq(st("addr", n, p), int(Addr.DIALABLE))


def _bucket_size(st: SymState, cfg: SymConfig, n: int, p: int) -> Term:
    same_bucket = (
        and_(st("in_table", n, q), eq(cfg.bucket[n, q], cfg.bucket[n, p]))
        for q in range(st.shape.nodes)
    )
    return le(card(same_bucket), cfg.k)


def _not_self(st: SymState, cfg: SymConfig, n: int) -> Term:
    return not_(st("in_table", n, n))


def _own_record_first(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    peers = _others(st, n)
    sent = [st("pending", n, k, p) for p in peers] + [st("acked", n, k, p) for p in peers]
    return and_(
        implies(_phase_in(st, n, k, Phase.LOOKUP, Phase.SENDING), st("has", n, k, n)),
        le(card(sent), cfg.k),
    )


def _record_sender_published(st: SymState, cfg: SymConfig, n: int, k: int, c: int) -> Term:
    return implies(st("has", n, k, c), st("g_pub_set", n, k, c))


def _republish_before_lapse(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    published = and_(
        st("up", n),
        st("providing", n, k),
        eq(st("outcome", n, k), int(Outcome.SUCCEEDED)),
        eq(st("phase", n, k), int(Phase.IDLE)),
        st("pub_set", n, k),
    )
    # repub_at < pub_at + TTL - margin, the margin being the checks' (Timing has none: 0)
    early = lt(add(st("repub_at", n, k), REPUBLISH_MARGIN), add(st("pub_at", n, k), cfg.ttl))
    return implies(published, and_(st("repub_set", n, k), early))


def _alpha(st: SymState, cfg: SymConfig, n: int, q: int) -> Term:
    inflight = card(st("inflight", n, q, p) for p in _others(st, n))
    return implies(st("active", n, q), le(inflight, cfg.alpha))


def _lookup_goes_on(st: SymState, cfg: SymConfig, n: int, q: int) -> Term:
    lk = lookup_of(st, n, q)
    live = any_(and_(lk["seen"][p], not_(lk["lfailed"][p])) for p in lk["seen"])
    finished = lookup_finished(cfg, slot_distances(st, cfg, n, q), lk)
    return implies(and_(st("active", n, q), live), not_(finished))


def _asks_known(st: SymState, cfg: SymConfig, n: int, q: int, p: int) -> Term:
    return implies(st("inflight", n, q, p), st("seen", n, q, p))


REQUIREMENT_INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "operations_wait_for_self_lookup",
        ("BOOT-02",),
        "A running node to whose first self-lookup no reply has arrived (by the ghost's "
        "account) runs no PROVIDE or FIND_PROVIDERS lookup and sends no ADD_PROVIDER.",
        forall(each_node, _self_lookup_first),
    ),
    Invariant(
        "refresh_stays_armed",
        ("BOOT-03",),
        "A running node always has its refresh timer armed.",
        forall(each_node, _refresh_armed),
    ),
    Invariant(
        "one_observation_never_confirms",
        ("ADDR-03",),
        "A confirmed external address follows a successful dial-back or two distinct observers.",
        forall(each_node, _confirmation_evidence),
    ),
    Invariant(
        "entries_have_positive_evidence",
        ("RT-02",),
        "A table entry the node heard from (identify or a kad response) last said it is a kad "
        "server, or answered a kad request.",
        table_entries(_positive_evidence),
    ),
    Invariant(
        "unknown_protocols_are_no_evidence",
        ("RT-03",),
        "Every table entry sent the node an identify or a kad response since it started.",
        table_entries(_protocols_heard),
    ),
    Invariant(
        "table_entries_are_dialable",
        ("RT-04",),
        "Every table entry has a dialable address.",
        table_entries(_dialable),
    ),
    Invariant(
        "buckets_hold_at_most_k",
        ("RT-05",),
        "No bucket holds more than k peers.",
        table_entries(_bucket_size),
    ),
    Invariant(
        "never_self", ("RT-07",), "No node holds itself in its table.", forall(each_node, _not_self)
    ),
    Invariant(
        "provider_stores_own_record",
        ("PROV-01",),
        "A provide that is looking up or sending has stored the node's own record, and at most "
        "k ADD_PROVIDER are pending or acknowledged.",
        forall(each_provide, _own_record_first),
    ),
    Invariant(
        "records_name_their_sender",
        ("PROV-03",),
        "Every stored record was published by the provider it names (the ghost saw its "
        "ADD_PROVIDER, or the node's own provide).",
        forall(each_record, _record_sender_published),
    ),
    Invariant(
        "republish_timer_within_bound",
        ("PROV-05",),
        "A running provider that reported success has a republish armed before its records "
        "expire (publication + TTL - margin).",
        forall(each_provide, _republish_before_lapse),
    ),
    Invariant(
        "alpha_in_flight",
        ("FIND-03",),
        "No lookup has more than alpha requests in flight.",
        forall(each_slot, _alpha),
    ),
    Invariant(
        "lookups_stop",
        ("FIND-04",),
        "A running lookup with a live candidate has not finished: its k closest live peers "
        "have not all answered and something is left to ask or await.",
        forall(each_slot, _lookup_goes_on),
    ),
    Invariant(
        "lookups_ask_known_peers",
        ("FIND-05",),
        "A lookup only has requests in flight to peers it has seen.",
        forall(each_slot_peer, _asks_known),
    ),
)


# --- auxiliary invariants -------------------------------------------------------------------

_ENUM_RANGES = {
    "conn": 2,
    "proto": 2,
    "addr": 2,
    "phase": 3,
    "outcome": 2,
    "reason": 4,
    "f_outcome": 2,
    "f_reason": 4,
    "setting": 2,
}


def _domains(st: SymState, cfg: SymConfig) -> Term:
    out: list[Term] = []
    for name, top in _ENUM_RANGES.items():
        out += [and_(le(0, t), le(t, top)) for t in st.terms[name].values()]
    for name in ("count", "delivered", "attempts", "faults"):
        out += [le(0, t) for t in st.terms[name].values()]
    out += [and_(le(0, t), lt(t, st.shape.refresh)) for t in st.terms["ref_cpl"].values()]
    return all_(out)


_BLANK_VIEW = {"conn": 0, "proto": 0, "addr": 0, "in_table": False, "failed": False}
_BLANK_PROVIDE = {
    "phase": 0,
    "outcome": 0,
    "reason": 0,
    "f_outcome": 0,
    "f_reason": 0,
    "f_at": 0,
    "delivered": 0,
    "attempts": 0,
    "retry_armed": False,
    "repub_set": False,
    "pub_set": False,
}


def _down_blank(st: SymState, cfg: SymConfig, n: int) -> Term:
    shape = st.shape
    blank: list[Term] = [
        not_(st(f, n))
        for f in ("candidate", "confirmed", "dial_back_tried", "self_done", "refresh_armed")
    ]
    blank.append(eq(st("mode", n), eq(st("setting", n), int(ModeSetting.SERVER))))
    blank += [not_(st("boot_tried", n, p)) for p in _others(st, n)]
    for p in range(shape.nodes):
        blank += [eq(st(f, n, p), v) for f, v in _BLANK_VIEW.items()]
    blank += [not_(st("active", n, q)) for q in range(shape.slots)]
    for k in range(shape.keys):
        blank += [eq(st(f, n, k), v) for f, v in _BLANK_PROVIDE.items()]
        blank += [not_(st("pending", n, k, p)) for p in _others(st, n)]
        blank += [not_(st("acked", n, k, p)) for p in _others(st, n)]
    for f in GHOST_FIELDS:  # the observer forgets a crashed process, except its record store
        if f not in GHOST_KEPT:
            blank += [
                eq(t, 0 if FIELD[f].sort == "int" else False)
                for i, t in st.terms[f].items()
                if i[0] == n
            ]
    return implies(not_(st("up", n)), and_(*blank))


def _unstarted_down(st: SymState, cfg: SymConfig, n: int) -> Term:
    return implies(st("starts", n), not_(st("up", n)))


def _connections_symmetric(st: SymState, cfg: SymConfig, a: int, b: int) -> Term:
    ab, ba = st("conn", a, b), st("conn", b, a)
    return and_(
        eq(eq(ab, int(Conn.NONE)), eq(ba, int(Conn.NONE))),
        eq(eq(ab, int(Conn.OUTBOUND)), eq(ba, int(Conn.INBOUND))),
        implies(ne(ab, int(Conn.NONE)), and_(st("up", a), st("up", b))),
    )


def _no_self_connection(st: SymState, cfg: SymConfig, n: int) -> Term:
    return eq(st("conn", n, n), int(Conn.NONE))


def _silent_when_down(st: SymState, cfg: SymConfig, a: int, b: int) -> Term:
    empty = all_(eq(st("count", a, b, i), 0) for i in range(len(st.shape.classes)))
    return implies(not_(st("up", a)), empty)


def _lookup_sets_clear(st: SymState, cfg: SymConfig, n: int, q: int) -> Term:
    sets = [
        st(f, n, q, p) for f in ("seen", "inflight", "answered", "lfailed") for p in _others(st, n)
    ]
    if q == st.shape.refresh_slot:
        sets.append(ne(st("ref_cpl", n), 0))
    return implies(not_(st("active", n, q)), not_(any_(sets)))


def _provide_needs_providing(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    busy = or_(
        ne(st("phase", n, k), int(Phase.IDLE)), st("retry_armed", n, k), st("repub_set", n, k)
    )
    return implies(busy, st("providing", n, k))


def _provided_left_budget(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    return implies(st("providing", n, k), not_(st("prov_left", n, k)))


def _provide_lookup_iff_phase(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    return eq(st("active", n, st.shape.provide_slot(k)), eq(st("phase", n, k), int(Phase.LOOKUP)))


def _announcers_ready(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    busy = or_(
        _phase_in(st, n, k, Phase.LOOKUP, Phase.SENDING),
        st("retry_armed", n, k),
        st("repub_set", n, k),
    )
    ready = and_(st("self_done", n), or_(cfg.public[n], st("confirmed", n)))
    return and_(
        implies(busy, ready),
        implies(st("active", n, st.shape.find_slot(k)), st("self_done", n)),
    )


def _own_record_kept(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    return implies(st("providing", n, k), st("has", n, k, n))


def _announcements_from_providers(st: SymState, cfg: SymConfig, a: int, b: int) -> Term:
    return all_(
        implies(lt(0, _count(st, a, b, f"AP_PUB{k}")), st("providing", a, k))
        for k in range(st.shape.keys)
    )


def _pending_acked_disjoint(st: SymState, cfg: SymConfig, n: int, k: int, p: int) -> Term:
    return not_(and_(st("pending", n, k, p), st("acked", n, k, p)))


def _lookup_has_work(st: SymState, cfg: SymConfig, n: int, q: int) -> Term:
    live = [
        or_(
            st("inflight", n, q, p),
            and_(st("seen", n, q, p), not_(st("lfailed", n, q, p)), not_(st("answered", n, q, p))),
        )
        for p in _others(st, n)
    ]
    return implies(st("active", n, q), any_(live))


def _provide_not_dropped(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    return not_(
        and_(
            st("up", n),
            st("providing", n, k),
            eq(st("phase", n, k), int(Phase.IDLE)),
            eq(st("outcome", n, k), int(Outcome.NONE)),
        )
    )


def _confirmed_public(st: SymState, cfg: SymConfig, n: int) -> Term:
    return implies(st("confirmed", n), and_(cfg.public[n], st("g_dialed_back", n)))


def _mode_follows_setting(st: SymState, cfg: SymConfig, n: int) -> Term:
    expected = initial_mode(st("setting", n), st("confirmed", n))
    return implies(st("up", n), eq(st("mode", n), expected))


def _entry_is_server(st: SymState, cfg: SymConfig, n: int, p: int) -> Term:
    claims = [eq(st("proto", n, p), int(Proto.SERVER)), not_(st("failed", n, p))]
    if p != n:
        claims += [st("g_server", n, p), not_(st("g_unresponsive", n, p))]
    return and_(*claims)


def _server_view_is_evidence(st: SymState, cfg: SymConfig, n: int, p: int) -> Term:
    server = implies(
        eq(st("proto", n, p), int(Proto.SERVER)), and_(st("g_heard", n, p), st("g_server", n, p))
    )
    marked = implies(
        st("g_unresponsive", n, p), and_(st("failed", n, p), eq(st("conn", n, p), int(Conn.NONE)))
    )
    return implies(st("up", n), and_(server, marked))


def _success_counted(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    return implies(eq(st("outcome", n, k), int(Outcome.SUCCEEDED)), le(1, st("delivered", n, k)))


def _newest_identify_matches_mode(st: SymState, cfg: SymConfig, a: int, b: int) -> Term:
    live = and_(st("up", a), ne(st("conn", a, b), int(Conn.NONE)), lt(0, identify_count(st, a, b)))
    return implies(live, eq(st("last_srv", a, b), st("mode", a)))


def _no_addressless_announcement(st: SymState, cfg: SymConfig, a: int, b: int) -> Term:
    return all_(eq(_count(st, a, b, f"AP_PRIV{k}"), 0) for k in range(st.shape.keys))


def _record_provider_provides(st: SymState, cfg: SymConfig, n: int, k: int, c: int) -> Term:
    # A record is stored exactly when the ghost sees it published: the user's call or a
    # reported success for the own record, an ADD_PROVIDER a server accepts for another's.
    expiry = eq(st("expires", n, k, c), add(st("g_pub_at", n, k, c), cfg.ttl))
    return and_(
        implies(st("has", n, k, c), and_(st("providing", c, k), st("g_pub_set", n, k, c), expiry)),
        implies(st("g_pub_set", n, k, c), le(st("g_pub_at", n, k, c), st("clock"))),
    )


def _self_answers_seen(st: SymState, cfg: SymConfig, n: int) -> Term:
    answered = any_(st("answered", n, 0, p) for p in _others(st, n))
    return implies(or_(st("self_done", n), answered), st("g_self_answered", n))


def _failures_have_reasons(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    return and_(
        eq(eq(st("outcome", n, k), _FAILED), ne(st("reason", n, k), 0)),
        eq(eq(st("f_outcome", n, k), _FAILED), ne(st("f_reason", n, k), 0)),
    )


def _acked_holders_stored(st: SymState, cfg: SymConfig, n: int, k: int, p: int) -> Term:
    return implies(st("acked", n, k, p), st("g_stored", n, k, p))


AUXILIARY_INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "value_domains",
        (),
        "Enumerations stay in range; counts, delivered and attempts are never negative; a "
        "refresh cpl is one the shape has a class for.",
        _domains,
    ),
    Invariant(
        "down_nodes_are_blank",
        (),
        "A node that is down (never started, or crashed) has fresh peer views, no lookups, no "
        "timers, no address state and idle provides: start and crash build a fresh NodeState.",
        forall(each_node, _down_blank),
    ),
    Invariant(
        "unstarted_nodes_are_down",
        (),
        "A node the environment has yet to start is down (only start brings it up).",
        forall(each_node, _unstarted_down),
    ),
    Invariant(
        "connections_are_symmetric",
        (),
        "Both ends of a connection see it (one outbound, one inbound), and both run: connect, "
        "disconnect and crash update both views together.",
        conjunction_of(
            forall(each_channel, _connections_symmetric), forall(each_node, _no_self_connection)
        ),
    ),
    Invariant(
        "silent_when_down",
        (),
        "Nothing is in flight from a node that is down: a crash drops its channels and only "
        "running nodes send.",
        forall(each_channel, _silent_when_down),
    ),
    Invariant(
        "idle_lookup_slots_are_empty",
        (),
        "A lookup slot that runs nothing holds no peer sets (an idle REFRESH slot, cpl 0).",
        forall(each_slot, _lookup_sets_clear),
    ),
    Invariant(
        "provide_activity_needs_providing",
        (),
        "A provide that is queued, running, or has a retry or republish timer belongs to a "
        "key the node provides.",
        forall(each_provide, _provide_needs_providing),
    ),
    Invariant(
        "provided_keys_left_the_budget",
        (),
        "The user asks to provide a key at most once: a key being provided is no longer in the "
        "budget.",
        forall(each_provide, _provided_left_budget),
    ),
    Invariant(
        "provide_lookup_matches_phase",
        (),
        "A node runs the PROVIDE lookup of a key exactly when that provide is in phase LOOKUP.",
        forall(each_provide, _provide_lookup_iff_phase),
    ),
    Invariant(
        "announcers_are_ready",
        (),
        "A provide that is looking up, sending or has a retry or republish timer belongs to a "
        "node that finished its self-lookup and has an announceable address; a FIND_PROVIDERS "
        "lookup runs only after the self-lookup.",
        forall(each_provide, _announcers_ready),
    ),
    Invariant(
        "own_record_kept",
        (),
        "A node providing a key stores its own record for it (records are never deleted).",
        forall(each_provide, _own_record_kept),
    ),
    Invariant(
        "announcements_come_from_providers",
        (),
        "An ADD_PROVIDER naming its sender is in flight only for a key the sender provides.",
        forall(each_channel, _announcements_from_providers),
    ),
    Invariant(
        "pending_and_acked_are_disjoint",
        (),
        "No peer is both awaited and acknowledged for one provide.",
        forall(each_send, _pending_acked_disjoint),
    ),
    # Claims that were requirements before their checks were restated (BOOT-04, BOOT-05 and
    # ADDR-04 became progress properties; the others are judged from the ghost now): still
    # inductive, and lemmas for the restated ones.
    Invariant(
        "lookups_have_work",
        (),
        "Every running lookup has a request in flight or a live, unanswered candidate.",
        forall(each_slot, _lookup_has_work),
    ),
    Invariant(
        "provides_never_dropped",
        (),
        "A running node providing a key is queued, running, or has reported an outcome.",
        forall(each_provide, _provide_not_dropped),
    ),
    Invariant(
        "confirmed_only_by_dial_back",
        (),
        "A confirmed external address belongs to a publicly reachable node whose observed "
        "address a dial-back reached (the only way the spec confirms).",
        forall(each_node, _confirmed_public),
    ),
    Invariant(
        "mode_follows_setting",
        (),
        "A running node's mode is its setting's, or (automatic) server exactly when confirmed.",
        forall(each_node, _mode_follows_setting),
    ),
    Invariant(
        "entries_are_live_servers",
        (),
        "A table entry was identified as a kad server, is not marked failed, and by the "
        "ghost's account is a server that showed a sign of life since its last failed dial.",
        table_entries(_entry_is_server),
    ),
    Invariant(
        "server_views_are_evidence",
        (),
        "A peer a running node sees as a kad server was heard and is a server by the ghost's "
        "account; a peer whose last dial failed is marked failed and not connected (a "
        "connection either side opened since is a sign of life, so low-table recovery, which "
        "admits connected servers failed or not, never admits an unresponsive one).",
        forall(each_channel, _server_view_is_evidence),
    ),
    Invariant(
        "success_counts_deliveries",
        (),
        "A provide reported as succeeded counts at least one delivery.",
        forall(each_provide, _success_counted),
    ),
    Invariant(
        "newest_identify_matches_mode",
        (),
        "On every live connection of a running node, the newest identify in flight advertises "
        "kad exactly when the node is a server.",
        forall(each_channel, _newest_identify_matches_mode),
    ),
    Invariant(
        "no_addressless_announcements",
        (),
        "No ADD_PROVIDER naming its sender travels without addresses.",
        forall(each_channel, _no_addressless_announcement),
    ),
    Invariant(
        "records_are_published_by_providers",
        (),
        "A stored record names a node providing the key, whose publication the ghost saw no "
        "earlier than TTL before the record's expiry.",
        forall(each_record, _record_provider_provides),
    ),
    Invariant(
        "self_answers_are_seen",
        (),
        "A finished self-lookup, or one a peer answered, had a reply the ghost saw.",
        forall(each_node, _self_answers_seen),
    ),
    Invariant(
        "failures_carry_reasons",
        (),
        "A provide or find whose last outcome is a failure has a reason, and only those do.",
        forall(each_provide, _failures_have_reasons),
    ),
    Invariant(
        "acknowledged_holders_stored",
        (),
        "A holder whose ADD_PROVIDER was acknowledged in this round stored the record, by the "
        "ghost's account.",
        forall(each_send, _acked_holders_stored),
    ),
)


# --- step properties ------------------------------------------------------------------------


def _admitted(pre: SymState, post: SymState, n: int, p: int) -> Term:
    """n took p into its table in the step."""
    return and_(not_(pre("in_table", n, p)), post("in_table", n, p))


def _identify_matches_mode(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    # The newest identify a step sends on a channel is the channel's newest (FIFO).
    return all_(
        implies(
            sent_in_step(pre, inst, post, a, b, ("IDENTIFY", "PUSH")),
            eq(post("last_srv", a, b), post("mode", a)),
        )
        for a, b in each_channel(pre.shape)
    )


def _clients_silent(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    if inst.kind != "deliver":
        return True
    d = inst.peer  # the responder
    claims: list[Term] = [implies(out.reply_sent, pre("mode", d))]
    if class_family(inst.cls) == "add_provider":
        same = all_(
            and_(
                eq(post("has", d, k, c), pre("has", d, k, c)),
                eq(post("expires", d, k, c), pre("expires", d, k, c)),
            )
            for k in range(pre.shape.keys)
            for c in range(pre.shape.nodes)
        )
        claims.append(implies(not_(pre("mode", d)), same))
    return and_(*claims)


def _announcements_carry_addresses(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    private = [f"AP_PRIV{k}" for k in range(pre.shape.keys)]
    return all_(
        not_(sent_in_step(pre, inst, post, a, b, private)) for a, b in each_channel(pre.shape)
    )


def _requests_do_not_admit(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    if inst.kind != "deliver" or class_family(inst.cls) not in ("request", "add_provider"):
        return True
    return not_(_admitted(pre, post, inst.peer, inst.node))


def _evicts_only_unresponsive(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    """RT-05's twin of ``checks.eviction_only_of_failed_entries``, not its copy: an entry that
    left a bucket in the step its newcomer was admitted had failed a dial with no sign of life
    since, unless it is marked failed after the step (it left for RT-06, not to make room).

    The executable check is observable, so it cannot read the model's ``failed`` mark and
    exempts instead what the observer saw fail (the ghost's ``unresponsive`` before or after,
    and ``unanswered`` after); the encoding tracks no ``unanswered`` (a progress-only ghost
    field), so it exempts the model's mark. Both exempt every entry that left because a
    request or dial failed in the step; the twin is the stronger where an entry the observer
    saw fail left unmarked, which the model never does (``routing.mark_failed`` marks it).
    """
    claims: list[Term] = []
    for n, q in each_channel(pre.shape):
        for p in _others(pre, n):
            if p == q:
                continue
            evicted = and_(
                not_(post("failed", n, p)),  # one whose request failed in this step left for it
                pre("in_table", n, p),
                eq(cfg.bucket[n, p], cfg.bucket[n, q]),
                not_(post("in_table", n, p)),
            )
            claims.append(
                implies(and_(_admitted(pre, post, n, q), evicted), pre("g_unresponsive", n, p))
            )
    return all_(claims)


def _failed_peers_leave(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    kept = all_(
        not_(
            and_(
                post("g_unresponsive", n, p),
                not_(pre("g_unresponsive", n, p)),
                pre("in_table", n, p),
                post("in_table", n, p),
            )
        )
        for n, p in each_channel(pre.shape)
    )
    if not (inst.kind == "deliver" and class_family(inst.cls) == "request"):
        return kept
    d = inst.peer
    offered = all_(
        implies(t, not_(pre("g_unresponsive", d, q))) for q, t in out.reply_closer.items() if q != d
    )
    return and_(kept, implies(out.reply_sent, offered))


def _failed_not_admitted(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    return all_(
        implies(_admitted(pre, post, n, p), not_(post("g_unresponsive", n, p)))
        for n, p in each_channel(pre.shape)
    )


ReplyClaim = Callable[[SymState, Instance, Outputs, SymConfig], Term]


def on_reply_to(request: Literal["FN_", "GP"], claim: ReplyClaim) -> StepFormula:
    """A step property about the reply to a delivered request of a family (FIND_NODE: ``FN_``,
    GET_PROVIDERS: ``GP``): ``claim(pre, inst, out, cfg)`` whenever the step sends that reply;
    every other step satisfies it."""

    def formula(
        pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
    ) -> Term:
        if not (inst.kind == "deliver" and class_family(inst.cls) == "request"):
            return True
        if not inst.cls.startswith(request):
            return True
        return implies(out.reply_sent, claim(pre, inst, out, cfg))

    formula.__name__ = getattr(claim, "__name__", "reply")
    return formula


def _eligible(pre: SymState, d: int, requester: int) -> dict[int, Term]:
    """The responder's table peers a FIND_NODE reply is judged against: not the requester, and
    none whose last dial failed (by the ghost's account)."""
    return {
        q: and_(pre("in_table", d, q), not_(pre("g_unresponsive", d, q)))
        for q in _others(pre, d)
        if q != requester
    }


def _closest_replies(pre: SymState, inst: Instance, out: Outputs, cfg: SymConfig) -> Term:
    d, requester = inst.peer, inst.node
    target = class_target(inst.cls, requester)
    closer = out.reply_closer
    extra = {q: and_(c, cfg.same_target(("id", q), target)) for q, c in closer.items()}
    rest = {q: and_(c, not_(extra[q])) for q, c in closer.items()}
    expected = closest(cfg, target, _eligible(pre, d, requester))
    # The target itself, when the reply holds it, counts among the k closest.
    exact = all_(eq(rest[q], and_(expected.get(q, False), not_(extra[q]))) for q in rest)
    return and_(
        le(card(closer.values()), add(cfg.k, 1)),
        not_(rest.get(d, False)),
        not_(rest.get(requester, False)),
        implies(any_(rest.values()), exact),
    )


def _own_id_answered(pre: SymState, inst: Instance, out: Outputs, cfg: SymConfig) -> Term:
    d, requester = inst.peer, inst.node
    empty = not_(any_(out.reply_closer.values()))
    others = any_(_eligible(pre, d, requester).values())
    return not_(and_(out.reply_target_own, empty, others))


def _replies_do_not_admit_closer_peers(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    if not (inst.kind == "deliver" and class_family(inst.cls) == "reply"):
        return True
    src, dst = inst.node, inst.peer
    return all_(
        implies(named, not_(_admitted(pre, post, dst, p)))
        for p, named in out.delivered_closer.items()
        if p != src
    )


def _success_is_real(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    claims: list[Term] = []
    for n, k in each_provide(pre.shape):
        done = [
            (f, int(Outcome.SUCCEEDED) if f == "outcome" else int(Phase.IDLE))
            for f in ("outcome", "phase")
        ]
        now = and_(*(eq(post(f, n, k), v) for f, v in done))
        before = and_(*(eq(pre(f, n, k), v) for f, v in done))
        count = post("delivered", n, k)
        stored = card(post("g_stored", n, k, p) for p in _others(pre, n))
        claims.append(implies(and_(now, not_(before)), and_(le(1, count), le(count, stored))))
    return all_(claims)


def _expired_not_served(pre: SymState, inst: Instance, out: Outputs, cfg: SymConfig) -> Term:
    d, k, now = inst.peer, class_key(inst.cls), pre("clock")
    return all_(
        implies(
            and_(served, pre("g_pub_set", d, k, c)),
            lt(now, add(pre("g_pub_at", d, k, c), cfg.ttl)),
        )
        for c, served in out.reply_providers.items()
    )


def _live_served(pre: SymState, inst: Instance, out: Outputs, cfg: SymConfig) -> Term:
    d, k, now, requester = inst.peer, class_key(inst.cls), pre("clock"), inst.node
    live = {
        c: and_(
            pre("has", d, k, c),
            pre("g_pub_set", d, k, c),
            lt(now, add(pre("g_pub_at", d, k, c), cfg.ttl)),
        )
        for c in range(pre.shape.nodes)
        if c != requester
    }
    served = out.reply_providers
    return implies(
        lt(card(served.values()), cfg.k),
        all_(implies(t, served[c]) for c, t in live.items()),
    )


def _failures_name_a_reason(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    claims: list[Term] = []
    for n, k in each_provide(pre.shape):
        failed, was = eq(post("outcome", n, k), _FAILED), eq(pre("outcome", n, k), _FAILED)
        rests = or_(
            eq(post("phase", n, k), int(Phase.QUEUED)), eq(post("phase", n, k), int(Phase.IDLE))
        )
        ran = or_(
            eq(pre("phase", n, k), int(Phase.LOOKUP)), eq(pre("phase", n, k), int(Phase.SENDING))
        )
        provide_failed = and_(failed, rests, or_(not_(was), ran))
        claims.append(implies(provide_failed, ne(post("reason", n, k), 0)))
        reported = or_(
            *(ne(post(f, n, k), pre(f, n, k)) for f in ("f_outcome", "f_reason", "f_at"))
        )
        find_failed = and_(reported, eq(post("f_outcome", n, k), _FAILED))
        claims.append(implies(find_failed, ne(post("f_reason", n, k), 0)))
    return all_(claims)


def _owed_buckets(st: SymState, cfg: SymConfig, n: int, first: Term) -> list[Term]:
    """Per cpl: a bucket from ``first`` on that holds no table peer of n, below n's deepest
    non-empty bucket and no deeper than 15 (checks._unvisited_empty_buckets)."""
    table = {p: st("in_table", n, p) for p in _others(st, n)}
    return [
        and_(
            le(first, c),
            any_(and_(t, lt(c, cfg.bucket[n, p])) for p, t in table.items()),
            not_(any_(and_(t, eq(cfg.bucket[n, p], c)) for p, t in table.items())),
        )
        for c in range(min(st.shape.refresh, MAX_REFRESH_CPLS))
    ]


_REFRESH_CLAIMS: dict[tuple[int, int, int], tuple[SymState, SymState, dict[int, Term]]] = {}
"""Per (pre, post, cfg): the claim of each node. A group's instances share their pre- and
post-state, so the claims are built once, not once per instance."""


def _refresh_visits_empty_buckets(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    if inst.kind == "tick":
        # a tick may fail several requests of a node, each removal refilling the table, so a
        # run may end on an intermediate table (the check judges other steps only)
        return True
    key = (id(pre), id(post), id(cfg))
    cached = _REFRESH_CLAIMS.get(key)
    if cached is None or cached[0] is not pre or cached[1] is not post:
        _REFRESH_CLAIMS.clear()  # the ids of states no longer alive may come back
        cached = _REFRESH_CLAIMS[key] = (pre, post, _refresh_claims(pre, post, cfg))
    skip = inst.node if inst.kind in ("start", "restart") else -1
    return all_(claim for n, claim in cached[2].items() if n != skip)


def _refresh_claims(pre: SymState, post: SymState, cfg: SymConfig) -> dict[int, Term]:
    claims: dict[int, Term] = {}
    refresh, self_slot = pre.shape.refresh_slot, 0
    for n in range(pre.shape.nodes):
        if all(pre("active", n, q) is post("active", n, q) for q in (refresh, self_slot)):
            continue  # the step leaves both lookups as they were: none of them ends
        ran = pre("active", n, refresh)
        self_ended = and_(pre("active", n, self_slot), not_(post("active", n, self_slot)))
        ends = and_(
            pre("up", n),
            post("up", n),
            post("self_done", n),
            not_(post("active", n, refresh)),
            not_(post("active", n, self_slot)),  # a new run has begun: it starts over
            or_(ran, self_ended),
        )
        first = ite(ran, add(pre("ref_cpl", n), 1), 0)
        before, after = _owed_buckets(pre, cfg, n, first), _owed_buckets(post, cfg, n, first)
        owed = any_(and_(b, a) for b, a in zip(before, after, strict=True))
        claims[n] = not_(and_(ends, owed))
    return claims


def _no_collision(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    return not_(out.collision)


STEP_PROPERTIES: tuple[StepProperty, ...] = (
    StepProperty(
        "identify_matches_mode",
        ("ADDR-01",),
        "An identify sent in a step advertises kad exactly when its sender is a server.",
        _identify_matches_mode,
    ),
    StepProperty(
        "clients_do_not_answer",
        ("ADDR-01",),
        "A node in client mode sends no reply and accepts no ADD_PROVIDER.",
        _clients_silent,
    ),
    StepProperty(
        "provider_records_carry_addresses",
        ("ADDR-07",),
        "No step sends an ADD_PROVIDER naming its sender without addresses.",
        _announcements_carry_addresses,
    ),
    StepProperty(
        "requests_do_not_admit",
        ("RT-02",),
        "Delivering a kad request never makes its sender a table entry of the receiver.",
        _requests_do_not_admit,
    ),
    StepProperty(
        "eviction_only_of_failed_entries",
        ("RT-05",),
        "A node that admits a peer drops from that bucket only entries whose last dial failed.",
        _evicts_only_unresponsive,
    ),
    StepProperty(
        "failed_peers_leave_and_are_not_served",
        ("RT-06",),
        "A table entry whose dial fails in a step leaves the table, and no reply offers a peer "
        "whose last dial failed.",
        _failed_peers_leave,
    ),
    StepProperty(
        "failed_peers_not_admitted",
        ("RT-07",),
        "No step admits a peer whose last dial failed with no sign of life since.",
        _failed_not_admitted,
    ),
    StepProperty(
        "find_node_replies_are_closest",
        ("FIND-01",),
        "A FIND_NODE reply holds at most k + 1 peers: the target itself may be added; the "
        "others are exactly the responder's k closest table peers (the requester and peers "
        "whose dial failed left out, the target counted among them) and include neither end.",
        on_reply_to("FN_", _closest_replies),
    ),
    StepProperty(
        "own_id_lookups_answered",
        ("FIND-02",),
        "A FIND_NODE for the responder's own ID is answered with peers when its table holds "
        "other live peers.",
        on_reply_to("FN_", _own_id_answered),
    ),
    StepProperty(
        "replies_do_not_admit_closer_peers",
        ("FIND-05",),
        "A delivered reply admits none of the closer peers it names (at most its responder).",
        _replies_do_not_admit_closer_peers,
    ),
    StepProperty(
        "provide_success_is_real",
        ("PROV-02",),
        "A success is reported with a count of at least one and at most the holders the ghost "
        "saw store the record in this round.",
        _success_is_real,
    ),
    StepProperty(
        "expired_records_not_served",
        ("PROV-04",),
        "A GET_PROVIDERS reply names no provider whose last publication (the ghost's) is a TTL "
        "or more ago.",
        on_reply_to("GP", _expired_not_served),
    ),
    StepProperty(
        "live_records_served",
        ("PROV-07",),
        "A GET_PROVIDERS reply with fewer than k providers names every provider, other than "
        "the requester, whose stored record the ghost says is live.",
        on_reply_to("GP", _live_served),
    ),
    StepProperty(
        "refresh_looks_up_empty_buckets",
        ("BOOT-03",),
        "A step other than a tick that ends a node's self-lookup (once one was answered) or "
        "the lookup of one bucket, and starts no next bucket's nor a new run, leaves no bucket "
        "further on empty before and after it below the deepest non-empty one (nor deeper "
        "than 15).",
        _refresh_visits_empty_buckets,
    ),
    StepProperty(
        "failures_name_a_reason",
        ("BOOT-05",),
        "A provide or find failure the node reports in a step names its reason.",
        _failures_name_a_reason,
    ),
    StepProperty(
        "no_lookup_collision",
        (),
        "No step starts a lookup in a slot that already runs one (so a node never runs two "
        "lookups of one purpose and key, the shape the encoding assumes).",
        _no_collision,
    ),
)


_TIMED = (
    "a timed bounded-response property (an outcome before a deadline on the clock): it holds "
    "because a waiting call is answered by the next refresh and a running one by the end of "
    "its lookup and ADD_PROVIDER round (each request has its own deadline, each peer is asked "
    "once), a ranking argument over rounds that an invariant of single steps does not state; "
    "the explorer judges it on every reachable state"
)

NOT_ENCODED: dict[str, str] = {
    "BOOT-01": "progress (checked at quiescence under fair delivery), not a safety property",
    "BOOT-04": "progress: every lookup ends within a bound (lookups_have_work, a lemma here, "
    "is its safety half)",
    "BOOT-06": "progress: a fresh network eventually forms",
    "ADDR-02": "progress: peers eventually see the current mode",
    "ADDR-04": "progress: auto mode eventually follows reachability (mode_follows_setting, a "
    "lemma here, is the model's stronger safety claim)",
    "ADDR-05": "progress: public candidates eventually get confirmed",
    "ADDR-06": "progress: connected public servers eventually enter the table",
    "RT-01": "progress: checked at quiescence on connected clients",
    "PROV-06": "progress (retries eventually happen) plus the backoff cap, whose value the "
    "abstraction does not track",
    "PROV-08": "progress: every wait eventually ends",
    "TIME-01": "configuration check, not a property of states",
    "TIME-02": "configuration check, not a property of states",
    "TIME-03": "configuration check, not a property of states",
}
"""Requirements the symbolic layer does not prove, with the reason."""

CHECKS_NOT_ENCODED: dict[str, str] = {
    "provides_answered_in_time": f"BOOT-05 within Timing.outcome_bound: {_TIMED}",
}
"""Invariants and step checks of ``checks.py`` without a symbolic twin, with the reason."""


def all_invariants() -> tuple[Invariant, ...]:
    return REQUIREMENT_INVARIANTS + AUXILIARY_INVARIANTS


def conjunction(invs: tuple[Invariant, ...], st: SymState, cfg: SymConfig) -> Term:
    return all_(inv.formula(st, cfg) for inv in invs)


def encoded_requirements() -> frozenset[str]:
    ids = {r for inv in REQUIREMENT_INVARIANTS for r in inv.requirements}
    return frozenset(ids | {r for p in STEP_PROPERTIES for r in p.requirements})


__all__ = [
    "AUXILIARY_INVARIANTS",
    "CHECKS_NOT_ENCODED",
    "NOT_ENCODED",
    "REPUBLISH_MARGIN",
    "REQUIREMENT_INVARIANTS",
    "STEP_PROPERTIES",
    "Invariant",
    "StepProperty",
    "all_invariants",
    "conjunction",
    "conjunction_of",
    "encoded_requirements",
    "forall",
    "on_reply_to",
    "table_entries",
]
