"""The requirements as checks on the model: invariants, step checks and progress properties.

Each check returns a list of violations (empty when the requirement holds), each naming the
node and what is wrong. ``NODE_INVARIANTS`` and ``WORLD_INVARIANTS`` run on every reachable
state, ``STEP_CHECKS`` on every transition, ``PROGRESS`` on every quiescent state.

Two kinds of check, marked and enforced:

* **observable** checks (marked ``@observable``) take only the observable projection of
  ``observe.py``: an ``ObservedNode``, a tuple of them, or an ``ObservedStep`` (the nodes
  before and after a step, the message delivered and the messages sent). They read what a
  running node can show plus the observer's ghost (``ghost.py``), never the flags the node
  keeps about itself, so the same check can judge a live node;
* **internal** checks read model internals (timers, lookup bookkeeping, backoff, ``failed``
  marks) and say so in their docstring; :func:`observability` reports a requirement as
  observable only when every one of its checks is.

Checks that need history (was the self-lookup answered, when was a record last published and
by whom, which holders stored it, what did the user ask) read the ghost, which is written only
by ``ghost.observe`` from the actions and messages themselves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

import attrs

from kadspec.models.actions import Action
from kadspec.models.config import REPUBLISH_MARGIN, Config, ModeSetting, Reach
from kadspec.models.ghost import OPERATIONS
from kadspec.models.metric import closest, common_prefix_length
from kadspec.models.observe import (
    ObservedNode,
    ObservedStep,
    is_observable,
    node_events,
    observable,
    outcome_bound,
    project_all,
    project_node,
)
from kadspec.models.policy import Policy
from kadspec.models.requirements_registry import requirement, requirements_of
from kadspec.models.state import (
    Addr,
    Conn,
    Kind,
    Message,
    Mode,
    NodeState,
    Outcome,
    Phase,
    Proto,
    Purpose,
    World,
    initial_mode,
)
from kadspec.spec import requirements as spec_requirements

StateCheck = Callable[[World, Policy], list[str]]
NodeCheck = Callable[..., list[str]]  # (Config, int, NodeState) or, observable, (ObservedNode)
StepCheck = Callable[..., list[str]]  # (World, Action, World, Policy) or (ObservedStep)
ProgressCheck = Callable[..., list[str]]  # (World, Policy) or (tuple[ObservedNode, ...])

Observability = Literal["observable", "internal"]


@attrs.frozen
class Violation:
    """A requirement broken in a state (or by a transition), with what was seen."""

    requirement: str
    detail: str


# --- invariants on one node -----------------------------------------------------------------
# Node invariants see one node (observable ones its projection, internal ones its state and the
# fixed configuration); they are memoized per node state, because the same node state recurs in
# many global states.


@requirement("BOOT-02")
def operations_wait_for_self_lookup(config: Config, n: int, s: NodeState) -> list[str]:
    """Internal (lookup bookkeeping): no provide or find network work before a reply to the
    first self-lookup arrived (the ghost's record, not the node's ``self_lookup_done``)."""
    if not s.up or s.ghost.self_answered:
        return []
    if any(lk.purpose is not Purpose.SELF for lk in s.lookups) or any(
        p.phase is Phase.SENDING for p in s.provides
    ):
        return [
            f"{config.name(n)} runs a provide or find before its first self-lookup was answered"
        ]
    return []


@requirement("BOOT-03")
def refresh_stays_armed(config: Config, n: int, s: NodeState) -> list[str]:
    """Internal (timers): with auto-refresh on, a running node keeps its refresh timer armed."""
    return (
        [f"{config.name(n)} runs with no refresh timer armed"]
        if s.up and s.refresh_at is None
        else []
    )


@requirement("ADDR-03")
@observable
def one_observation_never_confirms(o: ObservedNode) -> list[str]:
    """A confirmed external address needs a successful dial-back or two distinct observers."""
    g = o.ghost
    if o.confirmed and not g.dialed_back and len(g.observers) < 2:
        seen = len(g.observers)
        return [
            f"{o.name} confirmed an external address after {seen} observation(s) and no "
            "successful dial-back"
        ]
    return []


@requirement("RT-02")
@observable
def entries_have_positive_evidence(o: ObservedNode) -> list[str]:
    """An entry whose protocols the node learned is backed by positive evidence: its newest
    identify advertised kad, or it answered a kad request. A request is never evidence."""
    g = o.ghost
    return [
        f"{o.name} holds {o.names[p]} in its table, but {o.names[p]} never advertised kad "
        "nor answered a kad request (a request is no evidence)"
        for p in o.table()
        if p in g.heard and p not in g.servers
    ]


@requirement("RT-03")
@observable
def unknown_protocols_are_no_evidence(o: ObservedNode) -> list[str]:
    """No entry for a peer whose protocols are unknown: neither identify nor a kad response
    came from it since the node started (admission is deferred, never granted fail-open)."""
    return [
        f"{o.name} admitted {o.names[p]} before learning its protocols (no identify, no kad "
        "response)"
        for p in o.table()
        if p not in o.ghost.heard
    ]


@requirement("RT-04")
@observable
def table_entries_are_dialable(o: ObservedNode) -> list[str]:
    return [
        f"{o.name} routes to {o.names[p]} with only a {v.address.name.lower()} address "
        "(not dialable)"
        for p, v in enumerate(o.peers)
        if v.in_table and v.address is not Addr.DIALABLE
    ]


@requirement("RT-05")
@observable
def buckets_hold_at_most_k(o: ObservedNode) -> list[str]:
    sizes = Counter(o.bucket(p) for p in o.table())
    return [
        f"{o.name}'s bucket {b} holds {c} peers (k = {o.k})" for b, c in sizes.items() if c > o.k
    ]


@requirement("RT-07")
@observable
def never_self(o: ObservedNode) -> list[str]:
    return [f"{o.name} holds itself in its table"] if o.peers[o.node].in_table else []


@requirement("PROV-01")
def provider_stores_own_record(config: Config, n: int, s: NodeState) -> list[str]:
    """Internal (provide bookkeeping): the own record is stored before announcing, and one
    round sends ADD_PROVIDER to at most k peers."""
    found = []
    for k, p in enumerate(s.provides):
        if p.phase in (Phase.LOOKUP, Phase.SENDING) and not any(
            r.key == k and r.provider == n for r in s.records
        ):
            found.append(f"{config.name(n)} announces key{k} without storing its own record first")
        if len(p.pending) + len(p.acked) > config.timing.k:
            found.append(f"{config.name(n)} sends ADD_PROVIDER(key{k}) to more than k peers")
    return found


@requirement("PROV-03")
@observable
def records_name_their_sender(o: ObservedNode) -> list[str]:
    """Every stored record was published by the provider it names (an ADD_PROVIDER sent by the
    provider itself, or the node's own provide), by the ghost's account."""
    return [
        f"{o.name} stores a record naming {o.names[r.provider]} as provider of key{r.key}, "
        f"but {o.names[r.provider]} never sent it one"
        for r in o.records
        if o.ghost.published(r.key, r.provider) is None
    ]


@requirement("FIND-03")
def alpha_in_flight(config: Config, n: int, s: NodeState) -> list[str]:
    """Internal (lookup bookkeeping)."""
    alpha = config.timing.alpha
    return [
        f"{config.name(n)} has {len(lk.inflight)} requests in flight (alpha = {alpha})"
        for lk in s.lookups
        if len(lk.inflight) > alpha
    ]


@requirement("FIND-04")
def lookups_stop(config: Config, n: int, s: NodeState) -> list[str]:
    """Internal (lookup bookkeeping): a lookup with live candidates ends once the k closest live
    peers it saw have answered, or nothing is left to ask or await. Stopping earlier, once the
    beta closest answered, is allowed (this only says when it must have stopped)."""
    found = []
    k = config.timing.k
    for lk in s.lookups:
        live = lk.seen - lk.failed
        if not live:
            continue  # BOOT-04's case: a lookup with no candidate
        top = closest(lk.target, live, config.ids, k)
        asked = lk.answered | lk.failed | frozenset(p for p, _ in lk.inflight)
        done = all(p in lk.answered for p in top) or (not (lk.seen - asked) and not lk.inflight)
        if done:
            found.append(
                f"{config.name(n)}'s {lk.purpose.name} lookup goes on after its k closest "
                "answered or nothing was left"
            )
    return found


@requirement("FIND-05")
def lookups_ask_known_peers(config: Config, n: int, s: NodeState) -> list[str]:
    """Internal (lookup bookkeeping)."""
    return [
        f"{config.name(n)}'s lookup asks {config.name(p)}, which it never learned"
        for lk in s.lookups
        for p, _ in lk.inflight
        if p not in lk.seen
    ]


# --- invariants that read the clock -----------------------------------------------------------
# These compare ghost times with the clock; they read the nodes and the clock only.


def _outcome_bound(config: Config) -> int | None:
    return outcome_bound(config)


@requirement("BOOT-05")
@observable
def operations_answered_in_time(o: ObservedNode, now: int) -> list[str]:
    """Every provide and find the user asked for is answered (an outcome, or a failure with a
    reason) within the stated bound, judged from the calls the ghost saw."""
    bound = o.outcome_bound
    if bound is None or not o.up:
        return []
    return [
        f"{o.name} was asked to {OPERATIONS[op]} key{key} at {at} and has reported no outcome "
        f"by {now} (bound {bound})"
        for op, key, at in sorted(o.ghost.asked)
        if now > at + bound
    ]


@requirement("BOOT-05")
def provides_answered_in_time(world: World, policy: Policy) -> list[str]:
    """BOOT-05's bounded part on every node (observable: runs on each node's projection)."""
    if not any(s.ghost.asked for s in world.nodes) or _outcome_bound(world.config) is None:
        return []  # nothing asked and unanswered: skip projecting
    return [d for o in project_all(world) for d in operations_answered_in_time(o, world.clock)]


@requirement("PROV-05")
def republish_timer_within_bound(config: Config, n: int, s: NodeState) -> list[str]:
    """Internal (timers): a provider that reported success arms its republish timer before
    its records expire (published_at + TTL - margin); the observable check above only fires
    once a record actually lapsed, which a short horizon may never reach."""
    margin = REPUBLISH_MARGIN
    bound = config.timing.record_ttl - margin
    found = []
    for k, p in enumerate(s.provides):
        if not (
            s.up
            and p.providing
            and p.outcome is Outcome.SUCCEEDED
            and p.phase is Phase.IDLE
            and p.published_at is not None
        ):
            continue
        if p.republish_at is None or p.republish_at >= p.published_at + bound:
            found.append(
                f"{config.name(n)} provides key{k} with no republish scheduled before its "
                f"records expire ({bound} ticks after publication)"
            )
    return found


# --- step checks ------------------------------------------------------------------------------


def sent_messages(pre: World, action: Action, post: World) -> list[Message]:
    """The messages a transition put on the network.

    Channels are FIFO: a step appends to channels, and a delivery or a loss first takes the
    oldest message off the one channel its message travels on.
    """
    # Every step check asks for the same transition's messages in turn: keep the last answer.
    # The cache holds its two worlds, so identity cannot be confused with a recycled id.
    last_pre, last_post, last_sent = _SENT[0]
    if last_pre is pre and last_post is post:
        return last_sent
    popped = -1
    if action.message is not None and action.kind in ("deliver", "lose"):
        popped = action.message.src * len(pre.nodes) + action.message.dst
    sent: list[Message] = []
    for index, (before, after) in enumerate(zip(pre.network, post.network, strict=True)):
        if after is not before:
            sent.extend(after[len(before) - (index == popped) :])
    _SENT[0] = (pre, post, sent)
    return sent


_SENT: list[tuple[World | None, World | None, list[Message]]] = [(None, None, [])]


def observe_step(pre: World, action: Action, post: World) -> ObservedStep:
    """The step as an observer sees it (memoized for the step checks of one transition)."""
    last = _OBSERVED[0]
    if last is not None and last[0] is pre and last[1] is post:
        return last[2]
    delivered = action.message if action.kind == "deliver" else None
    events = tuple(
        event
        for n, (a, b) in enumerate(zip(pre.nodes, post.nodes, strict=True))
        if a is not b
        for event in node_events(n, a, b)
    )
    step = ObservedStep(
        project_all(pre),
        project_all(post),
        pre.clock,
        delivered,
        tuple(sent_messages(pre, action, post)),
        events,
    )
    _OBSERVED[0] = (pre, post, step)
    return step


_OBSERVED: list[tuple[World, World, ObservedStep] | None] = [None]

_REQUESTS = (Kind.FIND_NODE, Kind.GET_PROVIDERS, Kind.ADD_PROVIDER)
_IDENTIFY = (Kind.IDENTIFY, Kind.IDENTIFY_PUSH)


def _admitted(step: ObservedStep) -> list[tuple[int, int]]:
    """(node, peer) pairs that became routing-table entries in the step."""
    return [
        (n, p)
        for n, (a, b) in enumerate(zip(step.before, step.after, strict=True))
        if a is not b
        for p, v in enumerate(b.peers)
        if v.in_table and not a.peers[p].in_table
    ]


@requirement("ADDR-01")
@observable
def identify_matches_mode(step: ObservedStep) -> list[str]:
    """An identify advertises kad exactly when its sender is a server at send time (the
    newest identify a step sends on each connection is judged)."""
    newest: dict[tuple[int, int], Message] = {}
    for m in step.sent:
        if m.kind in _IDENTIFY:
            newest[(m.src, m.dst)] = m
    return [
        f"{step.name(m.src)} advertises kad={m.server} to {step.name(m.dst)} while in "
        f"{step.after[m.src].mode.name} mode"
        for m in newest.values()
        if m.server != (step.after[m.src].mode is Mode.SERVER)
    ]


@requirement("ADDR-01")
@observable
def clients_do_not_answer(step: ObservedStep) -> list[str]:
    found = [
        f"{step.name(m.src)} is a client but answers {step.name(m.dst)}'s request"
        for m in step.sent
        if m.kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY)
        and step.before[m.src].mode is Mode.CLIENT
    ]
    m = step.delivered
    if (
        m is not None
        and m.kind is Kind.ADD_PROVIDER
        and step.before[m.dst].mode is Mode.CLIENT
        and step.after[m.dst].records != step.before[m.dst].records
    ):
        found.append(f"{step.name(m.dst)} is a client but accepts ADD_PROVIDER")
    return found


@requirement("ADDR-07")
@observable
def provider_records_carry_addresses(step: ObservedStep) -> list[str]:
    return [
        f"{step.name(m.src)} sends ADD_PROVIDER(key{m.key}) to {step.name(m.dst)} "
        "without any address"
        for m in step.sent
        if m.kind is Kind.ADD_PROVIDER and m.provider == m.src and not m.public
    ]


@requirement("RT-02")
@observable
def requests_do_not_admit(step: ObservedStep) -> list[str]:
    """A kad request from a peer never makes it a routing-table entry."""
    m = step.delivered
    if m is None or m.kind not in _REQUESTS:
        return []
    return [
        f"{step.name(n)} admitted {step.name(p)} on the strength of its {m.kind.name} request"
        for n, p in _admitted(step)
        if (n, p) == (m.dst, m.src)
    ]


@requirement("RT-05")
@observable
def eviction_only_of_failed_entries(step: ObservedStep) -> list[str]:
    """A full bucket admits a newcomer only by evicting an entry whose dial failed with no sign
    of life since (the model has no ping-before-evict: failure is its only liveness check)."""
    found = []
    for n, q in _admitted(step):
        a, b = step.before[n], step.after[n]
        bucket = a.bucket(q)
        # an entry whose request or dial failed in this same step left for that (RT-06)
        removed = a.ghost.unresponsive | b.ghost.unresponsive | b.ghost.unanswered
        for p in a.table():
            if a.bucket(p) == bucket and not b.peers[p].in_table and p not in removed:
                found.append(
                    f"{step.name(n)} evicted {step.name(p)}, a responsive entry, to admit "
                    f"{step.name(q)}"
                )
    return found


@requirement("RT-06")
@observable
def failed_peers_leave_and_are_not_served(step: ObservedStep) -> list[str]:
    """A peer whose dial failed (no sign of life since) leaves the table, and no reply names
    it as a closer peer."""
    found = [
        f"{step.name(n)} keeps {step.name(p)} in its table after a failed dial to it"
        for n, (a, b) in enumerate(zip(step.before, step.after, strict=True))
        if a is not b
        for p in b.ghost.unresponsive - a.ghost.unresponsive
        if b.peers[p].in_table and a.peers[p].in_table
    ]
    for m in step.sent:
        if m.kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY):
            stale = m.closer & step.before[m.src].ghost.unresponsive
            found.extend(
                f"{step.name(m.src)} offers {step.name(p)}, which failed to answer, to "
                f"{step.name(m.dst)}"
                for p in sorted(stale)
            )
    return found


@requirement("RT-07")
@observable
def failed_peers_not_admitted(step: ObservedStep) -> list[str]:
    """No admission of a peer whose last dial failed with no sign of life since."""
    return [
        f"{step.name(n)} admitted {step.name(p)}, whose last dial failed"
        for n, p in _admitted(step)
        if p in step.after[n].ghost.unresponsive
    ]


@requirement("FIND-01")
@observable
def find_node_replies_are_closest(step: ObservedStep) -> list[str]:
    """A FIND_NODE reply holds the k table peers closest to the target, not counting the
    requester or peers whose dial failed; it MAY add the target itself (even when the target is
    the requester or the responder), so at most k + 1 peers."""
    found = []
    for m in step.sent:
        if m.kind is not Kind.FIND_NODE_REPLY:
            continue
        o = step.before[m.src]
        extra = frozenset(p for p in m.closer if o.peer_ids[p] == m.target)
        rest = m.closer - extra
        eligible = [p for p in o.table() if p != m.dst and p not in o.ghost.unresponsive]
        expected = frozenset(closest(m.target, eligible, o.peer_ids, o.k))
        if len(m.closer) > o.k + 1 or rest & {m.src, m.dst}:
            found.append(
                f"{step.name(m.src)}'s FIND_NODE reply to {step.name(m.dst)} holds the responder "
                "or the requester (not as the target), or more than k + 1 peers"
            )
        elif rest and rest != expected - extra:  # the target counts among the k closest
            found.append(f"{step.name(m.src)}'s FIND_NODE reply is not its k closest peers")
    return found


@requirement("FIND-02")
@observable
def own_id_lookups_answered(step: ObservedStep) -> list[str]:
    found = []
    for m in step.sent:
        if m.kind is not Kind.FIND_NODE_REPLY:
            continue
        o = step.before[m.src]
        others = [p for p in o.table() if p != m.dst and p not in o.ghost.unresponsive]
        if m.target == o.id and not m.closer and others:
            found.append(
                f"{step.name(m.src)} answers FIND_NODE for its own ID with nothing, though its "
                "table holds other peers"
            )
    return found


#: the deepest bucket BOOT-03 asks a refresh to look up (go's kbucket maxCplForRefresh)
_DEEPEST_REFRESHED = 15


def _unvisited_empty_buckets(world: World, n: int, first: int) -> set[int]:
    """Buckets from ``first`` on that hold no peer of ``n``'s table, up to its deepest
    non-empty bucket (and to 15): the ones a refresh run still owes a lookup."""
    ids, bits = world.config.ids, world.config.id_bits
    held = {common_prefix_length(ids[n], ids[p], bits) for p in world.nodes[n].table()}
    if not held:
        return set()
    return set(range(first, min(max(held), _DEEPEST_REFRESHED + 1))) - held


@requirement("BOOT-03")
def refresh_looks_up_empty_buckets(
    pre: World, action: Action, post: World, policy: Policy
) -> list[str]:
    """Internal (lookup bookkeeping): after a run's self-lookup (once one was answered), the node
    looks up an ID in every empty bucket up to its deepest non-empty one, one after another. A
    step that ends the self-lookup or a bucket's lookup, starts no next one, and leaves a bucket
    further on empty (before and after the step) that no lookup of this run visited, breaks it.
    Ticks are not judged (see below): a run that a deadline ends is judged at its next run.
    """
    if action.kind == "tick":
        # A tick can fail several requests of a node at once, and each removal refills the
        # table from the connected peers: the run may end on a table between pre and post that
        # neither shows. So a run's end is judged where one reply, refusal or dial ends it.
        return []
    found = []
    for n, (a, b) in enumerate(zip(pre.nodes, post.nodes, strict=True)):
        if a is b or not (a.up and b.up) or not b.self_lookup_done:
            continue  # (the run's bucket lookups follow a self-lookup that was answered)
        if action.kind in ("start", "restart") and action.node == n:
            continue
        if any(lk.purpose in (Purpose.REFRESH, Purpose.SELF) for lk in b.lookups):
            continue  # a bucket's lookup runs, or a new run has begun (its lookups follow)
        ended = [lk for lk in a.lookups if lk.purpose is Purpose.REFRESH]
        if ended:
            first = ended[0].key + 1
        elif any(lk.purpose is Purpose.SELF for lk in a.lookups) and not any(
            lk.purpose is Purpose.SELF for lk in b.lookups
        ):
            first = 0
        else:
            continue
        owed = _unvisited_empty_buckets(pre, n, first) & _unvisited_empty_buckets(post, n, first)
        if owed:
            found.append(
                f"{post.config.name(n)} ends its refresh run with bucket {min(owed)} empty and "
                "never looked up"
            )
    return found


@requirement("FIND-05")
@observable
def replies_do_not_admit_closer_peers(step: ObservedStep) -> list[str]:
    """Peers learned from closerPeers are lookup candidates, not routing-table entries: a reply
    admits at most its responder."""
    m = step.delivered
    if m is None or m.kind not in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY):
        return []
    return [
        f"{step.name(n)} admitted {step.name(p)} because {step.name(m.src)}'s reply named it"
        for n, p in _admitted(step)
        if n == m.dst and p != m.src and p in m.closer
    ]


@requirement("PROV-02")
@observable
def provide_success_is_real(step: ObservedStep) -> list[str]:
    """A success is reported only with at least one delivered store, and its count never
    exceeds the holders the ghost saw store the record in this round (a store that arrives
    after the sender gave up on it may go uncounted, so the count may be lower)."""
    found = []
    for e in step.events:
        if e.kind != "provide-succeeded":
            continue
        stored = step.after[e.node].ghost.stored_by(e.key)
        if e.count < 1 or e.count > len(stored):
            found.append(
                f"{step.name(e.node)} reports key{e.key} provided to {e.count} peers; "
                f"{len(stored)} stored it this round"
            )
    return found


@requirement("PROV-04")
@observable
def expired_records_not_served(step: ObservedStep) -> list[str]:
    """No GET_PROVIDERS reply names a provider whose record expired, by the ghost's publish
    time plus the TTL (not the expiry the holder stored)."""
    found = []
    for m in step.sent:
        if m.kind is not Kind.GET_PROVIDERS_REPLY:
            continue
        o = step.before[m.src]
        for p in sorted(m.providers):
            at = o.ghost.published(m.key, p)
            if at is not None and at + o.record_ttl <= step.now:
                found.append(
                    f"{step.name(m.src)} serves {step.name(p)}'s record for key{m.key}, "
                    f"published at {at}, expired at {at + o.record_ttl} (now {step.now})"
                )
    return found


@requirement("PROV-07")
@observable
def live_records_served(step: ObservedStep) -> list[str]:
    """A GET_PROVIDERS reply names every provider whose record the responder stores and the
    ghost says is live, except the requester's own, unless it already names k or more."""
    found = []
    for m in step.sent:
        if m.kind is not Kind.GET_PROVIDERS_REPLY:
            continue
        o = step.before[m.src]
        live = set()
        for r in o.records:
            at = o.ghost.published(r.key, r.provider)
            if (
                r.key == m.key
                and r.provider != m.dst
                and at is not None
                and at + o.record_ttl > step.now
            ):
                live.add(r.provider)
        if len(m.providers) < o.k and not live <= m.providers:
            missing = ",".join(f"{step.name(p)}" for p in sorted(live - m.providers))
            found.append(f"{step.name(m.src)} withholds live records for key{m.key} ({missing})")
    return found


