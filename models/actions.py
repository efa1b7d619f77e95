"""The transition relation: every action, its guard and its effect, as one table.

An action is a guard plus a pure effect. ``ACTIONS`` maps each action kind to its family
(environment or protocol), the requirements it exercises, a sentence for people, the function
listing its enabled instances and the function applying one. The explorer, the Hypothesis
machine, the symbolic layer's fidelity test and the docs' diagrams all read this table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator

import attrs

from kadspec.models import addresses, ghost, lifecycle, provide
from kadspec.models import lookup as lookups
from kadspec.models.config import ModeSetting
from kadspec.models.network import connect, disconnect, pop, send
from kadspec.models.policy import Policy
from kadspec.models.routing import closest_known, try_admit
from kadspec.models.state import Conn, Kind, Message, Mode, Outcome, Phase, Reason, World, replace


class Family(enum.Enum):
    ENVIRONMENT = "environment"  # the user, the operator, time and faults
    PROTOCOL = "protocol"  # what nodes do on their own


@attrs.frozen
class Action:
    """One enabled instance of an action kind."""

    kind: str
    node: int = -1
    peer: int = -1
    key: int = -1
    setting: ModeSetting = ModeSetting.AUTO
    message: Message | None = None

    def describe(self, world: World) -> str:
        """A sentence for people, in the protocol's vocabulary."""
        name = world.config.name
        if self.message is not None:
            m = self.message
            text = f"{name(m.dst)} receives {describe_message(world, m)} from {name(m.src)}"
            return (
                text
                if self.kind == "deliver"
                else f"{describe_message(world, m)} from {name(m.src)} to {name(m.dst)} is lost"
            )
        template = ACTIONS[self.kind].template
        return template.format(
            node=name(self.node) if self.node >= 0 else "",
            peer=name(self.peer) if self.peer >= 0 else "",
            key=f"key{self.key}",
            setting=self.setting.name.lower(),
            clock=world.clock,
        )


def describe_message(world: World, m: Message) -> str:
    name = world.config.name
    if m.kind in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
        addrs = "public addrs" if m.public else "private addrs"
        kad = "kad" if m.server else "no kad"
        return f"{m.kind.name}({kad}, {addrs})"
    if m.kind in (Kind.FIND_NODE, Kind.GET_PROVIDERS):
        return f"{m.kind.name}(target={m.target:0{world.config.id_bits}b})"
    if m.kind is Kind.ADD_PROVIDER:
        addrs = "with addrs" if m.public else "no addrs"
        return f"ADD_PROVIDER(key{m.key}, provider={name(m.provider)}, {addrs})"
    closer = ",".join(name(p) for p in sorted(m.closer)) or "-"
    text = f"{m.kind.name}(closer=[{closer}]"
    if m.kind is Kind.GET_PROVIDERS_REPLY:
        text += ", providers=[" + ",".join(name(p) for p in sorted(m.providers)) + "]"
    return text + ")"


# --- guards: the enabled instances of each kind ------------------------------------------------


def _start(world: World, policy: Policy) -> Iterator[Action]:
    for node in sorted(world.budget.starts):
        yield Action("start", node=node)
    if world.budget.faults > 0 and "restart" in world.budget.fault_kinds:
        for node, state in enumerate(world.nodes):
            if not state.up and node not in world.budget.starts:
                yield Action("restart", node=node)


def _user(world: World, policy: Policy) -> Iterator[Action]:
    for node, key in world.budget.provides:
        if world.nodes[node].up:
            yield Action("provide", node=node, key=key)
    for node, key in world.budget.finds:
        if world.nodes[node].up:
            yield Action("find_providers", node=node, key=key)
    for node, setting in world.budget.mode_changes:
        if world.nodes[node].up:
            yield Action("set_mode", node=node, setting=setting)


def _tick(world: World, policy: Policy) -> Iterator[Action]:
    """Time passes to the next timer, but only while no node has an action of its own to take.

    A node's own steps (dialing a bootstrap peer, sending a lookup's next request, AutoNAT's
    dial-back) take no time next to the protocol's timers; only the network may be slow, so
    messages in flight can still lag behind the clock (a republish delayed past expiry, a
    reply after its deadline). Without this, time could jump past a lookup that never sent
    its first request, which no real node does.
    """
    deadline = lifecycle.next_deadline(world)
    if deadline is None or not world.clock < deadline <= world.horizon:
        return
    for local in (_bootstrap, _query, _dial_back):
        if any(True for _ in local(world, policy)):
            return
    yield Action("tick")


