"""Ghost state: the history a check needs, kept by an observer, never by the node it judges.

A check that reads the very flag the code under test sets ("self-lookup done", "failed", a
record's stored expiry, the delivered count) passes whenever the code sets that flag wrongly.
So the checks that need history read a :class:`Ghost` instead: one per node, in
``NodeState.ghost``, written only by :func:`observe` from what happened in a step (the action
taken, the messages delivered and sent, the connections opened, the outcomes reported),
which is what a test harness sees of a live node through its events.

``observe`` is called once, at the end of :func:`kadspec.models.actions.apply`. It writes only
the ghosts of the nodes the action itself touches (its parties, as ``successors.py`` defines
them), so a memoized step stays a function of its situation. The node's own functions never
read or write a ghost.

Ghosts are kept small (booleans and small sets of peer indices, a few clock values) because
they are part of the state the explorer enumerates: a ghost that recorded everything would
make every history a distinct state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from kadspec.models.config import Reach

if TYPE_CHECKING:
    from kadspec.models.actions import Action
    from kadspec.models.observe import Event
    from kadspec.models.state import Message, World

#: ``Ghost.asked`` operation codes
PROVIDE = 0
FIND = 1
OPERATIONS = {PROVIDE: "provide", FIND: "find providers"}


@attrs.frozen(cache_hash=True)
class Ghost:
    """What an observer saw of one node.

    Every field but ``publishes`` is lost when the process dies (it describes the running
    process); ``publishes`` describes the record store on disk and survives a crash, like the
    records. Invariant and step checks read ``self_answered``, ``heard``, ``servers``,
    ``unresponsive``, ``observers``, ``dialed_back``, ``stored`` and ``publishes``; the others
    serve progress and timed checks.
    """

    #: BOOT-02: a reply to this node's FIND_NODE for its own ID arrived since it (re)started
    self_answered: bool = False
    #: BOOT-05: user operations asked and not answered yet: (operation, key index, asked at)
    asked: frozenset[tuple[int, int, int]] = frozenset()
    #: RT-03: peers that sent this node an identify or a kad response since it (re)started
    heard: frozenset[int] = frozenset()
    #: RT-02: peers whose newest evidence says kad server (identify advertising kad, or a reply)
    servers: frozenset[int] = frozenset()
    #: RT-06, RT-07: peers a dial to which failed, with no sign of life from them since
    unresponsive: frozenset[int] = frozenset()
    #: requests this node sent and the observer still waits on, by the configured request
    #: deadline: (peer, deadline, topic); the topic is the request's target (GET_PROVIDERS: with
    #: a bit above the ID width), or -1 - key for ADD_PROVIDER (a reply answers the oldest
    #: request to its sender on its topic, as a libp2p stream would: one kind, one target)
    waiting: tuple[tuple[int, int, int], ...] = ()
    #: peers that reset a request or let one pass its deadline, with no sign of life since: a
    #: node MAY leave them out of its table (ADDR-06, BOOT-06)
    unanswered: frozenset[int] = frozenset()
    #: ADDR-03: peers that reported an observed address for this node (identify)
    observers: frozenset[int] = frozenset()
    #: ADDR-03: a dial-back to this node's observed address succeeded
    dialed_back: bool = False
    #: BOOT-01: bootstrap peers this node dialed since it (re)started or its table last emptied
    boot_dialed: frozenset[int] = frozenset()
    #: BOOT-01: when its table last went from non-empty to empty (-1: it is not empty, or it
    #: has been empty since the node started)
    emptied_at: int = -1
    #: PROV-02: (key, holder): holders that stored this node's record since its last batch of
    #: ADD_PROVIDER for the key
    stored: frozenset[tuple[int, int]] = frozenset()
    #: PROV-05: (key, at): when this node last sent a batch of ADD_PROVIDER for the key
    sent: frozenset[tuple[int, int]] = frozenset()
    #: PROV-05: (key, at): when a holder first stored a copy from the latest batch stored
    kept: frozenset[tuple[int, int]] = frozenset()
    #: PROV-05: keys it started to publish again (a lookup for the key or ADD_PROVIDER sent, or
    #: an attempt reported failed for want of peers) since a holder last stored a copy
    retried: frozenset[int] = frozenset()
    # ---- survives a crash ----
    #: PROV-03, PROV-04, PROV-07: (key, provider, at): the last genuine publish of each record
    #: this node received: an ADD_PROVIDER sent by the provider itself, or, for its own record,
    #: the user's provide call and every provide the node reported successful
    publishes: frozenset[tuple[int, int, int]] = frozenset()

    def published(self, key: int, provider: int) -> int | None:
        """When ``provider`` last published its record for ``key`` here (None: never)."""
        return next((at for k, p, at in self.publishes if k == key and p == provider), None)

    def last_sent(self, key: int) -> int | None:
        return next((at for k, at in self.sent if k == key), None)

    def kept_since(self, key: int) -> int | None:
        return next((at for k, at in self.kept if k == key), None)

    def stored_by(self, key: int) -> frozenset[int]:
        return frozenset(h for k, h in self.stored if k == key)

    def permuted(self, order: tuple[int, ...], mask: int) -> Ghost:
        """This ghost with node ``i`` renamed ``order[i]`` and node IDs translated by
        ``^ mask`` (a symmetry of the configuration, see ``reductions.Automorphism``).
        Request topics that are IDs are translated; key topics are not."""

        def nodes(peers: frozenset[int]) -> frozenset[int]:
            return frozenset(order[p] for p in peers)

        return Ghost(
            self_answered=self.self_answered,
            asked=self.asked,
            heard=nodes(self.heard),
            servers=nodes(self.servers),
            unresponsive=nodes(self.unresponsive),
            waiting=tuple(
                sorted((order[p], d, t ^ mask if t >= 0 else t) for p, d, t in self.waiting)
            ),
            unanswered=nodes(self.unanswered),
            observers=nodes(self.observers),
            dialed_back=self.dialed_back,
            boot_dialed=nodes(self.boot_dialed),
            emptied_at=self.emptied_at,
            stored=frozenset((k, order[h]) for k, h in self.stored),
            sent=self.sent,
            kept=self.kept,
            retried=self.retried,
            publishes=frozenset((k, order[p], at) for k, p, at in self.publishes),
        )


#: the ghost of a node nothing has happened to yet
NO_HISTORY = Ghost()

# state.py imports Ghost and NO_HISTORY from here: import it only now that they exist, and read
# its names at call time (whichever of the two modules is imported first).
from kadspec.models import state as st  # noqa: E402


def _publish(
    publishes: frozenset[tuple[int, int, int]], key: int, provider: int, at: int
) -> frozenset[tuple[int, int, int]]:
    kept = frozenset(e for e in publishes if (e[0], e[1]) != (key, provider))
    return kept | {(key, provider, at)}


def parties(action: Action, count: int) -> tuple[int, ...]:
    """The nodes an action may change (every node for ``tick`` and ``crash``)."""
    if action.kind in ("tick", "crash"):
        return tuple(range(count))
    if action.message is not None:
        return (action.message.src, action.message.dst)
    if action.peer >= 0:
        return (action.node, action.peer)
    return (action.node,)


def _sent(pre: World, post: World, node: int, popped: int) -> list[Message]:
    """The messages ``node`` sent in the step (its channels are FIFO: appended at the end)."""
    count = len(pre.nodes)
    found: list[Message] = []
    for dst in range(count):
        index = node * count + dst
        before, after = pre.network[index], post.network[index]
        if after is not before:
            found.extend(after[len(before) - (index == popped) :])
    return found


def observe(pre: World, action: Action, post: World) -> World:
    """``post`` with the ghosts of the action's parties updated from what the step did."""
    count = len(post.nodes)
    message = action.message
    popped = (
        message.src * count + message.dst
        if message is not None and action.kind in ("deliver", "lose")
        else -1
    )
    nodes = list(post.nodes)
    changed = False
    for n in parties(action, count):
        before = nodes[n].ghost
        after = _observe_node(pre, action, post, n, popped)
        if after is not before and after != before:
            nodes[n] = st.replace(nodes[n], ghost=after)
            changed = True
    if action.kind in ("dial_bootstrap", "query"):
        # A peer that just dialed a node is alive: the connection it opened is a sign of life
        # (RT-07), as a request from it is (it still owes what it left unanswered). A query's
        # dial reaches a candidate its lookup picks, so look at every node.
        dialer = action.node
        for n in range(count):
            g = nodes[n].ghost
            if (
                dialer in g.unresponsive
                and not pre.connected(n, dialer)
                and post.connected(n, dialer)
            ):
                alive = attrs.evolve(g, unresponsive=g.unresponsive - {dialer})
                nodes[n] = st.replace(nodes[n], ghost=alive)
                changed = True
    if not changed:
        return post
    return st.replace(post, nodes=tuple(nodes))


