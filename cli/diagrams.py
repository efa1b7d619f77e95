"""Diagrams drawn from the model: state diagrams of the lifecycle and sequence diagrams of traces.

Nothing here is drawn by hand. A state diagram is the model's own transition graph seen through
a *view*: the explorer's successor engine walks every reachable state of a few scenarios, and
for every step that changes a node, the view projects the node's state before and after it onto
a few words (a provide's ``Phase`` and ``Outcome``, a peer's ``Proto`` and ``Addr``, ...). An
arrow is drawn exactly when some explored step moved a node between two such projections, and it
is labelled with the action kinds of ``kadspec.models.actions.ACTIONS`` that did. A view may also
name mutants: the steps their policy takes that the specification's never does are drawn in red,
so the picture shows what a requirement rules out.

A sequence diagram shows one trace (a counterexample): the nodes as lifelines, each message as an
arrow from the step that sent it to the step that delivered it, and the step that broke a
requirement marked. :func:`sequence_of` turns a model ``Counterexample`` into a
:class:`Sequence`, which holds names and strings only, so that a conformance run can build one
from a real node's trace too; :func:`sequence_svg` draws it as a standalone SVG with no external
program.

State diagrams are rendered with the ``graphviz`` package and Graphviz's ``dot`` (the ``docs``
extra); :func:`render_svg` raises :class:`DiagramError` saying what is missing.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from kadspec.engines.successors import Successors
from kadspec.models.actions import ACTIONS, Action, Family, describe_message
from kadspec.models.checks import sent_messages
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC, Policy
from kadspec.models.scenarios import SCENARIOS
from kadspec.models.state import (
    Addr,
    Message,
    NodeState,
    Outcome,
    PeerView,
    Phase,
    Proto,
    ProvideState,
    Purpose,
    Reason,
    World,
)
from kadspec.spec import requirement

if TYPE_CHECKING:
    from kadspec.engines.explorer import Counterexample

__all__ = [
    "ANY_STATE",
    "VIEWS",
    "Arrow",
    "DiagramError",
    "NodeSteps",
    "Sequence",
    "StateDiagram",
    "View",
    "action_label",
    "explore_node_steps",
    "render_svg",
    "sequence_of",
    "sequence_svg",
    "state_diagram",
    "to_dot",
]


#: the box a ``View.from_any`` arrow starts from
ANY_STATE = "any state"


class DiagramError(RuntimeError):
    """A diagram cannot be rendered here (a missing program or package), said in one line."""


# -- the model's steps, per node -----------------------------------------------------------------


def action_label(action: Action) -> str:
    """How an arrow names an action: its kind, and for a delivery or a loss the message kind."""
    if action.message is not None and action.kind in ("deliver", "lose"):
        verb = "receive" if action.kind == "deliver" else "lose"
        return f"{verb} {action.message.kind.name}"
    return action.kind


@attrs.frozen
class NodeSteps:
    """Every distinct way an explored step changed one node: (before, after, action label)."""

    initial: frozenset[NodeState]
    steps: frozenset[tuple[NodeState, NodeState, str]]
    #: action label -> the action kind it names (for families and requirements)
    kinds: Mapping[str, str]
    states: int


@functools.cache
def explore_node_steps(scenario: str, policy: Policy = SPEC) -> NodeSteps:
    """Walk every reachable state of ``scenario`` under ``policy``; keep each node change.

    Cached per process (one docs build draws several views from the same walk). The walk is the
    explorer's breadth-first search without the checks: it never stops at a violation, so a
    mutant's walk shows the steps its bug takes.
    """
    initial = SCENARIOS[scenario].initial()
    engine = Successors(initial, policy)
    root = engine.key(initial)
    seen = {root}
    level = [root]
    found: set[tuple[int, int, str]] = set()
    kinds: dict[str, str] = {}
    labels: dict[Action, str] = {}
    while level:
        following = []
        for key in level:
            world = engine.world(key)
            before = engine.fields(key)[3]
            moves, _ = engine.enabled(world, key)
            for move in moves:
                after, _ = engine.step(world, key, move)
                label = labels.get(move.action)
                if label is None:
                    label = labels[move.action] = action_label(move.action)
                    kinds[label] = move.action.kind
                if after != key:
                    changed = engine.fields(after)[3]
                    for old, new in zip(before, changed, strict=True):
                        if old != new:
                            found.add((old, new, label))
                if after not in seen:
                    seen.add(after)
                    following.append(after)
        level = following
    state = engine.node_state
    return NodeSteps(
        initial=frozenset(initial.nodes),
        steps=frozenset((state(old), state(new), label) for old, new, label in found),
        kinds=kinds,
        states=len(seen),
    )


# -- views: what a diagram projects a node onto ----------------------------------------------------


def lifecycle_state(node: NodeState) -> tuple[str, ...]:
    """Down, bootstrapping, self-lookup, Ready or refreshing (BOOT-01..05)."""
    if not node.up:
        return ("down",)
    has_peer = any(view.in_table for view in node.peers)
    looking = any(lk.purpose is Purpose.SELF for lk in node.lookups)
    if not node.self_lookup_done:
        if looking:
            return ("first self-lookup running",)
        return ("started: has a peer,\nno self-lookup" if has_peer else "started: table empty",)
    if not has_peer:
        return ("table emptied: refreshing" if looking else "table emptied",)
    return ("Ready: refreshing" if looking else "Ready",)


def provide_state(provide: ProvideState) -> str:
    """One provide: its ``Phase``, the ``Outcome`` (and ``Reason``) it last reported to the
    caller, and which timer it waits for.

    The outcome is shown where the provide rests (queued or idle); while it looks up or sends,
    the last report stays as it was and is left out, so those phases stay one box each.
    """
    if not provide.providing and provide.phase is Phase.IDLE and provide.outcome is Outcome.NONE:
        return "not providing"
    reported = provide.outcome.name
    if provide.outcome is Outcome.FAILED and provide.reason is not Reason.NONE:
        reported += f" ({provide.reason.name})"
    if provide.phase is Phase.QUEUED:
        waits = "retry timer" if provide.retry_at is not None else "until Ready"
        said = f"QUEUED\n({waits})"
        return said if provide.outcome is Outcome.NONE else f"{said}\nreported {reported}"
    if provide.phase is Phase.IDLE:
        said = reported if provide.outcome is not Outcome.NONE else "IDLE"
        return f"{said}\n(republish timer)" if provide.republish_at is not None else said
    return provide.phase.name


def provide_states(node: NodeState) -> tuple[str, ...]:
    return tuple(provide_state(p) for p in node.provides)


_PROTO = {
    Proto.UNKNOWN: "protocols unknown",
    Proto.SERVER: "identify: kad server",
    Proto.CLIENT: "identify: no kad",
}
_ADDR = {
    Addr.NONE: "no address",
    Addr.REMOTE: "remote address only",
    Addr.DIALABLE: "dialable address",
}


def admission_state(view: PeerView) -> str:
    """A peer as the node sees it: evidence of kad (``Proto``), ``Addr``, table membership."""
    where = "IN TABLE" if view.in_table else "not in table"
    return f"{_PROTO[view.proto]}\n{_ADDR[view.addr]}\n{where}"


def admission_states(node: NodeState) -> tuple[str, ...]:
    return tuple(admission_state(view) for view in node.peers)


def address_state(node: NodeState) -> tuple[str, ...]:
    """Mode setting, mode, and how far the node's external address got (ADDR-03, ADDR-04)."""
    if not node.up:
        return ("down",)
    if node.confirmed:
        address = "address confirmed"
    elif node.candidate:
        address = "candidate observed" + (", dial-back failed" if node.dial_back_tried else "")
    else:
        address = "no external address"
    return (f"{node.setting.name.lower()} setting: {node.mode.name}\n{address}",)