def _faults(world: World, policy: Policy) -> Iterator[Action]:
    if world.budget.faults <= 0:
        return
    kinds = world.budget.fault_kinds
    count = len(world.nodes)
    if "crash" in kinds:
        for node, state in enumerate(world.nodes):
            if state.up:
                yield Action("crash", node=node)
    if "disconnect" in kinds:
        for a in range(count):
            for b in range(a + 1, count):
                if world.connected(a, b):
                    yield Action("disconnect", node=a, peer=b)
    if "lose" not in kinds:
        yield from _forgeries(world)
        return
    for channel in world.network:
        # Only requests and replies are lost silently (a hung peer, a black hole); identify
        # travels with its connection and dies with it.
        if channel and channel[0].kind not in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
            yield Action("lose", message=channel[0])
    yield from _forgeries(world)


def _forgeries(world: World) -> Iterator[Action]:
    if "forge_add_provider" not in world.budget.fault_kinds:
        return
    count = len(world.nodes)
    for src, state in enumerate(world.nodes):
        for dst in range(count):
            if state.up and dst != src and world.connected(src, dst):
                for claimed in range(count):
                    if claimed not in (src, dst):
                        for key in range(len(world.config.keys)):
                            yield Action(
                                "forge_add_provider",
                                node=src,
                                peer=dst,
                                key=key,
                                message=Message(
                                    Kind.ADD_PROVIDER,
                                    src,
                                    dst,
                                    key=key,
                                    provider=claimed,
                                    public=True,
                                ),
                            )


def _deliver(world: World, policy: Policy) -> Iterator[Action]:
    for channel in world.network:
        if channel:
            yield Action("deliver", message=channel[0])


# The node's own protocol actions. Each guard reads only that node's state (and the fixed
# configuration and policy), which is what lets the explorer memoize them per node state.


def bootstrap_of(world: World, policy: Policy, node: int) -> Iterator[Action]:
    for peer in lifecycle.bootstrap_candidates(world, node):
        yield Action("dial_bootstrap", node=node, peer=peer)


def query_of(world: World, policy: Policy, node: int) -> Iterator[Action]:
    state = world.nodes[node]
    if state.up:
        for index in range(len(state.lookups)):
            if lookups.can_query(world, policy, node, index):
                yield Action("query", node=node, key=index)


def dial_back_of(world: World, policy: Policy, node: int) -> Iterator[Action]:
    state = world.nodes[node]
    if (
        policy.dial_back_candidates
        and state.up
        and state.candidate
        and not state.confirmed
        and not state.dial_back_tried
    ):
        yield Action("dial_back", node=node)


def _bootstrap(world: World, policy: Policy) -> Iterator[Action]:
    for node in range(len(world.nodes)):
        yield from bootstrap_of(world, policy, node)


def _query(world: World, policy: Policy) -> Iterator[Action]:
    for node in range(len(world.nodes)):
        yield from query_of(world, policy, node)


def _dial_back(world: World, policy: Policy) -> Iterator[Action]:
    for node in range(len(world.nodes)):
        yield from dial_back_of(world, policy, node)


# --- effects ------------------------------------------------------------------------------------


def _apply_start(world: World, policy: Policy, a: Action) -> World:
    budget = replace(world.budget, starts=world.budget.starts - {a.node})
    return lifecycle.start(replace(world, budget=budget), policy, a.node)


def _spend(world: World) -> World:
    return replace(world, budget=replace(world.budget, faults=world.budget.faults - 1))


def _apply_provide(world: World, policy: Policy, a: Action) -> World:
    left = tuple(e for e in world.budget.provides if e != (a.node, a.key))
    world = replace(world, budget=replace(world.budget, provides=left))
    return provide.user_provide(world, policy, a.node, a.key)


def _apply_find(world: World, policy: Policy, a: Action) -> World:
    left = tuple(e for e in world.budget.finds if e != (a.node, a.key))
    world = replace(world, budget=replace(world.budget, finds=left))
    if lookups.find_index(world, a.node, lifecycle.Purpose.FIND_PROVIDERS, a.key) is not None:
        return world  # the call joins the find already running, and hears its outcome
    if not world.ready(a.node, policy.ready_requires_self_lookup):
        # BOOT-05: a find before Ready fails at once with a retryable error
        return lifecycle.report_find(
            world, a.node, a.key, Outcome.FAILED, frozenset(), Reason.NOT_READY
        )
    return lifecycle.start_lookup(world, policy, a.node, lifecycle.Purpose.FIND_PROVIDERS, a.key)


def _apply_set_mode(world: World, policy: Policy, a: Action) -> World:
    left = tuple(e for e in world.budget.mode_changes if e != (a.node, a.setting))
    world = replace(world, budget=replace(world.budget, mode_changes=left))
    return addresses.set_mode(world, policy, a.node, a.setting)


