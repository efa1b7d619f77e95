"""Lockstep refinement check: the reference core against the executable model, step by step.

A :class:`Lockstep` holds one model :class:`~kadspec.models.state.World` and one
:class:`~kadspec.impl.core.Core` per model node, built on the model configuration's small IDs
(a :class:`~kadspec.impl.keyspace.FixedKeyspace` of ``config.id_bits`` bits) and its timing.
Each step is an action the model enables (``models.actions``); the driver applies it to the
model and feeds the matching events to the cores:

- ``start``/``restart``: a fresh core (the provider store and the provided keys survive, like a
  disk), ``Start``; ``crash``: the core is dropped, its connections close at its peers;
- ``provide``, ``find_providers``, ``set_mode``: the user's command;
- ``tick``: the clock jumps to the model's next deadline and every core's due timers fire, node
  by node, in the model's order (request deadlines, then per key ADD_PROVIDER deadlines and the
  retry or republish, then the refresh);
- ``deliver``/``lose``: the head of the driver's own channel for that ordered pair, which holds
  what the cores sent (identify, kad requests and replies), is handed over or dropped; a refused
  request fails at its sender at once, a written ADD_PROVIDER is delivered at once (the model
  has no ADD_PROVIDER reply);
- ``disconnect``: ``ConnectionClosed`` at both ends; ``forge_add_provider``: a forged request;
- ``dial_bootstrap``: completes the dial a core asked for (``Dial`` effect); ``dial_back``:
  answers the AutoNAT request a core made (``RequestDialBack``).

What a core does on its own within a step is carried back as model steps too: each lookup
request it sends is the model's ``query`` (checked to ask the same peer), a bootstrap peer it
found already connected is the model's ``dial_bootstrap``. The admission probe (BOOT-06), which
the model abstracts as an instant look at the candidate's table, is answered at once by the
candidate's core.

After every step :func:`abstract` maps the cores (and the driver's disk and channels) to a
model ``World`` and every field is compared: nodes (mode, addresses, every peer view, table,
failure marks, bootstrap state, timers, lookups, provides, records with expiry, reported
outcomes) and the messages in flight. A difference raises :class:`Divergence` with the
numbered steps so far and the first fields that differ (node, field path, model, core).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import attrs

from kadspec.impl import effects as fx
from kadspec.impl import events as ev
from kadspec.impl.config import BootstrapPeer, CoreConfig
from kadspec.impl.config import Mode as CoreMode
from kadspec.impl.config import ModeSetting as CoreSetting
from kadspec.impl.core import Core
from kadspec.impl.effects import KAD_PROTOCOL
from kadspec.impl.events import Direction, Timer, TimerKind
from kadspec.impl.keyspace import FixedKeyspace, common_prefix_length
from kadspec.impl.lookup import Lookup as CoreLookup
from kadspec.impl.lookup import Purpose as CorePurpose
from kadspec.impl.lookup import fixed_refresh_name, refresh_target
from kadspec.impl.provide import NO_ADDRESS, NO_PEERS, NONE_DELIVERED, NOT_READY
from kadspec.impl.provide import Phase as CorePhase
from kadspec.impl.records import MemoryStore
from kadspec.impl.wire import KadMessage, MessageType, PeerInfo
from kadspec.models.actions import Action, apply, enabled
from kadspec.models.config import ModeSetting, Reach
from kadspec.models.policy import SPEC, Policy
from kadspec.models.scenarios import Scenario
from kadspec.models.state import (
    NO_FIND,
    Addr,
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
    Purpose,
    Reason,
    Record,
    World,
    replace,
)

#: far beyond any model horizon: the core's record garbage collection never runs in lockstep
#: (the model keeps expired records and never serves them, PROV-04)
NO_GC = 10**12

_SETTINGS = {
    ModeSetting.AUTO: CoreSetting.AUTO,
    ModeSetting.CLIENT: CoreSetting.CLIENT,
    ModeSetting.SERVER: CoreSetting.SERVER,
}
_PHASES = {
    CorePhase.QUEUED: Phase.QUEUED,
    CorePhase.LOOKUP: Phase.LOOKUP,
    CorePhase.SENDING: Phase.SENDING,
    CorePhase.IDLE: Phase.IDLE,
    CorePhase.STOPPED: Phase.IDLE,
}
_PURPOSES = {
    CorePurpose.SELF: Purpose.SELF,
    CorePurpose.PROVIDE: Purpose.PROVIDE,
    CorePurpose.FIND_PROVIDERS: Purpose.FIND_PROVIDERS,
    CorePurpose.REFRESH: Purpose.REFRESH,
}
_REASONS = {
    "": Reason.NONE,
    NOT_READY: Reason.NOT_READY,
    NO_ADDRESS: Reason.NO_ADDRESS,
    NO_PEERS: Reason.NO_PEERS,
    NONE_DELIVERED: Reason.NONE_DELIVERED,
}


def peer_id(node: int) -> bytes:
    """Model node ``node``'s peer ID: an identity multihash, a valid libp2p peer ID."""
    return bytes([0x00, 7]) + b"model" + node.to_bytes(2, "big")