@attrs.frozen
class View:
    """A diagram: what it projects each node onto and which walks it draws from."""

    name: str
    title: str
    project: Callable[[NodeState], tuple[str, ...]]
    scenarios: tuple[str, ...]
    #: mutants whose extra steps are drawn in red (each walked in its own scenario)
    mutants: tuple[str, ...] = ()
    #: projections that are the same situation for the reader, left out of the picture
    hide: frozenset[str] = frozenset()
    #: states filled as the goal of the picture; a mutant's arrow is drawn only into a goal
    #: or into a state the specification never reaches (its other arrows are noise)
    goals: Callable[[str], bool] = attrs.field(default=lambda state: False)
    #: action labels that lead to the same state from everywhere (a crash): drawn once, from
    #: a box standing for any state
    from_any: frozenset[str] = frozenset()


VIEWS: dict[str, View] = {
    view.name: view
    for view in (
        View(
            "lifecycle",
            "The node lifecycle: start, bootstrap, self-lookup, Ready, refresh",
            lifecycle_state,
            ("join-lossy", "join-crash"),
            goals=lambda state: state.startswith("Ready"),
            from_any=frozenset({"crash"}),
        ),
        View(
            "provide",
            "One provide: queued, lookup, sending, outcome, retry",
            provide_states,
            ("join-lossy",),
            mutants=("provide-before-ready-error-dropped", "provide-success-without-acks"),
            goals=lambda state: state.startswith(("SUCCEEDED", "FAILED")) or "reported" in state,
        ),
        View(
            "admission",
            "Routing-table admission: which evidence, which address",
            admission_states,
            ("join-lossy", "join-crash", "join-disconnect", "nat-joins", "trio"),
            mutants=("admit-on-inbound-request", "admit-unknown-protocols"),
            goals=lambda state: "IN TABLE" in state,
            from_any=frozenset({"crash"}),
        ),
        View(
            "addresses",
            "Address confirmation and mode",
            address_state,
            ("join-lossy", "nat-joins", "nat-server-joins", "client-joins", "mode-change"),
            mutants=("observed-address-promoted",),
            hide=frozenset({"down"}),
            goals=lambda state: "SERVER" in state,
        ),
    )
}


