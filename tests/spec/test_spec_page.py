"""What the spec page says about each requirement: its level and the reason, its normative
source, and whether the model checks it over observable behaviour or over internals.

The lines come from the docs extension's own generator (docs/_ext/kadspec_spec.py), so these
tests need no Sphinx build; tests/docs builds the page itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kadspec.models import checks
from kadspec.spec import Requirement, parse_requirements, requirements

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "_ext"))

import kadspec_spec  # documentation tooling, not part of the package

REQUIREMENTS = list(requirements().values())


def page_text(req: Requirement) -> str:
    """The need's generated source with reStructuredText escapes removed, as one line."""
    text = "\n".join(kadspec_spec.need_source(req, kadspec_spec.observability_of(req, True)))
    return " ".join(text.replace("\\", "").split())


@pytest.mark.parametrize("req", REQUIREMENTS, ids=lambda req: req.id)
def test_each_requirement_shows_level_source_kind_and_observability(req: Requirement) -> None:
    text = page_text(req)
    assert f":level: {req.level}" in text
    assert f":source_kind: {req.source_kind}" in text
    assert f":observability: {checks.observability(req.id)}" in text
    assert req.level_reason in text


@pytest.mark.parametrize("req", REQUIREMENTS, ids=lambda req: req.id)
def test_each_requirement_shows_its_source_sentence_or_the_bug_it_prevents(
    req: Requirement,
) -> None:
    text = page_text(req)
    if req.source.phrase:
        assert f"section '{req.source.section}'" in text
        assert f'"{req.source.phrase}"' in text
    if not req.source.spec_backed:
        assert req.source.prevents in text
        assert req.source.everywhere in text


def test_every_requirement_is_observable_or_internal() -> None:
    kinds = {rid: checks.observability(rid) for rid in requirements()}
    assert set(kinds.values()) <= set(kadspec_spec.OBSERVABILITY)


def test_a_requirement_only_in_a_configured_document_is_shown_as_internal() -> None:
    extra = parse_requirements(
        '[[requirement]]\nid = "PROV-99"\nlevel = "MAY"\ncheck = "step"\ntitle = "t"\n'
        'text = "x MAY y"\nrationale = "r"\nlevel_reason = "test"\n'
        '[requirement.source]\nkind = "robustness"\nprevents = "example/repo#1: a bug"\n'
    )["PROV-99"]
    assert kadspec_spec.observability_of(extra, packaged=False) == "internal"


def test_a_packaged_requirement_the_checks_cannot_classify_fails_the_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No silent fallback: the spec page must say observable or internal for every requirement.
    def unknown(rid: str) -> str:
        raise KeyError(rid)

    monkeypatch.setattr(checks, "observability", unknown)
    with pytest.raises(KeyError):
        kadspec_spec.observability_of(REQUIREMENTS[0], packaged=True)
    monkeypatch.setattr(checks, "observability", lambda rid: "sometimes")
    with pytest.raises(ValueError, match="observability 'sometimes'"):
        kadspec_spec.observability_of(REQUIREMENTS[0], packaged=True)
