"""The lifecycle model as z3 formulas: state variables, guards, effects, initial states.

The symbolic state is an abstraction of :class:`~kadspec.models.state.World` for a fixed shape
(``nodes`` nodes, ``keys`` keys): :func:`project` maps a concrete world onto it, and every action
instance of ``actions.py`` has a guard and an effect here, written as twins of the executable
model's functions (``connect``, ``try_admit``, ``on_identify``, ``settle_pending``, ``react``, ...)
that build z3 terms instead of values. Branches become ``If`` terms under a path condition ``w``;
the policy knobs are read exactly where the executable model reads them, so a mutant's policy
changes the formulas the same way it changes the model.

What is tracked (one variable per entry):

- per node: up, mode, setting, candidate/confirmed addresses, dial-back tried, self-lookup done,
  refresh armed, bootstrap peers tried;
- per ordered pair (node, peer): the peer view (connection, protocols, address, in table, failed);
- per node and lookup slot (SELF, PROVIDE k, FIND k, REFRESH): active, the seen / in-flight /
  answered / failed peer sets, and which active lookup is older (the order replies are matched
  in); for the REFRESH slot, the bucket (cpl) it looks up, since a node refreshes one bucket at
  a time;
- per node and key: the provide (providing, phase, outcome, delivered count, attempts, retry armed,
  publication and republish times, pending and acknowledged peers) and stored records with expiry;
- per channel (src, dst): how many messages of each class are in flight (a FIND_NODE and its
  reply are classed by target: the requester's own ID, a key, or the requester's refresh target
  of bucket c, one class per c; a target equal to a key is classed by the key), how many identifies
  lead the channel, the kind and kad flag of its oldest and newest identify, the closer peers of
  its oldest reply of each class, and which providers forged ADD_PROVIDERs claim;
- the clock, every timer's time (refresh, retry with its backoff, republish, each request's and
  each ADD_PROVIDER's deadline), and the budget.

What is not tracked: the order of requests, replies and ADD_PROVIDERs among each other inside one
channel, the contents of replies other than the oldest of each class in a channel, the providers
a GET_PROVIDERS reply carries and a finished FIND_PROVIDERS found. The abstraction is sound
because every effect that depends on something untracked leaves what it writes free (a fresh
variable per choice), so the projection of every concrete step is allowed by the symbolic
transition relation. ``tests/engines/symbolic/test_fidelity.py`` checks this on random reachable
(state, action) pairs.

Exact (the successor's projection is a function of the predecessor's): every action except the
delivery or loss of a forged ADD_PROVIDER, up to what a channel holds behind the message an
action takes off it (:data:`EXACT_EXCEPT`). Timers are tracked with their times, so ``tick``
moves the clock to the earliest armed deadline and fires exactly what is due, as
``lifecycle.fire_timers`` does. Over-approximated, and why:

- taking a message off a channel: after an identify, the kad flag and kind of the next oldest
  identify are free (unless one or none is left); after a reply, the closer peers of the next
  reply of its class are free; after anything but an identify, how many identifies now lead the
  channel is free (between none and all of them, unless nothing else is left).
- delivering or losing a forged ADD_PROVIDER: which claimed provider it names is any of those
  claimed on that channel, and whether others with the same claim remain is free.
- the guards of deliver and lose: the identifies at the head of a channel are tracked, so
  identifies are taken exactly in FIFO order, but among the other classes any class present may
  be taken (their relative order is not tracked).

Structural restrictions of the shape, checked by :func:`project` (which raises
:class:`NotRepresentable`) and justified by proved invariants, so that the encoding may leave out
branches no reachable state takes:

- keys are distinct (a configuration choice);
- a node never appears in its own lookup sets, pending or acknowledged peers: seeds come from
  the table, which never holds the node itself (``never_self``, RT-07), and a reply's closer
  peers never name the receiver; a reply never names its responder or requester either;
- a node has at most one lookup per slot: the step property ``no_lookup_collision`` proves no
  step starts a lookup in a busy slot;
- there are no channels from a node to itself.

The configuration is symbolic in proofs (:meth:`SymConfig.symbolic`): any reachability, bootstrap
lists, k, alpha and timing satisfying ``Config.validate``, with bucket indices and distance
orders abstracted to arbitrary integers (distinct per target), so a proof covers every
assignment of IDs. Refresh targets (a node's ID with the bit of bucket c flipped) are targets of
their own, 16 per node (buckets 0..15, go's maxCplForRefresh), with free distances and free
coincidences with keys and node IDs: no metric lemma ties them to buckets, since no invariant
needs one. Bounded model checking and the fidelity test use a concrete one
(:meth:`SymConfig.of`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import attrs
import z3

from kadspec.engines.symbolic.terms import (
    Term,
    add,
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
    one_hot_first,
    or_,
    z,
)
from kadspec.models.actions import Action
from kadspec.models.config import Config, ModeSetting, Reach
from kadspec.models.ghost import Ghost
from kadspec.models.policy import Policy, Retry
from kadspec.models.state import (
    FAULT_KINDS,
    NO_FIND,
    Addr,
    Conn,
    Kind,
    Message,
    Mode,
    Outcome,
    Phase,
    Proto,
    Purpose,
    Reason,
    World,
)

Idx = tuple[int, ...]
Sort = Literal["bool", "int"]
Target = tuple[str, int] | tuple[str, int, int]
"""("id", node), ("key", key index) or ("ref", node, cpl): node's refresh target for bucket cpl."""
MAX_REFRESH_CPLS = 16
"""Refresh looks up buckets cpl 0..15 at most (go kbucket maxCplForRefresh)."""


class NotRepresentable(ValueError):
    """A concrete world falls outside the shape the encoding covers; the message says why."""


# --- shape ----------------------------------------------------------------------------------


@attrs.frozen
class Shape:
    """The fixed size of an encoding: how many nodes and keys, and how many refresh targets.

    ``refresh`` is how many common-prefix lengths a node's REFRESH lookups may target (cpl
    0..refresh-1): its refresh targets are message classes of their own. A concrete configuration
    needs min(id_bits, 16) of them (a table peer's cpl is below id_bits, and refresh stops at
    cpl 15); the symbolic proofs take all 16, so they cover every ID width.
    """

    nodes: int
    keys: int = 1
    refresh: int = MAX_REFRESH_CPLS

    @property
    def slots(self) -> int:
        """Lookup slots per node: SELF, PROVIDE per key, FIND_PROVIDERS per key, REFRESH."""
        return 2 + 2 * self.keys

    def provide_slot(self, key: int) -> int:
        return 1 + key

    def find_slot(self, key: int) -> int:
        return 1 + self.keys + key

    @property
    def refresh_slot(self) -> int:
        """The one REFRESH lookup a node runs at a time (its cpl is ``ref_cpl``)."""
        return 1 + 2 * self.keys

    def slot_of(self, purpose: Purpose, key: int) -> int:
        if purpose is Purpose.SELF:
            return 0
        if purpose is Purpose.REFRESH:
            return self.refresh_slot
        return self.provide_slot(key) if purpose is Purpose.PROVIDE else self.find_slot(key)

    def slot_purpose(self, slot: int) -> tuple[Purpose, int]:
        """The purpose and key of a slot (REFRESH: key -1, the cpl is a state variable)."""
        if slot == 0:
            return Purpose.SELF, 0
        if slot == self.refresh_slot:
            return Purpose.REFRESH, -1
        if slot <= self.keys:
            return Purpose.PROVIDE, slot - 1
        return Purpose.FIND_PROVIDERS, slot - 1 - self.keys

    def slot_name(self, slot: int) -> str:
        purpose, key = self.slot_purpose(slot)
        return (
            purpose.name if purpose in (Purpose.SELF, Purpose.REFRESH) else f"{purpose.name}{key}"
        )

    @property
    def classes(self) -> tuple[str, ...]:
        """Message classes tracked per channel."""
        ks = range(self.keys)
        cpls = range(self.refresh)
        return (
            "IDENTIFY",
            "PUSH",
            "FN_SELF",
            *(f"FN_KEY{k}" for k in ks),
            *(f"FN_REF{c}" for c in cpls),
            *(f"GP{k}" for k in ks),
            "FNR_SELF",
            *(f"FNR_KEY{k}" for k in ks),
            *(f"FNR_REF{c}" for c in cpls),
            *(f"GPR{k}" for k in ks),
            *(f"AP_PUB{k}" for k in ks),
            *(f"AP_PRIV{k}" for k in ks),
            *(f"AP_FORGED{k}" for k in ks),
        )

    def pairs(self) -> Iterator[tuple[int, int]]:
        """Ordered pairs of distinct nodes."""
        return ((a, b) for a in range(self.nodes) for b in range(self.nodes) if a != b)


def class_family(cls: str) -> str:
    """identify, request, reply or add_provider."""
    if cls in ("IDENTIFY", "PUSH"):
        return "identify"
    if cls.startswith(("FNR", "GPR")):
        return "reply"
    if cls.startswith(("FN", "GP")):
        return "request"
    return "add_provider"


def class_key(cls: str) -> int:
    """The key index a class names (-1 for SELF and identify classes; for a refresh class, its
    cpl: see :func:`class_cpl`)."""
    digits = "".join(ch for ch in cls if ch.isdigit())
    return int(digits) if digits else -1


def class_cpl(cls: str) -> int:
    """The common-prefix length a refresh request or reply class targets (-1 for the others)."""
    return class_key(cls) if cls.startswith(("FN_REF", "FNR_REF")) else -1


def class_target(cls: str, requester: int) -> Target:
    """The target of a request or reply class, for the node that asked."""
    if cls.endswith("_SELF"):
        return ("id", requester)
    if class_cpl(cls) >= 0:
        return ("ref", requester, class_cpl(cls))
    return ("key", class_key(cls))


def refresh_target(own: int, cpl: int, bits: int) -> int:
    """The model's REFRESH target for bucket ``cpl``: the node's own ID with bit ``cpl`` (from
    the top) flipped, the one ID whose common prefix with it is exactly ``cpl`` bits and whose
    distance to it is smallest."""
    return own ^ (1 << (bits - 1 - cpl))


def request_classes(shape: Shape) -> tuple[str, ...]:
    """Classes of the requests a node then waits on: FIND_NODE, GET_PROVIDERS, ADD_PROVIDER."""
    return tuple(c for c in shape.classes if class_family(c) in ("request", "add_provider"))


def reply_class(request: str) -> str:
    return request.replace("FN_", "FNR_") if request.startswith("FN_") else "GPR" + request[2:]


# --- fields ---------------------------------------------------------------------------------
# Index sets: the entries a field has. The invariants quantify over the same sets.


@attrs.frozen
class Field:
    name: str
    sort: Sort
    indices: Callable[[Shape], list[Idx]]


def each_node(s: Shape) -> list[Idx]:
    """Every node."""
    return [(n,) for n in range(s.nodes)]


def each_view(s: Shape) -> list[Idx]:
    """Every (node, peer) view, the node's view of itself included."""
    return [(n, p) for n in range(s.nodes) for p in range(s.nodes)]


def each_channel(s: Shape) -> list[Idx]:
    """Every channel: ordered pairs of distinct nodes."""
    return list(s.pairs())


def each_provide(s: Shape) -> list[Idx]:
    """Every (node, key) provide."""
    return [(n, k) for n in range(s.nodes) for k in range(s.keys)]


def each_record(s: Shape) -> list[Idx]:
    """Every (holder, key, provider) record."""
    return [(n, k, p) for n in range(s.nodes) for k in range(s.keys) for p in range(s.nodes)]


def each_send(s: Shape) -> list[Idx]:
    """Every (node, key, peer) ADD_PROVIDER a provide may await, peer not the node."""
    return [(n, k, p) for n, k, p in each_record(s) if p != n]


def each_slot(s: Shape) -> list[Idx]:
    """Every (node, lookup slot)."""
    return [(n, q) for n in range(s.nodes) for q in range(s.slots)]


def each_slot_peer(s: Shape) -> list[Idx]:
    """Every (node, lookup slot, peer), peer not the node."""
    return [(n, q, p) for n, q in each_slot(s) for p in range(s.nodes) if p != n]


def _slot_order(s: Shape) -> list[Idx]:
    return [
        (n, a, b) for n in range(s.nodes) for a in range(s.slots) for b in range(s.slots) if a != b
    ]


def _settings(s: Shape) -> list[Idx]:
    return [(n, m) for n in range(s.nodes) for m in range(3)]


def _channel_classes(s: Shape) -> list[Idx]:
    return [(a, b, c) for a, b in s.pairs() for c in range(len(s.classes))]


def _claims(s: Shape) -> list[Idx]:
    return [
        (a, b, k, c)
        for a, b in s.pairs()
        for k in range(s.keys)
        for c in range(s.nodes)
        if c not in (a, b)
    ]


def _reply_contents(s: Shape) -> list[Idx]:
    return [
        (a, b, i, p)
        for a, b in s.pairs()
        for i, cls in enumerate(s.classes)
        if class_family(cls) == "reply"
        for p in range(s.nodes)
        if p not in (a, b)
    ]


def _scalar(s: Shape) -> list[Idx]:
    return [()]