@attrs.frozen
class StateDiagram:
    """States and labelled arrows; ``extra`` holds the arrows only a mutant takes."""

    title: str
    states: tuple[str, ...]
    initial: frozenset[str]
    goals: frozenset[str]
    #: (from, to) -> action labels
    edges: Mapping[tuple[str, str], frozenset[str]]
    #: (from, to) -> mutant name -> action labels, for arrows the specification never takes
    extra: Mapping[tuple[str, str], Mapping[str, frozenset[str]]]
    #: action label -> (family, requirement IDs) from ACTIONS
    legend: Mapping[str, tuple[Family, tuple[str, ...]]]
    explored_states: int


def _edges(
    view: View, walks: Iterable[NodeSteps]
) -> tuple[dict[tuple[str, str], set[str]], set[str], dict[str, str]]:
    edges: dict[tuple[str, str], set[str]] = {}
    initial: set[str] = set()
    kinds: dict[str, str] = {}
    for walk in walks:
        kinds.update(walk.kinds)
        for node in walk.initial:
            initial.update(s for s in view.project(node) if s not in view.hide)
        for before, after, label in walk.steps:
            for old, new in zip(view.project(before), view.project(after), strict=True):
                if old != new and old not in view.hide and new not in view.hide:
                    source = ANY_STATE if label in view.from_any else old
                    edges.setdefault((source, new), set()).add(label)
    return edges, initial, kinds


def state_diagram(view: View) -> StateDiagram:
    """The view's diagram, from walks of its scenarios under SPEC and under its mutants."""
    walks = [explore_node_steps(name) for name in view.scenarios]
    edges, initial, kinds = _edges(view, walks)
    extra: dict[tuple[str, str], dict[str, frozenset[str]]] = {}
    for name in view.mutants:
        mutant = MUTANTS[name]
        walk = explore_node_steps(mutant.scenario, mutant.policy)
        theirs, _, their_kinds = _edges(view, [walk])
        for pair, labels in sorted(theirs.items()):
            new = labels - edges.get(pair, set())
            reached = any(pair[1] in known for known in edges) or pair[1] in initial
            if new and (view.goals(pair[1]) or not reached):
                extra.setdefault(pair, {})[name] = frozenset(new)
                kinds.update({label: their_kinds[label] for label in new})
    states: list[str] = []
    for pair in [*edges, *extra]:
        states.extend(s for s in pair if s not in states)
    states.extend(s for s in sorted(initial) if s not in states)
    legend = {
        label: (ACTIONS[kind].family, ACTIONS[kind].requirements) for label, kind in kinds.items()
    }
    return StateDiagram(
        title=view.title,
        states=tuple(states),
        initial=frozenset(initial),
        goals=frozenset(s for s in states if view.goals(s)),
        edges={pair: frozenset(labels) for pair, labels in edges.items()},
        extra=extra,
        legend=legend,
        explored_states=sum(w.states for w in walks),
    )