# --- progress at quiescence -------------------------------------------------------------------


@requirement("BOOT-01")
@observable
def bootstrap_peers_dialed(nodes: tuple[ObservedNode, ...], now: int, horizon: int) -> list[str]:
    """A running node with an empty table dials its bootstrap peers until two are connected or
    it dialed every one since it started, and again within one refresh period of its table
    emptying, when the model states that period (the ghost's record of its dials)."""
    found = []
    for o in nodes:
        if not o.up or not o.bootstrap or o.table():
            continue
        emptied = o.ghost.emptied_at
        if emptied >= 0 and (o.redial_bound is None or now < emptied + o.redial_bound):
            continue  # its next refresh may still come
        connected = sum(1 for p in o.bootstrap if o.peers[p].connection is not Conn.NONE)
        if connected < 2 and not set(o.bootstrap) <= o.ghost.boot_dialed:
            again = " again after its table emptied" if emptied >= 0 else ""
            found.append(f"{o.name} has an empty table and stopped dialing bootstrap peers{again}")
    return found


@requirement("BOOT-05")
@observable
def operations_answered(nodes: tuple[ObservedNode, ...], now: int, horizon: int) -> list[str]:
    """At rest, every provide and find the user asked a running node for has been answered;
    waiting forever and ignoring the call both fail. With a stated bound, a call whose bound
    ends past the explored horizon cannot be judged yet and is left alone."""
    found = []
    for o in nodes:
        if not o.up:
            continue
        for op, key, at in sorted(o.ghost.asked):
            if o.outcome_bound is None or at + o.outcome_bound <= horizon:
                found.append(
                    f"{o.name} was asked to {OPERATIONS[op]} key{key} at {at} and never answered"
                )
    return found