def listen_addr(node: int) -> bytes:
    return f"/lockstep/{node}".encode()


def ephemeral_addr(node: int) -> bytes:
    """The remote address a listener sees for ``node``: an ephemeral port, never dialable."""
    return f"/lockstep/{node}/ephemeral".encode()


def content_key(key: int) -> bytes:
    """The kad key of the model's key number ``key``."""
    return f"key{key}".encode()


class Divergence(AssertionError):
    """The cores and the model disagree; the message holds the numbered steps and the fields."""


@attrs.define
class Packet:
    """What the driver carries on one ordered channel: the cores' side of a model message."""

    kind: Kind
    #: identify: the connection it describes, the sender's listen addresses and protocols
    connection: int = 0
    listen: tuple[bytes, ...] = ()
    protocols: frozenset[str] = frozenset()
    observed: bytes | None = None
    #: kad: the request ID at the sender (requests) or the requester (replies), and the message
    request: int = 0
    message: KadMessage | None = None
    forged: bool = False


@attrs.define
class FindReport:
    ok: bool
    providers: frozenset[int]
    code: str
    at: int


class Lockstep:
    """One model world and one core per model node, stepped together. See the module text."""

    def __init__(self, scenario: Scenario, policy: Policy = SPEC) -> None:
        self.scenario = scenario
        self.policy = policy
        config = scenario.config
        self.config = config
        self.world = World.initial(
            config,
            horizon=scenario.horizon,
            faults=scenario.faults,
            fault_kinds=scenario.fault_kinds,
            provides=scenario.provides,
            finds=scenario.finds,
            mode_changes=scenario.mode_changes,
        )
        count = len(config.nodes)
        self.count = count
        table = {peer_id(n): config.ids[n] for n in range(count)}
        table.update({content_key(k): value for k, value in enumerate(config.keys)})
        # the kad key of each refresh target: every node's ID with one bit flipped (BOOT-03)
        for n in range(count):
            for bucket in range(config.id_bits):
                target = refresh_target(config.ids[n], config.id_bits, bucket)
                table[fixed_refresh_name(target)] = target
        self.keyspace = FixedKeyspace(config.id_bits, table)
        self.index = {peer_id(n): n for n in range(count)}
        self.key_index = {content_key(k): k for k in range(len(config.keys))}
        self.now = 0
        self.cores: list[Core | None] = [None] * count
        self.stores = [MemoryStore() for _ in range(count)]
        self.settings = [c.mode for c in config.nodes]
        self.providing: list[tuple[bytes, ...]] = [()] * count  # on disk across restarts
        self.protocols: list[frozenset[str]] = [frozenset()] * count
        self.channels: dict[tuple[int, int], list[Packet]] = {}
        self.links: dict[frozenset[int], int] = {}  # pair -> connection ID
        self.dial_backs: list[list[bytes]] = [[] for _ in range(count)]
        self.finds: list[dict[int, FindReport]] = [{} for _ in range(count)]
        self.steps: list[str] = []
        self._next_id = 0
        self._streams: dict[int, tuple[int, int, bool]] = {}  # stream -> (requester, rid, reply)
        self._answers: dict[int, fx.SendResponse | fx.ResetStream] = {}
        self._queue: list[tuple[int, ev.Event]] = []
        self._deferred: list[tuple[int, Core, fx.SendRequest]] = []
        self._draining = False
        for node in scenario.running:
            self.step(Action("start", node=node))
        if scenario.formed:
            for _ in range(10_000):
                moves = [a for a in self.choices() if a.kind in _PROTOCOL]
                if not moves:
                    break
                self.step(moves[0])

    # --- building cores ----------------------------------------------------------------------

    def _core_config(self, node: int) -> CoreConfig:
        spec = self.config.nodes[node]
        timing = self.config.timing
        public = spec.reach is Reach.PUBLIC
        return CoreConfig(
            peer_id=peer_id(node),
            announce_addrs=(listen_addr(node),) if public else (),
            bootstrap=tuple(BootstrapPeer(peer_id(p), (listen_addr(p),)) for p in spec.bootstrap),
            mode=_SETTINGS[self.settings[node]],
            keyspace=self.keyspace,
            k=timing.k,
            alpha=timing.alpha,
            record_ttl=timing.record_ttl,
            republish_interval=timing.republish_interval,
            refresh_interval=timing.refresh_interval,
            request_deadline=timing.request_deadline,
            retry_base=timing.retry_base,
            retry_cap=timing.retry_cap,
            gc_interval=NO_GC,
        )

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- what may happen next ----------------------------------------------------------------

    def choices(self) -> list[Action]:
        """The model's enabled actions that the cores can take too, in the model's order.

        A lookup's next request is never a choice: a core sends it on its own, and the driver
        carries it as the model's ``query``. A bootstrap dial is a choice only once the core
        asked for it, an AutoNAT dial-back only once the core requested it.
        """
        out = []
        for action in enabled(self.world, self.policy):
            if action.kind == "query":
                continue
            if action.kind == "dial_bootstrap" and not self._dialing(action.node, action.peer):
                continue
            if action.kind == "dial_back" and not self.dial_backs[action.node]:
                continue
            out.append(action)
        return out

    def _dialing(self, node: int, peer: int) -> bool:
        """``node``'s core has a bootstrap dial to ``peer`` out (a ``Dial`` effect carried;
        one superseded by a later one, after a refresh started over, is dropped)."""
        core = self.cores[node]
        return core is not None and core.boot_dialing == peer_id(peer)

    def describe(self, action: Action) -> str:
        return action.describe(self.world)

    # --- one step ----------------------------------------------------------------------------

    def step(self, action: Action) -> None:
        """Apply ``action`` to the model and to the cores, then compare every field."""
        self.steps.append(self.describe(action))
        before = self.world
        self.world = apply(self.world, self.policy, action)
        handler = getattr(self, f"_do_{action.kind}")
        handler(action, before)
        self._send_lookup_requests()
        self._catch_up()
        self.check()

    def _send_lookup_requests(self) -> None:
        """Carry the lookup requests the cores sent during the step, in the order they sent
        them, each as the model's ``query``; one whose lookup has ended meanwhile (its request
        was settled) never left, as in the model, where the ended lookup asks no one."""
        while self._deferred:
            node, core, effect = self._deferred.pop(0)
            if self.cores[node] is core and effect.request in core.requests():
                self._request(node, effect)

    def _model_step(self, action: Action, note: str) -> None:
        """A model step the cores took inside the current one (a lookup request, a bootstrap
        peer found connected): listed in the trace with a letter, not a number."""
        if action not in enabled(self.world, self.policy):
            self._fail(f"the core {note}, but the model does not enable '{self.describe(action)}'")
        self.steps.append("  + " + self.describe(action))
        self.world = apply(self.world, self.policy, action)

    def _catch_up(self) -> None:
        """A bootstrap peer a core found connected when its turn came counts as dialled."""
        for node, core in enumerate(self.cores):
            if core is None:
                continue
            tried = {self.index[p] for p in core.boot_tried if p != core.boot_dialing}
            for peer in sorted(tried - self.world.nodes[node].boot_tried):
                if self.world.connected(node, peer):
                    self._model_step(
                        Action("dial_bootstrap", node=node, peer=peer),
                        f"counts bootstrap peer n{peer} as tried (already connected)",
                    )

    # --- feeding the cores -------------------------------------------------------------------

    def _feed(self, node: int, event: ev.Event) -> None:
        """Hand ``event`` to ``node``'s core once the effects being carried are done with.

        Events caused by carrying an effect (a failed dial, a connection opening) queue behind
        the rest of the effects the core emitted with it: a driver finishes carrying out one
        batch before the next event comes in, as the model finishes one action first.
        """
        self._queue.append((node, event))
        self._drain()

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue:
                target, next_event = self._queue.pop(0)
                core = self.cores[target]
                if core is None:
                    continue
                for effect in core.handle(next_event):
                    self._carry(target, effect)
        finally:
            self._draining = False

    def _carry(self, node: int, effect: fx.Effect) -> None:
        if isinstance(effect, fx.ReportOutcome):
            outcome = effect.outcome
            if isinstance(outcome, fx.FindOutcome):
                providers = frozenset(self.index[p.id] for p in outcome.providers)
                index = self.key_index[outcome.key]
                self.finds[node][index] = FindReport(outcome.ok, providers, outcome.code, self.now)
        elif isinstance(effect, fx.ModeChanged):
            self.protocols[node] = effect.protocols
            for peer in range(self.count):
                if frozenset({node, peer}) in self.links:
                    self._send_identify(node, peer, push=True)
        elif isinstance(effect, fx.Dial):
            pass  # the core's own ``boot_dialing`` says which dial is out (see ``_dialing``)
        elif isinstance(effect, fx.RequestDialBack):
            self.dial_backs[node].append(effect.addr)
        elif isinstance(effect, fx.SendRequest):
            core = self.cores[node]
            assert core is not None
            if core.requests()[effect.request].lookup is not None:
                # a lookup's next request is a model step of its own, after this one
                self._deferred.append((node, core, effect))
            else:
                self._request(node, effect)
        elif isinstance(effect, fx.SendResponse | fx.ResetStream):
            self._answers[effect.stream] = effect
        elif isinstance(effect, fx.CloseConnection):
            self._fail(f"n{node} closed connection {effect.connection}: {effect.reason}")

    def _send_identify(self, src: int, dst: int, *, push: bool) -> None:
        public = self.config.nodes[src].reach is Reach.PUBLIC
        self._enqueue(
            src,
            dst,
            Packet(
                Kind.IDENTIFY_PUSH if push else Kind.IDENTIFY,
                connection=self.links[frozenset({src, dst})],
                listen=(listen_addr(src),) if public else (),
                protocols=self.protocols[src],
                # what src saw dst at: dst's own address (for a listener, its listen address)
                observed=None if push else listen_addr(dst),
            ),
        )

    def _enqueue(self, src: int, dst: int, packet: Packet) -> None:
        self.channels.setdefault((src, dst), []).append(packet)

    def _dialable(self, src: int, dst: int, addrs: tuple[bytes, ...]) -> bool:
        return (
            self.cores[dst] is not None
            and self.config.nodes[dst].reach is Reach.PUBLIC
            and listen_addr(dst) in addrs
        )

    def _connect(self, dialer: int, listener: int) -> None:
        conn = self._id()
        self.links[frozenset({dialer, listener})] = conn
        self._feed(
            dialer,
            ev.ConnectionOpened(
                self.now, conn, peer_id(listener), Direction.OUTBOUND, listen_addr(listener)
            ),
        )
        self._feed(
            listener,
            ev.ConnectionOpened(
                self.now, conn, peer_id(dialer), Direction.INBOUND, ephemeral_addr(dialer)
            ),
        )
        self._send_identify(dialer, listener, push=False)
        self._send_identify(listener, dialer, push=False)

    def _request(self, node: int, effect: fx.SendRequest) -> None:
        core = self.cores[node]
        assert core is not None
        request = core.requests()[effect.request]
        peer = self.index[effect.peer]
        if request.probe:
            self._probe(node, peer, effect)
            return
        if request.provide_key is not None:
            # the model sends ADD_PROVIDER on the lookup's connections without dialing again
            self._enqueue(node, peer, Packet(Kind.ADD_PROVIDER, request=effect.request,
                                             message=effect.message))  # fmt: skip
            return
        lookups = core.lookups()
        lookup = next(lk for lk in lookups if lk.ident == request.lookup)
        purpose = _PURPOSES[lookup.purpose]
        key = self._model_key(node, lookup)
        index = next(
            (
                i
                for i, lk in enumerate(self.world.nodes[node].lookups)
                if (lk.purpose, lk.key) == (purpose, key)
            ),
            None,
        )
        if index is None:
            self._fail(f"n{node} sends a {purpose.name} request the model has no lookup for")
        model_lookup = self.world.nodes[node].lookups[index]
        expected = _next_candidate(self.world, model_lookup)
        if expected != peer:
            self._fail(
                f"n{node}'s {purpose.name} lookup asks n{peer}, the model's next candidate is "
                f"{'none' if expected is None else f'n{expected}'}"
            )
        connected = frozenset({node, peer}) in self.links
        if not connected and self._dialing(node, peer):
            # the pending bootstrap dial to this peer completes first
            self._model_step(
                Action("dial_bootstrap", node=node, peer=peer), f"dials bootstrap peer n{peer}"
            )
            if self._dialable(node, peer, (listen_addr(peer),)):
                self._connect(node, peer)
            else:
                self._feed(node, ev.DialFailed(self.now, effect.peer, "unreachable"))
                return
            connected = True
            index = next(
                i
                for i, lk in enumerate(self.world.nodes[node].lookups)
                if (lk.purpose, lk.key) == (purpose, key)
            )
        self._model_step(Action("query", node=node, key=index), f"asks n{peer}")
        if not connected:
            if not self._dialable(node, peer, effect.addrs):
                self._feed(node, ev.RequestFailed(self.now, effect.request, "dial failed"))
                return
            self._connect(node, peer)
        kind = (
            Kind.GET_PROVIDERS
            if effect.message.type is MessageType.GET_PROVIDERS
            else (Kind.FIND_NODE)
        )
        self._enqueue(node, peer, Packet(kind, request=effect.request, message=effect.message))

    def _probe(self, node: int, peer: int, effect: fx.SendRequest) -> None:
        """The admission probe: the candidate's core answers at once (the model looks at the
        candidate's table within the same step). Answering a FIND_NODE changes nothing in the
        candidate, so its effects other than the answer are not carried."""
        answer: fx.Effect | None = None
        candidate = self.cores[peer]
        link = self.links.get(frozenset({node, peer}))
        if candidate is not None and link is not None:
            stream = self._id()
            asked = ev.RequestReceived(self.now, peer_id(node), link, stream, effect.message)
            answers = [
                e
                for e in candidate.handle(asked)
                if isinstance(e, fx.SendResponse | fx.ResetStream) and e.stream == stream
            ]
            answer = answers[0] if answers else None
        if isinstance(answer, fx.SendResponse):
            self._feed(node, ev.ResponseReceived(self.now, effect.request, answer.message))
        else:
            self._feed(node, ev.RequestFailed(self.now, effect.request, "probe refused"))

    # --- the actions -------------------------------------------------------------------------

    def _do_start(self, action: Action, before: World) -> None:
        node = action.node
        self.cores[node] = Core(self._core_config(node), self.stores[node])
        self.finds[node] = {}
        self._feed(node, ev.Start(self.now, providing=self.providing[node]))

    _do_restart = _do_start

    def _do_crash(self, action: Action, before: World) -> None:
        node = action.node
        core = self.cores[node]
        assert core is not None
        self.providing[node] = tuple(
            key for key, job in core.jobs().items() if job.phase is not CorePhase.STOPPED
        )
        self.cores[node] = None
        self.dial_backs[node] = []
        self.finds[node] = {}
        for pair in [p for p in self.channels if node in p]:
            del self.channels[pair]
        for link, conn in list(self.links.items()):
            if node in link:
                del self.links[link]
                (other,) = link - {node}
                self._feed(other, ev.ConnectionClosed(self.now, conn, peer_id(node)))

    def _do_disconnect(self, action: Action, before: World) -> None:
        pair = frozenset({action.node, action.peer})
        conn = self.links.pop(pair)
        self._feed(action.node, ev.ConnectionClosed(self.now, conn, peer_id(action.peer)))
        self._feed(action.peer, ev.ConnectionClosed(self.now, conn, peer_id(action.node)))

    def _do_provide(self, action: Action, before: World) -> None:
        op = self._id()
        self._feed(action.node, ev.Provide(self.now, op, content_key(action.key)))

    def _do_find_providers(self, action: Action, before: World) -> None:
        op = self._id()
        self._feed(action.node, ev.FindProviders(self.now, op, content_key(action.key)))

    def _do_set_mode(self, action: Action, before: World) -> None:
        self.settings[action.node] = action.setting
        self._feed(action.node, ev.SetMode(self.now, _SETTINGS[action.setting]))

    def _do_tick(self, action: Action, before: World) -> None:
        """Every due timer of every core fires, node by node in the model's order, before
        anything they cause (a lookup's next request failing to dial, say) is handed back:
        the model fires all timers in one step and takes the lookups' next steps after."""
        self.now = self.world.clock
        due = []
        for node, core in enumerate(self.cores):
            if core is None:
                continue
            timers = [
                (self._timer_order(core, timer), timer)
                for timer, at in core.timers().items()
                if at <= self.now and timer.kind is not TimerKind.RECORD_GC
            ]
            due += [(node, ev.TimerFired(self.now, timer)) for _, timer in sorted(timers)]
        self._queue.extend(due)
        self._drain()

    def _timer_order(self, core: Core, timer: Timer) -> tuple[int, ...]:
        """The model's firing order within one node (``lifecycle.fire_timers``)."""
        subject = timer.subject
        if timer.kind is TimerKind.REQUEST_DEADLINE and isinstance(subject, int):
            request = core.requests().get(subject)
            if request is not None and request.lookup is not None:
                order = [lk.ident for lk in core.lookups()]
                position = order.index(request.lookup) if request.lookup in order else 0
                return (0, position, self.index[request.peer], 0)
            if request is not None and request.provide_key is not None:
                return (1, self.key_index[request.provide_key], 0, subject)
            return (0, 0, 0, subject)
        if isinstance(subject, bytes) and subject in self.key_index:
            return (1, self.key_index[subject], 1, 0)
        return (2, 0, 0, 0)

    def _pop(self, message: Message) -> Packet:
        channel = self.channels.get((message.src, message.dst), [])
        if not channel:
            self._fail(f"the model delivers a message from n{message.src} to n{message.dst}, "
                       "but the cores sent none")  # fmt: skip
        packet = channel.pop(0)
        seen = self._abstract_packet(message.src, message.dst, packet)
        if seen != message:
            self._fail(f"the head of channel n{message.src}->n{message.dst} is {seen}, the "
                       f"model's is {message}")  # fmt: skip
        return packet

    def _do_lose(self, action: Action, before: World) -> None:
        assert action.message is not None
        self._pop(action.message)

    def _do_forge_add_provider(self, action: Action, before: World) -> None:
        assert action.message is not None
        m = action.message
        forged = KadMessage(
            MessageType.ADD_PROVIDER,
            key=content_key(m.key),
            provider_peers=(PeerInfo(id=peer_id(m.provider), addrs=(listen_addr(m.provider),)),),
        )
        self._enqueue(m.src, m.dst, Packet(Kind.ADD_PROVIDER, message=forged, forged=True))

    def _do_deliver(self, action: Action, before: World) -> None:
        assert action.message is not None
        message = action.message
        packet = self._pop(message)
        src, dst = message.src, message.dst
        if self.cores[dst] is None:
            return  # lost with the process
        link = self.links.get(frozenset({src, dst}))
        if packet.kind in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
            # The model keeps one channel per pair: identify describes whatever connection the
            # pair has now (a stale one, after a close, is discarded: RT-07).
            event = ev.IdentifyReceived(
                self.now,
                link if link is not None else packet.connection,
                peer_id(src),
                packet.listen,
                packet.protocols,
                packet.observed,
            )
            self._feed(dst, event)
            return
        if link is None:
            return  # the stream died with its connection
        assert packet.message is not None
        if packet.kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY):
            rid = self._matching_request(dst, src, packet)
            self._feed(dst, ev.ResponseReceived(self.now, rid, packet.message))
            return
        stream = self._id()
        self._feed(dst, ev.RequestReceived(self.now, peer_id(src), link, stream, packet.message))
        answer = self._answers.pop(stream, None)
        if packet.forged or self.cores[src] is None:
            return
        if isinstance(answer, fx.ResetStream):
            rid = self._matching_request(src, dst, packet)
            self._feed(src, ev.RequestFailed(self.now, rid, "stream reset"))
        elif packet.kind is Kind.ADD_PROVIDER:
            rid = self._matching_request(src, dst, packet)
            self._feed(src, ev.RequestDelivered(self.now, rid))
        elif isinstance(answer, fx.SendResponse):
            kind = (
                Kind.FIND_NODE_REPLY
                if packet.kind is Kind.FIND_NODE
                else (Kind.GET_PROVIDERS_REPLY)
            )
            self._enqueue(dst, src, Packet(kind, request=packet.request, message=answer.message))
        else:
            self._fail(f"n{dst} neither answered nor refused a {packet.kind.name} from n{src}")

    def _matching_request(self, requester: int, peer: int, packet: Packet) -> int:
        """The requester's request that a reply (or a reset) from ``peer`` answers.

        The model has one channel per pair and matches a reply to the lookup by its target and
        the peer asked (``lookup._matching``), not by stream: a request sent before a
        disconnect can be answered after a reconnect, and that answer counts for whichever
        request to that peer for that key is outstanding. The driver maps it the same way.
        """
        core = self.cores[requester]
        assert core is not None and packet.message is not None
        requests = core.requests()
        if packet.request in requests:
            return packet.request
        for rid, request in requests.items():
            if request.peer != peer_id(peer):
                continue
            if request.provide_key is not None:
                if (
                    packet.message.type is MessageType.ADD_PROVIDER
                    and request.provide_key == packet.message.key
                ):
                    return rid  # the model settles ADD_PROVIDER by key and holder
                continue  # a lookup's late reply for the same key answers no ADD_PROVIDER
            lookup = next((lk for lk in core.lookups() if lk.ident == request.lookup), None)
            if lookup is None or lookup.key != packet.message.key:
                continue
            # a GET_PROVIDERS reply answers a find, a FIND_NODE reply the other lookups
            finds = lookup.purpose is CorePurpose.FIND_PROVIDERS
            if finds == (packet.message.type is MessageType.GET_PROVIDERS):
                return rid
        return packet.request

    def _do_dial_bootstrap(self, action: Action, before: World) -> None:
        node, peer = action.node, action.peer
        if before.connected(node, peer):
            return
        if self._dialable(node, peer, (listen_addr(peer),)):
            self._connect(node, peer)
        else:
            self._feed(node, ev.DialFailed(self.now, peer_id(peer), "unreachable"))

    def _do_dial_back(self, action: Action, before: World) -> None:
        node = action.node
        addr = self.dial_backs[node].pop(0)
        reachable = self.config.nodes[node].reach is Reach.PUBLIC
        self._feed(node, ev.DialBackResult(self.now, addr, reachable))

    # --- the abstraction function ------------------------------------------------------------

    def _model_key(self, node: int, lookup: CoreLookup) -> int:
        """The model's ``Lookup.key`` of ``node``'s lookup: 0 for a self-lookup, the bucket (the
        target's common prefix length with the node's ID) for a refresh, else the key's index."""
        if lookup.purpose is CorePurpose.SELF:
            return 0
        if lookup.purpose is CorePurpose.REFRESH:
            return common_prefix_length(self.config.ids[node], lookup.target, self.config.id_bits)
        return self.key_index[lookup.key]

    def _abstract_packet(self, src: int, dst: int, packet: Packet) -> Message:
        if packet.kind in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
            return Message(
                packet.kind,
                src,
                dst,
                server=KAD_PROTOCOL in packet.protocols,
                public=bool(packet.listen),
            )
        message = packet.message
        assert message is not None
        target = self.keyspace.key_of(message.key)
        key = self.key_index.get(message.key, 0)
        if packet.kind is Kind.ADD_PROVIDER:
            (info,) = message.provider_peers
            return Message(
                Kind.ADD_PROVIDER,
                src,
                dst,
                key=key,
                provider=self.index[info.id],
                public=bool(info.addrs),
            )
        closer = frozenset(self.index[p.id] for p in message.closer_peers)
        providers = frozenset(self.index[p.id] for p in message.provider_peers)
        if packet.kind is Kind.FIND_NODE_REPLY:
            return Message(packet.kind, src, dst, target=target, closer=closer)
        if packet.kind is Kind.GET_PROVIDERS_REPLY:
            return Message(
                packet.kind, src, dst, target=target, key=key, closer=closer, providers=providers
            )
        return Message(packet.kind, src, dst, target=target, key=key)

    def abstract(self) -> World:
        """The model state the cores, their disks and the channels stand for."""
        nodes = tuple(self._abstract_node(n) for n in range(self.count))
        network = tuple(
            tuple(self._abstract_packet(src, dst, p) for p in self.channels.get((src, dst), []))
            for src in range(self.count)
            for dst in range(self.count)
        )
        return replace(self.world, clock=self.now, nodes=nodes, network=network)

    def _abstract_node(self, node: int) -> NodeState:
        model = self.world.nodes[node]
        core = self.cores[node]
        keys = len(self.config.keys)
        records = frozenset(
            Record(self.key_index[r.key], self.index[r.provider], r.expires_at)
            for r in self.stores[node].everything()
        )
        if core is None:
            provides = tuple(
                ProvideState(providing=content_key(k) in self.providing[node]) for k in range(keys)
            )
            return NodeState(
                up=False,
                mode=Mode.SERVER if self.settings[node] is ModeSetting.SERVER else Mode.CLIENT,
                setting=self.settings[node],
                peers=(PeerView(),) * self.count,
                provides=provides,
                records=records,
                found=(None,) * keys,
                find_outcomes=(NO_FIND,) * keys,
                ghost=model.ghost,
            )
        timers = core.timers()
        requests = core.requests()
        deadline = {rid: timers.get(Timer(TimerKind.REQUEST_DEADLINE, rid)) for rid in requests}
        peers = []
        states = core.peers()
        for other in range(self.count):
            state = states.get(peer_id(other))
            if other == node or state is None:
                peers.append(PeerView())
                continue
            directions = set(state.connections.values())
            conn = (
                Conn.NONE
                if not directions
                else Conn.OUTBOUND
                if directions == {Direction.OUTBOUND}
                else Conn.INBOUND
            )
            proto = (
                Proto.UNKNOWN
                if state.protocols is None
                else Proto.SERVER
                if KAD_PROTOCOL in state.protocols
                else Proto.CLIENT
            )
            addr = Addr.DIALABLE if state.dialable() else Addr.REMOTE if state.remote else Addr.NONE
            peers.append(
                PeerView(
                    conn=conn,
                    proto=proto,
                    addr=addr,
                    in_table=peer_id(other) in core.table,
                    failed=state.failed,
                )
            )
        lookups = []
        for lk in core.lookups():
            purpose = _PURPOSES[lk.purpose]
            inflight = tuple(
                sorted(
                    (self.index[r.peer], deadline[rid])
                    for rid, r in requests.items()
                    if r.lookup == lk.ident and r.peer in lk.inflight
                )
            )
            lookups.append(
                Lookup(
                    purpose=purpose,
                    key=self._model_key(node, lk),
                    target=lk.target,
                    seen=frozenset(self.index[p] for p in lk.keys),
                    inflight=inflight,
                    answered=frozenset(self.index[p] for p in lk.answered),
                    failed=frozenset(self.index[p] for p in lk.failed),
                    providers=frozenset(self.index[p] for p in lk.providers),
                )
            )
        jobs = core.jobs()
        provide_states: list[ProvideState] = []
        for k in range(keys):
            job = jobs.get(content_key(k))
            if job is None:
                provide_states.append(ProvideState())
                continue
            outcome = (
                Outcome.NONE
                if job.reported is None
                else Outcome.SUCCEEDED
                if job.reported
                else Outcome.FAILED
            )
            provide_states.append(
                ProvideState(
                    providing=job.phase is not CorePhase.STOPPED,
                    phase=_PHASES[job.phase],
                    outcome=outcome,
                    reason=_REASONS[job.code],
                    delivered_to=job.delivered_to,
                    attempts=job.attempts,
                    backoff=job.backoff,
                    retry_at=timers.get(Timer(TimerKind.PROVIDE_RETRY, job.key)),
                    republish_at=timers.get(Timer(TimerKind.REPUBLISH, job.key)),
                    published_at=job.published_at,
                    pending=tuple(
                        (self.index[requests[rid].peer], deadline[rid])
                        for rid in job.pending
                        if rid in requests
                    ),
                    acked=frozenset(self.index[p] for p in job.delivered),
                )
            )
        found: list[frozenset[int] | None] = [None] * keys
        outcomes = [NO_FIND] * keys
        for k, report in self.finds[node].items():
            found[k] = report.providers
            outcomes[k] = FindState(
                outcome=Outcome.SUCCEEDED if report.ok else Outcome.FAILED,
                reason=_REASONS[report.code],
                at=report.at,
            )
        boot_tried = frozenset(self.index[p] for p in core.boot_tried if p != core.boot_dialing)
        return NodeState(
            up=True,
            mode=Mode.SERVER if core.mode is CoreMode.SERVER else Mode.CLIENT,
            setting=next(m for m, c in _SETTINGS.items() if c is core.addresses.setting),
            candidate=bool(core.addresses.candidates or core.addresses.confirmed),
            confirmed=bool(core.addresses.confirmed),
            dial_back_tried=core.addresses.dial_back_tried,
            peers=tuple(peers),
            boot_tried=boot_tried,
            self_lookup_done=core.self_lookup_done,
            refresh_at=timers.get(Timer(TimerKind.REFRESH)),
            lookups=tuple(sorted(lookups, key=lambda lk: (lk.purpose, lk.key))),
            provides=tuple(provide_states),
            records=records,
            found=tuple(found),
            find_outcomes=tuple(outcomes),
            ghost=model.ghost,
        )

    # --- comparing ---------------------------------------------------------------------------

    def check(self) -> None:
        """Compare the model with the abstraction of the cores; raise :class:`Divergence`."""
        differences = list(differ(_sorted_lookups(self.world), self.abstract()))
        differences += self._idle_differences()
        if differences:
            raise Divergence(self.report("\n".join(differences[:8])))

    def _idle_differences(self) -> list[str]:
        """What the model would do on its own now that no core is about to do: a core that
        sends fewer lookup requests than the model, dials no bootstrap peer while the model
        has one to dial, or asks for no dial-back when the model probes its candidate."""
        found = []
        offered = {(a.kind, a.node) for a in self.choices()}
        for action in enabled(self.world, self.policy):
            if action.kind == "query":
                found.append(
                    f"n{action.node}: the model's lookup {action.key} has a peer to ask "
                    "(query enabled), the core sent no request"
                )
            elif action.kind in ("dial_bootstrap", "dial_back") and (
                (action.kind, action.node) not in offered
            ):
                found.append(
                    f"n{action.node}: the model enables '{self.describe(action)}', the core "
                    "asked for nothing of the kind"
                )
        return sorted(set(found))

    def _fail(self, text: str) -> NoReturn:
        """Raise :class:`Divergence`; a failure found while carrying a core's effects also
        lists the fields that already differ (a wrong admission shows as its table entry)."""
        lines = [text]
        if not text.startswith("n") or ": model " not in text:
            try:
                model = _sorted_lookups(self.world)
                lines += [f"  {d}" for d in list(differ(model, self.abstract()))[:8]]
            except Exception as error:  # the abstraction itself may not apply mid-step
                lines.append(f"  (no field comparison mid-step: {type(error).__name__})")
        raise Divergence(self.report("\n".join(lines)))

    def report(self, text: str) -> str:
        numbered, number = [], 0
        for line in self.steps:
            if line.startswith("  + "):
                numbered.append(f"      {line[4:]}  (the core's own step)")
            else:
                number += 1
                numbered.append(f"{number:3d}. {line}")
        return (
            f"lockstep divergence in scenario {self.scenario.name!r} after step {number}:\n"
            + "\n".join(numbered)
            + "\n"
            + text
        )