def _observe_node(pre: World, action: Action, post: World, n: int, popped: int) -> Ghost:
    from kadspec.models.lookup import next_candidate  # lookup imports state: import late
    from kadspec.models.observe import node_events

    old, new = pre.nodes[n], post.nodes[n]
    g = old.ghost  # the model never writes a ghost; a restarted NodeState starts with none
    clock = post.clock
    kind = action.kind
    if kind in ("start", "restart") and action.node == n:
        return Ghost(publishes=g.publishes)
    if not new.up:
        return g if not old.up else Ghost(publishes=g.publishes)  # crashed: memory is lost
    if not old.up:
        return g  # a down node does nothing; only a start brings it back
    changes: dict[str, object] = {}
    asked = g.asked
    publishes = g.publishes
    # The user's calls.
    if kind == "provide" and action.node == n:
        asked = frozenset(e for e in asked if e[:2] != (PROVIDE, action.key))
        asked |= {(PROVIDE, action.key, clock)}
        publishes = _publish(publishes, action.key, n, clock)
    elif (
        kind == "find_providers"
        and action.node == n
        and not any(e[:2] == (FIND, action.key) for e in asked)
    ):
        asked |= {(FIND, action.key, clock)}  # a call joining a running find keeps its time
    # The outcomes the node reported (its events), which answer the calls. A node the step
    # left as it was reports nothing (most parties of a step: skip reading its outcomes).
    events = () if old is new else node_events(-1, old, new)
    for op, key in _operations(events):
        asked = frozenset(e for e in asked if e[:2] != (op, key))
    for key in _succeeded(events):
        publishes = _publish(publishes, key, n, clock)
    heard, servers, unresponsive = g.heard, g.servers, g.unresponsive
    observers, stored, sent, kept = g.observers, g.stored, g.sent, g.kept
    retried = g.retried
    waiting, unanswered = g.waiting, g.unanswered
    if post.clock != pre.clock:  # time passed: requests past their deadline went unanswered
        late = [e for e in waiting if e[1] <= post.clock]
        waiting = tuple(e for e in waiting if e[1] > post.clock)
        unanswered |= {e[0] for e in late}
    # What the node received.
    if kind == "deliver" and message_of(action) is not None and old.up:
        m = message_of(action)
        assert m is not None
        if m.dst == n:
            p = m.src
            open_ = old.peers[p].conn is not st.Conn.NONE
            if not open_ and m.kind in (st.Kind.IDENTIFY, st.Kind.IDENTIFY_PUSH):
                # Identify after its connection closed: the host may still hand it on (a node
                # may or may not use it), so it can add evidence but never take any away.
                heard |= {p}
                servers |= {p} if m.server else set()
            elif open_ and m.kind in (st.Kind.IDENTIFY, st.Kind.IDENTIFY_PUSH):
                heard |= {p}
                servers = servers | {p} if m.server else servers - {p}
                unresponsive -= {p}
                unanswered -= {p}
                if m.kind is st.Kind.IDENTIFY:
                    observers = observers if len(observers) >= 2 else observers | {p}
            elif open_ and m.kind in (st.Kind.FIND_NODE_REPLY, st.Kind.GET_PROVIDERS_REPLY):
                heard |= {p}
                servers |= {p}
                unresponsive -= {p}
                topic = _topic(m, post.config.id_bits)
                if any(e[0] == p and e[2] == topic for e in waiting):
                    unanswered -= {p}  # (a reply after the deadline is too late to count)
                    waiting = _answered(waiting, p, topic)
                if m.kind is st.Kind.FIND_NODE_REPLY and m.target == post.config.ids[n]:
                    changes["self_answered"] = True
            elif open_:
                unresponsive -= {p}  # a request: the peer is alive (but it still owes us)
                if (
                    m.kind is st.Kind.ADD_PROVIDER
                    and m.provider == p
                    and old.mode is st.Mode.SERVER
                ):
                    publishes = _publish(publishes, m.key, p, clock)  # a server accepts it
        elif (
            m.src == n
            and pre.nodes[m.dst].up
            and pre.nodes[m.dst].peers[n].conn is not st.Conn.NONE
        ):
            # Our request reached a running peer over a live connection.
            if m.kind is st.Kind.ADD_PROVIDER:
                waiting = _answered(waiting, m.dst, -1 - m.key)
                ttl = post.config.timing.record_ttl
                fresh = st.Record(key=m.key, provider=m.provider, expires=clock + ttl)
                if fresh in post.nodes[m.dst].records:
                    if m.provider == n:
                        stored |= {(m.key, m.dst)}  # the holder stored our record just now
                        first = g.kept_since(m.key)
                        batch = g.last_sent(m.key)
                        if first is None or (batch is not None and first < batch):
                            kept = frozenset(e for e in kept if e[0] != m.key) | {(m.key, clock)}
                            retried -= {m.key}
                else:
                    unanswered |= {m.dst}  # refused
            elif m.kind in (st.Kind.FIND_NODE, st.Kind.GET_PROVIDERS) and not any(
                r.dst == n for r in _sent(pre, post, m.dst, -1)
            ):
                waiting = _answered(waiting, m.dst, _topic(m, post.config.id_bits))
                unanswered |= {m.dst}  # the stream was reset
    # What the node sent: a batch of ADD_PROVIDER starts a new round for its key.
    outgoing = _sent(pre, post, n, popped)
    deadline = clock + post.config.timing.request_deadline
    requests = [
        (m.dst, deadline, _topic(m, post.config.id_bits))
        for m in outgoing
        if m.kind in (st.Kind.FIND_NODE, st.Kind.GET_PROVIDERS)
        or (m.kind is st.Kind.ADD_PROVIDER and m.provider == n)  # not a forgery it sends
    ]
    if requests:
        waiting = tuple(sorted((*waiting, *requests)))
    keys = {m.key for m in outgoing if m.kind is st.Kind.ADD_PROVIDER and m.provider == n}
    if kept:
        targets = post.config.keys
        # An attempt that found no peer to ask (or none that stored it) and said so started
        # to publish again too: the node tried, and BOOT-05's outcome tells its user.
        no_peer = (st.Reason.NO_PEERS, st.Reason.NONE_DELIVERED)
        tried = {e.key for e in events if e.kind == "provide-failed" and e.reason in no_peer}
        retried |= {
            key
            for key, _ in kept
            if key in keys
            or key in tried
            or any(m.kind is st.Kind.FIND_NODE and m.target == targets[key] for m in outgoing)
        }
    for key in keys:
        stored = frozenset(e for e in stored if e[0] != key)
        sent = frozenset(e for e in sent if e[0] != key) | {(key, clock)}
    # Dials: a failed dial makes the peer unresponsive, a successful one shows it alive.
    boot_dialed, emptied_at = g.boot_dialed, g.emptied_at
    if not new.table():
        if old.table():  # the table just emptied: the bootstrap peers are owed a dial again
            boot_dialed, emptied_at = frozenset(), clock
    elif emptied_at >= 0:
        emptied_at = -1
    dialed = -1
    if kind == "dial_bootstrap" and action.node == n:
        dialed = action.peer
        boot_dialed |= {dialed}
    elif kind == "query" and action.node == n:
        candidate = next_candidate(pre, old.lookups[action.key])
        dialed = candidate if candidate is not None else -1
    if dialed >= 0 and not pre.connected(n, dialed):  # a dial on a live connection is no news
        if post.connected(n, dialed):
            unresponsive -= {dialed}
            unanswered -= {dialed}
        else:
            unresponsive |= {dialed}
    if kind == "dial_back" and action.node == n and post.config.nodes[n].reach is Reach.PUBLIC:
        changes["dialed_back"] = True
    if (
        not changes
        and asked is g.asked
        and publishes is g.publishes
        and heard is g.heard
        and servers is g.servers
        and unresponsive is g.unresponsive
        and observers is g.observers
        and stored is g.stored
        and sent is g.sent
        and kept is g.kept
        and retried is g.retried
        and waiting is g.waiting
        and unanswered is g.unanswered
        and boot_dialed is g.boot_dialed
        and emptied_at == g.emptied_at
    ):
        return g  # nothing the observer records changed: the ghost as it was, not a copy
    changes.update(
        asked=asked,
        publishes=publishes,
        heard=heard,
        servers=servers,
        unresponsive=unresponsive,
        observers=observers,
        stored=stored,
        sent=sent,
        kept=kept,
        retried=retried,
        waiting=waiting,
        unanswered=unanswered,
        boot_dialed=boot_dialed,
        emptied_at=emptied_at,
    )
    return st.replace(g, **changes)