@requirement("BOOT-05")
@observable
def failures_name_a_reason(step: ObservedStep) -> list[str]:
    """A failure reported to the user names its reason (not-ready, no-address, no-peers,
    none-delivered)."""
    return [
        f"{step.name(e.node)} reports its {e.kind.split('-')[0]} of key{e.key} failed "
        "without a reason"
        for e in step.events
        if e.kind in ("provide-failed", "find-failed") and e.reason == 0
    ]


def _routable_server_pairs(nodes: tuple[ObservedNode, ...]) -> list[tuple[int, int]]:
    """(n, p): both up and connected, n learned that p is a kad server with public listen
    addresses, p answered whatever n asked it, and p's bucket in n's table has room."""
    pairs = []
    for o in nodes:
        if not o.up:
            continue
        quiet = o.ghost.unresponsive | o.ghost.unanswered
        for p, v in enumerate(o.peers):
            peer = nodes[p]
            if (
                p == o.node
                or not peer.up
                or v.connection is Conn.NONE
                or p in quiet
                or peer.mode is not Mode.SERVER
                or v.protocols is not Proto.SERVER
                or not peer.listen_public
            ):
                continue
            bucket = o.bucket(p)
            if sum(1 for q in o.table() if o.bucket(q) == bucket) < o.k:
                pairs.append((o.node, p))
    return pairs