FIELDS: tuple[Field, ...] = (
    Field("clock", "int", _scalar),
    # budget
    Field("starts", "bool", each_node),
    Field("prov_left", "bool", each_provide),
    Field("find_left", "bool", each_provide),
    Field("mode_left", "bool", _settings),
    Field("faults", "int", _scalar),
    # nodes
    Field("up", "bool", each_node),
    Field("mode", "bool", each_node),  # True: server
    Field("setting", "int", each_node),
    Field("candidate", "bool", each_node),
    Field("confirmed", "bool", each_node),
    Field("dial_back_tried", "bool", each_node),
    Field("self_done", "bool", each_node),
    Field("ref_cpl", "int", each_node),  # the bucket the REFRESH lookup targets (0: none runs)
    Field("refresh_armed", "bool", each_node),
    Field("refresh_at", "int", each_node),
    Field("boot_tried", "bool", each_channel),
    # peer views
    Field("conn", "int", each_view),
    Field("proto", "int", each_view),
    Field("addr", "int", each_view),
    Field("in_table", "bool", each_view),
    Field("failed", "bool", each_view),
    # lookups
    Field("active", "bool", each_slot),
    Field("seen", "bool", each_slot_peer),
    Field("inflight", "bool", each_slot_peer),
    Field("dl_inflight", "int", each_slot_peer),  # the request's deadline (0: none)
    Field("answered", "bool", each_slot_peer),
    Field("lfailed", "bool", each_slot_peer),
    Field("older", "bool", _slot_order),
    # provides
    Field("providing", "bool", each_provide),
    Field("phase", "int", each_provide),
    Field("outcome", "int", each_provide),
    Field("reason", "int", each_provide),
    Field("delivered", "int", each_provide),
    Field("attempts", "int", each_provide),
    Field("retry_armed", "bool", each_provide),
    Field("retry_at", "int", each_provide),
    Field("backoff", "int", each_provide),
    Field("repub_set", "bool", each_provide),
    Field("repub_at", "int", each_provide),
    Field("pub_set", "bool", each_provide),
    Field("pub_at", "int", each_provide),
    Field("f_outcome", "int", each_provide),  # the last find's outcome (NodeState.find_outcomes)
    Field("f_reason", "int", each_provide),
    Field("f_at", "int", each_provide),  # when it was reported (0 with no outcome)
    Field("pending", "bool", each_send),
    Field("dl_pending", "int", each_send),
    Field("acked", "bool", each_send),
    # records: holder, key, provider
    Field("has", "bool", each_record),
    Field("expires", "int", each_record),
    # channels
    Field("count", "int", _channel_classes),
    Field("last_srv", "bool", each_channel),
    Field("first_srv", "bool", each_channel),
    Field("first_push", "bool", each_channel),  # the oldest identify is an IDENTIFY_PUSH
    Field("last_push", "bool", each_channel),
    Field("head_ident", "int", each_channel),
    Field("claims", "bool", _claims),
    Field("rep_closer", "bool", _reply_contents),  # closer peers of the oldest reply per class
    # the observer's ghost (ghost.py), per node: lost on a crash except the publishes
    Field("g_self_answered", "bool", each_node),
    Field("g_heard", "bool", each_channel),
    Field("g_server", "bool", each_channel),
    Field("g_unresponsive", "bool", each_channel),
    Field("g_observer", "bool", each_channel),
    Field("g_dialed_back", "bool", each_node),
    Field("g_stored", "bool", each_send),  # (provider, key, holder)
    Field("g_pub_set", "bool", each_record),  # (holder, key, provider), survives a crash
    Field("g_pub_at", "int", each_record),
)
GHOST_FIELDS = tuple(f.name for f in FIELDS if f.name.startswith("g_"))
"""The ghost's variables: written only by :meth:`Encoding.observe`, read only by invariants."""
GHOST_KEPT = frozenset({"g_pub_set", "g_pub_at"})
"""Ghost variables that survive a crash and a restart (``Ghost.publishes``)."""
FIELD = {f.name: f for f in FIELDS}

Values = dict[str, dict[Idx, int | bool]]


def _target_name(t: Target) -> str:
    return f"{t[0]}{'.'.join(map(str, t[1:]))}"


def _name(prefix: str, field: str, idx: Idx) -> str:
    return f"{prefix}{field}[{','.join(map(str, idx))}]" if idx else f"{prefix}{field}"


class SymState:
    """One symbolic state: a term per (field, index), sharing the layout of :func:`project`."""

    def __init__(self, shape: Shape, terms: dict[str, dict[Idx, Term]]) -> None:
        self.shape = shape
        self.terms = terms

    @classmethod
    def variables(cls, shape: Shape, prefix: str) -> SymState:
        terms: dict[str, dict[Idx, Term]] = {}
        for f in FIELDS:
            make = z3.Bool if f.sort == "bool" else z3.Int
            terms[f.name] = {i: make(_name(prefix, f.name, i)) for i in f.indices(shape)}
        return cls(shape, terms)

    @classmethod
    def literal(cls, shape: Shape, values: Values) -> SymState:
        """A known state: its terms are Python values, so the encoding folds over it."""
        return cls(shape, {f: dict(vals) for f, vals in values.items()})

    def copy(self) -> SymState:
        return SymState(self.shape, {f: dict(v) for f, v in self.terms.items()})

    def __call__(self, field: str, *idx: int) -> Term:
        return self.terms[field][idx]

    def items(self) -> Iterator[tuple[str, Idx, Term]]:
        for f in FIELDS:
            for i, t in self.terms[f.name].items():
                yield f.name, i, t

    def equals(self, other: SymState) -> list[Any]:
        return [z(eq(t, other.terms[f][i])) for f, i, t in self.items()]

    def equals_values(self, values: Values) -> list[Any]:
        return [z(eq(t, values[f][i])) for f, i, t in self.items()]

    def evaluate(self, model: Any) -> Values:
        """The values a z3 model gives this state."""
        out: Values = {f.name: {} for f in FIELDS}
        for f, i, t in self.items():
            v = model.eval(z(t), model_completion=True)
            out[f][i] = bool(z3.is_true(v)) if FIELD[f].sort == "bool" else int(v.as_long())
        return out


# --- configuration --------------------------------------------------------------------------


@attrs.define
class SymConfig:
    """The configuration, as constants: symbolic (any configuration) or concrete (one).

    Buckets and distances are abstract: ``bucket[n, p]`` is any integer and ``dist[t][p]`` any
    integers distinct per target, so a proof over them covers every assignment of IDs, and
    ``key_is_id[k, n]`` says key k equals node n's ID (then the two distance orders agree).
    A refresh target ("ref", n, c) may equal a key (``ref_is_key[n, c, k]``) or another node's
    ID (``ref_is_id[n, c, m]``), with the same consequence for its distances.
    """

    shape: Shape
    public: dict[int, Term]
    bootstrap: dict[tuple[int, int], Term]
    k: Term
    alpha: Term
    ttl: Term
    interval: Term
    refresh_interval: Term
    request_deadline: Term
    retry_base: Term
    retry_cap: Term
    give_up_after: int
    bucket: dict[tuple[int, int], Term]
    dist: dict[Target, dict[int, Term]]
    key_is_id: dict[tuple[int, int], Term]
    ref_is_key: dict[tuple[int, int, int], Term]
    ref_is_id: dict[tuple[int, int, int], Term]
    fault: dict[str, Term]
    horizon: Term | None = None  # concrete runs: no timer fires after it

    @classmethod
    def symbolic(cls, shape: Shape, policy: Policy) -> SymConfig:
        n, ks, cpls = shape.nodes, shape.keys, range(shape.refresh)
        targets: list[Target] = [("id", t) for t in range(n)]
        targets += [("key", k) for k in range(ks)]
        targets += [("ref", t, c) for t in range(n) for c in cpls]
        return cls(
            shape=shape,
            public={i: z3.Bool(f"cfg.public[{i}]") for i in range(n)},
            bootstrap={
                (a, b): z3.Bool(f"cfg.bootstrap[{a},{b}]") if a != b else False
                for a in range(n)
                for b in range(n)
            },
            k=z3.Int("cfg.k"),
            alpha=z3.Int("cfg.alpha"),
            ttl=z3.Int("cfg.ttl"),
            interval=z3.Int("cfg.republish_interval"),
            refresh_interval=z3.Int("cfg.refresh_interval"),
            request_deadline=z3.Int("cfg.request_deadline"),
            retry_base=z3.Int("cfg.retry_base"),
            retry_cap=z3.Int("cfg.retry_cap"),
            give_up_after=policy.give_up_after,
            bucket={(a, b): z3.Int(f"cfg.bucket[{a},{b}]") for a in range(n) for b in range(n)},
            dist={
                t: {p: z3.Int(f"cfg.dist[{_target_name(t)},{p}]") for p in range(n)}
                for t in targets
            },
            key_is_id={
                (k, i): z3.Bool(f"cfg.key_is_id[{k},{i}]") for k in range(ks) for i in range(n)
            },
            ref_is_key={
                (t, c, k): z3.Bool(f"cfg.ref_is_key[{t},{c},{k}]")
                for t in range(n)
                for c in cpls
                for k in range(ks)
            },
            ref_is_id={
                (t, c, i): z3.Bool(f"cfg.ref_is_id[{t},{c},{i}]") if i != t else False
                for t in range(n)
                for c in cpls
                for i in range(n)
            },
            fault={f: z3.Bool(f"cfg.fault[{f}]") for f in FAULT_KINDS},
        )

    @classmethod
    def of(cls, world: World, policy: Policy) -> SymConfig:
        """The configuration of ``world`` (with its fault kinds and horizon)."""
        return cls.concrete(world.config, world.budget.fault_kinds, policy, world.horizon)

    @classmethod
    def concrete(
        cls,
        config: Config,
        fault_kinds: frozenset[str],
        policy: Policy,
        horizon: int | None = None,
        shape: Shape | None = None,
    ) -> SymConfig:
        """The configuration as constants; ``shape`` may have more refresh classes than the
        ID width needs (a proof's 16 for a counterexample's 4-bit IDs): the refresh targets of
        cpls at or past the width, which no node ever looks up, get their node's distances."""
        shape = config_shape(config) if shape is None else shape
        ids = config.ids
        bits = config.id_bits
        targets: dict[Target, int] = {("id", t): ids[t] for t in range(shape.nodes)}
        targets.update({("key", k): key for k, key in enumerate(config.keys)})
        refs: dict[Target, int] = {
            ("ref", t, c): refresh_target(ids[t], c, bits) if c < bits else ids[t]
            for t in range(shape.nodes)
            for c in range(shape.refresh)
        }
        targets.update(refs)
        return cls(
            shape=shape,
            public={i: c.reach is Reach.PUBLIC for i, c in enumerate(config.nodes)},
            bootstrap={
                (a, b): b in config.nodes[a].bootstrap
                for a in range(shape.nodes)
                for b in range(shape.nodes)
            },
            k=config.timing.k,
            alpha=config.timing.alpha,
            ttl=config.timing.record_ttl,
            interval=config.timing.republish_interval,
            refresh_interval=config.timing.refresh_interval,
            request_deadline=config.timing.request_deadline,
            retry_base=config.timing.retry_base,
            retry_cap=config.timing.retry_cap,
            give_up_after=policy.give_up_after,
            bucket={
                (a, b): bits - (ids[a] ^ ids[b]).bit_length()
                for a in range(shape.nodes)
                for b in range(shape.nodes)
            },
            dist={t: {p: v ^ ids[p] for p in range(shape.nodes)} for t, v in targets.items()},
            key_is_id={
                (k, i): key == ids[i] for k, key in enumerate(config.keys) for i in range(len(ids))
            },
            ref_is_key={
                (t, c, k): c < bits and refs["ref", t, c] == key
                for t in range(shape.nodes)
                for c in range(shape.refresh)
                for k, key in enumerate(config.keys)
            },
            ref_is_id={
                (t, c, i): c < bits and refs["ref", t, c] == ids[i]
                for t in range(shape.nodes)
                for c in range(shape.refresh)
                for i in range(shape.nodes)
            },
            fault={f: f in fault_kinds for f in FAULT_KINDS},
            horizon=horizon,
        )

    def constants(self) -> list[tuple[str, Term]]:
        """Every constant, named, in a fixed order (to pin one configuration to another)."""
        out: list[tuple[str, Term]] = [
            (name, getattr(self, name))
            for name in (
                "k",
                "alpha",
                "ttl",
                "interval",
                "refresh_interval",
                "request_deadline",
                "retry_base",
                "retry_cap",
            )
        ]
        out += [(f"public{i}", t) for i, t in self.public.items()]
        out += [(f"bootstrap{i}", t) for i, t in self.bootstrap.items()]
        out += [(f"bucket{i}", t) for i, t in self.bucket.items()]
        out += [(f"dist{t}{p}", d) for t, ds in self.dist.items() for p, d in ds.items()]
        out += [(f"key_is_id{i}", t) for i, t in self.key_is_id.items()]
        out += [(f"ref_is_key{i}", t) for i, t in self.ref_is_key.items()]
        out += [(f"ref_is_id{i}", t) for i, t in self.ref_is_id.items()]
        out += [(f"fault{f}", t) for f, t in self.fault.items()]
        return out

    def pinned_to(self, other: SymConfig) -> list[Any]:
        """Equalities making this (symbolic) configuration ``other``."""
        mine = dict(self.constants())
        return [z(eq(mine[name], t)) for name, t in other.constants()]

    def axioms(self) -> list[Any]:
        """What every configuration satisfies (``Config.validate`` and the XOR metric)."""
        n = self.shape.nodes
        out: list[Term] = [
            le(1, self.k),
            le(1, self.alpha),
            le(1, self.interval),
            lt(self.interval, self.ttl),  # TIME-02, enforced by Config.validate
            le(1, self.refresh_interval),
            le(1, self.request_deadline),
            le(1, self.retry_base),
            le(self.retry_base, self.retry_cap),  # TIME-03
            lt(self.request_deadline, self.refresh_interval),  # the protocol's order (TIME-03)
            lt(self.refresh_interval, self.interval),
        ]
        for t, d in self.dist.items():
            out += [ne(d[p], d[q]) for p in range(n) for q in range(p + 1, n)]
            if t[0] == "id":
                out += [lt(d[t[1]], d[p]) for p in range(n) if p != t[1]]
        for k in range(self.shape.keys):
            for i in range(n):
                for j in range(i + 1, n):
                    out.append(not_(and_(self.key_is_id[k, i], self.key_is_id[k, j])))
                out += [
                    implies(self.key_is_id[k, i], eq(self.dist["key", k][p], self.dist["id", i][p]))
                    for p in range(n)
                ]
        for a in range(n):
            out += [lt(self.bucket[a, b], self.bucket[a, a]) for b in range(n) if b != a]
            # a cpl is never negative: the refresh sequence starts at bucket 0
            out += [le(0, self.bucket[a, b]) for b in range(n) if b != a]
        cpls = self.shape.refresh
        for (o, c, k), same in self.ref_is_key.items():
            ref = self.dist["ref", o, c]
            out += [implies(same, eq(ref[p], self.dist["key", k][p])) for p in range(n)]
            # a refresh target equal to a key equals the nodes that key equals, and no other
            out += [
                implies(same, eq(self.ref_is_id[o, c, i], self.key_is_id[k, i])) for i in range(n)
            ]
            # two refresh targets of one node differ, so one key equals at most one of them
            out += [not_(and_(same, self.ref_is_key[o, d, k])) for d in range(c + 1, cpls)]
        for (o, c, i), same in self.ref_is_id.items():
            if same is False:
                continue
            ref = self.dist["ref", o, c]
            out += [implies(same, eq(ref[p], self.dist["id", i][p])) for p in range(n)]
            out += [not_(and_(same, self.ref_is_id[o, c, j])) for j in range(i + 1, n)]
            out += [not_(and_(same, self.ref_is_id[o, d, i])) for d in range(c + 1, cpls)]
        return [z(t) for t in out if not (isinstance(t, bool) and t)]

    def same_target(self, a: Target, b: Target) -> Term:
        """Whether two targets are the same ID (a refresh target is compared only with its own
        node's targets, keys and node IDs; never with another node's refresh target)."""
        if a[0] == "ref" or b[0] == "ref":
            ref, other = (a, b) if a[0] == "ref" else (b, a)
            node, cpl = ref[1], ref[2]  # type: ignore[misc]
            if other[0] == "ref":
                assert other[1] == node, "refresh targets of two nodes are never compared"
                return other[2] == cpl  # type: ignore[misc]
            if other[0] == "key":
                return self.ref_is_key[node, cpl, other[1]]
            return self.ref_is_id[node, cpl, other[1]]
        if a[0] == b[0]:
            return a[1] == b[1]
        node, key = (a[1], b[1]) if a[0] == "id" else (b[1], a[1])
        return self.key_is_id[key, node]

    def describe(self, model: Any) -> str:
        """The configuration a z3 model picked, one line."""

        def ev(t: Term) -> Any:
            v = model.eval(z(t), model_completion=True)
            return bool(z3.is_true(v)) if z3.is_bool(v) else int(v.as_long())

        n = self.shape.nodes
        reach = ",".join("public" if ev(self.public[i]) else "nat" for i in range(n))
        boot = ";".join(
            f"n{a}->" + ",".join(f"n{b}" for b in range(n) if ev(self.bootstrap[a, b]))
            for a in range(n)
        )
        same = [
            f"key{k}=id(n{i})"
            for k in range(self.shape.keys)
            for i in range(n)
            if ev(self.key_is_id[k, i])
        ]
        faults = ",".join(f for f, on in self.fault.items() if ev(on))
        return (
            f"k={ev(self.k)} alpha={ev(self.alpha)} record_ttl={ev(self.ttl)} "
            f"republish_interval={ev(self.interval)} reach=[{reach}] bootstrap=[{boot}] "
            f"{' '.join(same) or 'no key equals a node ID'} faults=[{faults}]"
        )