def _apply_tick(world: World, policy: Policy, a: Action) -> World:
    deadline = lifecycle.next_deadline(world)
    assert deadline is not None
    return lifecycle.fire_timers(replace(world, clock=deadline), policy)


def _apply_lose(world: World, policy: Policy, a: Action) -> World:
    assert a.message is not None
    world, _ = pop(world, a.message.src, a.message.dst)
    return _spend(world)


def _apply_forge(world: World, policy: Policy, a: Action) -> World:
    assert a.message is not None
    return _spend(send(world, a.message))


def _apply_deliver(world: World, policy: Policy, a: Action) -> World:
    assert a.message is not None
    world, message = pop(world, a.message.src, a.message.dst)
    node = message.dst
    state = world.nodes[node]
    if not state.up:
        return world  # lost with the process; the sender's deadline notices
    if message.kind in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
        return addresses.on_identify(world, policy, node, message)
    if state.peers[message.src].conn is Conn.NONE:
        return world  # the stream died with its connection
    if message.kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY):
        world, finished = lookups.on_reply(world, policy, node, message)
        return lifecycle.finish(world, policy, node, finished)
    # A request: a client resets the stream (ADDR-01).
    if state.mode is Mode.CLIENT and policy.client_refuses_requests:
        return _refused(world, policy, message)
    if policy.admit_on_inbound_request:
        world = try_admit(world, policy, node, message.src, evidence=False)
    if message.kind is Kind.FIND_NODE:
        closer = closest_known(world, node, message.target, message.src, policy)
        if message.target == world.config.ids[node] and not policy.answer_lookup_for_own_id:
            closer = frozenset()
        return send(
            world,
            Message(Kind.FIND_NODE_REPLY, node, message.src, target=message.target, closer=closer),
        )
    if message.kind is Kind.GET_PROVIDERS:
        return provide.on_get_providers(world, policy, node, message)
    return provide.on_add_provider(world, policy, node, message)


def deliver_reads_sender(world: World, policy: Policy, message: Message) -> bool:
    """Whether delivering ``message`` may read or change its sender's state.

    Decided from the receiver's state alone, following :func:`_apply_deliver`: admitting the
    sender probes the sender's table (``routing.try_admit``, when the table is full or every
    candidate is probed); a refused request and a delivered ADD_PROVIDER settle the sender's
    side. Everything else a delivery does happens at the receiver. The explorer memoizes a
    delivery that does not read its sender per receiver state only; ``True`` is always safe.
    """
    state = world.nodes[message.dst]
    if not state.up:
        return False  # lost with the process
    view = state.peers[message.src]
    probes = not policy.probe_only_when_table_full or len(state.table()) >= world.config.timing.k
    if message.kind in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
        if view.conn is Conn.NONE and policy.discard_identify_after_close:
            return False
        return message.server and probes
    if view.conn is Conn.NONE:
        return False  # the stream died with its connection
    if message.kind in (Kind.FIND_NODE_REPLY, Kind.GET_PROVIDERS_REPLY):
        return probes
    if state.mode is Mode.CLIENT and policy.client_refuses_requests:
        return True  # the requester's stream is reset
    return message.kind is Kind.ADD_PROVIDER or policy.admit_on_inbound_request


def _refused(world: World, policy: Policy, message: Message) -> World:
    """The requester sees its stream reset at once."""
    requester = message.src
    if message.kind is Kind.ADD_PROVIDER:
        if message.provider != requester:
            return world  # a refused forgery settles nothing of the forger's own provide
        return provide.settle_pending(
            world, policy, requester, message.key, message.dst, delivered=False
        )
    for index, lk in enumerate(world.nodes[requester].lookups):
        if lk.target == message.target and message.dst in lookups.inflight_peers(lk):
            world, finished = lookups.on_failure(world, policy, requester, index, message.dst)
            return lifecycle.finish(world, policy, requester, finished)
    return world


def _apply_dial_bootstrap(world: World, policy: Policy, a: Action) -> World:
    before = world.connected(a.node, a.peer)
    world = lifecycle.dial_bootstrap(world, policy, a.node, a.peer)
    if not before and world.connected(a.node, a.peer):
        world = addresses.on_connected_fail_open(world, policy, a.node, a.peer)
    return world


def _apply_query(world: World, policy: Policy, a: Action) -> World:
    world, finished = lookups.query(world, policy, a.node, a.key)
    return lifecycle.finish(world, policy, a.node, finished)


@attrs.frozen
class ActionKind:
    """One row of the transition table."""

    family: Family
    requirements: tuple[str, ...]
    template: str
    enabled: Callable[[World, Policy], Iterator[Action]] = attrs.field(repr=False)
    apply: Callable[[World, Policy, Action], World] = attrs.field(repr=False)


def _connect_wrapper(world: World, policy: Policy, a: Action) -> World:
    return connect(world, a.node, a.peer)