# -- rendering state diagrams with graphviz ------------------------------------------------------

_FONT = "Helvetica,Arial,sans-serif"
_MUTANT_COLOUR = "#c62828"


def to_dot(diagram: StateDiagram) -> str:
    """The diagram in Graphviz's DOT language, built with the ``graphviz`` package.

    Environment actions (the user, the operator, time, faults) are dashed, protocol actions
    solid; an arrow's tooltip names the requirements its actions exercise.
    """
    try:
        import graphviz
    except ImportError:
        raise DiagramError(
            "drawing diagrams needs the graphviz package: pip install 'kadspec[docs]'"
        ) from None
    graph = graphviz.Digraph(
        graph_attr={
            "rankdir": "TB",
            "fontname": _FONT,
            "bgcolor": "transparent",
            "nodesep": "0.3",
            "ranksep": "0.5",
        },
        node_attr={"fontname": _FONT, "fontsize": "11", "shape": "box", "style": "rounded"},
        edge_attr={"fontname": _FONT, "fontsize": "9"},
    )
    names = {state: f"s{index}" for index, state in enumerate(diagram.states)}
    graph.node("start", "", shape="point", width="0.15")
    for state, name in names.items():
        style = "rounded,filled" if state in diagram.goals else "rounded"
        colour = _MUTANT_COLOUR if not _spec_state(diagram, state) else "black"
        if state == ANY_STATE:
            style, colour = "rounded,dashed", "#777777"
        graph.node(name, state, style=style, fillcolor="#d7ecd9", color=colour)
        if state in diagram.initial:
            graph.edge("start", name)
    for (old, new), labels in diagram.edges.items():
        graph.edge(names[old], names[new], **_edge_attrs(diagram, labels))
    for (old, new), by_mutant in diagram.extra.items():
        for mutant, labels in by_mutant.items():
            attrs_ = _edge_attrs(diagram, labels, prefix=f"{mutant}: ")
            attrs_.update(color=_MUTANT_COLOUR, fontcolor=_MUTANT_COLOUR, style="bold")
            graph.edge(names[old], names[new], **attrs_)
    source: str = graph.source
    return source


def _spec_state(diagram: StateDiagram, state: str) -> bool:
    return state in diagram.initial or any(state in pair for pair in diagram.edges)


def _edge_attrs(diagram: StateDiagram, labels: Iterable[str], prefix: str = "") -> dict[str, str]:
    ordered = sorted(labels)
    families = {diagram.legend[label][0] for label in ordered}
    ids = sorted({rid for label in ordered for rid in diagram.legend[label][1]})
    tooltip = "; ".join(
        f"{label}: {', '.join(diagram.legend[label][1]) or '-'}" for label in ordered
    )
    return {
        "label": prefix + "\n".join(ordered),
        "style": "solid" if Family.PROTOCOL in families else "dashed",
        "tooltip": tooltip or ", ".join(ids),
    }


def render_svg(dot: str) -> str:
    """SVG text of a DOT graph, drawn by Graphviz's ``dot``."""
    try:
        import graphviz
    except ImportError:
        raise DiagramError(
            "drawing diagrams needs the graphviz package: pip install 'kadspec[docs]'"
        ) from None
    try:
        svg: str = graphviz.Source(dot).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        raise DiagramError(
            "drawing diagrams needs Graphviz's dot program: apt-get install graphviz"
        ) from None
    return svg


# -- sequence diagrams ---------------------------------------------------------------------------


@attrs.frozen
class Arrow:
    """A message: sent at step ``sent``, received at ``received`` (None: never delivered)."""

    src: str
    dst: str
    label: str
    sent: int
    received: int | None
    lost: bool = False