@requirement("BOOT-06")
@observable
def fresh_network_forms(nodes: tuple[ObservedNode, ...], now: int, horizon: int) -> list[str]:
    return [
        f"{nodes[n].name} is connected to server {nodes[p].name} with a dialable address yet "
        "its table stays empty"
        for n, p in _routable_server_pairs(nodes)
        if not nodes[n].table() and nodes[n].peers[p].address is Addr.DIALABLE
    ]


@requirement("ADDR-06")
@observable
def dialers_are_routed(nodes: tuple[ObservedNode, ...], now: int, horizon: int) -> list[str]:
    return [
        f"{nodes[n].name} never routes to {nodes[p].name}, a public server connected to it "
        "(UnroutablePeer)"
        for n, p in _routable_server_pairs(nodes)
        if not nodes[n].peers[p].in_table
    ]


@requirement("ADDR-02")
@observable
def peers_see_current_mode(nodes: tuple[ObservedNode, ...], now: int, horizon: int) -> list[str]:
    found = []
    for o in nodes:
        if not o.up:
            continue
        for p, v in enumerate(o.peers):
            peer = nodes[p]
            if (
                p != o.node
                and peer.up
                and v.connection is not Conn.NONE
                and v.protocols is not Proto.UNKNOWN
                and (v.protocols is Proto.SERVER) != (peer.mode is Mode.SERVER)
            ):
                found.append(
                    f"{o.name} still believes {nodes[p].name} is {v.protocols.name}, but it is in "
                    f"{peer.mode.name} mode"
                )
    return found


