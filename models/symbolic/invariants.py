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

from kadspec.models.config import ModeSetting
from kadspec.models.state import Addr, Conn, Outcome, Phase, Proto
from kadspec.models.symbolic.encoding import (
    Idx,
    Instance,
    Outputs,
    Shape,
    SymConfig,
    SymState,
    class_family,
    class_key,
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
)
from kadspec.models.symbolic.terms import (
    Term,
    all_,
    and_,
    any_,
    card,
    eq,
    implies,
    le,
    lt,
    ne,
    not_,
    or_,
)

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


def _boot02(st: SymState, cfg: SymConfig, n: int) -> Term:
    return implies(
        and_(st("up", n), not_(st("self_done", n))),
        and_(
            *(not_(st("active", n, q)) for q in range(1, st.shape.slots)),
            *(ne(st("phase", n, k), int(Phase.SENDING)) for k in range(st.shape.keys)),
        ),
    )


def _boot03(st: SymState, cfg: SymConfig, n: int) -> Term:
    return implies(st("up", n), st("refresh_armed", n))


def _boot04(st: SymState, cfg: SymConfig, n: int, q: int) -> Term:
    live = [
        or_(
            st("inflight", n, q, p),
            and_(st("seen", n, q, p), not_(st("lfailed", n, q, p)), not_(st("answered", n, q, p))),
        )
        for p in _others(st, n)
    ]
    return implies(st("active", n, q), any_(live))