_PROTOCOL = frozenset({"deliver", "dial_bootstrap", "dial_back"})


def _next_candidate(world: World, lookup: Lookup) -> int | None:
    from kadspec.models.lookup import next_candidate

    return next_candidate(world, lookup)


def _sorted_lookups(world: World) -> World:
    """The world with each node's lookups in one order (the abstraction sorts them too)."""
    nodes = tuple(
        replace(s, lookups=tuple(sorted(s.lookups, key=lambda lk: (lk.purpose, lk.key))))
        for s in world.nodes
    )
    return replace(world, nodes=nodes)


def differ(model: World, core: World) -> Iterator[str]:
    """Every field where the two worlds differ: ``node, field path: model ..., core ...``."""
    if model.clock != core.clock:
        yield f"clock: model {model.clock}, core {core.clock}"
    for n, (a, b) in enumerate(zip(model.nodes, core.nodes, strict=True)):
        if a != b:
            yield from _fields(f"n{n}", a, b)
    for index, (a_channel, b_channel) in enumerate(zip(model.network, core.network, strict=True)):
        if a_channel != b_channel:
            src, dst = divmod(index, len(model.nodes))
            yield (f"network n{src}->n{dst}: model {list(a_channel)}, core {list(b_channel)}")


def _fields(path: str, a: Any, b: Any) -> Iterator[str]:
    if a == b:
        return
    if attrs.has(type(a)) and type(a) is type(b):
        for f in attrs.fields(type(a)):
            yield from _fields(f"{path}.{f.name}", getattr(a, f.name), getattr(b, f.name))
        return
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _fields(f"{path}[{i}]", x, y)
        return
    yield f"{path}: model {a!r}, core {b!r}"


def replay(scenario: Scenario, picks: list[int], policy: Policy = SPEC) -> Lockstep:
    """Run ``scenario`` in lockstep, taking choice ``pick % len(choices)`` at each step until
    the picks or the choices run out; raise :class:`Divergence` at the first difference."""
    run = Lockstep(scenario, policy)
    for pick in picks:
        options = run.choices()
        if not options:
            break
        run.step(options[pick % len(options)])
    return run


__all__ = [
    "Divergence",
    "Lockstep",
    "content_key",
    "differ",
    "peer_id",
    "replay",
]