def initial_mode(setting: Term, confirmed: Term) -> Term:
    """``state.initial_mode``, as a term: True (server) for the server setting, or for the
    automatic one once an external address is confirmed."""
    return or_(
        and_(eq(setting, int(ModeSetting.AUTO)), confirmed),
        eq(setting, int(ModeSetting.SERVER)),
    )


def identify_count(st: SymState, src: int, dst: int) -> Term:
    """How many identify messages (IDENTIFY and IDENTIFY_PUSH) are in flight from src to dst."""
    classes = st.shape.classes
    return add(
        st("count", src, dst, classes.index("IDENTIFY")),
        st("count", src, dst, classes.index("PUSH")),
    )


def config_shape(config: Config) -> Shape:
    """The shape of a configuration: its nodes, keys and the refresh cpls its IDs allow."""
    return Shape(len(config.nodes), len(config.keys), min(config.id_bits, MAX_REFRESH_CPLS))


def shape_of(world: World) -> Shape:
    return config_shape(world.config)


# --- projection -----------------------------------------------------------------------------


def classify(world: World, message: Message, refresh: int | None = None) -> str:
    """The class of a concrete message in flight (see :attr:`Shape.classes`)."""
    keys = world.config.keys
    ids = world.config.ids
    m = message
    if m.kind is Kind.IDENTIFY:
        return "IDENTIFY"
    if m.kind is Kind.IDENTIFY_PUSH:
        return "PUSH"
    if m.kind in (Kind.FIND_NODE, Kind.FIND_NODE_REPLY):
        requester = m.src if m.kind is Kind.FIND_NODE else m.dst
        prefix = "FN" if m.kind is Kind.FIND_NODE else "FNR"
        if m.target in keys:
            return f"{prefix}_KEY{keys.index(m.target)}"
        if m.target == ids[requester]:
            return f"{prefix}_SELF"
        bits, flipped = world.config.id_bits, m.target ^ ids[requester]
        cpl = bits - flipped.bit_length()
        limit = shape_of(world).refresh if refresh is None else refresh
        if flipped & (flipped - 1) == 0 and cpl < limit:
            return f"{prefix}_REF{cpl}"
        raise NotRepresentable(
            f"{m.kind.name} for a target that is neither a key, self nor a refresh target"
        )
    if m.kind in (Kind.GET_PROVIDERS, Kind.GET_PROVIDERS_REPLY):
        if m.target != keys[m.key]:
            raise NotRepresentable(f"{m.kind.name} whose target is not key{m.key}")
        return f"{'GP' if m.kind is Kind.GET_PROVIDERS else 'GPR'}{m.key}"
    if m.provider == m.src:
        return f"AP_{'PUB' if m.public else 'PRIV'}{m.key}"
    if not m.public or m.provider == m.dst:
        raise NotRepresentable("a forged ADD_PROVIDER without addresses or naming its receiver")
    return f"AP_FORGED{m.key}"


def project(world: World, shape: Shape | None = None) -> Values:
    """The abstraction of a concrete world: the values of every symbolic state variable (in
    ``shape``, by default the world's own; a wider one has more refresh classes, all empty)."""
    shape = shape_of(world) if shape is None else shape
    if (shape.nodes, shape.keys) != (len(world.nodes), len(world.config.keys)):
        raise NotRepresentable(f"the world does not have the nodes and keys of {shape}")
    keys = world.config.keys
    if len(set(keys)) != len(keys):
        raise NotRepresentable(f"keys {list(keys)} are not distinct")
    out: Values = {f.name: {} for f in FIELDS}
    b = world.budget
    out["clock"][()] = world.clock
    out["faults"][()] = b.faults
    classes = shape.classes
    for n, node in enumerate(world.nodes):
        out["starts"][n,] = n in b.starts
        for m in range(3):
            out["mode_left"][n, m] = (n, ModeSetting(m)) in b.mode_changes
        for name, v in (
            ("up", node.up),
            ("mode", node.mode is Mode.SERVER),
            ("setting", int(node.setting)),
            ("candidate", node.candidate),
            ("confirmed", node.confirmed),
            ("dial_back_tried", node.dial_back_tried),
            ("self_done", node.self_lookup_done),
            ("ref_cpl", next((lk.key for lk in node.lookups if lk.purpose is Purpose.REFRESH), 0)),
            ("refresh_armed", node.refresh_at is not None),
            ("refresh_at", node.refresh_at or 0),
        ):
            out[name][n,] = v
        for p, view in enumerate(node.peers):
            if p != n:
                out["boot_tried"][n, p] = p in node.boot_tried
            out["conn"][n, p] = int(view.conn)
            out["proto"][n, p] = int(view.proto)
            out["addr"][n, p] = int(view.addr)
            out["in_table"][n, p] = view.in_table
            out["failed"][n, p] = view.failed
        position: dict[int, int] = {}
        for i, lk in enumerate(node.lookups):
            slot = shape.slot_of(lk.purpose, lk.key)
            if slot in position:
                raise NotRepresentable(f"n{n} runs two {shape.slot_name(slot)} lookups")
            position[slot] = i
            inflight = {p for p, _ in lk.inflight}
            if n in lk.seen | inflight | lk.answered | lk.failed:
                raise NotRepresentable(f"n{n}'s lookup names n{n} itself")
        for slot in range(shape.slots):
            lk_index = position.get(slot)
            running = node.lookups[lk_index] if lk_index is not None else None
            out["active"][n, slot] = running is not None
            deadlines = dict(running.inflight) if running else {}
            for p in range(shape.nodes):
                if p == n:
                    continue
                out["seen"][n, slot, p] = bool(running and p in running.seen)
                out["inflight"][n, slot, p] = p in deadlines
                out["dl_inflight"][n, slot, p] = deadlines.get(p) or 0
                out["answered"][n, slot, p] = bool(running and p in running.answered)
                out["lfailed"][n, slot, p] = bool(running and p in running.failed)
            for other in range(shape.slots):
                if other != slot:
                    a, c = position.get(slot), position.get(other)
                    out["older"][n, slot, other] = a is not None and c is not None and a < c
        for k, fo in enumerate(node.find_outcomes or (NO_FIND,) * shape.keys):
            out["f_outcome"][n, k] = int(fo.outcome)
            out["f_reason"][n, k] = int(fo.reason)
            out["f_at"][n, k] = fo.at or 0
        for k, pv in enumerate(node.provides):
            pending = {p: d for p, d in pv.pending}
            if n in pending or n in pv.acked:
                raise NotRepresentable(f"n{n} sends ADD_PROVIDER to itself")
            for name, v in (
                ("prov_left", (n, k) in b.provides),
                ("find_left", (n, k) in b.finds),
                ("providing", pv.providing),
                ("phase", int(pv.phase)),
                ("outcome", int(pv.outcome)),
                ("reason", int(pv.reason)),
                ("delivered", pv.delivered_to),
                ("attempts", pv.attempts),
                ("retry_armed", pv.retry_at is not None),
                ("retry_at", pv.retry_at or 0),
                ("backoff", pv.backoff),
                ("repub_set", pv.republish_at is not None),
                ("repub_at", pv.republish_at or 0),
                ("pub_set", pv.published_at is not None),
                ("pub_at", pv.published_at or 0),
            ):
                out[name][n, k] = v
            for p in range(shape.nodes):
                if p != n:
                    out["pending"][n, k, p] = p in pending
                    out["dl_pending"][n, k, p] = pending.get(p) or 0
                    out["acked"][n, k, p] = p in pv.acked
        for k in range(shape.keys):
            for p in range(shape.nodes):
                out["has"][n, k, p] = False
                out["expires"][n, k, p] = 0
        for r in node.records:
            out["has"][n, r.key, r.provider] = True
            out["expires"][n, r.key, r.provider] = r.expires
        _project_ghost(out, shape, n, node.ghost)
    for a, c in shape.pairs():
        counts = dict.fromkeys(classes, 0)
        last = False
        last_push = False
        first_push: bool | None = None
        first: bool | None = None
        head = 0
        prefix = True
        claims: set[tuple[int, int]] = set()
        oldest_reply: dict[str, frozenset[int]] = {}
        for msg in world.channel(a, c):
            cls = classify(world, msg, shape.refresh)
            counts[cls] += 1
            if class_family(cls) == "reply":
                if a in msg.closer or c in msg.closer:
                    raise NotRepresentable(f"a reply from n{a} to n{c} names one of them")
                oldest_reply.setdefault(cls, msg.closer)
            if cls in ("IDENTIFY", "PUSH"):
                last = msg.server
                last_push = cls == "PUSH"
                first_push = last_push if first_push is None else first_push
                first = msg.server if first is None else first
                head += prefix
            else:
                prefix = False
            if cls.startswith("AP_FORGED"):
                claims.add((msg.key, msg.provider))
        for i, cls in enumerate(classes):
            out["count"][a, c, i] = counts[cls]
        out["last_srv"][a, c] = last
        out["first_srv"][a, c] = bool(first)
        out["first_push"][a, c] = bool(first_push)
        out["last_push"][a, c] = last_push
        out["head_ident"][a, c] = head
        for k in range(shape.keys):
            for p in range(shape.nodes):
                if p not in (a, c):
                    out["claims"][a, c, k, p] = (k, p) in claims
        for i, cls in enumerate(classes):
            if class_family(cls) == "reply":
                for p in range(shape.nodes):
                    if p not in (a, c):
                        out["rep_closer"][a, c, i, p] = p in oldest_reply.get(cls, frozenset())
    for n in range(shape.nodes):
        if world.channel(n, n):
            raise NotRepresentable(f"n{n} has messages to itself")
    return out


def _project_ghost(out: Values, shape: Shape, n: int, g: Ghost) -> None:
    """Node n's ghost, as far as the encoding tracks it: the fields the invariants and step
    checks read (the user's open calls, bootstrap dials, requests awaited, unanswered peers and
    the republish bookkeeping are read only by progress and timed checks)."""
    out["g_self_answered"][n,] = g.self_answered
    out["g_dialed_back"][n,] = g.dialed_back
    for p in range(shape.nodes):
        if p != n:
            out["g_heard"][n, p] = p in g.heard
            out["g_server"][n, p] = p in g.servers
            out["g_unresponsive"][n, p] = p in g.unresponsive
            out["g_observer"][n, p] = p in g.observers
    for k in range(shape.keys):
        for p in range(shape.nodes):
            if p != n:
                out["g_stored"][n, k, p] = (k, p) in g.stored
            at = g.published(k, p)
            out["g_pub_set"][n, k, p] = at is not None
            out["g_pub_at"][n, k, p] = at or 0


# --- action instances -----------------------------------------------------------------------


@attrs.frozen
class Instance:
    """One action instance of the symbolic transition relation.

    ``slot`` is the lookup slot of a query; ``cls`` the message class of a deliver or lose;
    ``claimed`` the provider a forged ADD_PROVIDER names.
    """

    kind: str
    node: int = -1
    peer: int = -1
    key: int = -1
    slot: int = -1
    setting: int = -1
    cls: str = ""
    claimed: int = -1

    @property
    def group(self) -> str:
        """The transition an obligation is stated for: the action kind, deliveries by family."""
        if self.kind == "deliver":
            return f"deliver_{class_family(self.cls)}"
        return self.kind

    def label(self, shape: Shape | None = None) -> str:
        parts: list[str] = []
        if self.kind in ("deliver", "lose"):
            parts.append(f"n{self.node}->n{self.peer}")
            parts.append(self.cls)
        else:
            if self.node >= 0:
                parts.append(f"n{self.node}")
            if self.peer >= 0:
                parts.append(f"n{self.peer}")
            if self.slot >= 0:
                parts.append(shape.slot_name(self.slot) if shape else f"slot{self.slot}")
            if self.key >= 0:
                parts.append(f"key{self.key}")
            if self.setting >= 0:
                parts.append(ModeSetting(self.setting).name.lower())
            if self.claimed >= 0:
                parts.append(f"claims n{self.claimed}")
        return f"{self.kind}({', '.join(parts)})"