def _boot05(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    return not_(
        and_(
            st("up", n),
            st("providing", n, k),
            eq(st("phase", n, k), int(Phase.IDLE)),
            eq(st("outcome", n, k), int(Outcome.NONE)),
        )
    )


def _addr01(st: SymState, cfg: SymConfig, a: int, b: int) -> Term:
    live = and_(st("up", a), ne(st("conn", a, b), int(Conn.NONE)), lt(0, identify_count(st, a, b)))
    return implies(live, eq(st("last_srv", a, b), st("mode", a)))


def _addr03(st: SymState, cfg: SymConfig, n: int) -> Term:
    return implies(st("confirmed", n), cfg.public[n])


def _addr04(st: SymState, cfg: SymConfig, n: int) -> Term:
    expected = initial_mode(st("setting", n), st("confirmed", n))
    return implies(st("up", n), eq(st("mode", n), expected))


def _addr07(st: SymState, cfg: SymConfig, a: int, b: int) -> Term:
    return all_(eq(_count(st, a, b, f"AP_PRIV{k}"), 0) for k in range(st.shape.keys))


def _rt05(st: SymState, cfg: SymConfig, n: int, p: int) -> Term:
    same_bucket = (
        and_(st("in_table", n, q), eq(cfg.bucket[n, q], cfg.bucket[n, p]))
        for q in range(st.shape.nodes)
    )
    return le(card(same_bucket), cfg.k)


def _prov01(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    peers = _others(st, n)
    sent = [st("pending", n, k, p) for p in peers] + [st("acked", n, k, p) for p in peers]
    return and_(
        implies(_phase_in(st, n, k, Phase.LOOKUP, Phase.SENDING), st("has", n, k, n)),
        le(card(sent), cfg.k),
    )


def _prov02(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    return implies(eq(st("outcome", n, k), int(Outcome.SUCCEEDED)), le(1, st("delivered", n, k)))


def _prov03(st: SymState, cfg: SymConfig, n: int, k: int, c: int) -> Term:
    return implies(st("has", n, k, c), st("providing", c, k))


def _prov05(st: SymState, cfg: SymConfig, n: int, k: int) -> Term:
    published = and_(
        st("up", n),
        st("providing", n, k),
        eq(st("outcome", n, k), int(Outcome.SUCCEEDED)),
        eq(st("phase", n, k), int(Phase.IDLE)),
        st("pub_set", n, k),
    )
    scheduled = and_(
        st("repub_set", n, k), le(st("repub_at", n, k), st("pub_at", n, k) + cfg.interval)
    )
    return implies(published, scheduled)


def _find03(st: SymState, cfg: SymConfig, n: int, q: int) -> Term:
    inflight = card(st("inflight", n, q, p) for p in _others(st, n))
    return implies(st("active", n, q), le(inflight, cfg.alpha))


def _find05(st: SymState, cfg: SymConfig, n: int, q: int, p: int) -> Term:
    return implies(st("inflight", n, q, p), st("seen", n, q, p))


def _rt07(st: SymState, cfg: SymConfig, n: int) -> Term:
    return not_(st("in_table", n, n))


REQUIREMENT_INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "operations_wait_for_self_lookup",
        ("BOOT-02",),
        "A running node whose first self-lookup has not finished runs no PROVIDE or "
        "FIND_PROVIDERS lookup and sends no ADD_PROVIDER.",
        forall(each_node, _boot02),
    ),
    Invariant(
        "refresh_stays_armed",
        ("BOOT-03",),
        "A running node always has its refresh timer armed.",
        forall(each_node, _boot03),
    ),
    Invariant(
        "lookups_have_work",
        ("BOOT-04",),
        "Every running lookup has a request in flight or a live, unanswered candidate.",
        forall(each_slot, _boot04),
    ),
    Invariant(
        "provides_never_dropped",
        ("BOOT-05",),
        "A running node providing a key is queued, running, or has reported an outcome.",
        forall(each_provide, _boot05),
    ),
    Invariant(
        "confirmed_addresses_are_reachable",
        ("ADDR-03",),
        "Only a publicly reachable node holds a confirmed external address.",
        forall(each_node, _addr03),
    ),
    Invariant(
        "mode_follows_setting",
        ("ADDR-04",),
        "A running node's mode is its setting's, or (automatic) server exactly when confirmed.",
        forall(each_node, _addr04),
    ),
    Invariant(
        "table_entries_advertise_server",
        ("RT-02",),
        "Every table entry was announced as a kad server by identify.",
        table_entries(lambda st, cfg, n, p: eq(st("proto", n, p), int(Proto.SERVER))),
    ),
    Invariant(
        "table_entries_have_known_protocols",
        ("RT-03",),
        "No table entry has unknown protocols.",
        table_entries(lambda st, cfg, n, p: ne(st("proto", n, p), int(Proto.UNKNOWN))),
    ),
    Invariant(
        "table_entries_are_dialable",
        ("RT-04",),
        "Every table entry has a dialable address.",
        table_entries(lambda st, cfg, n, p: eq(st("addr", n, p), int(Addr.DIALABLE))),
    ),
    Invariant(
        "buckets_hold_at_most_k",
        ("RT-05",),
        "No bucket holds more than k peers.",
        table_entries(_rt05),
    ),
    Invariant(
        "failed_peers_leave_the_table",
        ("RT-06",),
        "No table entry is marked failed.",
        table_entries(lambda st, cfg, n, p: not_(st("failed", n, p))),
    ),
    Invariant(
        "never_self", ("RT-07",), "No node holds itself in its table.", forall(each_node, _rt07)
    ),
    Invariant(
        "provider_stores_own_record",
        ("PROV-01",),
        "A provide that is looking up or sending has stored the node's own record, and at most "
        "k ADD_PROVIDER are pending or acknowledged.",
        forall(each_provide, _prov01),
    ),
    Invariant(
        "provide_success_is_real",
        ("PROV-02",),
        "A provide reported as succeeded was delivered to at least one peer.",
        forall(each_provide, _prov02),
    ),
    Invariant(
        "republish_scheduled",
        ("PROV-05",),
        "A published, succeeded provide has a republish scheduled within the interval.",
        forall(each_provide, _prov05),
    ),
    Invariant(
        "alpha_in_flight",
        ("FIND-03",),
        "No lookup has more than alpha requests in flight.",
        forall(each_slot, _find03),
    ),
    Invariant(
        "lookups_ask_known_peers",
        ("FIND-05",),
        "A lookup only has requests in flight to peers it has seen.",
        forall(each_slot_peer, _find05),
    ),
    Invariant(
        "advertised_protocols_match_mode",
        ("ADDR-01",),
        "On every live connection of a running node, the newest identify in flight advertises "
        "kad exactly when the node is a server.",
        forall(each_channel, _addr01),
    ),
    Invariant(
        "provider_records_carry_addresses",
        ("ADDR-07",),
        "No ADD_PROVIDER naming its sender travels without addresses.",
        forall(each_channel, _addr07),
    ),
    Invariant(
        "records_name_real_providers",
        ("PROV-03",),
        "Every stored record names a node that provides the key.",
        forall(each_record, _prov03),
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
    "setting": 2,
}


def _domains(st: SymState, cfg: SymConfig) -> Term:
    out: list[Term] = []
    for name, top in _ENUM_RANGES.items():
        out += [and_(le(0, t), le(t, top)) for t in st.terms[name].values()]
    for name in ("count", "delivered", "attempts", "faults"):
        out += [le(0, t) for t in st.terms[name].values()]
    return all_(out)


_BLANK_VIEW = {"conn": 0, "proto": 0, "addr": 0, "in_table": False, "failed": False}
_BLANK_PROVIDE = {
    "phase": 0,
    "outcome": 0,
    "reason": 0,
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


AUXILIARY_INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "value_domains",
        (),
        "Enumerations stay in range; counts, delivered and attempts are never negative.",
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
        "A lookup slot that runs nothing holds no peer sets.",
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
)


# --- step properties ------------------------------------------------------------------------


def _admitted_connected(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    return all_(
        implies(
            and_(not_(pre("in_table", n, p)), post("in_table", n, p)),
            ne(post("conn", n, p), int(Conn.NONE)),
        )
        for n, p in each_view(pre.shape)
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


def _closest_replies(pre: SymState, inst: Instance, out: Outputs, cfg: SymConfig) -> Term:
    d, requester = inst.peer, inst.node
    closer = out.reply_closer
    exact = all_(eq(closer[q], out.reply_expected[q]) for q in closer)
    return and_(
        not_(closer.get(d, False)),
        not_(closer.get(requester, False)),
        le(card(closer.values()), cfg.k),
        implies(any_(closer.values()), exact),
    )


def _own_id_answered(pre: SymState, inst: Instance, out: Outputs, cfg: SymConfig) -> Term:
    empty = not_(any_(out.reply_closer.values()))
    return implies(and_(out.reply_target_own, empty), not_(any_(out.reply_expected.values())))


RecordClaim = Callable[[Term, Term, Term], Term]


def providers_served(claim: RecordClaim) -> ReplyClaim:
    """A claim about each record the responder of a GET_PROVIDERS holds for the key asked:
    ``claim(live, expired, served)``, where live and expired judge the record against the clock
    before the step and served says the reply names its provider."""

    def reply(pre: SymState, inst: Instance, out: Outputs, cfg: SymConfig) -> Term:
        d, k, clock = inst.peer, class_key(inst.cls), pre("clock")
        claims = []
        for c in range(pre.shape.nodes):
            has, expires = pre("has", d, k, c), pre("expires", d, k, c)
            live, expired = and_(has, lt(clock, expires)), and_(has, le(expires, clock))
            claims.append(claim(live, expired, out.reply_providers[c]))
        return all_(claims)

    reply.__name__ = getattr(claim, "__name__", "providers")
    return reply


def _no_collision(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    return not_(out.collision)


STEP_PROPERTIES: tuple[StepProperty, ...] = (
    StepProperty(
        "admitted_peers_are_connected",
        ("RT-07",),
        "A peer admitted to a table in a step is connected after it.",
        _admitted_connected,
    ),
    StepProperty(
        "clients_do_not_answer",
        ("ADDR-01",),
        "A node in client mode sends no reply and accepts no ADD_PROVIDER.",
        _clients_silent,
    ),
    StepProperty(
        "find_node_replies_are_closest",
        ("FIND-01",),
        "A FIND_NODE reply holds neither side and at most k peers, and, when not empty, exactly "
        "the responder's k closest usable table peers.",
        on_reply_to("FN_", _closest_replies),
    ),
    StepProperty(
        "own_id_lookups_answered",
        ("FIND-02",),
        "A FIND_NODE for the responder's own ID is answered with peers when it has any.",
        on_reply_to("FN_", _own_id_answered),
    ),
    StepProperty(
        "expired_records_not_served",
        ("PROV-04",),
        "A GET_PROVIDERS reply names no provider whose record has expired.",
        on_reply_to(
            "GP", providers_served(lambda live, expired, served: implies(served, not_(expired)))
        ),
    ),
    StepProperty(
        "live_records_served",
        ("PROV-07",),
        "A GET_PROVIDERS reply names every provider with a live record.",
        on_reply_to("GP", providers_served(lambda live, expired, served: implies(live, served))),
    ),
    StepProperty(
        "no_lookup_collision",
        (),
        "No step starts a lookup in a slot that already runs one (so a node never runs two "
        "lookups of one purpose and key, the shape the encoding assumes).",
        _no_collision,
    ),
)


NOT_ENCODED: dict[str, str] = {
    "BOOT-01": "progress (checked at quiescence under fair delivery), not a safety property",
    "BOOT-06": "progress: a fresh network eventually forms",
    "ADDR-02": "progress: peers eventually see the current mode",
    "ADDR-05": "progress: public candidates eventually get confirmed",
    "ADDR-06": "progress: connected public servers eventually enter the table",
    "RT-01": "progress: checked at quiescence on connected clients",
    "PROV-06": "progress (retries eventually happen) plus the backoff cap, whose value the "
    "abstraction does not track",
    "PROV-08": "progress: every wait eventually ends; request deadlines are not tracked",
    "FIND-04": "progress: lookups terminate",
    "TIME-01": "configuration check, not a property of states",
    "TIME-02": "configuration check, not a property of states",
    "TIME-03": "configuration check, not a property of states",
}
"""Requirements the symbolic layer does not prove, with the reason."""


def all_invariants() -> tuple[Invariant, ...]:
    return REQUIREMENT_INVARIANTS + AUXILIARY_INVARIANTS


def conjunction(invs: tuple[Invariant, ...], st: SymState, cfg: SymConfig) -> Term:
    return all_(inv.formula(st, cfg) for inv in invs)


def encoded_requirements() -> frozenset[str]:
    ids = {r for inv in REQUIREMENT_INVARIANTS for r in inv.requirements}
    return frozenset(ids | {r for p in STEP_PROPERTIES for r in p.requirements})


__all__ = [
    "AUXILIARY_INVARIANTS",
    "NOT_ENCODED",
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
    "providers_served",
    "table_entries",
]