@attrs.frozen
class Sequence:
    """A trace to draw: lifelines, numbered steps, messages, and the step that broke a rule.

    Steps are numbered from 1; step 0 is the initial state. ``actors[i]`` is the lifeline that
    acted in step ``i + 1`` (None: the environment as a whole, e.g. time passing).
    """

    title: str
    lifelines: tuple[str, ...]
    steps: tuple[str, ...]
    actors: tuple[str | None, ...]
    arrows: tuple[Arrow, ...]
    broken_step: int | None = None
    verdict: tuple[str, ...] = ()


def _actor(world: World, action: Action) -> str | None:
    if action.message is not None:
        return world.config.name(action.message.dst if action.kind == "deliver" else action.node)
    return world.config.name(action.node) if action.node >= 0 else None


def sequence_of(counterexample: Counterexample, title: str = "Counterexample") -> Sequence:
    """The model trace as a :class:`Sequence`: each message from its send to its delivery.

    Channels are FIFO, so the n-th message taken off a channel (delivered or lost) is the n-th
    put on it; a message still on a channel at the end is drawn as in flight.
    """
    world = counterexample.initial
    name = world.config.name
    pending: dict[tuple[int, int], list[tuple[Message, int]]] = {}
    arrows: list[Arrow] = []
    steps: list[str] = []
    actors: list[str | None] = []
    for number, step in enumerate(counterexample.steps, start=1):
        action = step.action
        steps.append(action.describe(world))
        actors.append(_actor(world, action))
        if action.message is not None and action.kind in ("deliver", "lose"):
            m = action.message
            queue = pending.get((m.src, m.dst), [])
            message, sent = queue.pop(0) if queue else (m, number)
            arrows.append(
                Arrow(
                    name(m.src),
                    name(m.dst),
                    _message_label(world, message),
                    sent,
                    number if action.kind == "deliver" else None,
                    lost=action.kind == "lose",
                )
            )
        if action.kind == "crash":
            # A crash drops every channel to and from the node: those messages are lost.
            for (src, dst), queue in pending.items():
                if action.node in (src, dst):
                    arrows += [
                        Arrow(name(src), name(dst), _message_label(world, m), s, None, lost=True)
                        for m, s in queue
                    ]
                    queue.clear()
        for message in sent_messages(world, action, step.world):
            pending.setdefault((message.src, message.dst), []).append((message, number))
        world = step.world
    for (src, dst), queue in pending.items():
        arrows += [Arrow(name(src), name(dst), _message_label(world, m), s, None) for m, s in queue]
    verdict = []
    for violation in counterexample.violations:
        req = requirement(violation.requirement)
        verdict.append(f"broken: {req.id} {req.level}: {req.title}")
        verdict.append(violation.detail)
    return Sequence(
        title=title,
        lifelines=tuple(name(n) for n in range(len(world.nodes))),
        steps=tuple(steps),
        actors=tuple(actors),
        arrows=tuple(sorted(arrows, key=lambda a: (a.sent, a.received or 0))),
        broken_step=len(steps) if counterexample.violations else None,
        verdict=tuple(verdict),
    )


def _message_label(world: World, message: Message) -> str:
    return describe_message(world, message)


# Layout of a sequence diagram, in SVG user units (px).
_ROW = 34
_COLUMN = 230
_TEXT_WIDTH = 400  # the numbered steps on the left
_TOP = 64
_CHAR = 5.8  # the width of a character of the 11 px sans-serif font, roughly