def _topic(m: Message, id_bits: int) -> int:
    """What a reply answers: a FIND_NODE's target, a GET_PROVIDERS's target with a bit above the
    ID width (a late FIND_NODE reply for a key's ID answers no GET_PROVIDERS for the key), or
    -1 - key for ADD_PROVIDER."""
    if m.kind is st.Kind.ADD_PROVIDER:
        return -1 - m.key
    if m.kind in (st.Kind.GET_PROVIDERS, st.Kind.GET_PROVIDERS_REPLY):
        return m.target | 1 << id_bits
    return m.target


def _answered(
    waiting: tuple[tuple[int, int, int], ...], peer: int, topic: int
) -> tuple[tuple[int, int, int], ...]:
    """``waiting`` without the oldest request to ``peer`` on ``topic`` (one reply answers one
    request)."""
    for index, entry in enumerate(waiting):
        if entry[0] == peer and entry[2] == topic:
            return waiting[:index] + waiting[index + 1 :]
    return waiting


def message_of(action: Action) -> Message | None:
    return action.message


#: the operation each reported outcome answers
_ANSWERS = {
    "provide-succeeded": PROVIDE,
    "provide-failed": PROVIDE,
    "find-succeeded": FIND,
    "find-failed": FIND,
}


def _operations(events: tuple[Event, ...]) -> list[tuple[int, int]]:
    """(operation, key) answered by each of these reported outcomes."""
    return [(_ANSWERS[e.kind], e.key) for e in events]


def _succeeded(events: tuple[Event, ...]) -> list[int]:
    """Keys whose provide these reported outcomes say succeeded."""
    return [e.key for e in events if e.kind == "provide-succeeded"]


__all__ = ["FIND", "NO_HISTORY", "OPERATIONS", "PROVIDE", "Ghost", "observe", "parties"]
