"""A live run as the model's observable projection: real 256-bit IDs, the XOR metric, ghosts.

The judge (``judge.py``) runs the model's own observable checks (``kadspec.models.checks``) on
live nodes; this module gives those checks what they take: :class:`ObservedNode` per node per
moment, :class:`ObservedStep` per event that is a step, and the nodes of a *round* (every
running node snapshotted) for the progress checks. Nothing is squeezed into small IDs: a peer's
position is ``sha256(peer ID bytes)`` and a key's ``sha256(key bytes)`` (the kad key rule, as
libp2p computes it), 256 bits wide, and buckets and closeness are the model's functions over
those integers.

Peers and keys are *indexed* (the model's checks name peers by index); an index is a position
in this run's list of every peer ID that appears in it (the run's nodes first, then any other
peer seen), each with its real 256-bit position. A node restarted under a new peer ID is a new
index.

The ghost (``models/ghost.py``), the observer's record of history that checks read, is written
here from the run's entries, never from what a node says about itself in a snapshot:

- ``heard``/``servers``: identify received (kad advertised or not), kad responses received;
- ``observers``: peers that reported an observed address in identify;
- ``boot_dialed``: outbound connections to configured bootstrap peers;
- ``asked``: provide and find requests without an outcome yet (reply or outcome event);
- ``publishes``: ADD_PROVIDER received from the provider itself by a server, and the node's
  own provides and successes; ``stored``/``sent``/``kept``/``retried`` for PROV-02 and PROV-05;
- ``self_answered``: a FIND_NODE response for the node's own ID received;
- configured bootstrap peers start in ``heard`` and ``servers``: RT-02 and RT-03 accept the
  operator's configuration as evidence (until an identify says the peer is a client).

Not observable through protocol v1, so left empty: failed dials (``unresponsive``), request
deadlines (``waiting``/``unanswered``) and AutoNAT dial-backs (``dialed_back``). Checks that
rest on them can only pass vacuously there, and the judge reports their premise as never met.

Between snapshots a node's table, connections, protocols, mode and records follow its events
(``routing_table_*``, ``connection_*``, ``identify_received``, ``mode_changed``, accepted
ADD_PROVIDERs); each snapshot resynchronises them. Times are the adapter's clock (events carry
it; requests, replies and snapshots are mapped onto it by the latest offset seen), so record
expiry is judged on the clock the node itself used.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs

from kadspec.conformance.protocol import Entry, Run, unbase58, wire_key
from kadspec.models.config import ModeSetting
from kadspec.models.ghost import FIND, PROVIDE, Ghost
from kadspec.models.observe import Event, ObservedNode, ObservedPeer, ObservedStep
from kadspec.models.state import Addr, Conn, Kind, Message, Mode, Proto, Record

#: a protocol ID that says "kad server" (``/ipfs/kad/1.0.0`` or a custom prefix's kad)
KAD_SUFFIX = "/kad/1.0.0"
ID_BITS = 256
#: model defaults when a start gives no override (ms)
DEFAULT_K = 20
DEFAULT_RECORD_TTL = 48 * 3600 * 1000
DEFAULT_REQUEST_DEADLINE = 10_000

ProfileName = Literal["loopback", "public"]


@attrs.frozen
class Profile:
    """How addresses are classified, stated in every report.

    ``loopback`` (loopback and LAN test networks): every IP address with a port counts as
    dialable, and no observed address is a reachability candidate (there is no NAT to learn
    about; an observed address is the dialer's ephemeral port). ``public``: only globally
    routable IP addresses and DNS names are dialable, and an observed public address is a
    candidate for confirmation (ADDR-03, ADDR-05).
    """

    name: ProfileName = "loopback"

    def dialable(self, addr: str) -> bool:
        host, port = _host_port(addr)
        if host is None or port in (None, 0):
            return False
        if self.name == "loopback":
            return True
        return _public(host)

    def candidate(self, addr: str) -> bool:
        """Whether an observed address can be a reachability candidate under this profile."""
        return self.name == "public" and self.dialable(addr)

    def describe(self) -> str:
        if self.name == "loopback":
            return (
                "loopback/LAN: loopback and private addresses with a port are dialable; observed "
                "addresses are never reachability candidates"
            )
        return (
            "public: only globally routable IP addresses and DNS names are dialable; an "
            "observed public address is a candidate until confirmed"
        )


LOOPBACK = Profile("loopback")
PUBLIC = Profile("public")
PROFILES: Mapping[str, Profile] = {"loopback": LOOPBACK, "public": PUBLIC}


def _host_port(addr: str) -> tuple[str | None, int | None]:
    parts = addr.strip("/").split("/")
    host: str | None = None
    port: int | None = None
    for proto, value in zip(parts[::2], parts[1::2], strict=False):
        if proto in ("ip4", "ip6", "dns", "dns4", "dns6", "dnsaddr") and host is None:
            host = value if proto.startswith("ip") else "dns:" + value
        elif proto in ("tcp", "udp") and port is None:
            try:
                port = int(value)
            except ValueError:
                return None, None
    return host, port


def _public(host: str) -> bool:
    if host.startswith("dns:"):
        return host != "dns:localhost"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_global


def strip_peer(addr: str) -> str:
    """A multiaddr without its trailing ``/p2p/<id>``."""
    at = addr.find("/p2p/")
    return addr if at < 0 else addr[:at]


@functools.lru_cache(maxsize=65536)
def position(wire: str) -> int:
    """The 256-bit kad position of a wire key or a peer ID (base58btc): sha256 of its bytes."""
    return int.from_bytes(hashlib.sha256(unbase58(wire)).digest(), "big")


def is_kad(protocols: Sequence[str]) -> bool:
    return any(p.endswith(KAD_SUFFIX) for p in protocols)


_MODES = {"server": Mode.SERVER, "client": Mode.CLIENT}
_SETTINGS = {"auto": ModeSetting.AUTO, "server": ModeSetting.SERVER, "client": ModeSetting.CLIENT}
#: requests after which the network needs time to settle (progress deadlines count from them
#: and from their replies)
DISTURBING = frozenset(
    {"start", "stop", "crash", "restart", "set_mode", "dial", "provide", "find_providers"}
)


@attrs.define
class View:
    """What the observer knows of one running node identity (an index)."""

    index: int
    name: str
    setting: ModeSetting
    k: int
    record_ttl: int
    bootstrap: frozenset[int]
    request_deadline: int = DEFAULT_REQUEST_DEADLINE
    up: bool = False
    mode: Mode = Mode.CLIENT
    #: (adapter time, mode) changes, for the identify/mode grace window
    modes: list[tuple[int, Mode]] = attrs.Factory(list)
    listen: tuple[str, ...] = ()
    external: tuple[str, ...] = ()
    connections: dict[int, list[str]] = attrs.Factory(dict)
    dialed: dict[int, set[str]] = attrs.Factory(dict)
    protocols: dict[int, tuple[str, ...]] = attrs.Factory(dict)
    table: dict[int, tuple[str, ...]] = attrs.Factory(dict)
    records: dict[tuple[int, int], Record] = attrs.Factory(dict)
    observed: set[str] = attrs.Factory(set)
    ghost: Ghost = attrs.field(factory=Ghost)
    version: int = 0

    def set_mode(self, now: int, mode: Mode) -> None:
        if not self.modes or self.modes[-1][1] is not mode:
            self.modes.append((now, mode))
        self.mode = mode

    def mode_during(self, start: int, end: int) -> set[Mode]:
        """Every mode the node was in at some time in [start, end]."""
        found: set[Mode] = set()
        current: Mode | None = None
        for at, mode in self.modes:
            if at <= start:
                current = mode
            elif at <= end:
                found.add(mode)
        if current is not None:
            found.add(current)
        return found or {self.mode}


@attrs.define
class _Deferred:
    """A success report waiting for its grace window (PROV-02's stores may be logged later)."""

    due: int
    seqs: tuple[int, ...]
    at: int
    before: tuple[ObservedNode, ...]
    event: Event
    view: View
    stored: set[tuple[int, int]]


@attrs.frozen
class Moment:
    """Something the judge checks, with the entries that show it.

    ``kind`` is ``snapshot`` (one node: ``node``), ``step`` (``step``), ``round`` (every
    running node: ``nodes``, for progress) or ``end`` (the run's last time, for bounds)."""

    kind: Literal["snapshot", "step", "round", "end"]
    seqs: tuple[int, ...]
    now: int
    node: ObservedNode | None = None
    nodes: tuple[ObservedNode, ...] = ()
    step: ObservedStep | None = None
    what: str = ""


class Observer:
    """Walks a run's entries and yields the moments to judge (see the module docstring)."""

    def __init__(self, run: Run, profile: Profile) -> None:
        self.run = run
        self.profile = profile
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.positions: list[int] = []
        self.keys: dict[str, int] = {}
        self.key_text: dict[int, str] = {}
        self._collect()
        self.peer_ids = tuple(self.positions)
        #: every address a peer listens on, as the run showed it (start replies, snapshots,
        #: identify): the truth an address held for it is compared with
        self.listen_of: dict[int, set[str]] = {i: set() for i in range(len(self.names))}
        self.views: dict[int, View] = {}
        self.current: dict[str, int] = {}  # node name -> its current identity's index
        self.requests: dict[int, Entry] = {}
        self.offset = 0  # adapter time - runner time, from the latest event
        self._cache: dict[int, tuple[tuple[int, int], ObservedNode]] = {}
        self._snapped: set[int] = set()
        self.disturbed: list[tuple[int, int]] = []  # (time, seq) of disturbing requests
        #: (node, peer, topic) -> requests that passed their deadline unanswered: the next
        #: reply on that topic is theirs (replies answer the oldest request first), too late
        self._late: Counter[tuple[int, int, int]] = Counter()
        #: success reports judged once the grace window passed
        self._deferred: list[_Deferred] = []
        #: events of nodes whose start or restart reply has not come yet
        self._early: dict[str, list[tuple[Entry, int]]] = {}

    # --- indexing ----------------------------------------------------------------------------

    def _peer(self, peer_id: str, name: str | None = None) -> int:
        found = self.index.get(peer_id)
        if found is None:
            found = self.index[peer_id] = len(self.names)
            self.names.append(name or f"peer:{peer_id[-8:]}")
            self.positions.append(position(peer_id))
        return found

    def _key(self, wire: str, text: str | None = None) -> int:
        found = self.keys.get(wire)
        if found is None:
            found = self.keys[wire] = len(self.keys)
        if text is not None:
            self.key_text.setdefault(found, text)
        return found

    def _collect(self) -> None:
        """Index every peer ID and key of the run (run nodes first, in start order)."""
        self.identify_events = any(True for _ in self.run.events("identify_received"))
        taken: dict[str, int] = {}
        for entry in self.run.entries:
            payload = entry.payload
            if entry.kind == "reply" and payload.get("ok"):
                result = payload.get("result", {})
                if "peer_id" in result and "listen_addrs" in result:
                    peer = str(result["peer_id"])
                    if peer not in self.index:
                        seen = taken.get(entry.node, 0)
                        taken[entry.node] = seen + 1
                        self._peer(peer, entry.node + "'" * seen)
        for record in self.run.nodes:
            if record.peer_id and record.peer_id not in self.index:
                self._peer(record.peer_id, record.name)
        for entry in self.run.entries:
            for peer in _peers_in(entry.payload):
                self._peer(peer)
            for wire, text in _keys_in(entry):
                self._key(wire, text)

    # --- time --------------------------------------------------------------------------------

    def clock(self, entry: Entry) -> int:
        if entry.kind == "event" and isinstance(entry.payload.get("time_ms"), int):
            self.offset = int(entry.payload["time_ms"]) - entry.time_ms
            return int(entry.payload["time_ms"])
        return entry.time_ms + self.offset

    # --- observed nodes ----------------------------------------------------------------------

    def observed(self, index: int) -> ObservedNode:
        """The node's projection, rebuilt only when what it shows changed (``_touch`` or a new
        listen address anywhere); a ghost-only change swaps the ghost in."""
        view = self.views.get(index)
        cached = self._cache.get(index)
        version = (-1 if view is None else view.version, self._epoch)
        if cached is not None and cached[0] == version:
            node = cached[1]
            if view is None or node.ghost is view.ghost:
                return node
            node = attrs.evolve(node, ghost=view.ghost)
        else:
            node = self._project(index, view)
        self._cache[index] = (version, node)
        return node

    _epoch = 0

    def _learn_listen(self, index: int, addrs: Iterable[str]) -> None:
        known = self.listen_of.setdefault(index, set())
        new = set(addrs) - known
        if new:
            known.update(new)
            self._epoch += 1  # every node's address classification may change

    def all_observed(self) -> tuple[ObservedNode, ...]:
        return tuple(self.observed(i) for i in range(len(self.names)))

    def _project(self, index: int, view: View | None) -> ObservedNode:
        count = len(self.names)
        if view is None:
            return ObservedNode(
                node=index, name=self.names[index], names=tuple(self.names),
                id=self.positions[index], peer_ids=self.peer_ids, id_bits=ID_BITS, k=DEFAULT_K,
                record_ttl=DEFAULT_RECORD_TTL, republish_margin=0, outcome_bound=None,
                bootstrap=(), up=False, mode=Mode.CLIENT, setting=ModeSetting.AUTO,
                listen_public=False, candidate=False, confirmed=False,
                peers=(ObservedPeer(Conn.NONE, Proto.UNKNOWN, Addr.NONE, False),) * count,
                provides=(), finds=(), found=(), records=frozenset(), ghost=Ghost(),
            )  # fmt: skip
        peers = tuple(self._peer_view(view, p) for p in range(count))
        # an address the node listens on itself is configured, not learned: only an external
        # address beyond those is "confirmed" in the model's sense (ADDR-03, ADDR-04)
        confirmed = bool(set(view.external) - set(view.listen))
        candidate = any(
            self.profile.candidate(a) and strip_peer(a) not in view.external for a in view.observed
        )
        return ObservedNode(
            node=index, name=view.name, names=tuple(self.names), id=self.positions[index],
            peer_ids=self.peer_ids, id_bits=ID_BITS, k=view.k, record_ttl=view.record_ttl,
            republish_margin=0, outcome_bound=self.outcome_bound,
            bootstrap=tuple(sorted(view.bootstrap)), up=view.up, mode=view.mode,
            setting=view.setting,
            listen_public=any(self.profile.dialable(a) for a in view.listen),
            candidate=candidate and not confirmed, confirmed=confirmed, peers=peers,
            provides=(), finds=(), found=(), records=frozenset(view.records.values()),
            ghost=view.ghost,
        )  # fmt: skip

    outcome_bound: int | None = None

    def _peer_view(self, view: View, p: int) -> ObservedPeer:
        directions = view.connections.get(p, [])
        conn = (
            Conn.OUTBOUND if "outbound" in directions else Conn.INBOUND if directions else Conn.NONE
        )
        protocols = view.protocols.get(p)
        proto = (
            Proto.UNKNOWN
            if protocols is None
            else Proto.SERVER
            if is_kad(protocols)
            else Proto.CLIENT
        )
        in_table = p in view.table
        held = view.table.get(p, ())
        truth = self.listen_of.get(p, set()) | view.dialed.get(p, set())
        if not in_table:
            held = tuple(truth & (self.listen_of.get(p, set()) if p in view.protocols else set()))
            held += tuple(view.dialed.get(p, ()))
        if any(strip_peer(a) in truth and self.profile.dialable(a) for a in held):
            addr = Addr.DIALABLE
        elif held or conn is Conn.INBOUND:
            addr = Addr.REMOTE
        else:
            addr = Addr.NONE
        return ObservedPeer(conn, proto, addr, in_table)

    # --- walking the run ---------------------------------------------------------------------

    def moments(self) -> Iterator[Moment]:
        last = 0
        for entry in self.run.entries:
            now = self.clock(entry)
            last = max(last, now)
            yield from self._due(now)
            yield from self._entry(entry, now)
        yield from self._due(1 << 62)
        yield Moment("end", (), last, nodes=self.all_observed())

    def _due(self, now: int) -> Iterator[Moment]:
        """Deferred success reports whose grace window ended: judged with the stores seen by
        then (a holder's report of the ADD_PROVIDER may be logged after the sender's
        outcome, as both come from different nodes)."""
        while self._deferred and self._deferred[0].due <= now:
            d = self._deferred.pop(0)
            after = list(self.all_observed())
            # the stores seen at the report and within the window (the node may have been
            # stopped or started a new round since, which resets its ghost)
            node = after[d.view.index]
            after[d.view.index] = attrs.evolve(
                node, ghost=attrs.evolve(node.ghost, stored=frozenset(d.stored))
            )
            step = ObservedStep(d.before, tuple(after), d.at, None, (), (d.event,))
            view = d.view
            yield Moment("step", d.seqs, d.at, step=step, what=f"{view.name} reports its provide")

    def _expire(self, now: int) -> None:
        """Requests whose deadline passed unanswered: their peers go ``unanswered`` (the
        model's ghost does the same when time passes), so a node MAY leave them out."""
        if self._next_deadline > now:
            return
        upcoming = []
        for view in self.views.values():
            g = view.ghost
            late = [w for w in g.waiting if w[1] <= now]
            for peer, _, topic in late:
                self._late[(view.index, peer, topic)] += 1
            if late:
                view.ghost = attrs.evolve(
                    g,
                    waiting=tuple(w for w in g.waiting if w[1] > now),
                    unanswered=g.unanswered | {w[0] for w in late},
                )
            upcoming += [w[1] for w in view.ghost.waiting]
        self._next_deadline = min(upcoming, default=1 << 62)

    _next_deadline = 1 << 62

    def _wait_for(self, view: View, peer: int, topic: int, now: int) -> None:
        deadline = now + view.request_deadline
        view.ghost = attrs.evolve(
            view.ghost, waiting=tuple(sorted((*view.ghost.waiting, (peer, deadline, topic))))
        )
        self._next_deadline = min(self._next_deadline, deadline)

    def _entry(self, entry: Entry, now: int) -> Iterator[Moment]:
        self._expire(now)
        payload = entry.payload
        if entry.kind == "request":
            op = str(payload.get("op", ""))
            self.requests[int(payload.get("id", -1))] = entry
            if op in DISTURBING:
                self.disturbed.append((now, entry.seq))
            self._on_request(entry, op, payload.get("args", {}) or {}, now)
        elif entry.kind in ("reply", "snapshot"):
            request = self.requests.get(
                entry.request if entry.request is not None else int(payload.get("id", -1))
            )
            op = "" if request is None else str(request.payload.get("op", ""))
            if op in DISTURBING:  # the operation ran until its reply: settling counts from here
                self.disturbed.append((now, entry.seq))
            if entry.kind == "snapshot" or (op == "snapshot" and payload.get("ok")):
                snapshot = payload if entry.kind == "snapshot" else payload.get("result", {})
                yield from self._on_snapshot(entry, snapshot, now)
            elif request is not None:
                yield from self._on_reply(entry, request, op, payload, now)
        elif entry.kind == "event":
            yield from self._on_event(entry, payload, now)

    def _view(self, name: str) -> View | None:
        index = self.current.get(name)
        return None if index is None else self.views.get(index)

    def _touch(self, view: View) -> None:
        view.version += 1

    def _on_request(self, entry: Entry, op: str, args: Mapping[str, Any], now: int) -> None:
        if op in ("start", "restart"):  # its node's events may come before the reply
            self._early[str(args.get("node", entry.node))] = []
        view = self._view(str(args.get("node", entry.node)))
        if view is None or not view.up:
            return
        if op == "provide":
            key = self._key(wire_key(str(args.get("key", ""))), str(args.get("key", "")))
            view.ghost = _ask(view.ghost, PROVIDE, key, now)
            view.ghost = attrs.evolve(
                view.ghost, publishes=_publish(view.ghost.publishes, key, view.index, now)
            )
            view.records[(key, view.index)] = Record(key, view.index, now + view.record_ttl)
        elif op == "find_providers":
            key = self._key(wire_key(str(args.get("key", ""))), str(args.get("key", "")))
            if not any(e[:2] == (FIND, key) for e in view.ghost.asked):
                view.ghost = _ask(view.ghost, FIND, key, now)
        elif op == "set_mode" and str(args.get("mode")) in _SETTINGS:
            view.setting = _SETTINGS[str(args["mode"])]
        self._touch(view)

    def _on_reply(
        self, entry: Entry, request: Entry, op: str, payload: Mapping[str, Any], now: int
    ) -> Iterator[Moment]:
        args = request.payload.get("args", {}) or {}
        name = str(args.get("node", request.node))
        early = self._early.pop(name, []) if op in ("start", "restart") else []
        if not payload.get("ok"):
            return
        result = payload.get("result", {}) or {}
        if op == "start":
            self._start(name, args, result, now)
        elif op == "restart":
            view = self._view(name)
            if view is not None:
                view.up = True
                view.ghost = _fresh(view, view.ghost.publishes)
                self._touch(view)
        elif op in ("stop", "crash"):
            view = self._view(name)
            if view is not None:
                self._down(view)
        elif op in ("provide", "find_providers") and not self.run.hello.capabilities.events:
            # without events the reply is the node's report of the outcome
            view = self._view(name)
            if view is None:
                return
            key = self._key(wire_key(str(args.get("key", ""))))
            if op == "provide":
                yield from self._outcome(view, key, result, (request.seq, entry.seq), now)
            else:
                view.ghost = _answer(view.ghost, FIND, key)
                self._touch(view)
        for event, at in early:  # what the node did while it started, in order
            yield from self._on_event(event, event.payload, at)

    def _start(
        self, name: str, args: Mapping[str, Any], result: Mapping[str, Any], now: int
    ) -> None:
        peer = str(result.get("peer_id", ""))
        index = self._peer(peer, name)
        # an adapter without the "timings" capability ignores the overrides: its defaults hold
        timings = (args.get("timings", {}) or {}) if self.run.hello.capabilities.timings else {}
        bootstrap = frozenset(
            self.index[a.rsplit("/p2p/", 1)[1]]
            for a in args.get("bootstrap", []) or []
            if "/p2p/" in a and a.rsplit("/p2p/", 1)[1] in self.index
        )
        old = self.views.get(index)
        view = View(
            index=index,
            name=self.names[index],
            setting=_SETTINGS.get(str(args.get("mode", "auto")), ModeSetting.AUTO),
            k=int(timings.get("k", DEFAULT_K)),
            record_ttl=int(timings.get("record_ttl", DEFAULT_RECORD_TTL)),
            request_deadline=int(timings.get("request_deadline", DEFAULT_REQUEST_DEADLINE)),
            bootstrap=bootstrap,
            up=True,
        )
        view.ghost = _fresh(view, old.ghost.publishes if old is not None else frozenset())
        view.listen = tuple(strip_peer(a) for a in result.get("listen_addrs", []) or [])
        self._learn_listen(index, view.listen)
        for a in args.get("bootstrap", []) or []:
            if "/p2p/" in a:
                peer_of = self.index.get(a.rsplit("/p2p/", 1)[1])
                if peer_of is not None:
                    view.dialed.setdefault(peer_of, set()).add(strip_peer(a))
        mode = Mode.SERVER if view.setting is ModeSetting.SERVER else Mode.CLIENT
        view.set_mode(now, mode)
        self.views[index] = view
        self.current[name] = index

    def _down(self, view: View) -> None:
        view.up = False
        view.connections.clear()
        view.table.clear()
        view.protocols.clear()
        view.ghost = Ghost(publishes=view.ghost.publishes)
        self._touch(view)
        for other in self.views.values():
            if view.index in other.connections:
                del other.connections[view.index]
                self._touch(other)

    def _on_snapshot(self, entry: Entry, snapshot: Mapping[str, Any], now: int) -> Iterator[Moment]:
        view = self._view(entry.node)
        if view is None or not view.up:
            return
        if isinstance(snapshot.get("time_ms"), int):
            now = int(snapshot["time_ms"])
        if snapshot.get("mode") in _MODES:
            view.set_mode(now, _MODES[str(snapshot["mode"])])
        view.listen = tuple(strip_peer(a) for a in snapshot.get("listen_addrs", []) or [])
        self._learn_listen(view.index, view.listen)
        view.external = tuple(strip_peer(a) for a in snapshot.get("external_addrs", []) or [])
        view.connections = {}
        for c in snapshot.get("connections", []) or []:
            p = self._peer(str(c["peer_id"]))
            view.connections.setdefault(p, []).append(str(c.get("direction", "")))
            if c.get("direction") == "outbound":
                view.dialed.setdefault(p, set()).add(strip_peer(str(c.get("remote_addr", ""))))
        view.table = {
            self._peer(str(e["peer_id"])): tuple(e.get("addrs", []) or [])
            for e in snapshot.get("routing_table", []) or []
        }
        if not self.identify_events:
            # what identify said, as the node reports it; with identify events the observer's
            # own record is used instead (an implementation's peer store may mix in protocols
            # a peer merely used, e.g. js-libp2p's for an inbound stream)
            view.protocols = {
                self._peer(str(p)): tuple(ps)
                for p, ps in (snapshot.get("protocols", {}) or {}).items()
            }
        records: dict[tuple[int, int], Record] = {}
        for r in snapshot.get("provider_records", []) or []:
            key = self._key(str(r["key"]))
            provider = self._peer(str(r["provider"]))
            records[(key, provider)] = Record(key, provider, int(r.get("expires_at_ms", 0)))
        view.records = records
        self._touch(view)
        self._snapped.add(view.index)
        yield Moment("snapshot", (entry.seq,), now, node=self.observed(view.index))
        running = {i for i, v in self.views.items() if v.up}
        if running and running <= self._snapped:
            self._snapped = set()
            yield Moment("round", (entry.seq,), now, nodes=self.all_observed())

    def _on_event(self, entry: Entry, e: Mapping[str, Any], now: int) -> Iterator[Moment]:
        view = self._view(entry.node)
        if view is None or not view.up:
            if entry.node in self._early:  # (re)starting: judged once the reply names it
                self._early[entry.node].append((entry, now))
            return
        kind = str(e.get("event", ""))
        peer = self._peer(str(e["peer"])) if isinstance(e.get("peer"), str) else -1
        seqs = (entry.seq,)
        g = view.ghost
        if kind == "connection_opened":
            view.connections.setdefault(peer, []).append(str(e.get("direction", "")))
            if e.get("direction") == "outbound":
                view.dialed.setdefault(peer, set()).add(strip_peer(str(e.get("remote_addr", ""))))
                g = attrs.evolve(
                    g, unanswered=g.unanswered - {peer}, unresponsive=g.unresponsive - {peer}
                )
                if peer in view.bootstrap:
                    g = attrs.evolve(g, boot_dialed=g.boot_dialed | {peer})
                view.ghost = g
        elif kind == "connection_closed":
            directions = view.connections.get(peer, [])
            if str(e.get("direction")) in directions:
                directions.remove(str(e.get("direction")))
            elif directions:
                directions.pop()
            if not directions:
                view.connections.pop(peer, None)
        elif kind == "identify_received":
            protocols = tuple(e.get("protocols", []) or [])
            view.protocols[peer] = protocols
            listen = {strip_peer(a) for a in e.get("listen_addrs", []) or []}
            self._learn_listen(peer, listen)
            server = is_kad(protocols)
            observers = g.observers
            if e.get("observed_addr"):
                view.observed.add(str(e["observed_addr"]))
                observers = observers | {peer}
            view.ghost = attrs.evolve(
                g,
                heard=g.heard | {peer},
                servers=g.servers | {peer} if server else g.servers - {peer},
                unresponsive=g.unresponsive - {peer},
                unanswered=g.unanswered - {peer},
                observers=observers,
            )
            self._touch(view)
            yield from self._identify_step(view, peer, server, seqs, now)
        elif kind == "routing_table_added":
            before = self.all_observed()
            view.table[peer] = tuple(e.get("addrs", []) or [])
            self._touch(view)
            moment = self._step(seqs, now, before, what=f"{view.name} adds {self.names[peer]}")
            # an admission is also a moment for the node invariants (between snapshots)
            yield attrs.evolve(moment, node=self.observed(view.index))
        elif kind == "routing_table_removed":
            view.table.pop(peer, None)
        elif kind == "mode_changed" and e.get("mode") in _MODES:
            view.set_mode(now, _MODES[str(e["mode"])])
        elif kind == "kad_request_sent":
            yield from self._request_sent(view, peer, e, seqs, now)
        elif kind == "kad_request_received":
            yield from self._request_received(view, peer, e, seqs, now)
        elif kind == "kad_response_sent":
            yield from self._response_sent(view, peer, e, seqs, now)
        elif kind == "kad_response_received":
            key = e.get("key")
            own = self.names and key is not None and self.index.get(str(key)) == view.index
            topic = position(str(key)) if key is not None else 0
            waiting, unanswered = g.waiting, g.unanswered
            if self._late[(view.index, peer, topic)]:  # the reply to an expired request
                self._late[(view.index, peer, topic)] -= 1
            elif any(w[0] == peer and w[2] == topic for w in waiting):
                waiting = _answered(waiting, peer, topic)  # in time (late ones expired)
                unanswered = unanswered - {peer}
            view.ghost = attrs.evolve(
                g,
                waiting=waiting,
                unanswered=unanswered,
                heard=g.heard | {peer},
                servers=g.servers | {peer},
                unresponsive=g.unresponsive - {peer},
                self_answered=g.self_answered or bool(own and e.get("kad_type") == "FIND_NODE"),
            )
        elif kind == "provide_outcome":
            key = self._key(wire_key(str(e.get("key", ""))))
            yield from self._outcome(view, key, e, seqs, now)
        elif kind == "find_outcome":
            key = self._key(wire_key(str(e.get("key", ""))))
            view.ghost = _answer(g, FIND, key)
        if kind in _STRUCTURAL:
            self._touch(view)

    def _identify_step(
        self, view: View, sender: int, server: bool, seqs: tuple[int, ...], now: int
    ) -> Iterator[Moment]:
        """ADDR-01 judges an identify by its sender's mode when it was sent: the receiver's
        event is later than the sending, so the sender may have been in either mode within the
        grace window; the step shows the mode that matches if any did."""
        other = self.views.get(sender)
        if other is None or not other.up:
            return
        modes = other.mode_during(now - self.grace_ms, now)
        wanted = Mode.SERVER if server else Mode.CLIENT
        nodes = list(self.all_observed())
        if wanted in modes:
            nodes[sender] = attrs.evolve(nodes[sender], mode=wanted)
        message = Message(Kind.IDENTIFY, src=sender, dst=view.index, server=server)
        yield self._step(
            seqs, now, tuple(nodes), sent=(message,), after=tuple(nodes),
            what=f"{self.names[sender]} identifies to {view.name}",
        )  # fmt: skip

    grace_ms = 500

    def _step(
        self,
        seqs: tuple[int, ...],
        now: int,
        before: tuple[ObservedNode, ...],
        *,
        after: tuple[ObservedNode, ...] | None = None,
        delivered: Message | None = None,
        sent: tuple[Message, ...] = (),
        events: tuple[Event, ...] = (),
        what: str = "",
    ) -> Moment:
        step = ObservedStep(
            before, after if after is not None else self.all_observed(), now, delivered, sent,
            events,
        )  # fmt: skip
        return Moment("step", seqs, now, step=step, what=what)

    def _infos(self, infos: Any) -> frozenset[int]:
        return frozenset(self._peer(str(i["peer_id"])) for i in infos or [] if "peer_id" in i)

    def _request_sent(
        self, view: View, peer: int, e: Mapping[str, Any], seqs: tuple[int, ...], now: int
    ) -> Iterator[Moment]:
        g = view.ghost
        kad_type = e.get("kad_type")
        key = e.get("key")
        if kad_type == "ADD_PROVIDER" and key is not None:
            k = self._key(str(key))
            own = [i for i in e.get("providers", []) or [] if i.get("peer_id") in self.index]
            provider = self.index[str(own[0]["peer_id"])] if own else view.index
            addrs = [a for i in own for a in i.get("addrs", []) or []]
            if provider == view.index:
                batch = g.last_sent(k)
                if batch is None or batch < now - self.grace_ms:  # a new round for the key
                    view.ghost = attrs.evolve(
                        g,
                        stored=frozenset(s for s in g.stored if s[0] != k),
                        sent=frozenset(s for s in g.sent if s[0] != k) | {(k, now)},
                        retried=g.retried | ({k} if g.kept_since(k) is not None else set()),
                    )
                self._wait_for(view, peer, -1 - k, now)  # until the holder has it
            message = Message(
                Kind.ADD_PROVIDER, src=view.index, dst=peer, key=k, provider=provider,
                public=any(self.profile.dialable(a) for a in addrs),
            )  # fmt: skip
            before = self.all_observed()
            yield self._step(
                seqs, now, before, sent=(message,), what=f"{view.name} sends ADD_PROVIDER"
            )
            return
        if kad_type == "FIND_NODE" and key is not None and str(key) in self.keys:
            k = self.keys[str(key)]
            if g.kept_since(k) is not None:
                view.ghost = attrs.evolve(g, retried=g.retried | {k})
        if kad_type in ("FIND_NODE", "GET_PROVIDERS") and key is not None:
            self._wait_for(view, peer, position(str(key)), now)

    def _request_received(
        self, view: View, peer: int, e: Mapping[str, Any], seqs: tuple[int, ...], now: int
    ) -> Iterator[Moment]:
        kad_type = e.get("kad_type")
        key = e.get("key")
        if kad_type != "ADD_PROVIDER" or key is None:
            return
        k = self._key(str(key))
        own = [i for i in e.get("providers", []) or [] if i.get("peer_id") == self.names_id(peer)]
        provider = self.views.get(peer)
        accepted = bool(own) and view.mode is Mode.SERVER and any(i.get("addrs") for i in own)
        if provider is not None and own:
            pg = provider.ghost
            if self._late[(provider.index, view.index, -1 - k)]:  # delivered after its deadline
                self._late[(provider.index, view.index, -1 - k)] -= 1
            elif any(w[0] == view.index and w[2] == -1 - k for w in pg.waiting):
                pg = attrs.evolve(pg, waiting=_answered(pg.waiting, view.index, -1 - k))
            if not accepted:  # refused: the provider MAY leave the holder out
                pg = attrs.evolve(pg, unanswered=pg.unanswered | {view.index})
            provider.ghost = pg
        if not accepted:
            return
        # a server accepts a record from its provider (PROV-03): the holder's publish time
        g = view.ghost
        view.ghost = attrs.evolve(g, publishes=_publish(g.publishes, k, peer, now))
        view.records[(k, peer)] = Record(k, peer, now + view.record_ttl)
        self._touch(view)
        if provider is not None:
            pg = provider.ghost
            first, batch = pg.kept_since(k), pg.last_sent(k)
            kept = pg.kept
            retried = pg.retried
            if first is None or (batch is not None and first < batch):
                kept = frozenset(x for x in kept if x[0] != k) | {(k, now)}
                retried = retried - {k}
            provider.ghost = attrs.evolve(
                pg, stored=pg.stored | {(k, view.index)}, kept=kept, retried=retried
            )
            for d in self._deferred:  # a store logged after the provider's success report
                if d.view is provider and d.event.key == k:
                    d.stored.add((k, view.index))
        yield from ()

    def names_id(self, index: int) -> str | None:
        return next((p for p, i in self.index.items() if i == index), None)

    def _response_sent(
        self, view: View, peer: int, e: Mapping[str, Any], seqs: tuple[int, ...], now: int
    ) -> Iterator[Moment]:
        kad_type = e.get("kad_type")
        key = e.get("key")
        if kad_type not in ("FIND_NODE", "GET_PROVIDERS") or key is None:
            return
        kind = Kind.FIND_NODE_REPLY if kad_type == "FIND_NODE" else Kind.GET_PROVIDERS_REPLY
        k = self._key(str(key)) if kind is Kind.GET_PROVIDERS_REPLY else 0
        message = Message(
            kind, src=view.index, dst=peer, target=position(str(key)), key=k,
            closer=self._infos(e.get("closer_peers")),
            providers=self._infos(e.get("provider_peers")),
        )  # fmt: skip
        before = list(self.all_observed())
        if before[view.index].mode is not Mode.SERVER and Mode.SERVER in view.mode_during(
            now - self.grace_ms, now
        ):
            before[view.index] = attrs.evolve(before[view.index], mode=Mode.SERVER)  # the race
        yield self._step(
            seqs, now, tuple(before), after=tuple(before), sent=(message,),
            what=f"{view.name} answers {kad_type} from {self.names[peer]}",
        )  # fmt: skip

    def _outcome(
        self, view: View, key: int, e: Mapping[str, Any], seqs: tuple[int, ...], now: int
    ) -> Iterator[Moment]:
        g = _answer(view.ghost, PROVIDE, key)
        ok = e.get("outcome") == "success"
        if ok:
            g = attrs.evolve(g, publishes=_publish(g.publishes, key, view.index, now))
            event = Event(view.index, "provide-succeeded", key, count=int(e.get("count", 0) or 0))
        else:
            event = Event(view.index, "provide-failed", key, reason=1 if e.get("reason") else 0)
        before = self.all_observed()
        view.ghost = g
        if ok:
            stored = {s for s in g.stored if s[0] == key}
            self._deferred.append(
                _Deferred(now + self.grace_ms, seqs, now, before, event, view, stored)
            )
            return
        yield self._step(
            seqs, now, before, events=(event,), what=f"{view.name} reports its provide"
        )


#: events that change what a node shows (the rest change only its ghost)
_STRUCTURAL = frozenset(
    {"connection_opened", "connection_closed", "routing_table_removed", "mode_changed"}
)


def _fresh(view: View, publishes: frozenset[tuple[int, int, int]]) -> Ghost:
    """The ghost of a node that just (re)started. Its configured bootstrap peers count as
    evidence of kad servers from the start: RT-02 and RT-03 name the operator's configuration
    as evidence, until an identify says otherwise."""
    return Ghost(publishes=publishes, heard=view.bootstrap, servers=view.bootstrap)


def _answered(
    waiting: tuple[tuple[int, int, int], ...], peer: int, topic: int
) -> tuple[tuple[int, int, int], ...]:
    """``waiting`` without the oldest request to ``peer`` on ``topic``."""
    for index, entry in enumerate(waiting):
        if entry[0] == peer and entry[2] == topic:
            return waiting[:index] + waiting[index + 1 :]
    return waiting


def _ask(g: Ghost, op: int, key: int, now: int) -> Ghost:
    asked = frozenset(e for e in g.asked if e[:2] != (op, key)) | {(op, key, now)}
    return attrs.evolve(g, asked=asked)


def _answer(g: Ghost, op: int, key: int) -> Ghost:
    return attrs.evolve(g, asked=frozenset(e for e in g.asked if e[:2] != (op, key)))


def _publish(
    publishes: frozenset[tuple[int, int, int]], key: int, provider: int, at: int
) -> frozenset[tuple[int, int, int]]:
    return frozenset(e for e in publishes if (e[0], e[1]) != (key, provider)) | {
        (key, provider, at)
    }


def _peers_in(payload: Mapping[str, Any]) -> Iterator[str]:
    """Peer IDs an entry names (event peers, peer lists, snapshot contents)."""
    for field in ("peer", "peer_id", "provider"):
        value = payload.get(field)
        if isinstance(value, str) and value:
            yield value
    for field in ("closer_peers", "provider_peers", "providers", "routing_table", "connections"):
        for item in payload.get(field, []) or []:
            if isinstance(item, Mapping) and isinstance(item.get("peer_id"), str):
                yield str(item["peer_id"])
    for record in payload.get("provider_records", []) or []:
        if isinstance(record, Mapping) and isinstance(record.get("provider"), str):
            yield str(record["provider"])
    result = payload.get("result")
    if isinstance(result, Mapping):
        yield from _peers_in(result)


def _keys_in(entry: Entry) -> Iterator[tuple[str, str | None]]:
    """(wire key, runner text or None) of the content keys an entry names."""
    payload = entry.payload
    if entry.kind == "request" and payload.get("op") in ("provide", "find_providers"):
        text = str((payload.get("args", {}) or {}).get("key", ""))
        yield wire_key(text), text
    if entry.kind == "event":
        if payload.get("event") in ("provide_outcome", "find_outcome"):
            text = str(payload.get("key", ""))
            yield wire_key(text), text
        elif payload.get("kad_type") in ("ADD_PROVIDER", "GET_PROVIDERS") and payload.get("key"):
            yield str(payload["key"]), None
    snapshot = payload if entry.kind == "snapshot" else payload.get("result", {})
    if isinstance(snapshot, Mapping):
        for record in snapshot.get("provider_records", []) or []:
            if isinstance(record, Mapping) and isinstance(record.get("key"), str):
                yield str(record["key"]), None


__all__ = [
    "LOOPBACK",
    "PROFILES",
    "PUBLIC",
    "Moment",
    "Observer",
    "Profile",
    "View",
    "is_kad",
    "position",
    "strip_peer",
]
