"""The diagrams are drawn from the model: state diagrams from explored steps, sequences from traces.

Walks here use the smallest scenarios (a hundred-odd states each), so the file runs in seconds;
the docs build draws the same views over the larger scenarios named in ``VIEWS``.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET

import attrs
import pytest

from kadspec import diagrams
from kadspec.diagrams import VIEWS, Arrow, DiagramError, Sequence, View
from kadspec.engines.explorer import Counterexample, explore
from kadspec.models.actions import ACTIONS
from kadspec.models.mutants import MUTANTS
from kadspec.models.state import Kind

SMALL = ("client-joins", "nat-joins")
SVG = "{http://www.w3.org/2000/svg}"

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI") != "true",
    reason="Graphviz's dot is not installed (CI installs it; apt-get install graphviz)",
)


def small(name: str) -> View:
    """The view over small scenarios (provides happen only in the join family)."""
    return attrs.evolve(VIEWS[name], scenarios=("join",) if name == "provide" else SMALL)


def counterexample(mutant: str) -> Counterexample:
    m = MUTANTS[mutant]
    found = explore(m.scenario_spec.initial(), m.policy, target=m.expected)
    assert found.counterexample is not None, f"{mutant} is not caught in {m.scenario}"
    return found.counterexample


def test_every_arrow_is_labelled_with_actions_of_the_transition_table() -> None:
    kinds = {k.name for k in Kind}
    for name in VIEWS:
        diagram = diagrams.state_diagram(small(name))
        labels = {label for labels in diagram.edges.values() for label in labels}
        assert labels, f"view {name} drew no arrow"
        for label in labels:
            verb, _, kind = label.partition(" ")
            assert label in ACTIONS or (verb in ("receive", "lose") and kind in kinds), label
            assert label in diagram.legend


def test_the_lifecycle_reaches_ready_through_the_self_lookup() -> None:
    diagram = diagrams.state_diagram(small("lifecycle"))
    assert diagram.initial == {"down"}
    # Ready is entered (from outside Ready) only when the first self-lookup is answered.
    into_ready = {old for (old, new) in diagram.edges if new == "Ready"}
    assert {old for old in into_ready if not old.startswith("Ready")} == {
        "first self-lookup running"
    }
    assert diagram.goals == {s for s in diagram.states if s.startswith("Ready")}


def test_admission_never_takes_an_inbound_request_as_evidence_but_the_mutant_does() -> None:
    """RT-02 in a picture: the spec's arrows into the table come from identify or replies only;
    the admit-on-inbound-request mutant adds one labelled with the request, in red."""
    diagram = diagrams.state_diagram(small("admission"))
    requests = {"receive FIND_NODE", "receive GET_PROVIDERS", "receive ADD_PROVIDER"}
    for (old, new), labels in diagram.edges.items():
        if "IN TABLE" in new and "IN TABLE" not in old:
            assert not labels & requests, (old, new, labels)
    extra = {
        label
        for by_mutant in diagram.extra.values()
        for label in by_mutant.get("admit-on-inbound-request", ())
    }
    assert "receive FIND_NODE" in extra


def test_a_provide_view_names_the_phases_of_the_model() -> None:
    diagram = diagrams.state_diagram(small("provide"))
    states = " ".join(diagram.states)
    for word in ("QUEUED", "LOOKUP", "SENDING", "SUCCEEDED", "retry timer", "FAILED"):
        assert word in states
    # every failure the caller is told of names its reason (BOOT-05)
    for state in diagram.states:
        if "FAILED" in state:
            assert "FAILED (" in state, state


@needs_dot
def test_a_state_diagram_renders_as_svg_with_every_state() -> None:
    diagram = diagrams.state_diagram(small("addresses"))
    svg = diagrams.render_svg(diagrams.to_dot(diagram))
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for state in diagram.states:
        for line in state.split("\n"):
            assert line in text


def test_a_missing_dot_program_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(DiagramError, match="apt-get install graphviz"):
        diagrams.render_svg("digraph { a -> b }")


def test_a_counterexample_becomes_lifelines_and_messages() -> None:
    found = counterexample("identify-addresses-not-routed")
    sequence = diagrams.sequence_of(found, title="t")
    assert sequence.lifelines == ("n0", "n1")
    assert len(sequence.steps) == len(found.steps)
    delivered = [s for s in found.steps if s.action.kind == "deliver"]
    arrows = [a for a in sequence.arrows if a.received is not None]
    assert len(arrows) == len(delivered)
    for arrow in arrows:
        assert arrow.received is not None and arrow.sent <= arrow.received
        assert found.steps[arrow.received - 1].action.kind == "deliver"
    assert sequence.broken_step == len(found.steps)
    assert "ADDR-06" in sequence.verdict[0]


def test_a_sequence_renders_as_standalone_svg() -> None:
    found = counterexample("provide-success-without-acks")
    sequence = diagrams.sequence_of(found, title="provide-success-without-acks")
    root = ET.fromstring(diagrams.sequence_svg(sequence))
    assert float(root.get("width", "0")) > 0 and float(root.get("height", "0")) > 0
    lines = list(root.iter(f"{SVG}line"))
    # one lifeline per node, one line per message
    assert len(lines) == len(sequence.lifelines) + len(sequence.arrows)
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "PROV-02" in text and "ADD_PROVIDER" in text


def test_a_sequence_from_elsewhere_draws_lost_and_unfinished_messages() -> None:
    """What a conformance run would hand over: names and strings, no model state."""
    sequence = Sequence(
        title="a real node",
        lifelines=("impl", "harness"),
        steps=("harness dials impl", "impl sends FIND_NODE", "the reply is lost"),
        actors=("harness", "impl", None),
        arrows=(
            Arrow("impl", "harness", "FIND_NODE", 2, None, lost=True),
            Arrow("harness", "impl", "IDENTIFY", 1, None),
        ),
        broken_step=3,
        verdict=("broken: PROV-08", "no deadline"),
    )
    root = ET.fromstring(diagrams.sequence_svg(sequence))
    assert [p for p in root.iter(f"{SVG}path") if p.get("stroke") == "#c62828"]  # the cross
    assert any(line.get("marker-end") == "url(#open)" for line in root.iter(f"{SVG}line"))
