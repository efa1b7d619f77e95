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

from kadspec.models import state as st  # state.py imports Ghost: bind the module, read it late
from kadspec.models.config import Reach

if TYPE_CHECKING:
    from kadspec.models.actions import Action
    from kadspec.models.state import Message, NodeState, World

#: ``Ghost.asked`` operation codes
PROVIDE = 0
FIND = 1
OPERATIONS = {PROVIDE: "provide", FIND: "find providers"}


@attrs.frozen(cache_hash=True)
class Ghost:
    """What an observer saw of one node. Fields above the line are lost when the process
    dies (they describe the running process); ``publishes`` describes the record store on disk
    and survives a crash, like the records."""

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
    #: ADDR-03: peers that reported an observed address for this node (identify)
    observers: frozenset[int] = frozenset()
    #: ADDR-03: a dial-back to this node's observed address succeeded
    dialed_back: bool = False
    #: BOOT-01: bootstrap peers this node dialed since it (re)started
    boot_dialed: frozenset[int] = frozenset()
    #: PROV-02: (key, holder): holders that stored this node's record since its last batch of
    #: ADD_PROVIDER for the key
    stored: frozenset[tuple[int, int]] = frozenset()
    #: PROV-05: (key, at): when this node last sent a batch of ADD_PROVIDER for the key
    sent: frozenset[tuple[int, int]] = frozenset()
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

    def stored_by(self, key: int) -> frozenset[int]:
        return frozenset(h for k, h in self.stored if k == key)


#: the ghost of a node nothing has happened to yet
NO_HISTORY = Ghost()


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
        if after != before:
            nodes[n] = st.replace(nodes[n], ghost=after)
            changed = True
    if not changed:
        return post
    return st.replace(post, nodes=tuple(nodes))


def _observe_node(pre: World, action: Action, post: World, n: int, popped: int) -> Ghost:
    from kadspec.models.lookup import next_candidate  # lookup imports state: import late

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
    # The outcomes the node reported (its events), which answer the calls.
    for op, key in reported(old, new):
        asked = frozenset(e for e in asked if e[:2] != (op, key))
    for key in succeeded(old, new):
        publishes = _publish(publishes, key, n, clock)
    heard, servers, unresponsive = g.heard, g.servers, g.unresponsive
    observers, stored, sent = g.observers, g.stored, g.sent
    # What the node received.
    if kind == "deliver" and message_of(action) is not None and old.up:
        m = message_of(action)
        assert m is not None
        if m.dst == n:
            p = m.src
            open_ = old.peers[p].conn is not st.Conn.NONE
            if m.kind in (st.Kind.IDENTIFY, st.Kind.IDENTIFY_PUSH):
                heard |= {p}
                servers = servers | {p} if m.server else servers - {p}
                unresponsive -= {p}
                if m.kind is st.Kind.IDENTIFY:
                    observers = observers if len(observers) >= 2 else observers | {p}
            elif open_ and m.kind in (st.Kind.FIND_NODE_REPLY, st.Kind.GET_PROVIDERS_REPLY):
                heard |= {p}
                servers |= {p}
                unresponsive -= {p}
                if m.kind is st.Kind.FIND_NODE_REPLY and m.target == post.config.ids[n]:
                    changes["self_answered"] = True
            elif open_:
                unresponsive -= {p}  # a request: the peer is alive
                if m.kind is st.Kind.ADD_PROVIDER and m.provider == p:
                    publishes = _publish(publishes, m.key, p, clock)
        elif m.src == n and m.kind is st.Kind.ADD_PROVIDER and m.provider == n:
            fresh = st.Record(key=m.key, provider=n, expires=clock + post.config.timing.record_ttl)
            if pre.nodes[m.dst].up and fresh in post.nodes[m.dst].records:
                stored |= {(m.key, m.dst)}  # the holder stored this node's record just now
    # What the node sent: a batch of ADD_PROVIDER starts a new round for its key.
    keys = {
        m.key
        for m in _sent(pre, post, n, popped)
        if m.kind is st.Kind.ADD_PROVIDER and m.provider == n
    }
    for key in keys:
        stored = frozenset(e for e in stored if e[0] != key)
        sent = frozenset(e for e in sent if e[0] != key) | {(key, clock)}
    # Dials: a failed dial makes the peer unresponsive, a successful one shows it alive.
    boot_dialed = g.boot_dialed
    dialed = -1
    if kind == "dial_bootstrap" and action.node == n:
        dialed = action.peer
        boot_dialed |= {dialed}
    elif kind == "query" and action.node == n:
        candidate = next_candidate(pre, old.lookups[action.key])
        dialed = candidate if candidate is not None else -1
    if dialed >= 0:
        if post.connected(n, dialed):
            unresponsive -= {dialed}
        else:
            unresponsive |= {dialed}
    if kind == "dial_back" and action.node == n and post.config.nodes[n].reach is Reach.PUBLIC:
        changes["dialed_back"] = True
    changes.update(
        asked=asked,
        publishes=publishes,
        heard=heard,
        servers=servers,
        unresponsive=unresponsive,
        observers=observers,
        stored=stored,
        sent=sent,
        boot_dialed=boot_dialed,
    )
    return st.replace(g, **changes)


def message_of(action: Action) -> Message | None:
    return action.message


def reported(old: NodeState, new: NodeState) -> list[tuple[int, int]]:
    """(operation, key) of every outcome ``new`` reports that ``old`` did not: the node's
    provide outcome events and its find results (BOOT-05)."""
    found = []
    for key, (a, b) in enumerate(zip(old.provides, new.provides, strict=True)):
        if b.outcome is not st.Outcome.NONE and (
            a.outcome is not b.outcome or a.phase is not b.phase or a.attempts != b.attempts
        ):
            found.append((PROVIDE, key))
    for key, (x, y) in enumerate(zip(old.found, new.found, strict=True)):
        running = any(
            lk.purpose is st.Purpose.FIND_PROVIDERS and lk.key == key for lk in new.lookups
        )
        ended = any(lk.purpose is st.Purpose.FIND_PROVIDERS and lk.key == key for lk in old.lookups)
        if y is not None and not running and (x != y or ended):
            found.append((FIND, key))
    return found


def succeeded(old: NodeState, new: NodeState) -> list[int]:
    """Keys whose provide ``new`` reports successful in this step (a success event)."""
    return [
        key
        for key, (a, b) in enumerate(zip(old.provides, new.provides, strict=True))
        if b.outcome is st.Outcome.SUCCEEDED
        and b.phase is st.Phase.IDLE
        and (a.outcome is not st.Outcome.SUCCEEDED or a.phase is not st.Phase.IDLE)
    ]


__all__ = ["FIND", "NO_HISTORY", "OPERATIONS", "PROVIDE", "Ghost", "observe", "parties", "reported"]