GROUPS = (
    "start",
    "restart",
    "provide",
    "find_providers",
    "set_mode",
    "tick",
    "crash",
    "disconnect",
    "lose",
    "forge_add_provider",
    "deliver_identify",
    "deliver_request",
    "deliver_reply",
    "deliver_add_provider",
    "dial_bootstrap",
    "query",
    "dial_back",
)

_LOCAL_KINDS = ("dial_bootstrap", "query", "dial_back")
"""A node's own steps: urgent, time does not pass while one is enabled."""

EXACT_GROUPS = frozenset(GROUPS) - {"deliver_add_provider", "lose"}
"""Groups whose every instance has a unique symbolic successor (up to :data:`EXACT_EXCEPT`);
deliver_add_provider and lose are exact too, except for forged ADD_PROVIDERs."""

EXACT_GUARD_GROUPS = frozenset(GROUPS) - {
    "lose",
    "deliver_identify",
    "deliver_request",
    "deliver_reply",
    "deliver_add_provider",
}
"""Groups whose guard is exactly the executable model's: all but deliver and lose (the class of
the oldest message is tracked only as identify or not)."""


EXACT_EXCEPT = frozenset({"head_ident", "first_srv", "first_push", "rep_closer"})
"""Variables an exact instance may still leave free: what a channel holds behind the message
taken off it (how many identifies now lead it, the next identify's kad flag, the next reply's
closer peers) is tracked in aggregate only."""


def is_exact(inst: Instance) -> bool:
    """Whether the instance's symbolic successor is unique (the effect is encoded exactly), up
    to the variables in :data:`EXACT_EXCEPT`."""
    if inst.group in EXACT_GROUPS:
        return True
    if inst.kind == "deliver" and class_family(inst.cls) == "add_provider":
        return not inst.cls.startswith("AP_FORGED")
    if inst.kind == "lose":
        return not inst.cls.startswith("AP_FORGED")
    return False


def instances(shape: Shape) -> list[Instance]:
    """Every action instance of the shape, in a fixed order."""
    n = shape.nodes
    out: list[Instance] = []
    out += [Instance("start", node=i) for i in range(n)]
    out += [Instance("restart", node=i) for i in range(n)]
    out += [Instance("provide", node=i, key=k) for i in range(n) for k in range(shape.keys)]
    out += [Instance("find_providers", node=i, key=k) for i in range(n) for k in range(shape.keys)]
    out += [Instance("set_mode", node=i, setting=m) for i in range(n) for m in range(3)]
    out.append(Instance("tick"))
    out += [Instance("crash", node=i) for i in range(n)]
    out += [Instance("disconnect", node=a, peer=b) for a in range(n) for b in range(a + 1, n)]
    for a, b in shape.pairs():
        out += [
            Instance("lose", node=a, peer=b, cls=c)
            for c in shape.classes
            if class_family(c) != "identify"
        ]
    for a, b in shape.pairs():
        for k in range(shape.keys):
            out += [
                Instance("forge_add_provider", node=a, peer=b, key=k, claimed=c)
                for c in range(n)
                if c not in (a, b)
            ]
    for a, b in shape.pairs():
        out += [Instance("deliver", node=a, peer=b, cls=c) for c in shape.classes]
    out += [Instance("dial_bootstrap", node=a, peer=b) for a, b in shape.pairs()]
    out += [Instance("query", node=i, slot=q) for i in range(n) for q in range(shape.slots)]
    out += [Instance("dial_back", node=i) for i in range(n)]
    return out


def instance_of(world: World, action: Action) -> Instance:
    """The symbolic instance a concrete enabled action belongs to."""
    a = action
    if a.kind in ("deliver", "lose"):
        assert a.message is not None
        return Instance(
            a.kind, node=a.message.src, peer=a.message.dst, cls=classify(world, a.message)
        )
    if a.kind == "query":
        lk = world.nodes[a.node].lookups[a.key]
        return Instance("query", node=a.node, slot=shape_of(world).slot_of(lk.purpose, lk.key))
    if a.kind == "forge_add_provider":
        assert a.message is not None
        return Instance(a.kind, node=a.node, peer=a.peer, key=a.key, claimed=a.message.provider)
    if a.kind == "set_mode":
        return Instance(a.kind, node=a.node, setting=int(a.setting))
    if a.kind in ("provide", "find_providers"):
        return Instance(a.kind, node=a.node, key=a.key)
    if a.kind in ("disconnect", "dial_bootstrap"):
        return Instance(a.kind, node=a.node, peer=a.peer)
    if a.kind == "tick":
        return Instance("tick")
    return Instance(a.kind, node=a.node)


def parties(inst: Instance, nodes: int) -> tuple[int, ...]:
    """``ghost.parties``: the nodes whose ghosts a step updates (every node for tick and
    crash; both ends of a message; the node and its peer; or the node alone)."""
    if inst.kind in ("tick", "crash"):
        return tuple(range(nodes))
    if inst.kind in ("deliver", "lose", "forge_add_provider"):
        return (inst.node, inst.peer)
    if inst.peer >= 0:
        return (inst.node, inst.peer)
    return (inst.node,)


# --- lookups and distances, shared by the effects and the invariants -------------------------

_LOOKUP_FIELDS = {
    "seen": "seen",
    "inflight": "inflight",
    "answered": "answered",
    "lfailed": "lfailed",
    "deadline": "dl_inflight",
}
LookupTerms = dict[str, dict[int, Term]]  # lookup field -> peer -> term (see _LOOKUP_FIELDS)


Dists = dict[int, Term]
"""A target's distance to each node: what ordering by distance needs of it."""


def distances(cfg: SymConfig, target: Target | Dists) -> Dists:
    return target if isinstance(target, dict) else cfg.dist[target]


def closest(cfg: SymConfig, target: Target | Dists, members: dict[int, Term]) -> dict[int, Term]:
    """metric.closest: the at most k members nearest ``target`` (a target, or its distances)."""
    d = distances(cfg, target)
    out: dict[int, Term] = {}
    for p, m in members.items():
        nearer = card(and_(mq, lt(d[q], d[p])) for q, mq in members.items() if q != p)
        out[p] = and_(m, lt(nearer, cfg.k))
    return out


def farthest(cfg: SymConfig, target: Target, members: dict[int, Term]) -> dict[int, Term]:
    """The at most k members farthest from ``target`` (a reversed priority queue)."""
    d = distances(cfg, target)
    out: dict[int, Term] = {}
    for p, m in members.items():
        farther = card(and_(mq, lt(d[p], d[q])) for q, mq in members.items() if q != p)
        out[p] = and_(m, lt(farther, cfg.k))
    return out


def slot_target(shape: Shape, n: int, slot: int) -> Target:
    """The target of node n's lookup in ``slot``: its own ID, or a key (the REFRESH slot's
    target depends on the state: :func:`slot_distances`, :func:`slot_is`)."""
    purpose, key = shape.slot_purpose(slot)
    assert purpose is not Purpose.REFRESH, "the REFRESH slot's target is in the state"
    return ("id", n) if purpose is Purpose.SELF else ("key", key)


def _by_cpl(st: SymState, n: int, terms: list[Term]) -> Term:
    """``terms[c]`` for node n's current refresh cpl ``c`` (the last one past the range, which
    the domain invariant rules out)."""
    cpl = st("ref_cpl", n)
    out = terms[-1]
    for c in range(len(terms) - 2, -1, -1):
        out = ite(eq(cpl, c), terms[c], out)
    return out


def slot_distances(st: SymState, cfg: SymConfig, n: int, slot: int) -> Dists:
    """The distances of node n's lookup target in ``slot`` to every node."""
    if slot != st.shape.refresh_slot:
        return cfg.dist[slot_target(st.shape, n, slot)]
    cpls = range(st.shape.refresh)
    return {
        p: _by_cpl(st, n, [cfg.dist["ref", n, c][p] for c in cpls]) for p in range(st.shape.nodes)
    }


def slot_is(st: SymState, cfg: SymConfig, n: int, slot: int, target: Target) -> Term:
    """Whether node n's lookup in ``slot`` targets ``target``."""
    if slot != st.shape.refresh_slot:
        return cfg.same_target(slot_target(st.shape, n, slot), target)
    same = [cfg.same_target(("ref", n, c), target) for c in range(st.shape.refresh)]
    return _by_cpl(st, n, same)


def lookup_of(st: SymState, n: int, slot: int) -> LookupTerms:
    """Node n's lookup in ``slot``, field by field."""
    others = [p for p in range(st.shape.nodes) if p != n]
    return {f: {p: st(_LOOKUP_FIELDS[f], n, slot, p) for p in others} for f in _LOOKUP_FIELDS}


def lookup_pool(lk: LookupTerms) -> dict[int, Term]:
    """Peers seen and not yet asked (lookup.next_candidate's pool)."""
    return {
        p: and_(
            lk["seen"][p],
            not_(lk["answered"][p]),
            not_(lk["lfailed"][p]),
            not_(lk["inflight"][p]),
        )
        for p in lk["seen"]
    }


def lookup_finished(cfg: SymConfig, target: Target | Dists, lk: LookupTerms) -> Term:
    """lookup.is_finished: the k closest live peers seen all answered, or nothing is left to
    ask or await."""
    live = {p: and_(lk["seen"][p], not_(lk["lfailed"][p])) for p in lk["seen"]}
    top = closest(cfg, target, live)
    all_answered = and_(any_(top.values()), *(implies(top[p], lk["answered"][p]) for p in top))
    idle = and_(not_(any_(lookup_pool(lk).values())), not_(any_(lk["inflight"].values())))
    return or_(all_answered, idle)


def sent_in_step(
    pre: SymState, inst: Instance, post: SymState, src: int, dst: int, classes: Iterable[str]
) -> Term:
    """Whether ``src`` sent ``dst`` a message of one of ``classes`` in the step from ``pre`` to
    ``post`` (a channel is FIFO: what is new in it is what was sent, after the message the
    step took off it)."""
    sent: list[Term] = []
    for cls in classes:
        i = pre.shape.classes.index(cls)
        popped = inst.kind in ("deliver", "lose") and (inst.node, inst.peer, inst.cls) == (
            src,
            dst,
            cls,
        )
        before = add(pre("count", src, dst, i), -1 if popped else 0)
        sent.append(lt(before, post("count", src, dst, i)))
    return or_(*sent)


# --- the effect builder ---------------------------------------------------------------------

_FAILED = int(Outcome.FAILED)


@attrs.define
class Outputs:
    """What a step emits besides its successor: the facts the step checks read."""

    collision: Term = False  # a lookup was started in a slot that already runs one
    reply_sent: Term = False  # a FIND_NODE / GET_PROVIDERS reply was sent
    reply_closer: dict[int, Term] = attrs.Factory(dict)
    reply_providers: dict[int, Term] = attrs.Factory(dict)
    reply_target_own: Term = False  # the request's target is the responder's own ID
    claimed: dict[int, Term] = attrs.Factory(dict)  # the provider a forged ADD_PROVIDER named
    delivered_closer: dict[int, Term] = attrs.Factory(dict)  # closer peers of a delivered reply


@attrs.frozen
class Step:
    """One instance's guard and effect over a symbolic pre-state."""

    instance: Instance
    guard: Term
    post: SymState
    side: tuple[Any, ...]  # constraints on the fresh variables
    fresh: tuple[Any, ...]
    out: Outputs

    def relation(self, post: SymState) -> Any:
        """The transition formula: the guard holds and ``post`` is a successor."""
        return z3.And(z(self.guard), *self.side, *self.post.equals(post))


class Encoding:
    """The encoding of the lifecycle model for one shape, configuration and policy."""

    def __init__(self, shape: Shape, cfg: SymConfig, policy: Policy) -> None:
        self.shape = shape
        self.cfg = cfg
        self.policy = policy
        self.instances = instances(shape)

    # -- initial states

    def initial(self, st: SymState) -> Any:
        """``World.initial``: every node down and unstarted, nothing in flight, clock 0; the
        budget and each node's mode setting are free."""
        s = self.shape
        c: list[Term] = [eq(st("clock"), 0), le(0, st("faults"))]
        for n in range(s.nodes):
            setting = st("setting", n)
            c += [
                st("starts", n),
                not_(st("up", n)),
                and_(le(0, setting), le(setting, 2)),
                eq(st("mode", n), eq(setting, int(ModeSetting.SERVER))),
            ]
            c += [
                not_(st(f, n))
                for f in ("candidate", "confirmed", "dial_back_tried", "self_done", "refresh_armed")
            ]
        defaults: dict[str, Term] = {
            "boot_tried": False,
            "conn": 0,
            "proto": 0,
            "addr": 0,
            "in_table": False,
            "failed": False,
            "active": False,
            "seen": False,
            "inflight": False,
            "answered": False,
            "lfailed": False,
            "older": False,
            "providing": False,
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
            "repub_at": 0,
            "pub_set": False,
            "pub_at": 0,
            "pending": False,
            "acked": False,
            "has": False,
            "expires": 0,
            "count": 0,
            "last_srv": False,
            "first_srv": False,
            "first_push": False,
            "last_push": False,
            "rep_closer": False,
            "refresh_at": 0,
            "ref_cpl": 0,
            "retry_at": 0,
            "backoff": 0,
            "dl_inflight": 0,
            "dl_pending": 0,
            "head_ident": 0,
            "claims": False,
            **{f: (0 if FIELD[f].sort == "int" else False) for f in GHOST_FIELDS},
        }
        for f, v in defaults.items():
            c += [eq(t, v) for t in st.terms[f].values()]
        return z3.And(*[z(x) for x in c])

    # -- steps

    def step(self, pre: SymState, inst: Instance, tag: str) -> Step:
        """Build the guard and effect of ``inst`` from ``pre``, followed by ``react`` and the
        ghost's ``observe`` as ``actions.apply`` does; fresh names start with ``tag``."""
        e = self.effect(pre, inst, tag)
        post, collision = self.react(e.post)
        out = attrs.evolve(e.out, collision=or_(e.out.collision, collision))
        observed, side = self.observe(pre, inst, e.out, post, f"{tag}/observe")
        return attrs.evolve(e, post=observed, out=out, side=(*e.side, *side))

    def effect(self, pre: SymState, inst: Instance, tag: str) -> Step:
        """The guard and the action's own effect, before ``react``."""
        e = _Effect(self, pre, tag)
        guard = e.guard(inst)
        e.apply(inst)
        return Step(inst, guard, e.st, tuple(e.side), tuple(e.fresh), e.out)

    def react(self, st: SymState) -> tuple[SymState, Term]:
        """``lifecycle.react`` applied to ``st``: the state after it, and whether it started a
        lookup in a busy slot. A function of the state alone, so it may be applied once to a
        merged (case-split) state instead of once per instance."""
        e = _Effect(self, st, "react")
        e.react()
        return e.st, e.out.collision

    def guard(self, pre: SymState, inst: Instance) -> Term:
        return _Effect(self, pre, "g").guard(inst)

    def observe(
        self, pre: SymState, inst: Instance, out: Outputs, post: SymState, tag: str
    ) -> tuple[SymState, list[Any]]:
        """``ghost.observe``: ``post`` with the ghosts of the instance's parties updated from
        what the step did (``pre`` to ``post``; ``out``, what its effect emitted), and the
        constraints on the fresh variables this introduces. Writes ghost variables only, and
        nothing the model reads depends on them."""
        e = _Effect(self, post, tag)
        for n in parties(inst, self.shape.nodes):
            e.observe_node(pre, inst, out, n)
        if inst.kind in ("dial_bootstrap", "query"):
            # ghost.observe: the connection a peer opened is a sign of life (RT-07).
            p = inst.node
            for n in range(self.shape.nodes):
                if n != p:
                    opened = and_(eq(pre("conn", n, p), int(Conn.NONE)), e.connected(n, p))
                    e.put(opened, "g_unresponsive", (n, p), False)
        return e.st, e.side