def sequence_svg(sequence: Sequence) -> str:
    """The sequence diagram as a standalone SVG document (no external program needed).

    The left column numbers the steps as the text trace does; each node is a lifeline; a
    message is an arrow from the row it was sent in to the row it was received in (a lost one
    ends in a cross, one still in flight in an open arrow head at the bottom); the breaking
    step's row is shaded red and the broken requirement is written below.
    """
    count = len(sequence.steps)
    x_of = {
        name: _TEXT_WIDTH + _COLUMN // 2 + index * _COLUMN
        for index, name in enumerate(sequence.lifelines)
    }
    width = _TEXT_WIDTH + _COLUMN * max(1, len(sequence.lifelines)) + 20
    bottom = _TOP + (count + 1) * _ROW
    height = bottom + 24 + 18 * len(sequence.verdict) + 10

    def y(step: int) -> float:
        return _TOP + step * _ROW + _ROW / 2

    def text(x: float, y_: float, body: str, **attributes: str) -> str:
        extra = "".join(f' {k.replace("_", "-")}="{html.escape(v)}"' for k, v in attributes.items())
        return f'<text x="{x:.1f}" y="{y_:.1f}"{extra}>{html.escape(body)}</text>'

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica,Arial,sans-serif" '
        'font-size="11">',
        f"<title>{html.escape(sequence.title)}</title>",
        "<defs>"
        '<marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#1f3a5f"/></marker>'
        '<marker id="open" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10" '
        'fill="none" stroke="#777"/></marker>'
        "</defs>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        text(8, 20, sequence.title, font_size="14", font_weight="bold"),
    ]
    if sequence.broken_step is not None:
        top = _TOP + sequence.broken_step * _ROW
        out.append(
            f'<rect x="0" y="{top}" width="{width}" height="{_ROW}" fill="#fde0e0" '
            f'stroke="{_MUTANT_COLOUR}"/>'
        )
    for name, x in x_of.items():
        out.append(
            f'<rect x="{x - 40}" y="{_TOP - 30}" width="80" height="24" rx="4" '
            'fill="#e8eef6" stroke="#1f3a5f"/>'
        )
        out.append(text(x, _TOP - 13, name, text_anchor="middle", font_weight="bold"))
        out.append(
            f'<line x1="{x}" y1="{_TOP - 6}" x2="{x}" y2="{bottom}" stroke="#9aa9bd" '
            'stroke-dasharray="4 3"/>'
        )
    out.append(text(8, y(0) + 4, "0. initial state", fill="#555"))
    for number, (said, actor) in enumerate(zip(sequence.steps, sequence.actors, strict=True), 1):
        out.append(text(8, y(number) + 4, _clip(f"{number}. {said}", _TEXT_WIDTH - 16)))
        if actor in x_of:
            out.append(
                f'<circle cx="{x_of[actor]}" cy="{y(number)}" r="4" fill="#1f3a5f">'
                f"<title>{html.escape(said)}</title></circle>"
            )
    for arrow in sequence.arrows:
        x1, y1 = x_of[arrow.src], y(arrow.sent)
        x2: float = x_of[arrow.dst]
        if arrow.received is not None:
            y2 = y(arrow.received)
            end, dash, colour = "url(#head)", "", "#1f3a5f"
        else:
            # Not delivered: stop part way (lost) or run to the bottom (still in flight).
            y2 = y(arrow.sent) + _ROW * 0.8 if arrow.lost else bottom - 4
            x2 = x1 + (x2 - x1) * 0.55 if arrow.lost else x2
            end, dash, colour = (
                ("" if arrow.lost else "url(#open)"),
                ' stroke-dasharray="5 3"',
                "#777",
            )
        out.append(
            f'<line x1="{x1}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
            f'stroke-width="1.3"{dash}' + (f' marker-end="{end}"' if end else "") + "/>"
        )
        if arrow.lost:
            out.append(
                f'<path d="M{x2 - 5:.1f},{y2 - 5:.1f} l10,10 m0,-10 l-10,10" '
                f'stroke="{_MUTANT_COLOUR}" stroke-width="2"/>'
            )
        mid_x, mid_y = (x1 + x2) / 2, (y1 + y2) / 2
        label = _clip(arrow.label + (" (lost)" if arrow.lost else ""), abs(x2 - x1) + _COLUMN - 20)
        out.append(text(mid_x, mid_y - 4, label, text_anchor="middle", font_size="10", fill=colour))
    for index, line in enumerate(sequence.verdict):
        weight = "bold" if index % 2 == 0 else "normal"
        out.append(text(8, bottom + 22 + 18 * index, line, fill=_MUTANT_COLOUR, font_weight=weight))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _clip(text: str, width: float) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` px (the full text is in the trace)."""
    most = max(8, int(width / _CHAR))
    return text if len(text) <= most else text[: most - 1] + "…"