ACTIONS: dict[str, ActionKind] = {
    "start": ActionKind(Family.ENVIRONMENT, ("BOOT-01",), "{node} starts", _start, _apply_start),
    "restart": ActionKind(
        Family.ENVIRONMENT,
        ("BOOT-01", "PROV-05"),
        "{node} restarts",
        lambda w, p: iter(()),
        _apply_start,
    ),
    "provide": ActionKind(
        Family.ENVIRONMENT,
        ("PROV-01", "BOOT-05"),
        "the user asks {node} to provide {key}",
        _user,
        _apply_provide,
    ),
    "find_providers": ActionKind(
        Family.ENVIRONMENT,
        ("PROV-07",),
        "the user asks {node} to find providers of {key}",
        lambda w, p: iter(()),
        _apply_find,
    ),
    "set_mode": ActionKind(
        Family.ENVIRONMENT,
        ("ADDR-02", "ADDR-04"),
        "the operator sets {node} to {setting} mode",
        lambda w, p: iter(()),
        _apply_set_mode,
    ),
    "tick": ActionKind(
        Family.ENVIRONMENT,
        ("PROV-08", "BOOT-03"),
        "time passes to the next timer",
        _tick,
        _apply_tick,
    ),
    "crash": ActionKind(
        Family.ENVIRONMENT,
        ("RT-06",),
        "{node} crashes",
        _faults,
        lambda w, p, a: _spend(lifecycle.crash(w, a.node)),
    ),
    "disconnect": ActionKind(
        Family.ENVIRONMENT,
        ("RT-07",),
        "the connection between {node} and {peer} closes",
        lambda w, p: iter(()),
        lambda w, p, a: _spend(disconnect(w, a.node, a.peer)),
    ),
    "lose": ActionKind(
        Family.ENVIRONMENT, ("PROV-08",), "a message is lost", lambda w, p: iter(()), _apply_lose
    ),
    "forge_add_provider": ActionKind(
        Family.ENVIRONMENT,
        ("PROV-03",),
        "{node} forges ADD_PROVIDER for {key} to {peer}",
        lambda w, p: iter(()),
        _apply_forge,
    ),
    "deliver": ActionKind(
        Family.PROTOCOL,
        ("ADDR-01", "FIND-01", "PROV-03"),
        "a message is delivered",
        _deliver,
        _apply_deliver,
    ),
    "dial_bootstrap": ActionKind(
        Family.PROTOCOL,
        ("BOOT-01",),
        "{node} dials bootstrap peer {peer}",
        _bootstrap,
        _apply_dial_bootstrap,
    ),
    "query": ActionKind(
        Family.PROTOCOL, ("FIND-03",), "{node} sends the next lookup request", _query, _apply_query
    ),
    "dial_back": ActionKind(
        Family.PROTOCOL,
        ("ADDR-03", "ADDR-05"),
        "a peer dials {node} back at its observed address (AutoNAT)",
        _dial_back,
        lambda w, p, a: addresses.dial_back(w, p, a.node),
    ),
}

# Several kinds share one generator (it yields instances of each); list each generator once.
_GENERATORS = (_start, _user, _tick, _faults, _deliver, _bootstrap, _query, _dial_back)


def user_actions(world: World, policy: Policy) -> Iterator[Action]:
    """Starts, restarts and the user's and operator's actions: their guards read only the
    budget and which nodes are up."""
    yield from _start(world, policy)
    yield from _user(world, policy)


def fault_actions(world: World, policy: Policy) -> Iterator[Action]:
    """The faults the remaining budget allows (crash, disconnect, lose, forgeries)."""
    return _faults(world, policy)


def enabled(world: World, policy: Policy) -> list[Action]:
    """Every action enabled in ``world``, in a fixed order."""
    return [action for generator in _GENERATORS for action in generator(world, policy)]


def apply(world: World, policy: Policy, action: Action) -> World:
    """The successor of ``world`` under ``action`` (which must be enabled)."""
    after = ACTIONS[action.kind].apply(world, policy, action)
    # The checks' observer sees the step last: it records what happened, never steers it.
    return ghost.observe(world, action, lifecycle.react(after, policy))


def quiescent(world: World, policy: Policy) -> bool:
    """No protocol action is enabled and no timer is due before the horizon."""
    if any(world.network):
        return False
    protocol = (_bootstrap, _query, _dial_back, _tick)
    return not any(True for g in protocol for _ in g(world, policy))


def is_protocol(action: Action) -> bool:
    return ACTIONS[action.kind].family is Family.PROTOCOL


__all__ = ["ACTIONS", "Action", "Family", "apply", "enabled", "is_protocol", "quiescent"]
_ = (Phase, _connect_wrapper)
