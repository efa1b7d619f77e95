"""The safety requirements as formulas over the symbolic state, and the auxiliary invariants
that make their conjunction inductive.

Each requirement invariant is named after the check in ``checks.py`` it restates and carries that
check's requirement ID; each step property restates a step check over (pre-state, step outputs,
post-state). Auxiliary invariants carry no requirement ID: they are lemmas the induction needs,
each stated here with the reason it holds, and each proved like the others (initiation and
consecution for every transition). Requirements the symbolic layer does not encode are listed in
:data:`NOT_ENCODED` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from kadspec.models.config import ModeSetting
from kadspec.models.state import Addr, Conn, Outcome, Phase, Proto
from kadspec.models.symbolic.encoding import (
    Instance,
    Outputs,
    Shape,
    SymConfig,
    SymState,
    class_family,
    class_key,
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


# --- helpers --------------------------------------------------------------------------------


def _nodes(st: SymState) -> range:
    return range(st.shape.nodes)


def _others(st: SymState, n: int) -> list[int]:
    return [p for p in _nodes(st) if p != n]


def _keys(st: SymState) -> range:
    return range(st.shape.keys)


def _slots(st: SymState) -> range:
    return range(st.shape.slots)


def _initial_mode(setting: Term, confirmed: Term) -> Term:
    return or_(
        and_(eq(setting, int(ModeSetting.AUTO)), confirmed), eq(setting, int(ModeSetting.SERVER))
    )


def _cls(shape: Shape, name: str) -> int:
    return shape.classes.index(name)


def _phase_in(st: SymState, n: int, k: int, *phases: Phase) -> Term:
    return or_(*(eq(st("phase", n, k), int(p)) for p in phases))


# --- requirement invariants -----------------------------------------------------------------


def _boot02(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(
            and_(st("up", n), not_(st("self_done", n))),
            and_(
                *(not_(st("active", n, q)) for q in _slots(st) if q != 0),
                *(ne(st("phase", n, k), int(Phase.SENDING)) for k in _keys(st)),
            ),
        )
        for n in _nodes(st)
    )


def _boot03(st: SymState, cfg: SymConfig) -> Term:
    return all_(implies(st("up", n), st("refresh_armed", n)) for n in _nodes(st))


def _boot04(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(
            st("active", n, q),
            or_(
                *(st("inflight", n, q, p) for p in _others(st, n)),
                *(
                    and_(
                        st("seen", n, q, p),
                        not_(st("lfailed", n, q, p)),
                        not_(st("answered", n, q, p)),
                    )
                    for p in _others(st, n)
                ),
            ),
        )
        for n in _nodes(st)
        for q in _slots(st)
    )


def _boot05(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        not_(
            and_(
                st("up", n),
                st("providing", n, k),
                eq(st("phase", n, k), int(Phase.IDLE)),
                eq(st("outcome", n, k), int(Outcome.NONE)),
            )
        )
        for n in _nodes(st)
        for k in _keys(st)
    )


def _addr03(st: SymState, cfg: SymConfig) -> Term:
    return all_(implies(st("confirmed", n), cfg.public[n]) for n in _nodes(st))


def _addr04(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(st("up", n), eq(st("mode", n), _initial_mode(st("setting", n), st("confirmed", n))))
        for n in _nodes(st)
    )


def _table(pred: Callable[[SymState, int, int], Term]) -> StateFormula:
    def formula(st: SymState, cfg: SymConfig) -> Term:
        return all_(
            implies(st("in_table", n, p), pred(st, n, p)) for n in _nodes(st) for p in _nodes(st)
        )

    return formula


def _rt05(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(
            st("in_table", n, p),
            le(
                card(
                    and_(st("in_table", n, q), eq(cfg.bucket[n, q], cfg.bucket[n, p]))
                    for q in _nodes(st)
                ),
                cfg.k,
            ),
        )
        for n in _nodes(st)
        for p in _nodes(st)
    )


def _rt07(st: SymState, cfg: SymConfig) -> Term:
    return all_(not_(st("in_table", n, n)) for n in _nodes(st))


def _prov01(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        and_(
            implies(
                _phase_in(st, n, k, Phase.LOOKUP, Phase.SENDING),
                st("has", n, k, n),
            ),
            le(
                card(
                    [st("pending", n, k, p) for p in _others(st, n)]
                    + [st("acked", n, k, p) for p in _others(st, n)]
                ),
                cfg.k,
            ),
        )
        for n in _nodes(st)
        for k in _keys(st)
    )


def _prov02(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(eq(st("outcome", n, k), int(Outcome.SUCCEEDED)), le(1, st("delivered", n, k)))
        for n in _nodes(st)
        for k in _keys(st)
    )


def _prov05(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(
            and_(
                st("up", n),
                st("providing", n, k),
                eq(st("outcome", n, k), int(Outcome.SUCCEEDED)),
                eq(st("phase", n, k), int(Phase.IDLE)),
                st("pub_set", n, k),
            ),
            and_(
                st("repub_set", n, k),
                le(st("repub_at", n, k), st("pub_at", n, k) + cfg.interval),
            ),
        )
        for n in _nodes(st)
        for k in _keys(st)
    )


def _find03(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(
            st("active", n, q), le(card(st("inflight", n, q, p) for p in _others(st, n)), cfg.alpha)
        )
        for n in _nodes(st)
        for q in _slots(st)
    )


def _find05(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(st("inflight", n, q, p), st("seen", n, q, p))
        for n in _nodes(st)
        for q in _slots(st)
        for p in _others(st, n)
    )


def _identify_count(st: SymState, a: int, b: int) -> Term:
    shape = st.shape
    return st("count", a, b, _cls(shape, "IDENTIFY")) + st("count", a, b, _cls(shape, "PUSH"))


def _addr01(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(
            and_(
                st("up", a), ne(st("conn", a, b), int(Conn.NONE)), lt(0, _identify_count(st, a, b))
            ),
            eq(st("last_srv", a, b), st("mode", a)),
        )
        for a, b in st.shape.pairs()
    )


def _addr07(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        eq(st("count", a, b, _cls(st.shape, f"AP_PRIV{k}")), 0)
        for a, b in st.shape.pairs()
        for k in _keys(st)
    )


def _prov03(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(st("has", n, k, c), st("providing", c, k))
        for n in _nodes(st)
        for k in _keys(st)
        for c in _nodes(st)
    )


REQUIREMENT_INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "operations_wait_for_self_lookup",
        ("BOOT-02",),
        "A running node whose first self-lookup has not finished runs no PROVIDE or "
        "FIND_PROVIDERS lookup and sends no ADD_PROVIDER.",
        _boot02,
    ),
    Invariant(
        "refresh_stays_armed",
        ("BOOT-03",),
        "A running node always has its refresh timer armed.",
        _boot03,
    ),
    Invariant(
        "lookups_have_work",
        ("BOOT-04",),
        "Every running lookup has a request in flight or a live, unanswered candidate.",
        _boot04,
    ),
    Invariant(
        "provides_never_dropped",
        ("BOOT-05",),
        "A running node providing a key is queued, running, or has reported an outcome.",
        _boot05,
    ),
    Invariant(
        "confirmed_addresses_are_reachable",
        ("ADDR-03",),
        "Only a publicly reachable node holds a confirmed external address.",
        _addr03,
    ),
    Invariant(
        "mode_follows_setting",
        ("ADDR-04",),
        "A running node's mode is its setting's, or (automatic) server exactly when confirmed.",
        _addr04,
    ),
    Invariant(
        "table_entries_advertise_server",
        ("RT-02",),
        "Every table entry was announced as a kad server by identify.",
        _table(lambda st, n, p: eq(st("proto", n, p), int(Proto.SERVER))),
    ),
    Invariant(
        "table_entries_have_known_protocols",
        ("RT-03",),
        "No table entry has unknown protocols.",
        _table(lambda st, n, p: ne(st("proto", n, p), int(Proto.UNKNOWN))),
    ),
    Invariant(
        "table_entries_are_dialable",
        ("RT-04",),
        "Every table entry has a dialable address.",
        _table(lambda st, n, p: eq(st("addr", n, p), int(Addr.DIALABLE))),
    ),
    Invariant(
        "buckets_hold_at_most_k",
        ("RT-05",),
        "No bucket holds more than k peers.",
        _rt05,
    ),
    Invariant(
        "failed_peers_leave_the_table",
        ("RT-06",),
        "No table entry is marked failed.",
        _table(lambda st, n, p: not_(st("failed", n, p))),
    ),
    Invariant("never_self", ("RT-07",), "No node holds itself in its table.", _rt07),
    Invariant(
        "provider_stores_own_record",
        ("PROV-01",),
        "A provide that is looking up or sending has stored the node's own record, and at most "
        "k ADD_PROVIDER are pending or acknowledged.",
        _prov01,
    ),
    Invariant(
        "provide_success_is_real",
        ("PROV-02",),
        "A provide reported as succeeded was delivered to at least one peer.",
        _prov02,
    ),
    Invariant(
        "republish_scheduled",
        ("PROV-05",),
        "A published, succeeded provide has a republish scheduled within the interval.",
        _prov05,
    ),
    Invariant(
        "alpha_in_flight",
        ("FIND-03",),
        "No lookup has more than alpha requests in flight.",
        _find03,
    ),
    Invariant(
        "lookups_ask_known_peers",
        ("FIND-05",),
        "A lookup only has requests in flight to peers it has seen.",
        _find05,
    ),
    Invariant(
        "advertised_protocols_match_mode",
        ("ADDR-01",),
        "On every live connection of a running node, the newest identify in flight advertises "
        "kad exactly when the node is a server.",
        _addr01,
    ),
    Invariant(
        "provider_records_carry_addresses",
        ("ADDR-07",),
        "No ADD_PROVIDER naming its sender travels without addresses.",
        _addr07,
    ),
    Invariant(
        "records_name_real_providers",
        ("PROV-03",),
        "Every stored record names a node that provides the key.",
        _prov03,
    ),
)


# --- auxiliary invariants -------------------------------------------------------------------

_ENUM_RANGES = {
    "conn": 2,
    "proto": 2,
    "addr": 2,
    "phase": 3,
    "outcome": 2,
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
    "delivered": 0,
    "attempts": 0,
    "retry_armed": False,
    "repub_set": False,
    "pub_set": False,
}


def _down_blank(st: SymState, cfg: SymConfig) -> Term:
    out: list[Term] = []
    for n in _nodes(st):
        blank: list[Term] = [
            not_(st(f, n))
            for f in ("candidate", "confirmed", "dial_back_tried", "self_done", "refresh_armed")
        ]
        blank.append(eq(st("mode", n), eq(st("setting", n), int(ModeSetting.SERVER))))
        blank += [not_(st("boot_tried", n, p)) for p in _others(st, n)]
        for p in _nodes(st):
            blank += [eq(st(f, n, p), v) for f, v in _BLANK_VIEW.items()]
        blank += [not_(st("active", n, q)) for q in _slots(st)]
        for k in _keys(st):
            blank += [eq(st(f, n, k), v) for f, v in _BLANK_PROVIDE.items()]
            blank += [not_(st("pending", n, k, p)) for p in _others(st, n)]
            blank += [not_(st("acked", n, k, p)) for p in _others(st, n)]
        out.append(implies(not_(st("up", n)), and_(*blank)))
    return all_(out)


def _unstarted_down(st: SymState, cfg: SymConfig) -> Term:
    return all_(implies(st("starts", n), not_(st("up", n))) for n in _nodes(st))


def _connections_symmetric(st: SymState, cfg: SymConfig) -> Term:
    out: list[Term] = []
    for a, b in st.shape.pairs():
        ab, ba = st("conn", a, b), st("conn", b, a)
        out += [
            eq(eq(ab, int(Conn.NONE)), eq(ba, int(Conn.NONE))),
            eq(eq(ab, int(Conn.OUTBOUND)), eq(ba, int(Conn.INBOUND))),
            implies(ne(ab, int(Conn.NONE)), and_(st("up", a), st("up", b))),
        ]
    out += [eq(st("conn", n, n), int(Conn.NONE)) for n in _nodes(st)]
    return all_(out)


def _silent_when_down(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(
            not_(st("up", a)),
            all_(eq(st("count", a, b, i), 0) for i in range(len(st.shape.classes))),
        )
        for a, b in st.shape.pairs()
    )


def _lookup_sets_clear(st: SymState, cfg: SymConfig) -> Term:
    out: list[Term] = []
    for n in _nodes(st):
        for q in _slots(st):
            sets = [
                st(f, n, q, p)
                for f in ("seen", "inflight", "answered", "lfailed")
                for p in _others(st, n)
            ]
            out.append(implies(not_(st("active", n, q)), not_(any_(sets))))
    return all_(out)


def _provide_needs_providing(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(
            or_(
                ne(st("phase", n, k), int(Phase.IDLE)),
                st("retry_armed", n, k),
                st("repub_set", n, k),
            ),
            st("providing", n, k),
        )
        for n in _nodes(st)
        for k in _keys(st)
    )


def _provided_left_budget(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(st("providing", n, k), not_(st("prov_left", n, k)))
        for n in _nodes(st)
        for k in _keys(st)
    )


def _provide_lookup_iff_phase(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        eq(st("active", n, st.shape.provide_slot(k)), eq(st("phase", n, k), int(Phase.LOOKUP)))
        for n in _nodes(st)
        for k in _keys(st)
    )


def _announcers_ready(st: SymState, cfg: SymConfig) -> Term:
    out: list[Term] = []
    for n in _nodes(st):
        for k in _keys(st):
            busy = or_(
                _phase_in(st, n, k, Phase.LOOKUP, Phase.SENDING),
                st("retry_armed", n, k),
                st("repub_set", n, k),
            )
            out.append(
                implies(
                    busy,
                    and_(st("self_done", n), or_(cfg.public[n], st("confirmed", n))),
                )
            )
            out.append(implies(st("active", n, st.shape.find_slot(k)), st("self_done", n)))
    return all_(out)


def _own_record_kept(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(st("providing", n, k), st("has", n, k, n)) for n in _nodes(st) for k in _keys(st)
    )


def _announcements_from_providers(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        implies(lt(0, st("count", a, b, _cls(st.shape, f"AP_PUB{k}"))), st("providing", a, k))
        for a, b in st.shape.pairs()
        for k in _keys(st)
    )


def _pending_acked_disjoint(st: SymState, cfg: SymConfig) -> Term:
    return all_(
        not_(and_(st("pending", n, k, p), st("acked", n, k, p)))
        for n in _nodes(st)
        for k in _keys(st)
        for p in _others(st, n)
    )


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
        _down_blank,
    ),
    Invariant(
        "unstarted_nodes_are_down",
        (),
        "A node the environment has yet to start is down (only start brings it up).",
        _unstarted_down,
    ),
    Invariant(
        "connections_are_symmetric",
        (),
        "Both ends of a connection see it (one outbound, one inbound), and both run: connect, "
        "disconnect and crash update both views together.",
        _connections_symmetric,
    ),
    Invariant(
        "silent_when_down",
        (),
        "Nothing is in flight from a node that is down: a crash drops its channels and only "
        "running nodes send.",
        _silent_when_down,
    ),
    Invariant(
        "idle_lookup_slots_are_empty",
        (),
        "A lookup slot that runs nothing holds no peer sets.",
        _lookup_sets_clear,
    ),
    Invariant(
        "provide_activity_needs_providing",
        (),
        "A provide that is queued, running, or has a retry or republish timer belongs to a "
        "key the node provides.",
        _provide_needs_providing,
    ),
    Invariant(
        "provided_keys_left_the_budget",
        (),
        "The user asks to provide a key at most once: a key being provided is no longer in the "
        "budget.",
        _provided_left_budget,
    ),
    Invariant(
        "provide_lookup_matches_phase",
        (),
        "A node runs the PROVIDE lookup of a key exactly when that provide is in phase LOOKUP.",
        _provide_lookup_iff_phase,
    ),
    Invariant(
        "announcers_are_ready",
        (),
        "A provide that is looking up, sending or has a retry or republish timer belongs to a "
        "node that finished its self-lookup and has an announceable address; a FIND_PROVIDERS "
        "lookup runs only after the self-lookup.",
        _announcers_ready,
    ),
    Invariant(
        "own_record_kept",
        (),
        "A node providing a key stores its own record for it (records are never deleted).",
        _own_record_kept,
    ),
    Invariant(
        "announcements_come_from_providers",
        (),
        "An ADD_PROVIDER naming its sender is in flight only for a key the sender provides.",
        _announcements_from_providers,
    ),
    Invariant(
        "pending_and_acked_are_disjoint",
        (),
        "No peer is both awaited and acknowledged for one provide.",
        _pending_acked_disjoint,
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
        for n in _nodes(pre)
        for p in _nodes(pre)
    )


def _responder(inst: Instance) -> int:
    return inst.peer


def _clients_silent(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    if inst.kind != "deliver":
        return True
    d = _responder(inst)
    claims: list[Term] = [implies(out.reply_sent, pre("mode", d))]
    if class_family(inst.cls) == "add_provider":
        same = all_(
            and_(
                eq(post("has", d, k, c), pre("has", d, k, c)),
                eq(post("expires", d, k, c), pre("expires", d, k, c)),
            )
            for k in _keys(pre)
            for c in _nodes(pre)
        )
        claims.append(implies(not_(pre("mode", d)), same))
    return and_(*claims)


def _is_find_node_request(inst: Instance) -> bool:
    return inst.kind == "deliver" and inst.cls.startswith("FN_")


def _is_get_providers_request(inst: Instance) -> bool:
    return inst.kind == "deliver" and inst.cls.startswith("GP") and not inst.cls.startswith("GPR")


def _closest_replies(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    if not _is_find_node_request(inst):
        return True
    d, requester = _responder(inst), inst.node
    closer = out.reply_closer
    nonempty = any_(closer.values())
    exact = all_(eq(closer[q], out.reply_expected[q]) for q in closer)
    return implies(
        out.reply_sent,
        and_(
            not_(closer.get(d, False)),
            not_(closer.get(requester, False)),
            le(card(closer.values()), cfg.k),
            implies(nonempty, exact),
        ),
    )


def _own_id_answered(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    if not _is_find_node_request(inst):
        return True
    empty = not_(any_(out.reply_closer.values()))
    return implies(
        and_(out.reply_sent, out.reply_target_own, empty), not_(any_(out.reply_expected.values()))
    )


def _expired_not_served(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    if not _is_get_providers_request(inst):
        return True
    d, k = _responder(inst), class_key(inst.cls)
    clock = pre("clock")
    return implies(
        out.reply_sent,
        all_(
            implies(
                out.reply_providers[c],
                not_(and_(pre("has", d, k, c), le(pre("expires", d, k, c), clock))),
            )
            for c in _nodes(pre)
        ),
    )


def _live_served(
    pre: SymState, inst: Instance, out: Outputs, post: SymState, cfg: SymConfig
) -> Term:
    if not _is_get_providers_request(inst):
        return True
    d, k = _responder(inst), class_key(inst.cls)
    clock = pre("clock")
    return implies(
        out.reply_sent,
        all_(
            implies(
                and_(pre("has", d, k, c), lt(clock, pre("expires", d, k, c))),
                out.reply_providers[c],
            )
            for c in _nodes(pre)
        ),
    )


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
        _closest_replies,
    ),
    StepProperty(
        "own_id_lookups_answered",
        ("FIND-02",),
        "A FIND_NODE for the responder's own ID is answered with peers when it has any.",
        _own_id_answered,
    ),
    StepProperty(
        "expired_records_not_served",
        ("PROV-04",),
        "A GET_PROVIDERS reply names no provider whose record has expired.",
        _expired_not_served,
    ),
    StepProperty(
        "live_records_served",
        ("PROV-07",),
        "A GET_PROVIDERS reply names every provider with a live record.",
        _live_served,
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
    "encoded_requirements",
]