@requirement("ADDR-04")
@observable
def mode_follows_reachability(nodes: tuple[ObservedNode, ...], now: int, horizon: int) -> list[str]:
    """At rest, automatic mode is server exactly with a confirmed external address; a pinned
    mode is the one pinned."""
    found = []
    for o in nodes:
        expected = initial_mode(o.setting, o.confirmed)
        if o.up and o.mode is not expected:
            found.append(
                f"{o.name} is in {o.mode.name} mode, its setting ({o.setting.name}, "
                f"confirmed={o.confirmed}) requires {expected.name}"
            )
    return found


@requirement("ADDR-05")
@observable
def public_candidates_confirmed(
    nodes: tuple[ObservedNode, ...], now: int, horizon: int
) -> list[str]:
    return [
        f"{o.name} is public but its candidate address was never confirmed"
        for o in nodes
        if o.up and o.candidate and not o.confirmed and o.listen_public
    ]


@requirement("RT-01")
@observable
def tables_hold_servers(nodes: tuple[ObservedNode, ...], now: int, horizon: int) -> list[str]:
    return [
        f"{o.name} routes to {nodes[p].name}, a connected client"
        for o in nodes
        if o.up
        for p in o.table()
        if nodes[p].up and o.peers[p].connection is not Conn.NONE and nodes[p].mode is Mode.CLIENT
    ]


