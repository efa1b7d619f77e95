"""From symbolic values back to the executable model: a configuration and a World.

A counterexample to induction is a pair of abstract states. To have the executable model judge
it (the independent evaluator of mypyvy's habit), it must become a concrete ``World``:
:func:`concrete_config` picks a configuration realising the symbolic one's choices (canonical
IDs, the chosen reachability, bootstrap lists, timing and which key equals which node ID), and
:func:`concretize` builds a world whose projection is the given values. What the abstraction does
not track is filled in plainly: messages behind a channel's head in class order, reply contents
empty except the oldest reply's closer peers, no providers in replies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kadspec.engines.symbolic.encoding import (
    Instance,
    Shape,
    SymConfig,
    Values,
    class_cpl,
    class_family,
    class_key,
    refresh_target,
)
from kadspec.models.config import Config, ModeSetting, NodeConfig, Reach, Timing
from kadspec.models.ghost import Ghost
from kadspec.models.policy import Policy
from kadspec.models.state import (
    FAULT_KINDS,
    Addr,
    Budget,
    Conn,
    FindState,
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
    Reason,
    Record,
    World,
)

CANONICAL_IDS = (0b1000, 0b0011, 0b0101, 0b1110, 0b0110)
"""IDs given to nodes 0..4 (the first three are the scenarios' own); further nodes take the
smallest 4-bit values left (:func:`canonical_ids`)."""

ID_BITS = 4


def canonical_ids(nodes: int) -> tuple[int, ...]:
    """The IDs of ``nodes`` nodes in a counterexample: CANONICAL_IDS, then the smallest unused."""
    extra = [v for v in range(1 << ID_BITS) if v not in CANONICAL_IDS]
    return (CANONICAL_IDS + tuple(extra))[:nodes]


def concrete_config(
    cfg: SymConfig, evaluate: Callable[[Any], Any]
) -> tuple[Config, frozenset[str]]:
    """A Config (and the fault kinds) realising the choices ``evaluate`` gives ``cfg``'s
    reachability, bootstrap lists, timing and key-equals-ID constants."""
    shape = cfg.shape
    n = shape.nodes
    ids = canonical_ids(n)
    spare = [v for v in range(1 << ID_BITS) if v not in ids]
    keys = []
    for k in range(shape.keys):
        same = [i for i in range(n) if evaluate(cfg.key_is_id[k, i])]
        keys.append(ids[same[0]] if same else spare.pop())
    # The configuration axioms make these maxima no-ops; they keep Timing valid regardless.
    base = max(1, int(evaluate(cfg.retry_base)))
    deadline = max(1, int(evaluate(cfg.request_deadline)))
    refresh = max(deadline + 1, int(evaluate(cfg.refresh_interval)))
    interval = max(refresh + 1, int(evaluate(cfg.interval)))
    timing = Timing(
        k=max(1, int(evaluate(cfg.k))),
        alpha=max(1, int(evaluate(cfg.alpha))),
        record_ttl=max(interval + 1, int(evaluate(cfg.ttl))),
        republish_interval=interval,
        refresh_interval=refresh,
        request_deadline=deadline,
        retry_base=base,
        retry_cap=max(base, int(evaluate(cfg.retry_cap))),
    )
    nodes = tuple(
        NodeConfig(
            id=ids[i],
            reach=Reach.PUBLIC if evaluate(cfg.public[i]) else Reach.NAT,
            bootstrap=tuple(p for p in range(n) if p != i and evaluate(cfg.bootstrap[i, p])),
        )
        for i in range(n)
    )
    config = Config(nodes=nodes, keys=tuple(keys), id_bits=ID_BITS, timing=timing).validate()
    faults = frozenset(f for f in FAULT_KINDS if evaluate(cfg.fault[f]))
    return config, faults


def _members(v: Values, field: str, prefix: tuple[int, ...], nodes: int) -> frozenset[int]:
    return frozenset(p for p in range(nodes) if v[field].get((*prefix, p), False))


def concretize(
    v: Values,
    shape: Shape,
    config: Config,
    policy: Policy,
    fault_kinds: frozenset[str],
    *,
    horizon: int | None = None,
    head: Instance | None = None,
) -> World:
    """A World whose projection is ``v`` (as far as ``v`` is consistent). ``head``, a deliver or
    lose instance, puts a message of its class at the head of its channel."""
    n_nodes = shape.nodes
    ids, keys = config.ids, config.keys
    timed = policy.per_request_deadline
    nodes = []
    for n in range(n_nodes):
        peers = tuple(
            PeerView(
                conn=Conn(v["conn"][n, p]),
                proto=Proto(v["proto"][n, p]),
                addr=Addr(v["addr"][n, p]),
                in_table=bool(v["in_table"][n, p]),
                failed=bool(v["failed"][n, p]),
            )
            for p in range(n_nodes)
        )
        active = [q for q in range(shape.slots) if v["active"][n, q]]
        # Older lookups come first: sort by how many active lookups each is older than.
        # (over a copy: list.sort empties the list it sorts while it runs)
        running = tuple(active)
        active.sort(key=lambda q: -sum(bool(v["older"][n, q, o]) for o in running if o != q))
        lookups = []
        for q in active:
            purpose, key = shape.slot_purpose(q)
            target = ids[n] if q == 0 else keys[key] if key >= 0 else 0
            if q == shape.refresh_slot:
                key = int(v["ref_cpl"][n,])
                target = refresh_target(ids[n], key, config.id_bits)
            inflight = tuple(
                (p, int(v["dl_inflight"][n, q, p]) if timed else None)
                for p in range(n_nodes)
                if p != n and v["inflight"][n, q, p]
            )
            lookups.append(
                Lookup(
                    purpose=purpose,
                    key=key,
                    target=target,
                    seen=_members(v, "seen", (n, q), n_nodes),
                    inflight=inflight,
                    answered=_members(v, "answered", (n, q), n_nodes),
                    failed=_members(v, "lfailed", (n, q), n_nodes),
                )
            )
        provides = []
        for k in range(shape.keys):
            pending = tuple(
                (p, int(v["dl_pending"][n, k, p]) if timed else None)
                for p in range(n_nodes)
                if p != n and v["pending"][n, k, p]
            )
            provides.append(
                ProvideState(
                    providing=bool(v["providing"][n, k]),
                    phase=Phase(v["phase"][n, k]),
                    outcome=Outcome(v["outcome"][n, k]),
                    reason=Reason(v["reason"][n, k]),
                    delivered_to=int(v["delivered"][n, k]),
                    attempts=int(v["attempts"][n, k]),
                    backoff=int(v["backoff"][n, k]),
                    retry_at=int(v["retry_at"][n, k]) if v["retry_armed"][n, k] else None,
                    republish_at=int(v["repub_at"][n, k]) if v["repub_set"][n, k] else None,
                    published_at=int(v["pub_at"][n, k]) if v["pub_set"][n, k] else None,
                    pending=pending,
                    acked=_members(v, "acked", (n, k), n_nodes),
                )
            )
        records = frozenset(
            Record(key=k, provider=c, expires=int(v["expires"][n, k, c]))
            for k in range(shape.keys)
            for c in range(n_nodes)
            if v["has"][n, k, c]
        )
        nodes.append(
            NodeState(
                up=bool(v["up"][n,]),
                mode=Mode.SERVER if v["mode"][n,] else Mode.CLIENT,
                setting=ModeSetting(v["setting"][n,]),
                candidate=bool(v["candidate"][n,]),
                confirmed=bool(v["confirmed"][n,]),
                dial_back_tried=bool(v["dial_back_tried"][n,]),
                peers=peers,
                boot_tried=_members(v, "boot_tried", (n,), n_nodes),
                self_lookup_done=bool(v["self_done"][n,]),
                refresh_at=int(v["refresh_at"][n,]) if v["refresh_armed"][n,] else None,
                lookups=tuple(lookups),
                provides=tuple(provides),
                records=records,
                found=(None,) * shape.keys,
                find_outcomes=tuple(
                    FindState(
                        outcome=Outcome(v["f_outcome"][n, k]),
                        reason=Reason(v["f_reason"][n, k]),
                        at=int(v["f_at"][n, k]) if v["f_outcome"][n, k] else None,
                    )
                    for k in range(shape.keys)
                ),
                ghost=_ghost(v, shape, n),
            )
        )
    network = []
    for a in range(n_nodes):
        for b in range(n_nodes):
            network.append(() if a == b else _channel(v, shape, config, a, b, head))
    budget = Budget(
        faults=int(v["faults"][()]),
        fault_kinds=fault_kinds,
        mode_changes=tuple(
            (n, ModeSetting(m)) for n in range(n_nodes) for m in range(3) if v["mode_left"][n, m]
        ),
        provides=tuple(
            (n, k) for n in range(n_nodes) for k in range(shape.keys) if v["prov_left"][n, k]
        ),
        finds=tuple(
            (n, k) for n in range(n_nodes) for k in range(shape.keys) if v["find_left"][n, k]
        ),
        starts=frozenset(n for n in range(n_nodes) if v["starts"][n,]),
    )
    clock = int(v["clock"][()])
    return World(
        config=config,
        horizon=clock + 1000 if horizon is None else horizon,
        clock=clock,
        nodes=tuple(nodes),
        network=tuple(network),
        budget=budget,
    )


def _ghost(v: Values, shape: Shape, n: int) -> Ghost:
    """Node n's ghost; what the encoding does not track (open user calls, bootstrap dials,
    requests awaited, the republish bookkeeping) is left empty."""
    others = [p for p in range(shape.nodes) if p != n]
    keys = range(shape.keys)
    return Ghost(
        self_answered=bool(v["g_self_answered"][n,]),
        heard=frozenset(p for p in others if v["g_heard"][n, p]),
        servers=frozenset(p for p in others if v["g_server"][n, p]),
        unresponsive=frozenset(p for p in others if v["g_unresponsive"][n, p]),
        observers=frozenset(p for p in others if v["g_observer"][n, p]),
        dialed_back=bool(v["g_dialed_back"][n,]),
        stored=frozenset((k, p) for k in keys for p in others if v["g_stored"][n, k, p]),
        publishes=frozenset(
            (k, p, int(v["g_pub_at"][n, k, p]))
            for k in keys
            for p in range(shape.nodes)
            if v["g_pub_set"][n, k, p]
        ),
    )


def _channel(
    v: Values, shape: Shape, config: Config, a: int, b: int, head: Instance | None
) -> tuple[Message, ...]:
    classes = shape.classes
    count = {cls: max(0, int(v["count"][a, b, i])) for i, cls in enumerate(classes)}
    public = config.nodes[a].reach is Reach.PUBLIC
    # Identifies: the oldest and newest kinds and kad flags are tracked.
    left = {Kind.IDENTIFY: count["IDENTIFY"], Kind.IDENTIFY_PUSH: count["PUSH"]}
    total = left[Kind.IDENTIFY] + left[Kind.IDENTIFY_PUSH]
    ends = {0: Kind.IDENTIFY_PUSH if v["first_push"][a, b] else Kind.IDENTIFY}
    if total > 1:
        ends[total - 1] = Kind.IDENTIFY_PUSH if v["last_push"][a, b] else Kind.IDENTIFY
    kinds: list[Kind | None] = [None] * total
    for position, kind in ends.items():  # the tracked ends first, the middle from what is left
        if position < total and left[kind]:
            kinds[position] = kind
            left[kind] -= 1
    for position in range(total):
        if kinds[position] is None:
            kind = Kind.IDENTIFY if left[Kind.IDENTIFY] else Kind.IDENTIFY_PUSH
            kinds[position] = kind
            left[kind] -= 1
    identifies = [
        Message(
            kind or Kind.IDENTIFY,
            a,
            b,
            server=bool(v["first_srv"][a, b] if position == 0 else v["last_srv"][a, b]),
            public=public,
        )
        for position, kind in enumerate(kinds)
    ]
    others: list[Message] = []
    for i, cls in enumerate(classes):
        if class_family(cls) == "identify":
            continue
        if cls.startswith("AP_FORGED") and len(config.ids) < 3:
            continue  # a forgery names a third node; with two there is none to name
        made = [_message(v, config, a, b, i, cls, copy) for copy in range(count[cls])]
        at_head = head is not None and head.kind in ("deliver", "lose") and head.cls == cls
        if at_head and head is not None and (head.node, head.peer) == (a, b):
            others = made + others
        else:
            others += made
    lead = max(0, min(int(v["head_ident"][a, b]), len(identifies)))
    if not others:
        lead = len(identifies)
    return tuple(identifies[:lead] + others + identifies[lead:])


def _message(v: Values, config: Config, a: int, b: int, i: int, cls: str, copy: int) -> Message:
    ids, keys = config.ids, config.keys
    k = class_key(cls)
    nodes = len(ids)
    if cls == "FN_SELF":
        return Message(Kind.FIND_NODE, a, b, target=ids[a])
    if cls.startswith("FN_REF"):
        return Message(Kind.FIND_NODE, a, b, target=refresh_target(ids[a], k, config.id_bits))
    if cls.startswith("FN_KEY"):
        return Message(Kind.FIND_NODE, a, b, target=keys[k], key=k)
    if cls.startswith("GPR"):
        closer = _members(v, "rep_closer", (a, b, i), nodes) if copy == 0 else frozenset()
        return Message(Kind.GET_PROVIDERS_REPLY, a, b, target=keys[k], key=k, closer=closer)
    if cls.startswith("GP"):
        return Message(Kind.GET_PROVIDERS, a, b, target=keys[k], key=k)
    if cls.startswith("FNR"):
        closer = _members(v, "rep_closer", (a, b, i), nodes) if copy == 0 else frozenset()
        if cls == "FNR_SELF":
            target = ids[b]
        elif class_cpl(cls) >= 0:
            target = refresh_target(ids[b], class_cpl(cls), config.id_bits)
        else:
            target = keys[k]
        return Message(Kind.FIND_NODE_REPLY, a, b, target=target, closer=closer)
    if cls.startswith("AP_FORGED"):
        claims = sorted(_members(v, "claims", (a, b, k), nodes)) or [
            c for c in range(nodes) if c not in (a, b)
        ]
        provider = claims[copy % len(claims)]
        return Message(Kind.ADD_PROVIDER, a, b, key=k, provider=provider, public=True)
    return Message(Kind.ADD_PROVIDER, a, b, key=k, provider=a, public=cls.startswith("AP_PUB"))


__all__ = ["CANONICAL_IDS", "canonical_ids", "concrete_config", "concretize"]