class _Effect:
    """Builds one step: a working copy of the state updated under path conditions."""

    def __init__(self, enc: Encoding, pre: SymState, tag: str) -> None:
        self.enc = enc
        self.shape = enc.shape
        self.cfg = enc.cfg
        self.policy = enc.policy
        self.pre = pre
        self.st = pre.copy()
        self.tag = tag
        self.side: list[Any] = []
        self.fresh: list[Any] = []
        self.out = Outputs()

    # -- primitives

    def g(self, field: str, *idx: int) -> Term:
        return self.st.terms[field][idx]

    def put(self, w: Term, field: str, idx: Idx, v: Term) -> None:
        cur = self.st.terms[field][idx]
        self.st.terms[field][idx] = ite(w, v, cur)

    def fresh_bool(self, label: str) -> Any:
        v = z3.Bool(f"{self.tag}!{label}")
        self.fresh.append(v)
        return v

    def fresh_int(self, label: str) -> Any:
        v = z3.Int(f"{self.tag}!{label}")
        self.fresh.append(v)
        return v

    def others(self, n: int) -> list[int]:
        return [p for p in range(self.shape.nodes) if p != n]

    def connected(self, a: int, b: int) -> Term:
        return ne(self.g("conn", a, b), int(Conn.NONE))

    def table(self, n: int) -> list[Term]:
        return [self.g("in_table", n, p) for p in range(self.shape.nodes)]

    def cls_index(self, cls: str) -> int:
        return self.shape.classes.index(cls)

    def identify_count(self, src: int, dst: int) -> Term:
        return identify_count(self.st, src, dst)

    def other_count(self, src: int, dst: int) -> Term:
        total: Term = 0
        for i, cls in enumerate(self.shape.classes):
            if class_family(cls) != "identify":
                total = add(total, self.g("count", src, dst, i))
        return total

    def send(
        self,
        w: Term,
        src: int,
        dst: int,
        cls: str,
        server: Term = False,
        closer: dict[int, Term] | None = None,
    ) -> None:
        if w is False:
            return
        if closer is not None:
            # A reply's closer peers are kept for the oldest reply of its class only.
            oldest = eq(self.g("count", src, dst, self.cls_index(cls)), 0)
            for p in range(self.shape.nodes):
                if p not in (src, dst):
                    self.put(
                        and_(w, oldest),
                        "rep_closer",
                        (src, dst, self.cls_index(cls), p),
                        closer.get(p, False),
                    )
        if cls in ("IDENTIFY", "PUSH"):
            # Appended behind everything: part of the identify prefix at the head only when
            # nothing else is in flight; the oldest identify only when it is the only one.
            alone = eq(self.other_count(src, dst), 0)
            head = self.g("head_ident", src, dst)
            self.put(w, "head_ident", (src, dst), ite(alone, add(head, 1), head))
            none = eq(self.identify_count(src, dst), 0)
            push = cls == "PUSH"
            self.put(and_(w, none), "first_srv", (src, dst), server)
            self.put(and_(w, none), "first_push", (src, dst), push)
            self.put(w, "last_srv", (src, dst), server)
            self.put(w, "last_push", (src, dst), push)
        i = self.cls_index(cls)
        self.put(w, "count", (src, dst, i), add(self.g("count", src, dst, i), ite(w, 1, 0)))

    def closest(self, target: Target | Dists, members: dict[int, Term]) -> dict[int, Term]:
        return closest(self.cfg, target, members)

    # -- network

    def identify_server(self, src: int) -> Term:
        return self.g("mode", src)

    def connect(self, w: Term, dialer: int, listener: int) -> None:
        self.put(w, "conn", (dialer, listener), int(Conn.OUTBOUND))
        self.put(w, "addr", (dialer, listener), int(Addr.DIALABLE))
        old = self.g("addr", listener, dialer)
        self.put(w, "conn", (listener, dialer), int(Conn.INBOUND))
        dialable = eq(old, int(Addr.DIALABLE))
        self.put(w, "addr", (listener, dialer), ite(dialable, int(Addr.DIALABLE), int(Addr.REMOTE)))
        self.send(w, dialer, listener, "IDENTIFY", self.identify_server(dialer))
        self.send(w, listener, dialer, "IDENTIFY", self.identify_server(listener))

    def disconnect(self, w: Term, a: int, b: int) -> None:
        self.put(w, "conn", (a, b), int(Conn.NONE))
        self.put(w, "conn", (b, a), int(Conn.NONE))

    def can_dial(self, peer: int) -> Term:
        return and_(self.g("up", peer), self.cfg.public[peer])

    # -- routing

    def routable(self, addr: Term) -> Term:
        remote_ok = self.policy.listener_address_dialable
        return or_(eq(addr, int(Addr.DIALABLE)), and_(remote_ok, eq(addr, int(Addr.REMOTE))))

    def try_admit(self, w: Term, n: int, p: int, evidence: bool = True) -> None:
        if p == n or w is False:
            return
        ok = and_(
            w,
            not_(self.g("in_table", n, p)),
            eq(self.g("proto", n, p), int(Proto.SERVER)) if evidence else True,
            self.routable(self.g("addr", n, p)),
        )
        size = card(self.table(n))
        probe_needed = or_(not self.policy.probe_only_when_table_full, le(self.cfg.k, size))
        probe_ok = and_(self.g("up", p), any_(self.g("in_table", p, q) for q in self.others(n)))
        ok = and_(ok, implies(probe_needed, probe_ok))
        members = {
            q: and_(self.g("in_table", n, q), eq(self.cfg.bucket[n, q], self.cfg.bucket[n, p]))
            for q in range(self.shape.nodes)
        }
        full = and_(le(self.cfg.k, card(members.values())), self.policy.bucket_size_enforced)
        stale = [and_(members[q], self.g("failed", n, q)) for q in range(self.shape.nodes)]
        ok = and_(ok, implies(full, any_(stale)))
        for q, first in enumerate(one_hot_first(stale)):
            self.put(and_(ok, full, first), "in_table", (n, q), False)
        self.put(ok, "in_table", (n, p), True)
        self.put(ok, "failed", (n, p), False)

    def admit_named_peer(self, w: Term, n: int, p: int) -> None:
        """routing.admit_named_peer (the FIND-05 mutant): no evidence, no probe, room only."""
        if p == n:
            return
        members = [
            and_(self.g("in_table", n, q), eq(self.cfg.bucket[n, q], self.cfg.bucket[n, p]))
            for q in range(self.shape.nodes)
        ]
        room = lt(card(members), self.cfg.k)
        self.put(and_(w, not_(self.g("in_table", n, p)), room), "in_table", (n, p), True)

    def remove(self, w: Term, n: int, p: int) -> None:
        self.put(w, "in_table", (n, p), False)

    def mark_failed(self, w: Term, n: int, p: int) -> None:
        """routing.mark_failed: a removal that leaves the table below k recovers at once."""
        in_table = self.g("in_table", n, p)
        self.put(w, "failed", (n, p), True)
        if self.policy.remove_failed_peers:
            self.remove(w, n, p)
            self.recover_low_table(and_(w, in_table), n, skip=p)

    def closest_known(
        self, n: int, target: Target, exclude: int, replying: bool = False
    ) -> dict[int, Term]:
        """routing.closest_known; ``replying``: with the policy (the FIND-01 mutant answers
        with the k farthest)."""
        cands = {
            q: and_(self.g("in_table", n, q), not_(self.g("failed", n, q)))
            for q in range(self.shape.nodes)
            if q != exclude
        }
        if replying and not self.policy.reply_with_closest:
            return farthest(self.cfg, target, cands)
        return self.closest(target, cands)

    # -- addresses

    def on_identify(self, w: Term, n: int, p: int, server: Term, is_identify: bool) -> None:
        if self.policy.discard_identify_after_close:
            w = and_(w, self.connected(n, p))
        self.put(w, "proto", (n, p), ite(server, int(Proto.SERVER), int(Proto.CLIENT)))
        if self.policy.feed_identify_addresses:
            self.put(and_(w, self.cfg.public[p]), "addr", (n, p), int(Addr.DIALABLE))
        if is_identify:
            self.put(w, "candidate", (n,), True)
            if not self.policy.confirm_needs_dial_back:
                self.confirm(w, n)
        self.try_admit(and_(w, server), n, p)
        if self.policy.remove_peers_turned_client:
            self.remove(and_(w, not_(server)), n, p)

    def dial_back(self, w: Term, n: int) -> None:
        self.put(w, "dial_back_tried", (n,), True)
        self.confirm(and_(w, self.cfg.public[n]), n)

    def confirm(self, w: Term, n: int) -> None:
        self.put(w, "confirmed", (n,), True)
        self.update_mode(w, n)

    def update_mode(self, w: Term, n: int) -> None:
        confirmed = and_(self.g("confirmed", n), self.policy.auto_mode_follows_confirmation)
        new = initial_mode(self.g("setting", n), confirmed)
        changed = and_(w, ne(new, self.g("mode", n)))
        self.put(changed, "mode", (n,), new)
        if self.policy.push_mode_changes:
            for p in self.others(n):
                self.send(and_(changed, self.connected(n, p)), n, p, "PUSH", new)

    def fail_open(self, w: Term, n: int, p: int) -> None:
        if self.policy.admit_unknown_protocols:
            unknown = eq(self.g("proto", n, p), int(Proto.UNKNOWN))
            self.try_admit(and_(w, unknown), n, p, evidence=False)

    # -- lookups

    def slot_target(self, n: int, slot: int) -> Dists:
        """The distances of the slot's target, in the state as it stands."""
        return slot_distances(self.st, self.cfg, n, slot)

    def lookup(self, n: int, slot: int) -> dict[str, dict[int, Term]]:
        return lookup_of(self.st, n, slot)

    def pool(self, lk: dict[str, dict[int, Term]]) -> dict[int, Term]:
        return lookup_pool(lk)

    def next_candidate(
        self, target: Target | Dists, lk: dict[str, dict[int, Term]]
    ) -> dict[int, Term]:
        pool = self.pool(lk)
        d = distances(self.cfg, target)
        return {
            p: and_(pool[p], *(implies(pool[q], lt(d[p], d[q])) for q in pool if q != p))
            for p in pool
        }

    def is_finished(self, target: Target | Dists, lk: dict[str, dict[int, Term]]) -> Term:
        return lookup_finished(self.cfg, target, lk)

    def write_lookup(self, w: Term, n: int, slot: int, lk: dict[str, dict[int, Term]]) -> None:
        for f, vals in lk.items():
            for p, v in vals.items():
                self.put(w, _LOOKUP_FIELDS[f], (n, slot, p), v)

    def clear_lookup(self, w: Term, n: int, slot: int) -> None:
        self.put(w, "active", (n, slot), False)
        if slot == self.shape.refresh_slot:
            self.put(w, "ref_cpl", (n,), 0)
        for f, field in _LOOKUP_FIELDS.items():
            for p in self.others(n):
                self.put(w, field, (n, slot, p), 0 if f == "deadline" else False)
        for other in range(self.shape.slots):
            if other != slot:
                self.put(w, "older", (n, slot, other), False)
                self.put(w, "older", (n, other, slot), False)

    def start_lookup(self, w: Term, n: int, slot: int) -> None:
        """lifecycle.start_lookup: lookup.start, and finish when it ended at once."""
        if w is False:
            return
        seeds = {
            p: and_(self.g("in_table", n, p), not_(self.g("failed", n, p))) for p in self.others(n)
        }
        empty = not_(any_(seeds.values()))
        if self.policy.empty_lookup_fails_fast:
            at_once, append = and_(w, empty), and_(w, not_(empty))
        else:
            at_once, append = False, w
        self.out.collision = or_(self.out.collision, and_(append, self.g("active", n, slot)))
        for other in range(self.shape.slots):
            if other != slot:
                self.put(append, "older", (n, other, slot), self.g("active", n, other))
                self.put(append, "older", (n, slot, other), False)
        self.put(append, "active", (n, slot), True)
        self.write_lookup(
            append,
            n,
            slot,
            {
                "seen": seeds,
                "inflight": dict.fromkeys(seeds, False),
                "answered": dict.fromkeys(seeds, False),
                "lfailed": dict.fromkeys(seeds, False),
                "deadline": dict.fromkeys(seeds, 0),
            },
        )
        if slot != self.shape.refresh_slot:  # refresh_buckets starts none that ends at once
            self.finish(at_once, n, slot, dict.fromkeys(seeds, False))

    def finish(self, w: Term, n: int, slot: int, answered: dict[int, Term], cpl: Term = 0) -> None:
        """lifecycle.finish: what an ended lookup means (``cpl``: a REFRESH lookup's bucket)."""
        if w is False:
            return
        purpose, key = self.shape.slot_purpose(slot)
        if purpose is Purpose.SELF:
            self.put(and_(w, any_(answered.values())), "self_done", (n,), True)
            self.refresh_buckets(and_(w, self.g("self_done", n)), n, 0, new_run=True)
        elif purpose is Purpose.REFRESH:
            self.refresh_buckets(w, n, add(cpl, 1))
        elif purpose is Purpose.PROVIDE:
            in_lookup = eq(self.g("phase", n, key), int(Phase.LOOKUP))
            result = self.closest(self.slot_target(n, slot), answered)
            self.announce(and_(w, in_lookup), n, key, result)
        else:  # FIND_PROVIDERS: the providers found are not tracked, the outcome is
            any_answer = any_(answered.values())
            outcome = ite(any_answer, int(Outcome.SUCCEEDED), _FAILED)
            self.report_find(w, n, key, outcome, ite(any_answer, 0, int(Reason.NO_PEERS)))

    def report_find(self, w: Term, n: int, k: int, outcome: Term, reason: Term) -> None:
        """lifecycle.report_find: answer the caller of find providers."""
        self.put(w, "f_outcome", (n, k), outcome)
        self.put(w, "f_reason", (n, k), reason)
        self.put(w, "f_at", (n, k), self.g("clock"))

    def settle(self, w: Term, n: int, slot: int, lk: dict[str, dict[int, Term]]) -> None:
        if w is False:
            return
        finished = self.is_finished(self.slot_target(n, slot), lk)
        self.write_lookup(and_(w, not_(finished)), n, slot, lk)
        done = and_(w, finished)
        cpl = self.g("ref_cpl", n)  # before clearing: the next refresh follows this bucket
        self.clear_lookup(done, n, slot)
        self.finish(done, n, slot, lk["answered"], cpl)

    def refresh_buckets(self, w: Term, n: int, first: Term, *, new_run: bool = False) -> None:
        """lifecycle.refresh_buckets: the REFRESH lookup of the first empty bucket from
        ``first`` on that lies below the deepest non-empty one (and is no deeper than 15, the
        shape's last refresh class), or none when no bucket is left or the table is empty. A
        new run (from bucket 0) first drops the bucket lookup the last run left open.

        A lookup without seeds ends at once and the model moves on to the next bucket, whose
        seeds are the same, so a run that starts with none starts nothing: that case is left
        out here rather than recursed through."""
        if w is False or not self.policy.refresh_far_buckets:
            return
        slot = self.shape.refresh_slot
        if new_run:
            self.clear_lookup(and_(w, self.g("active", n, slot)), n, slot)
        table = {p: self.g("in_table", n, p) for p in self.others(n)}
        bucket = {p: self.cfg.bucket[n, p] for p in table}
        eligible = [
            and_(
                le(first, c),
                any_(and_(t, lt(c, bucket[p])) for p, t in table.items()),
                not_(any_(and_(t, eq(bucket[p], c)) for p, t in table.items())),
            )
            for c in range(min(self.shape.refresh, MAX_REFRESH_CPLS))
        ]
        go = and_(w, any_(eligible))
        if self.policy.empty_lookup_fails_fast:
            seeds = [and_(t, not_(self.g("failed", n, p))) for p, t in table.items()]
            go = and_(go, any_(seeds))
        for c, first_eligible in enumerate(one_hot_first(eligible)):
            self.put(and_(go, first_eligible), "ref_cpl", (n,), c)
        self.start_lookup(go, n, slot)

    def request_class(self, n: int, slot: int) -> list[tuple[Term, str]]:
        """(condition, class) of the request a lookup sends: its target decides the class (a
        self or refresh target that equals a key travels as that key's FIND_NODE)."""
        purpose, key = self.shape.slot_purpose(slot)
        if purpose is Purpose.FIND_PROVIDERS:
            return [(True, f"GP{key}")]
        if purpose is Purpose.PROVIDE:
            return [(True, f"FN_KEY{key}")]
        if purpose is Purpose.SELF:
            equal = [self.cfg.key_is_id[k, n] for k in range(self.shape.keys)]
            firsts = one_hot_first(equal)
            own = [(f, f"FN_KEY{k}") for k, f in enumerate(firsts)]
            return [*own, (not_(any_(equal)), "FN_SELF")]
        out: list[tuple[Term, str]] = []
        for c in range(self.shape.refresh):
            at = eq(self.g("ref_cpl", n), c)
            equal = [self.cfg.ref_is_key[n, c, k] for k in range(self.shape.keys)]
            firsts = one_hot_first(equal)
            out += [(and_(at, f), f"FN_KEY{k}") for k, f in enumerate(firsts)]
            out.append((and_(at, not_(any_(equal))), f"FN_REF{c}"))
        return out

    def deadline(self) -> Term:
        """A new request's deadline: PROV-08's per-request deadline, or none (0)."""
        if self.policy.per_request_deadline:
            return add(self.g("clock"), self.cfg.request_deadline)
        return 0

    def can_query(self, n: int, slot: int) -> Term:
        lk = self.lookup(n, slot)
        target = self.slot_target(n, slot)
        room: Term = True
        if self.policy.respect_alpha:
            room = lt(card(lk["inflight"].values()), self.cfg.alpha)
        has_next = any_(self.next_candidate(target, lk).values())
        return and_(self.g("active", n, slot), room, has_next, not_(self.is_finished(target, lk)))

    def query(self, w: Term, n: int, slot: int) -> None:
        lk = self.lookup(n, slot)
        nxt = self.next_candidate(self.slot_target(n, slot), lk)
        branches = []
        for p in self.others(n):
            wp = and_(w, nxt[p])
            was = self.connected(n, p)
            dialable = and_(self.routable(self.g("addr", n, p)), self.can_dial(p))
            branches.append((p, wp, was, dialable))
        for p, wp, was, dialable in branches:
            self.connect(and_(wp, not_(was), dialable), n, p)
            fails = and_(wp, not_(was), not_(dialable))
            self.mark_failed(fails, n, p)
            failed = {**lk, "lfailed": {**lk["lfailed"], p: True}}
            self.settle(fails, n, slot, failed)
            sends = and_(wp, or_(was, dialable))
            for cond, cls in self.request_class(n, slot):
                self.send(and_(sends, cond), n, p, cls)
            asked = {
                **lk,
                "inflight": {**lk["inflight"], p: True},
                "deadline": {**lk["deadline"], p: self.deadline()},
            }
            self.settle(sends, n, slot, asked)

    def matching_slots(self, n: int, cls: str, replies_only: bool) -> list[int]:
        """Slots whose lookups a reply (or a refused request) of ``cls`` may belong to."""
        s = self.shape
        if class_cpl(cls) >= 0:
            # classify gives a refresh class only to a target that is no key and not the
            # node's own ID: only the REFRESH lookup can have it
            return [s.refresh_slot]
        if replies_only:
            if cls.startswith("GPR"):
                return [s.find_slot(k) for k in range(s.keys)]
            return [0, *(s.provide_slot(k) for k in range(s.keys)), s.refresh_slot]
        return list(range(s.slots))

    def first_match(self, n: int, peer: int, cls: str, replies_only: bool) -> dict[int, Term]:
        """lookup._matching / actions._refused: the oldest lookup with this target that awaits
        ``peer``."""
        target = class_target(cls, n)
        slots = self.matching_slots(n, cls, replies_only)
        match = {
            q: and_(
                self.g("active", n, q),
                slot_is(self.st, self.cfg, n, q, target),
                self.g("inflight", n, q, peer),
            )
            for q in slots
        }
        return {
            q: and_(m, *(not_(and_(match[o], self.g("older", n, o, q))) for o in slots if o != q))
            for q, m in match.items()
        }

    def on_reply(self, w: Term, n: int, src: int, cls: str, closer: dict[int, Term]) -> None:
        """lookup.on_reply then lifecycle.finish."""
        if w is False:
            return
        firsts = self.first_match(n, src, cls, replies_only=True)
        w = and_(w, any_(firsts.values()))
        for q, c in sorted(closer.items()):  # a frozenset of small ints iterates in order
            self.put(and_(w, c), "addr", (n, q), int(Addr.DIALABLE))
            if self.policy.admit_closer_peers:
                self.admit_named_peer(and_(w, c), n, q)
        self.put(w, "failed", (n, src), False)
        self.try_admit(w, n, src)
        for slot, first in firsts.items():
            lk = self.lookup(n, slot)
            updated = {
                "seen": {q: or_(lk["seen"][q], closer.get(q, False)) for q in lk["seen"]},
                "inflight": {**lk["inflight"], src: False},
                "answered": {**lk["answered"], src: True},
                "lfailed": lk["lfailed"],
                "deadline": {**lk["deadline"], src: 0},
            }
            self.settle(and_(w, first), n, slot, updated)

    def on_failure(self, w: Term, n: int, slot: int, peer: int) -> None:
        if w is False:
            return
        self.mark_failed(w, n, peer)
        lk = self.lookup(n, slot)
        updated = {
            **lk,
            "inflight": {**lk["inflight"], peer: False},
            "lfailed": {**lk["lfailed"], peer: True},
            "deadline": {**lk["deadline"], peer: 0},
        }
        self.settle(w, n, slot, updated)

    # -- provide

    def store(self, w: Term, holder: int, key: int, provider: int) -> None:
        self.put(w, "has", (holder, key, provider), True)
        self.put(w, "expires", (holder, key, provider), add(self.g("clock"), self.cfg.ttl))

    def has_announceable_address(self, n: int) -> Term:
        return or_(self.cfg.public[n], self.g("confirmed", n))

    def carries_addresses(self, n: int) -> Term:
        if self.policy.provide_with_listen_addresses:
            return self.has_announceable_address(n)
        return self.g("confirmed", n)

    def ready(self, n: int) -> Term:
        done = or_(self.g("self_done", n), not self.policy.ready_requires_self_lookup)
        return and_(any_(self.table(n)), done)

    def may_start(self, n: int) -> Term:
        return and_(self.ready(n), self.may_announce(n))

    def may_announce(self, n: int) -> Term:
        return or_(self.has_announceable_address(n), not self.policy.provide_with_listen_addresses)

    def waiting(self, n: int, k: int) -> Term:
        """provide.waiting: queued for Ready or an address (not for a retry timer)."""
        return and_(eq(self.g("phase", n, k), int(Phase.QUEUED)), not_(self.g("retry_armed", n, k)))

    def report_waiting(self, w: Term, n: int) -> None:
        """provide.report_waiting: provides that cannot start report why and stay queued."""
        if not self.policy.report_waiting_provides or w is False:
            return
        ready = self.ready(n)
        blocked = and_(w, not_(and_(ready, self.may_announce(n))))
        reason = ite(ready, int(Reason.NO_ADDRESS), int(Reason.NOT_READY))
        for k in range(self.shape.keys):
            tell = and_(blocked, self.waiting(n, k))
            self.put(tell, "outcome", (n, k), _FAILED)
            self.put(tell, "reason", (n, k), reason)

    def user_provide(self, w: Term, n: int, k: int) -> None:
        self.store(w, n, k, n)
        idx = (n, k)
        self.put(w, "providing", idx, True)
        self.put(w, "phase", idx, int(Phase.QUEUED))
        self.put(w, "outcome", idx, int(Outcome.NONE))
        self.put(w, "reason", idx, int(Reason.NONE))
        self.put(w, "backoff", idx, self.cfg.retry_base)
        self.put(w, "retry_armed", idx, False)
        self.put(w, "retry_at", idx, 0)
        self.put(w, "attempts", idx, 0)
        if not self.policy.queue_provide_until_ready:
            self.attempt(w, n, k)

    def attempt(self, w: Term, n: int, k: int) -> None:
        if w is False:
            return
        idx = (n, k)
        self.put(w, "phase", idx, int(Phase.LOOKUP))
        self.put(w, "retry_armed", idx, False)
        self.put(w, "retry_at", idx, 0)
        self.put(w, "attempts", idx, add(self.g("attempts", n, k), 1))
        self.start_lookup(w, n, self.shape.provide_slot(k))

    def clear_sends(self, w: Term, n: int, k: int) -> None:
        for p in self.others(n):
            self.put(w, "pending", (n, k, p), False)
            self.put(w, "dl_pending", (n, k, p), 0)
            self.put(w, "acked", (n, k, p), False)

    def fail(self, w: Term, n: int, k: int, reason: Reason) -> None:
        """provide.fail: report the failure with its reason and retry after a backoff."""
        if w is False:
            return
        idx = (n, k)
        retry = self.policy.retry
        if retry is Retry.DROP_ERROR:
            self.put(w, "phase", idx, int(Phase.IDLE))
            self.clear_sends(w, n, k)
            return
        clock, base = self.g("clock"), self.cfg.retry_base
        give_up: Term = False
        if retry is Retry.FIXED_THEN_GIVE_UP:
            give_up = le(self.cfg.give_up_after, self.g("attempts", n, k))
            retry_at = add(clock, base)
        else:
            backoff = self.g("backoff", n, k)
            wait = ite(le(base, backoff), backoff, base)
            doubled = add(wait, wait)
            retry_at = add(clock, wait)
            self.put(
                w, "backoff", idx, ite(le(doubled, self.cfg.retry_cap), doubled, self.cfg.retry_cap)
            )
        stop, again = and_(w, give_up), and_(w, not_(give_up))
        self.put(stop, "phase", idx, int(Phase.IDLE))
        self.put(stop, "retry_armed", idx, False)
        self.put(stop, "retry_at", idx, 0)
        self.put(again, "phase", idx, int(Phase.QUEUED))
        self.put(again, "retry_armed", idx, True)
        self.put(again, "retry_at", idx, retry_at)
        self.put(w, "outcome", idx, _FAILED)
        self.put(w, "reason", idx, int(reason))
        self.clear_sends(w, n, k)

    def announce(self, w: Term, n: int, k: int, peers: dict[int, Term]) -> None:
        if w is False:
            return
        empty = not_(any_(peers.values()))
        self.fail(and_(w, empty), n, k, Reason.NO_PEERS)
        go = and_(w, not_(empty))
        public = self.carries_addresses(n)
        for p, chosen in peers.items():
            self.send(and_(go, chosen, public), n, p, f"AP_PUB{k}")
            self.send(and_(go, chosen, not_(public)), n, p, f"AP_PRIV{k}")
            self.put(go, "pending", (n, k, p), chosen)
            self.put(go, "dl_pending", (n, k, p), ite(chosen, self.deadline(), 0))
            self.put(go, "acked", (n, k, p), False)
        self.put(go, "phase", (n, k), int(Phase.SENDING))

    def conclude(self, w: Term, n: int, k: int) -> None:
        if w is False:
            return
        acked = [self.g("acked", n, k, p) for p in self.others(n)]
        if self.policy.fail_provide_without_acks:
            none = not_(any_(acked))
            self.fail(and_(w, none), n, k, Reason.NONE_DELIVERED)
            w = and_(w, not_(none))
        idx = (n, k)
        clock = self.g("clock")
        self.store(w, n, k, n)
        self.put(w, "phase", idx, int(Phase.IDLE))
        self.put(w, "outcome", idx, int(Outcome.SUCCEEDED))
        self.put(w, "reason", idx, int(Reason.NONE))
        self.put(w, "delivered", idx, card(acked))
        self.put(w, "pub_set", idx, True)
        self.put(w, "pub_at", idx, clock)
        republish = self.policy.republish
        self.put(w, "repub_set", idx, republish)
        self.put(w, "repub_at", idx, add(clock, self.cfg.interval) if republish else 0)
        self.put(w, "backoff", idx, self.cfg.retry_base)
        self.put(w, "retry_armed", idx, False)
        self.put(w, "retry_at", idx, 0)
        for p in self.others(n):
            self.put(w, "pending", (n, k, p), False)
            self.put(w, "dl_pending", (n, k, p), 0)

    def settle_pending(self, w: Term, n: int, k: int, p: int, delivered: bool) -> None:
        if w is False:
            return
        c = and_(w, eq(self.g("phase", n, k), int(Phase.SENDING)), self.g("pending", n, k, p))
        self.put(c, "pending", (n, k, p), False)
        self.put(c, "dl_pending", (n, k, p), 0)
        if delivered:
            self.put(c, "acked", (n, k, p), True)
        else:
            self.mark_failed(c, n, p)
        left = any_(self.g("pending", n, k, q) for q in self.others(n))
        self.conclude(and_(c, not_(left)), n, k)

    def providers_to_serve(self, n: int, k: int) -> dict[int, Term]:
        clock = self.g("clock")
        return {
            c: and_(
                self.g("has", n, k, c),
                or_(
                    lt(clock, self.g("expires", n, k, c)), not self.policy.check_expiry_when_serving
                ),
            )
            for c in range(self.shape.nodes)
        }

    # -- lifecycle

    def reset_views(self, w: Term, n: int) -> None:
        for p in range(self.shape.nodes):
            for f, v in (("conn", 0), ("proto", 0), ("addr", 0), ("in_table", False)):
                self.put(w, f, (n, p), v)
            self.put(w, "failed", (n, p), False)
            if p != n:
                self.put(w, "boot_tried", (n, p), False)

    def reset_node(self, w: Term, n: int, *, up: bool) -> None:
        """The NodeState that lifecycle.start (up) or lifecycle.crash (down) builds."""
        self.put(w, "up", (n,), up)
        self.put(w, "mode", (n,), initial_mode(self.g("setting", n), False))
        for f in ("candidate", "confirmed", "dial_back_tried", "self_done"):
            self.put(w, f, (n,), False)
        self.put(w, "refresh_armed", (n,), up)
        self.put(
            w, "refresh_at", (n,), add(self.g("clock"), self.cfg.refresh_interval) if up else 0
        )
        self.reset_views(w, n)
        for slot in range(self.shape.slots):
            self.clear_lookup(w, n, slot)
        for k in range(self.shape.keys):
            idx = (n, k)
            queued = and_(up, self.g("providing", n, k))
            self.put(w, "phase", idx, ite(queued, int(Phase.QUEUED), int(Phase.IDLE)))
            self.put(w, "backoff", idx, ite(queued, self.cfg.retry_base, 0))
            for f, v in (
                ("outcome", 0),
                ("reason", 0),
                ("f_outcome", 0),
                ("f_reason", 0),
                ("f_at", 0),
                ("delivered", 0),
                ("attempts", 0),
                ("retry_armed", False),
                ("retry_at", 0),
                ("repub_set", False),
                ("repub_at", 0),
                ("pub_set", False),
                ("pub_at", 0),
            ):
                self.put(w, f, idx, v)
            self.clear_sends(w, n, k)

    def start(self, w: Term, n: int) -> None:
        self.reset_node(w, n, up=True)

    def crash(self, w: Term, n: int) -> None:
        for a, b in self.shape.pairs():
            if n in (a, b):
                for i in range(len(self.shape.classes)):
                    self.put(w, "count", (a, b, i), 0)
                self.put(w, "last_srv", (a, b), False)
                self.put(w, "first_srv", (a, b), False)
                self.put(w, "first_push", (a, b), False)
                self.put(w, "last_push", (a, b), False)
                self.put(w, "head_ident", (a, b), 0)
                for i, cls in enumerate(self.shape.classes):
                    if class_family(cls) == "reply":
                        for c in range(self.shape.nodes):
                            if c not in (a, b):
                                self.put(w, "rep_closer", (a, b, i, c), False)
                for k in range(self.shape.keys):
                    for c in range(self.shape.nodes):
                        if c not in (a, b):
                            self.put(w, "claims", (a, b, k, c), False)
        for p in self.others(n):
            self.disconnect(and_(w, self.connected(n, p)), n, p)
        self.reset_node(w, n, up=False)

    def bootstrap_candidate(self, n: int, p: int) -> Term:
        connected = card(
            and_(self.cfg.bootstrap[n, q], self.connected(n, q)) for q in self.others(n)
        )
        return and_(
            self.g("up", n),
            lt(connected, 2),
            self.cfg.bootstrap[n, p],
            not_(self.g("boot_tried", n, p)),
        )

    def dial_bootstrap(self, w: Term, n: int, p: int) -> None:
        before = self.connected(n, p)
        dialable = self.can_dial(p)
        self.put(w, "boot_tried", (n, p), True)
        self.connect(and_(w, not_(before), dialable), n, p)
        self.mark_failed(and_(w, not_(before), not_(dialable)), n, p)
        self.fail_open(and_(w, not_(before), dialable), n, p)

    def refresh(self, w: Term, n: int) -> None:
        if w is False:
            return
        self.report_waiting(w, n)
        self.recover_low_table(w, n)
        empty = not_(any_(self.table(n)))
        rearm = or_(not_(empty), self.policy.rearm_refresh_when_empty)
        self.put(w, "refresh_armed", (n,), rearm)
        later = add(self.g("clock"), self.cfg.refresh_interval)
        self.put(w, "refresh_at", (n,), ite(rearm, later, 0))
        for p in self.others(n):
            redial = and_(w, empty, self.policy.redial_bootstrap_when_empty)
            self.put(redial, "boot_tried", (n, p), False)
        self.start_lookup(and_(w, not_(self.g("active", n, 0))), n, 0)

    def recover_low_table(self, w: Term, n: int, skip: int = -1) -> None:
        """routing.recover_low_table: a table below k re-evaluates its connected peers; after
        the removal of ``skip`` it leaves that peer out and stops once the table holds k."""
        if w is False:
            return
        low = and_(w, lt(card(self.table(n)), self.cfg.k))
        for p in self.others(n):
            if p == skip:
                continue
            room = lt(card(self.table(n)), self.cfg.k) if skip >= 0 else True
            self.try_admit(and_(low, room, self.connected(n, p)), n, p)

    def timers(self) -> list[tuple[Term, Term]]:
        """(armed, time) of every timer lifecycle.next_deadline looks at: running nodes only."""
        s = self.shape
        timed = self.policy.per_request_deadline
        out: list[tuple[Term, Term]] = []
        for n in range(s.nodes):
            up = self.g("up", n)
            out.append((and_(up, self.g("refresh_armed", n)), self.g("refresh_at", n)))
            for k in range(s.keys):
                out.append((and_(up, self.g("retry_armed", n, k)), self.g("retry_at", n, k)))
                out.append((and_(up, self.g("repub_set", n, k)), self.g("repub_at", n, k)))
                for p in self.others(n):
                    armed = and_(up, timed, self.g("pending", n, k, p))
                    out.append((armed, self.g("dl_pending", n, k, p)))
            for slot in range(s.slots):
                for p in self.others(n):
                    armed = and_(up, timed, self.g("inflight", n, slot, p))
                    out.append((armed, self.g("dl_inflight", n, slot, p)))
        return out

    def next_deadline(self) -> tuple[Term, Term]:
        """lifecycle.next_deadline: whether any timer is armed, and the earliest time."""
        has: Term = False
        earliest: Term = 0
        for armed, at in self.timers():
            take = and_(armed, or_(not_(has), lt(at, earliest)))
            earliest = ite(take, at, earliest)
            has = or_(has, armed)
        return has, earliest

    def tick_enabled(self) -> Term:
        has, earliest = self.next_deadline()
        late_enough = True if self.cfg.horizon is None else le(earliest, self.cfg.horizon)
        return and_(has, lt(self.g("clock"), earliest), late_enough)

    def tick(self) -> None:
        """Advance the clock to the next deadline and fire every timer due (fire_timers)."""
        _, now = self.next_deadline()
        self.st.terms["clock"][()] = now
        timed = self.policy.per_request_deadline
        s = self.shape
        for n in range(s.nodes):
            up = self.g("up", n)
            # Lookups oldest first, as fire_timers walks them (a failure's removal may refill
            # the table, so the order shows): the lookup at position i is the active one that
            # i active lookups are older than. Lookups a failure starts send nothing yet.
            active = {q: self.g("active", n, q) for q in range(s.slots)}
            older = {
                q: card(and_(active[o], self.g("older", n, o, q)) for o in active if o != q)
                for q in active
            }
            for position in range(s.slots):
                for slot in range(s.slots):
                    here = and_(active[slot], eq(older[slot], position))
                    for p in self.others(n):
                        due = and_(
                            here,
                            up,
                            timed,
                            self.g("active", n, slot),
                            self.g("inflight", n, slot, p),
                            le(self.g("dl_inflight", n, slot, p), now),
                        )
                        self.on_failure(due, n, slot, p)
            for k in range(s.keys):
                dues = {
                    p: and_(
                        up,
                        timed,
                        self.g("pending", n, k, p),
                        le(self.g("dl_pending", n, k, p), now),
                    )
                    for p in self.others(n)
                }
                # In the order announce sent them, nearest the key first (the order shows
                # when a removal refills the table).
                d = self.cfg.dist["key", k]
                rank = {p: card(lt(d[q], d[p]) for q in dues if q != p) for p in dues}
                for position in range(len(dues)):
                    for p, due in dues.items():
                        self.settle_pending(and_(due, eq(rank[p], position)), n, k, p, False)
                phase = self.g("phase", n, k)
                retry = and_(
                    up,
                    eq(phase, int(Phase.QUEUED)),
                    self.g("retry_armed", n, k),
                    le(self.g("retry_at", n, k), now),
                )
                republish = and_(
                    up,
                    eq(phase, int(Phase.IDLE)),
                    self.g("repub_set", n, k),
                    le(self.g("repub_at", n, k), now),
                )
                self.attempt(retry, n, k)
                self.put(republish, "repub_set", (n, k), False)
                self.put(republish, "repub_at", (n, k), 0)
                self.attempt(republish, n, k)
            due = and_(up, self.g("refresh_armed", n), le(self.g("refresh_at", n), now))
            self.refresh(due, n)

    def react(self) -> None:
        """lifecycle.react, after every action."""
        for n in range(self.shape.nodes):
            up = self.g("up", n)
            first = and_(
                up,
                any_(self.table(n)),
                not_(self.g("self_done", n)),
                not_(self.g("active", n, 0)),
            )
            self.start_lookup(first, n, 0)
            if self.policy.queue_provide_until_ready:
                go = and_(up, self.may_start(n))
                blocked = and_(up, not_(go), self.ready(n))  # Ready, no address: say so
                for k in range(self.shape.keys):
                    self.attempt(and_(go, self.waiting(n, k)), n, k)
                self.report_waiting(blocked, n)

    # -- deliver

    def pop(self, src: int, dst: int, cls: str) -> tuple[Term, dict[int, Term]]:
        """Take the oldest message of ``cls`` off the channel, which the guard made the head.

        Returns the kad flag of a popped identify (the tracked oldest flag) and the closer peers
        of a popped reply (the tracked oldest reply's). What the channel holds behind it is
        tracked in aggregate only: after an identify, the next oldest identify's flag is free
        unless one identify is left (then it is the newest); after a reply, the next reply of its
        class has free closer peers; after any message but an identify, how many identifies now
        lead the channel is free (between none and all of them) unless nothing else is left.
        """
        i = self.cls_index(cls)
        family = class_family(cls)
        count = self.g("count", src, dst, i)
        left = add(self.identify_count(src, dst), -1)
        self.put(True, "count", (src, dst, i), add(count, -1))
        if family == "identify":
            flag = self.g("first_srv", src, dst)
            self.put(True, "head_ident", (src, dst), add(self.g("head_ident", src, dst), -1))
            for field, last, name in (
                ("first_srv", "last_srv", "next_oldest_kad"),
                ("first_push", "last_push", "next_oldest_push"),
            ):
                nxt = ite(
                    eq(left, 1),
                    self.g(last, src, dst),
                    ite(eq(left, 0), False, self.fresh_bool(name)),
                )
                self.put(True, field, (src, dst), nxt)
                self.put(eq(left, 0), last, (src, dst), False)
            return flag, {}
        closer: dict[int, Term] = {}
        if family == "reply":
            none_left = eq(count, 1)
            for p in range(self.shape.nodes):
                if p not in (src, dst):
                    closer[p] = self.g("rep_closer", src, dst, i, p)
                    after = ite(none_left, False, self.fresh_bool(f"next_closer{p}"))
                    self.put(True, "rep_closer", (src, dst, i, p), after)
        identifies = self.identify_count(src, dst)
        head = self.fresh_int("head_ident")
        self.side.append(z(and_(le(0, head), le(head, identifies))))
        only_identifies = eq(self.other_count(src, dst), 0)
        self.put(True, "head_ident", (src, dst), ite(only_identifies, identifies, head))
        return False, closer

    def deliver(self, src: int, dst: int, cls: str) -> None:
        family = class_family(cls)
        up = self.g("up", dst)
        if family == "identify":
            flag, _ = self.pop(src, dst, cls)
            self.on_identify(up, dst, src, flag, cls == "IDENTIFY")
            return
        claimed: dict[int, Term] = {}
        if cls.startswith("AP_FORGED"):
            claimed = self.out.claimed = self.pick_forged(src, dst, class_key(cls))
        _, contents = self.pop(src, dst, cls)
        self.out.delivered_closer = contents
        w = and_(up, self.connected(dst, src))
        if family == "reply":
            self.on_reply(w, dst, src, cls, contents)
            return
        serve = w
        if self.policy.client_refuses_requests:
            refused = and_(w, not_(self.g("mode", dst)))
            serve = and_(w, self.g("mode", dst))
            self.refused(refused, src, dst, cls)
        target = class_target(cls, src)
        if self.policy.admit_on_inbound_request:
            self.try_admit(serve, dst, src, evidence=False)
        if family == "add_provider":
            self.on_add_provider(serve, dst, src, cls, claimed)
            return
        closer = self.closest_known(dst, target, src, replying=True)
        own = self.cfg.same_target(target, ("id", dst))
        self.out.reply_target_own = own
        if cls.startswith("FN"):
            if not self.policy.answer_lookup_for_own_id:
                closer = {q: and_(c, not_(own)) for q, c in closer.items()}
            providers: dict[int, Term] = {}
        else:
            providers = self.providers_to_serve(dst, class_key(cls))
        self.out.reply_sent = serve
        self.out.reply_closer = {q: and_(serve, c) for q, c in closer.items()}
        self.out.reply_providers = {c: and_(serve, t) for c, t in providers.items()}
        # What travels: the closer peers other than the two ends (the responder is never in its
        # own table, never_self; closest_known leaves the requester out).
        self.send(serve, dst, src, reply_class(cls), closer=closer)

    def pick_forged(self, src: int, dst: int, k: int) -> dict[int, Term]:
        """The claimed provider of the forged ADD_PROVIDER taken off the channel (free among
        those claimed), and what the channel's claims become."""
        cands = [c for c in range(self.shape.nodes) if c not in (src, dst)]
        pick = {c: self.fresh_bool(f"claimed{c}") for c in cands}
        self.side.append(z(card(pick.values())) == 1)
        self.side += [z(implies(pick[c], self.g("claims", src, dst, k, c))) for c in cands]
        left = add(self.g("count", src, dst, self.cls_index(f"AP_FORGED{k}")), -1)
        for c in cands:
            before = self.g("claims", src, dst, k, c)
            after = self.fresh_bool(f"claims_after{c}")
            self.side += [
                z(implies(after, before)),
                z(implies(and_(before, not_(pick[c])), after)),
                z(implies(eq(left, 0), not_(after))),
            ]
            self.put(True, "claims", (src, dst, k, c), after)
        return pick

    def refused(self, w: Term, src: int, dst: int, cls: str) -> None:
        """actions._refused: the requester ``src`` sees its stream to ``dst`` reset."""
        if w is False:
            return
        if class_family(cls) == "add_provider":
            if not cls.startswith("AP_FORGED"):  # a refused forgery settles nothing
                self.settle_pending(w, src, class_key(cls), dst, delivered=False)
            return
        for slot, first in self.first_match(src, dst, cls, replies_only=False).items():
            self.on_failure(and_(w, first), src, slot, dst)

    def on_add_provider(
        self, w: Term, dst: int, src: int, cls: str, claimed: dict[int, Term]
    ) -> None:
        if w is False:
            return
        k = class_key(cls)
        if cls.startswith("AP_PUB"):
            self.store(w, dst, k, src)
        elif cls.startswith("AP_PRIV"):
            if not self.policy.validate_provider_records:
                self.store(w, dst, k, src)
        elif not self.policy.validate_provider_records:
            for c, chosen in claimed.items():
                self.store(and_(w, chosen), dst, k, c)
        if not cls.startswith("AP_FORGED"):  # a forgery leaves the forger's own one pending
            self.settle_pending(w, src, k, dst, delivered=True)

    # -- the ghost (ghost.observe), written on the state after the step

    def reset_ghost(self, w: Term, n: int) -> None:
        """A fresh Ghost that keeps the publishes (a start, or the crash of a running node)."""
        for f in GHOST_FIELDS:
            if f not in GHOST_KEPT:
                for idx in self.st.terms[f]:
                    if idx[0] == n:
                        self.put(w, f, idx, 0 if FIELD[f].sort == "int" else False)

    def publish(self, w: Term, holder: int, key: int, provider: int) -> None:
        self.put(w, "g_pub_set", (holder, key, provider), True)
        self.put(w, "g_pub_at", (holder, key, provider), self.g("clock"))

    def observe_node(self, pre: SymState, inst: Instance, out: Outputs, n: int) -> None:
        """``ghost._observe_node`` for node ``n``, for the ghost fields the encoding tracks:
        ``pre`` is the state before the step, ``self.st`` the state after it (ghost variables
        still as before)."""
        kind = inst.kind
        if kind in ("start", "restart") and inst.node == n:
            self.reset_ghost(True, n)
            return
        old_up, new_up = pre("up", n), self.g("up", n)
        if new_up is old_up:  # the step left it as it was (the same term): no crash
            w = old_up
        else:
            self.reset_ghost(and_(old_up, not_(new_up)), n)  # crashed: memory is lost
            w = and_(old_up, new_up)
        if w is False:
            return
        s = self.shape
        clock = self.g("clock")
        # The user's calls and the outcomes the node reported.
        if kind == "provide" and inst.node == n:
            self.publish(w, n, inst.key, n)
        for k in range(s.keys):
            done = [
                (f, int(Outcome.SUCCEEDED) if f == "outcome" else int(Phase.IDLE))
                for f in ("outcome", "phase")
            ]
            now = and_(*(eq(self.g(f, n, k), v) for f, v in done))
            before = and_(*(eq(pre(f, n, k), v) for f, v in done))
            self.publish(and_(w, now, not_(before)), n, k, n)
        # What the node received.
        if kind == "deliver" and inst.peer == n:
            p, cls = inst.node, inst.cls
            family = class_family(cls)
            open_ = and_(w, ne(pre("conn", n, p), int(Conn.NONE)))
            if family == "identify":
                server = pre("first_srv", p, n)
                self.put(w, "g_heard", (n, p), True)
                # After its connection closed an identify may add evidence, never take it away.
                self.put(
                    w, "g_server", (n, p), ite(open_, server, or_(server, self.g("g_server", n, p)))
                )
                self.put(open_, "g_unresponsive", (n, p), False)
                if cls == "IDENTIFY":
                    few = lt(card(pre("g_observer", n, q) for q in self.others(n)), 2)
                    self.put(and_(open_, few), "g_observer", (n, p), True)
            elif family == "reply":
                self.put(open_, "g_heard", (n, p), True)
                self.put(open_, "g_server", (n, p), True)
                self.put(open_, "g_unresponsive", (n, p), False)
                if cls.startswith("FNR"):
                    own = self.cfg.same_target(class_target(cls, n), ("id", n))
                    self.put(and_(open_, own), "g_self_answered", (n,), True)
            else:
                # A request: the peer is alive; a server accepts an ADD_PROVIDER naming its sender.
                self.put(open_, "g_unresponsive", (n, p), False)
                if cls.startswith(("AP_PUB", "AP_PRIV")):
                    self.publish(and_(open_, pre("mode", n)), n, class_key(cls), p)
        elif kind == "deliver" and inst.node == n and inst.cls.startswith(("AP_PUB", "AP_PRIV")):
            # Our ADD_PROVIDER reached a running holder over a live connection and it stored it.
            d, k = inst.peer, class_key(inst.cls)
            fresh = and_(
                pre("up", d),
                ne(pre("conn", d, n), int(Conn.NONE)),
                self.g("has", d, k, n),
                eq(self.g("expires", d, k, n), add(clock, self.cfg.ttl)),
            )
            self.put(and_(w, fresh), "g_stored", (n, k, d), True)
        # A batch of ADD_PROVIDER naming itself starts a new round for its key.
        for k in range(s.keys):
            own = (f"AP_PUB{k}", f"AP_PRIV{k}")
            sent = and_(w, any_(self.sent_any(pre, inst, n, q, own) for q in self.others(n)))
            for q in self.others(n):
                self.put(sent, "g_stored", (n, k, q), False)
        # Dials: a failed dial makes the peer unresponsive, a successful one shows it alive.
        dialed: dict[int, Term] = {}
        if kind == "dial_bootstrap" and inst.node == n:
            dialed = {inst.peer: True}
        elif kind == "query" and inst.node == n:
            before_step = _Effect(self.enc, pre, "observe-pre")
            target = before_step.slot_target(n, inst.slot)
            dialed = before_step.next_candidate(target, before_step.lookup(n, inst.slot))
        for q, chosen in dialed.items():
            # A dial on a live connection is no news.
            dials = and_(w, chosen, eq(pre("conn", n, q), int(Conn.NONE)))
            self.put(dials, "g_unresponsive", (n, q), not_(self.connected(n, q)))
        if kind == "dial_back" and inst.node == n:
            self.put(and_(w, self.cfg.public[n]), "g_dialed_back", (n,), True)

    def sent_any(
        self, pre: SymState, inst: Instance, n: int, q: int, classes: tuple[str, ...]
    ) -> Term:
        return sent_in_step(pre, inst, self.st, n, q, classes)

    # -- guards and effects per kind

    def at_head(self, src: int, dst: int, cls: str) -> Term:
        """A message of ``cls`` may be the oldest on the channel: identifies lead it and the
        oldest is of ``cls``, or none does and one of ``cls`` is in flight (the order among the
        other classes is not tracked)."""
        present = lt(0, self.g("count", src, dst, self.cls_index(cls)))
        head = self.g("head_ident", src, dst)
        if class_family(cls) == "identify":
            kind = self.g("first_push", src, dst)
            return and_(present, lt(0, head), kind if cls == "PUSH" else not_(kind))
        return and_(present, eq(head, 0))

    def budget_fault(self, kind: str) -> Term:
        return and_(lt(0, self.g("faults")), self.cfg.fault[kind])

    def spend(self) -> None:
        self.put(True, "faults", (), add(self.g("faults"), -1))

    def guard(self, i: Instance) -> Term:
        n, p = i.node, i.peer
        kind = i.kind
        if kind == "start":
            return self.g("starts", n)
        if kind == "restart":
            return and_(
                self.budget_fault("restart"), not_(self.g("up", n)), not_(self.g("starts", n))
            )
        if kind == "provide":
            return and_(self.g("prov_left", n, i.key), self.g("up", n))
        if kind == "find_providers":
            return and_(self.g("find_left", n, i.key), self.g("up", n))
        if kind == "set_mode":
            return and_(self.g("mode_left", n, i.setting), self.g("up", n))
        if kind == "tick":
            # actions._tick: time passes only while no node has a step of its own to take.
            local = [self.guard(j) for j in self.enc.instances if j.kind in _LOCAL_KINDS]
            return and_(self.tick_enabled(), not_(any_(local)))
        if kind == "crash":
            return and_(self.budget_fault("crash"), self.g("up", n))
        if kind == "disconnect":
            return and_(self.budget_fault("disconnect"), self.connected(n, p))
        if kind == "lose":
            return and_(self.budget_fault("lose"), self.at_head(n, p, i.cls))
        if kind == "forge_add_provider":
            return and_(
                self.budget_fault("forge_add_provider"), self.g("up", n), self.connected(n, p)
            )
        if kind == "deliver":
            return self.at_head(n, p, i.cls)
        if kind == "dial_bootstrap":
            return self.bootstrap_candidate(n, p)
        if kind == "query":
            return and_(self.g("up", n), self.can_query(n, i.slot))
        if kind == "dial_back":
            return and_(
                self.policy.dial_back_candidates,
                self.g("up", n),
                self.g("candidate", n),
                not_(self.g("confirmed", n)),
                not_(self.g("dial_back_tried", n)),
            )
        raise ValueError(f"unknown action kind {kind!r}")

    def apply(self, i: Instance) -> None:
        n, p = i.node, i.peer
        kind = i.kind
        if kind == "start":
            self.put(True, "starts", (n,), False)
            self.start(True, n)
        elif kind == "restart":
            self.start(True, n)
        elif kind == "provide":
            self.put(True, "prov_left", (n, i.key), False)
            self.user_provide(True, n, i.key)
        elif kind == "find_providers":
            self.put(True, "find_left", (n, i.key), False)
            slot = self.shape.find_slot(i.key)
            idle, ready = not_(self.g("active", n, slot)), self.ready(n)
            self.report_find(and_(idle, not_(ready)), n, i.key, _FAILED, int(Reason.NOT_READY))
            self.start_lookup(and_(idle, ready), n, slot)
        elif kind == "set_mode":
            self.put(True, "mode_left", (n, i.setting), False)
            self.put(True, "setting", (n,), i.setting)
            self.update_mode(True, n)
        elif kind == "tick":
            self.tick()
        elif kind == "crash":
            self.crash(True, n)
            self.spend()
        elif kind == "disconnect":
            self.disconnect(True, n, p)
            self.spend()
        elif kind == "lose":
            if i.cls.startswith("AP_FORGED"):
                self.pick_forged(n, p, class_key(i.cls))
            self.pop(n, p, i.cls)
            self.spend()
        elif kind == "forge_add_provider":
            self.send(True, n, p, f"AP_FORGED{i.key}")
            self.put(True, "claims", (n, p, i.key, i.claimed), True)
            self.spend()
        elif kind == "deliver":
            self.deliver(n, p, i.cls)
        elif kind == "dial_bootstrap":
            self.dial_bootstrap(True, n, p)
        elif kind == "query":
            self.query(True, n, i.slot)
        elif kind == "dial_back":
            self.dial_back(True, n)
        else:
            raise ValueError(f"unknown action kind {kind!r}")


__all__ = [
    "EXACT_EXCEPT",
    "EXACT_GROUPS",
    "FIELDS",
    "GROUPS",
    "MAX_REFRESH_CPLS",
    "Encoding",
    "Instance",
    "NotRepresentable",
    "Outputs",
    "Shape",
    "Step",
    "SymConfig",
    "SymState",
    "Values",
    "class_cpl",
    "class_family",
    "classify",
    "closest",
    "config_shape",
    "distances",
    "each_channel",
    "each_node",
    "each_provide",
    "each_record",
    "each_send",
    "each_slot",
    "each_slot_peer",
    "each_view",
    "identify_count",
    "initial_mode",
    "instance_of",
    "instances",
    "is_exact",
    "lookup_finished",
    "lookup_of",
    "lookup_pool",
    "project",
    "refresh_target",
    "sent_in_step",
    "shape_of",
    "slot_distances",
    "slot_is",
    "slot_target",
]