@requirement("PROV-05")
@observable
def republished_before_expiry(nodes: tuple[ObservedNode, ...], now: int, horizon: int) -> list[str]:
    """At rest, a running provider with peers in its table whose copies expired (a holder
    stored one, and TTL - margin passed since) has started to publish its record again (a lookup
    for the key or ADD_PROVIDER), by the ghost's account. Judged at rest because the model lets
    the network lag behind the clock; the timer check above bounds the schedule itself."""
    found: list[str] = []
    for o in nodes:
        if not o.up or not o.table():
            continue  # a provider with no peer to publish to is BOOT-05's and RT-06's case
        margin = o.republish_margin
        found.extend(
            f"{o.name}'s record for key{key}, first stored by a holder at {at}, expired at "
            f"{at + o.record_ttl - margin} and it never started to publish it again"
            for key, at in sorted(o.ghost.kept)
            if now >= at + o.record_ttl - margin and key not in o.ghost.retried
        )
    return found


@requirement("BOOT-04")
def lookups_end(world: World, policy: Policy) -> list[str]:
    """Internal (lookup bookkeeping): at rest no lookup without a live candidate is still open:
    it ended with an error or an empty result, or its bounded wait expired."""
    return [
        f"{world.config.name(n)}'s {lk.purpose.name} lookup has no peer to ask and never ends"
        for n, s in enumerate(world.nodes)
        if s.up
        for lk in s.lookups
        if not lk.seen - lk.failed
    ]


@requirement("PROV-06")
def provides_not_abandoned(world: World, policy: Policy) -> list[str]:
    """Internal (backoff): a failed provide is retried, with a capped backoff."""
    found = []
    for n, s in enumerate(world.nodes):
        for k, p in enumerate(s.provides):
            if (
                s.up
                and p.providing
                and p.phase is Phase.IDLE
                and p.outcome is not Outcome.SUCCEEDED
                and p.retry_at is None
            ):
                found.append(f"{world.config.name(n)} gave up providing key{k} while running")
            if p.backoff > world.config.timing.retry_cap:
                found.append(f"{world.config.name(n)}'s retry backoff for key{k} exceeds the cap")
    return found


@requirement("PROV-08")
def nothing_stalls(world: World, policy: Policy) -> list[str]:
    """Internal (lookup and provide bookkeeping): at rest nothing waits on a request that has
    no deadline and no reply coming."""
    found = []
    for n, s in enumerate(world.nodes):
        if not s.up:
            continue
        for lk in s.lookups:
            if lk.inflight and not any(d is not None for _, d in lk.inflight):
                found.append(
                    f"{world.config.name(n)}'s {lk.purpose.name} lookup waits on requests with "
                    "no deadline and no reply coming: it never ends"
                )
        for k, p in enumerate(s.provides):
            if p.phase is Phase.SENDING and not any(d is not None for _, d in p.pending):
                found.append(
                    f"{world.config.name(n)}'s provide of key{k} waits on ADD_PROVIDER "
                    "with no deadline and no delivery coming: it never ends"
                )
    return found


def _overdue(world: World, timer: str) -> list[str]:
    """Running nodes holding a ``timer`` already due at rest: time stood still under it."""
    found = []
    now = world.clock
    for n, s in enumerate(world.nodes):
        if not s.up:
            continue
        times: list[int | None]
        if timer == "refresh":
            times = [s.refresh_at]
        elif timer == "retry":
            times = [p.retry_at for p in s.provides]
        elif timer == "republish":
            times = [p.republish_at for p in s.provides]
        else:
            times = [d for lk in s.lookups for _, d in lk.inflight]
            times += [d for p in s.provides for _, d in p.pending]
        due = [t for t in times if t is not None and t <= now]
        if due:
            found.append(
                f"{world.config.name(n)} holds a {timer} timer due at {min(due)} and the clock "
                f"stands at {now}: it never fires"
            )
    return found


@requirement("BOOT-03")
def refresh_timer_not_overdue(world: World, policy: Policy) -> list[str]:
    """Internal (timers): at rest no refresh timer is already due."""
    return _overdue(world, "refresh")


@requirement("PROV-06")
def retry_timer_not_overdue(world: World, policy: Policy) -> list[str]:
    """Internal (timers): at rest no retry timer is already due (a zero backoff freezes time)."""
    return _overdue(world, "retry")


@requirement("PROV-05")
def republish_timer_not_overdue(world: World, policy: Policy) -> list[str]:
    """Internal (timers): at rest no republish timer is already due."""
    return _overdue(world, "republish")


@requirement("PROV-08")
def deadlines_not_overdue(world: World, policy: Policy) -> list[str]:
    """Internal (timers): at rest no request deadline is already due."""
    return _overdue(world, "deadline")


NODE_INVARIANTS: tuple[NodeCheck, ...] = (
    operations_wait_for_self_lookup,
    refresh_stays_armed,
    one_observation_never_confirms,
    entries_have_positive_evidence,
    unknown_protocols_are_no_evidence,
    table_entries_are_dialable,
    buckets_hold_at_most_k,
    never_self,
    provider_stores_own_record,
    records_name_their_sender,
    republish_timer_within_bound,
    alpha_in_flight,
    lookups_stop,
    lookups_ask_known_peers,
)
#: invariants that read the clock as well as the nodes (each projects every node)
WORLD_INVARIANTS: tuple[StateCheck, ...] = (provides_answered_in_time,)
STEP_CHECKS: tuple[StepCheck, ...] = (
    identify_matches_mode,
    clients_do_not_answer,
    provider_records_carry_addresses,
    failures_name_a_reason,
    requests_do_not_admit,
    eviction_only_of_failed_entries,
    failed_peers_leave_and_are_not_served,
    failed_peers_not_admitted,
    find_node_replies_are_closest,
    own_id_lookups_answered,
    refresh_looks_up_empty_buckets,
    replies_do_not_admit_closer_peers,
    provide_success_is_real,
    expired_records_not_served,
    live_records_served,
)
PROGRESS: tuple[ProgressCheck, ...] = (
    bootstrap_peers_dialed,
    operations_answered,
    republished_before_expiry,
    fresh_network_forms,
    dialers_are_routed,
    peers_see_current_mode,
    mode_follows_reachability,
    public_candidates_confirmed,
    tables_hold_servers,
    lookups_end,
    provides_not_abandoned,
    nothing_stalls,
    refresh_timer_not_overdue,
    retry_timer_not_overdue,
    republish_timer_not_overdue,
    deadlines_not_overdue,
)
#: world invariants that only run observable checks on each node's projection
PROJECTING: frozenset[Callable[..., list[str]]] = frozenset(WORLD_INVARIANTS)


def _tagged(checks: tuple[Callable[..., list[str]], ...]) -> tuple[tuple[str, Any, bool], ...]:
    return tuple((requirements_of(c)[0], c, is_observable(c)) for c in checks)


_NODE = _tagged(NODE_INVARIANTS)
_WORLD = tuple((rid, c) for rid, c, _ in _tagged(WORLD_INVARIANTS))
#: (requirement ID, world invariant) pairs, in the order check_state runs them
WORLD_CHECKS: tuple[tuple[str, StateCheck], ...] = _WORLD
_STEP = _tagged(STEP_CHECKS)
_PROGRESS = _tagged(PROGRESS)

_CONFIGURATION = frozenset({"TIME-01", "TIME-02", "TIME-03"})


def checks_of(rid: str) -> tuple[Callable[..., list[str]], ...]:
    """The model checks (invariant, step, progress) that judge requirement ``rid``."""
    every = NODE_INVARIANTS + WORLD_INVARIANTS + STEP_CHECKS + PROGRESS
    return tuple(c for c in every if rid in requirements_of(c))


def observability(rid: str) -> Observability:
    """Whether requirement ``rid`` is judged on what a node can show.

    "observable" when every check of the requirement takes only the observable projection (so
    it can judge a live node); "internal" when some check reads model internals (timers, lookup
    bookkeeping, backoff), and for the configuration checks (``TIME-*``). Raises KeyError
    naming an unknown ID.
    """
    if rid not in spec_requirements():
        raise KeyError(f"unknown requirement {rid!r}")
    checks = checks_of(rid)
    if rid in _CONFIGURATION or not checks:
        return "internal"
    if all(is_observable(c) or c in PROJECTING for c in checks):
        return "observable"
    return "internal"


NodeCache = dict[tuple[int, NodeState], tuple[Violation, ...]]
PremiseCache = dict[tuple[int, NodeState], frozenset[str]]
M = TypeVar("M", NodeCache, PremiseCache)


class _PerConfig(Generic[M]):
    """Memos keyed by configuration: id(config) -> (config, its memo). The entry holds the
    configuration itself, so the id cannot be recycled by another configuration while the memo
    lives; at most 64 configurations are remembered."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Config, M]] = {}

    def of(self, config: Config, empty: Callable[[], M]) -> M:
        entry = self._entries.get(id(config))
        if entry is None or entry[0] is not config:
            if len(self._entries) > 64:
                self._entries.clear()
            entry = self._entries[id(config)] = (config, empty())
        return entry[1]


_NODE_CACHES: _PerConfig[NodeCache] = _PerConfig()
_PREMISE_CACHES: _PerConfig[PremiseCache] = _PerConfig()


def node_cache(config: Config) -> NodeCache:
    """The memo of node invariants for one configuration (node states recur across worlds)."""
    return _NODE_CACHES.of(config, dict)


def check_node(config: Config, n: int, state: NodeState) -> tuple[Violation, ...]:
    """Every node invariant on one node, memoized per (configuration, node, state); an
    observable check is given the node's projection only."""
    cache = node_cache(config)
    found = cache.get((n, state))
    if found is None:
        if len(cache) > 500_000:
            cache.clear()
        seen = project_node(config, n, state)
        found = cache[(n, state)] = tuple(
            Violation(rid, d)
            for rid, c, outside in _NODE
            for d in (c(seen) if outside else c(config, n, state))
        )
    return found


def check_state(world: World, policy: Policy) -> list[Violation]:
    """Every invariant on one state."""
    found = [v for n, s in enumerate(world.nodes) for v in check_node(world.config, n, s)]
    return found + [Violation(rid, d) for rid, c in _WORLD for d in c(world, policy)]


def check_step(pre: World, action: Action, post: World, policy: Policy) -> list[Violation]:
    """Every step check on one transition; observable checks see only the observed step."""
    step = observe_step(pre, action, post)
    return [
        Violation(rid, d)
        for rid, c, outside in _STEP
        for d in (c(step) if outside else c(pre, action, post, policy))
    ]


def check_quiescent(world: World, policy: Policy) -> list[Violation]:
    """Every progress property on one quiescent state; observable checks see only the
    nodes' projections."""
    nodes = project_all(world)
    return [
        Violation(rid, d)
        for rid, c, outside in _PROGRESS
        for d in (c(nodes, world.clock, world.horizon) if outside else c(world, policy))
    ]


# --- premises: where a requirement has teeth ----------------------------------------------------
# A check that passes in a state where its premise is dead proves nothing (a bucket that is never
# full cannot show RT-05's eviction rule). ``exercised_*`` name the requirements whose premise is
# live in a state, a transition or a quiescent state; the explorer counts them per requirement so
# that a requirement exercised nowhere is reported as such rather than as "holds". Each premise
# belongs to the kind of check the requirement has (a progress requirement's premise is judged
# at quiescence, a step requirement's on transitions).


def _node_premises(config: Config, n: int, s: NodeState) -> frozenset[str]:
    """The invariant premises one node's state makes live (memoized per node state)."""
    live: set[str] = set()
    if any(r.provider != n for r in s.records):
        live.add("PROV-03")  # a record it holds for someone else
    if not s.up:
        return frozenset(live)
    g = s.ghost
    live.add("BOOT-03")  # a running node must keep its refresh armed
    k, alpha = config.timing.k, config.timing.alpha
    table = s.table()
    if table:
        live.update({"RT-07", "RT-04", "TIME-01"})  # entries exist: self and dialability matter
        if any(p in g.heard for p in table):
            live.add("RT-02")  # entries whose protocols it learned
    if any(v.conn is not Conn.NONE and p not in g.heard for p, v in enumerate(s.peers) if p != n):
        live.add("RT-03")  # a connected peer whose protocols are still unknown
    if any(v.addr is Addr.REMOTE for v in s.peers):
        live.add("RT-04")  # a peer known only by a listener-side remote address
    sizes = Counter(
        common_prefix_length(config.ids[n], config.ids[p], config.id_bits) for p in table
    )
    if any(c >= k for c in sizes.values()):
        live.add("RT-05")
    if s.candidate or s.confirmed:
        live.add("ADDR-03")
    if not g.self_answered and (
        s.lookups or any(p.phase is not Phase.IDLE for p in s.provides) or g.asked
    ):
        live.add("BOOT-02")  # work is waiting while the first self-lookup has not answered
    if g.asked:
        live.add("BOOT-05")  # the user asked for something not answered yet
    for lk in s.lookups:
        live.add("TIME-01")
        if len(lk.seen) > alpha:
            live.add("FIND-03")
        if lk.inflight:
            live.add("FIND-05")
        if lk.answered and lk.seen - lk.answered - lk.failed:
            live.add("FIND-04")  # the end condition is being decided with candidates left
    for p in s.provides:
        if p.phase in (Phase.LOOKUP, Phase.SENDING):
            live.add("PROV-01")
    if any(p.phase is Phase.IDLE and p.outcome is Outcome.SUCCEEDED for p in s.provides):
        live.add("PROV-05")  # a provider at rest after a success: its republish timer matters
    if s.records:
        live.add("TIME-02")
    if s.refresh_at is not None or any(p.retry_at is not None for p in s.provides):
        live.add("TIME-03")
    return frozenset(live)


def premise_cache(config: Config) -> PremiseCache:
    """The memo of node premises for one configuration."""
    return _PREMISE_CACHES.of(config, dict)


def node_premises(config: Config, n: int, state: NodeState) -> frozenset[str]:
    """:func:`_node_premises` memoized per (configuration, node, state)."""
    cache = premise_cache(config)
    found = cache.get((n, state))
    if found is None:
        if len(cache) > 500_000:
            cache.clear()
        found = cache[(n, state)] = _node_premises(config, n, state)
    return found


def exercised_in_state(world: World, policy: Policy) -> frozenset[str]:
    """Requirement IDs whose invariant premise is live in ``world``."""
    live: set[str] = set()
    for n, s in enumerate(world.nodes):
        live |= node_premises(world.config, n, s)
    return frozenset(live)


def exercised_in_step(pre: World, action: Action, post: World, policy: Policy) -> frozenset[str]:
    """Requirement IDs whose step-check premise is live on the transition ``pre -> post``."""
    live: set[str] = set()
    step = observe_step(pre, action, post)
    for m in step.sent:
        o = step.before[m.src]
        if m.kind in _IDENTIFY:
            live.add("ADDR-01")
        elif m.kind is Kind.ADD_PROVIDER:
            live.add("ADDR-07")
        elif m.kind is Kind.FIND_NODE_REPLY:
            eligible = [p for p in o.table() if p != m.dst]
            if len(eligible) > o.k:
                live.add("FIND-01")  # the responder had to choose the k closest
            if m.target == o.id and eligible:
                live.add("FIND-02")
            if o.ghost.unresponsive & set(o.table()):
                live.add("RT-06")  # it could have offered a peer that failed
        elif m.kind is Kind.GET_PROVIDERS_REPLY:
            for r in o.records:
                at = o.ghost.published(r.key, r.provider)
                if r.key != m.key or at is None:
                    continue
                if at + o.record_ttl <= step.now:
                    live.add("PROV-04")  # an expired record was on the shelf
                elif r.provider != m.dst:
                    live.add("PROV-07")  # a live record of someone else was on the shelf
    got = step.delivered
    if got is not None and step.before[got.dst].up:
        receiver = step.before[got.dst]
        if got.kind in _REQUESTS:
            if receiver.mode is Mode.CLIENT:
                live.add("ADDR-01")  # a client was asked to serve
            elif not receiver.peers[got.src].in_table:
                live.add("RT-02")  # a request from a peer not in the table
        elif got.kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY) and got.closer - {
            got.dst
        }:
            live.add("FIND-05")  # a reply named peers it might be tempted to admit
    for a, b in zip(step.before, step.after, strict=True):
        if a is b:
            continue
        if b.ghost.unresponsive - a.ghost.unresponsive:
            live.update({"RT-06", "RT-07"})  # a dial failed: keep out, take out
    if _admitted(step):
        live.add("RT-07")
        for n, q in _admitted(step):
            o = step.before[n]
            if sum(1 for p in o.table() if o.bucket(p) == o.bucket(q)) >= o.k:
                live.add("RT-05")  # admitted into a full bucket: an eviction
    if any(e.kind == "provide-succeeded" for e in step.events):
        live.add("PROV-02")
    return frozenset(live)


def exercised_at_quiescence(world: World, policy: Policy) -> frozenset[str]:
    """Requirement IDs whose progress premise is live in the quiescent state ``world``."""
    live: set[str] = set()
    config = world.config
    nodes = project_all(world)
    for n, s in enumerate(world.nodes):
        if not s.up:
            continue
        o = nodes[n]
        live.add("BOOT-03")  # a running node at rest: its refresh timer must not be overdue
        if config.nodes[n].bootstrap:
            live.add("BOOT-01")
        changed = s.setting is not config.nodes[n].mode or (
            s.setting is ModeSetting.AUTO and s.confirmed
        )
        if changed and any(v.conn is not Conn.NONE for v in s.peers):
            live.add("ADDR-02")  # its mode changed while peers were connected
        if s.candidate and config.nodes[n].reach is Reach.PUBLIC:
            live.add("ADDR-05")
        live.add("ADDR-04")
        ran = s.self_lookup_done or any(f is not None for f in s.found) or o.ghost.heard
        if ran or s.lookups:
            live.update({"BOOT-04", "PROV-08"})  # lookups and requests ran: they had to end
        answered = any(p.outcome is not Outcome.NONE for p in s.provides) or any(
            f is not None for f in s.found
        )
        if o.ghost.asked or answered:
            live.add("BOOT-05")
        if o.ghost.kept:
            live.add("PROV-05")  # holders kept its record: it must publish again in time
        for p in s.provides:
            if p.attempts > 1 or p.outcome is Outcome.FAILED:
                live.add("PROV-06")
        for q in s.table():
            if world.nodes[q].up and world.connected(n, q):
                live.add("RT-01")
    pairs = _routable_server_pairs(nodes)
    if pairs:
        live.add("ADDR-06")
        if any(world.nodes[n].peers[p].addr is Addr.DIALABLE for n, p in pairs):
            live.add("BOOT-06")
    return frozenset(live)
