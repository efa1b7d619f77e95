"""The requirements file: well-formed, sourced at a level its source supports, and every ID has a
check and every check a real ID."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from kadspec.models.requirements_registry import REGISTRY, requirement
from kadspec.reports import checks_by_requirement
from kadspec.spec import (
    GROUPS,
    SOURCE_KINDS,
    SPEC_DOCUMENTS,
    SpecError,
    UnknownRequirement,
    parse_requirements,
    requirements,
)

HISTORY = Path(__file__).resolve().parents[2] / "docs" / "history.rst"
_MUST_WORD = re.compile(r"\b(MUST|must)\b")
_TRACKER = re.compile(r"[\w.-]+/[\w.-]+ ?(?:PR |issue )?#\d+|[\w.-]+/[\w.-]+ commit [0-9a-f]{7,}")


def test_at_least_thirty_requirements_in_every_group() -> None:
    reqs = requirements()
    assert len(reqs) >= 30
    assert {r.group for r in reqs.values()} == set(GROUPS)


def test_every_requirement_has_a_check_of_its_kind() -> None:
    table = checks_by_requirement()
    for rid, req in requirements().items():
        kinds = {name.split(":")[0] for name in table[rid]}
        assert table[rid], f"{rid} has no check"
        assert req.check in kinds, f"{rid} is a {req.check} requirement, checked only by {kinds}"


def test_a_requirement_is_listed_by_its_safety_kind_when_it_has_one() -> None:
    # One kind per requirement: invariant, else step, else progress (config stands alone), so
    # the toml, the docs and the symbolic layer agree on which requirements are safety ones.
    table = checks_by_requirement()
    for rid, req in requirements().items():
        kinds = {name.split(":")[0] for name in table[rid]}
        expected = next(k for k in ("config", "invariant", "step", "progress") if k in kinds)
        assert req.check == expected, f"{rid} is listed as {req.check}, its checks are {kinds}"


def test_every_marked_function_names_a_real_requirement() -> None:
    assert set(REGISTRY) <= set(requirements())


def test_an_unknown_id_fails_at_decoration_naming_it() -> None:
    with pytest.raises(UnknownRequirement, match="BOOT-99"):
        requirement("BOOT-99")


# -- sources and levels ------------------------------------------------------------------------


def test_every_requirement_names_a_source_of_a_known_kind_and_a_reason_for_its_level() -> None:
    for rid, req in requirements().items():
        assert req.source_kind in SOURCE_KINDS, rid
        assert req.level_reason, rid
        if req.source.spec_backed:
            assert req.source.document in SPEC_DOCUMENTS[req.source_kind], rid
            assert req.source.section and req.source.phrase, rid
        else:
            assert _TRACKER.search(req.source.prevents), f"{rid}: the bug it prevents has no ref"


def test_a_spec_backed_must_quotes_a_phrase_that_says_must() -> None:
    for rid, req in requirements().items():
        if req.is_must and req.source.spec_backed:
            assert _MUST_WORD.search(req.source.phrase), (
                f"{rid} is a {req.level} from {req.source_kind}, but its quoted phrase "
                f"{req.source.phrase!r} does not say MUST"
            )


def test_a_robustness_must_says_which_bug_in_every_implementation_justifies_it() -> None:
    for rid, req in requirements().items():
        if req.is_must and not req.source.spec_backed:
            assert req.source.prevents and req.source.everywhere, rid


def test_only_a_must_explains_every_implementation() -> None:
    for rid, req in requirements().items():
        if not req.is_must:
            assert not req.source.everywhere, rid


def test_a_quoted_phrase_is_short_and_the_text_is_our_own() -> None:
    for rid, req in requirements().items():
        if req.source.phrase:
            assert len(req.source.phrase) <= 120, rid
            assert req.source.phrase not in req.text, f"{rid} copies its source into its text"


# The levels of the first draft (2026-11-21). A level that differs from these must be explained
# in the history, so a change of level can never go unrecorded.
FIRST_DRAFT_LEVELS = {
    **dict.fromkeys(
        [
            "BOOT-01",
            "BOOT-02",
            "BOOT-03",
            "BOOT-04",
            "BOOT-05",
            "BOOT-06",
            "ADDR-01",
            "ADDR-02",
            "ADDR-03",
            "ADDR-04",
            "ADDR-06",
            "ADDR-07",
            "RT-01",
            "RT-03",
            "RT-04",
            "RT-05",
            "RT-06",
            "RT-07",
            "PROV-01",
            "PROV-02",
            "PROV-03",
            "PROV-04",
            "PROV-05",
            "PROV-07",
            "PROV-08",
            "FIND-01",
            "FIND-02",
            "FIND-03",
            "FIND-04",
            "FIND-05",
            "TIME-01",
            "TIME-02",
        ],
        "MUST",
    ),
    "ADDR-05": "SHOULD",
    "RT-02": "MUST NOT",
    "PROV-06": "SHOULD",
    "TIME-03": "SHOULD",
}


def test_the_history_names_only_real_requirements_and_every_one_of_them() -> None:
    history = HISTORY.read_text("utf-8")
    named = set(re.findall(r"\b(?:BOOT|ADDR|RT|PROV|FIND|TIME)-\d{2}\b", history))
    assert named <= set(requirements()), f"history names unknown IDs {named - set(requirements())}"
    assert set(requirements()) <= named, f"history never mentions {set(requirements()) - named}"


def test_every_level_changed_since_the_first_draft_is_in_the_history() -> None:
    history = HISTORY.read_text("utf-8")
    for rid, first in FIRST_DRAFT_LEVELS.items():
        now = requirements()[rid].level
        if now != first:
            # An entry is a definition-list term that starts with the ID.
            entry = re.search(rf"^ +{rid}\b", history, re.M)
            assert entry, f"{rid} went from {first} to {now} with no history entry"


# -- malformed documents are rejected, naming the requirement and the field ----------------------

VALID: dict[str, Any] = {
    "id": "BOOT-01",
    "level": "MUST",
    "check": "invariant",
    "title": "t",
    "text": "x MUST y",
    "rationale": "r",
    "level_reason": "because",
    "sources": ["s"],
    "source": {
        "kind": "ipfs-spec",
        "document": "src/routing/kad-dht.md",
        "section": "Bucket Size",
        "phrase": "MUST contain information",
    },
}
ROBUST_SOURCE = {
    "kind": "robustness",
    "prevents": "owner/repo#12: a real bug",
    "everywhere": "every implementation breaks",
}


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def document(entry: Mapping[str, Any]) -> str:
    """A requirements document (TOML) holding this one entry."""
    lines = ["[[requirement]]"]
    table = {k: v for k, v in entry.items() if not isinstance(v, Mapping)}
    lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
    for key, sub in entry.items():
        if isinstance(sub, Mapping):
            lines.append(f"[requirement.{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in sub.items()]
    return "\n".join(lines) + "\n"


def variant(drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    entry = {**VALID, **changes}
    for field in drop:
        del entry[field]
    return entry


def source_variant(base: Mapping[str, Any], drop: tuple[str, ...] = (), **changes: Any) -> Any:
    source = {**base, **changes}
    for field in drop:
        del source[field]
    return source


def test_the_valid_fixture_parses() -> None:
    parsed = parse_requirements(document(VALID))["BOOT-01"]
    assert parsed.source.kind == "ipfs-spec" and parsed.level_reason == "because"
    robust = parse_requirements(document(variant(source=ROBUST_SOURCE)))["BOOT-01"]
    assert robust.source_kind == "robustness" and robust.source.everywhere


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"id": "BOOT-01"}, "BOOT-01: missing field 'level'"),
        (variant(id="boot1"), "not GROUP-NN"),
        (variant(text="x should y"), "level keyword"),
        (variant(level="MUST NOT", text="x MUST y"), "level keyword 'MUST NOT'"),
        (variant(check="sometimes"), "check 'sometimes'"),
        (variant(drop=("source",)), "BOOT-01: missing field 'source'"),
        (variant(drop=("level_reason",)), "BOOT-01: missing field 'level_reason'"),
        (variant(level_reason="  "), "BOOT-01: field 'level_reason' must be a non-empty"),
        (variant(colour="red"), "BOOT-01: unknown field 'colour'"),
        (variant(sources="s"), "BOOT-01: field 'sources' must be a list"),
        (variant(source="ipfs"), "BOOT-01: field 'source' must be a table"),
        (
            variant(source=source_variant(VALID["source"], kind="blog")),
            "BOOT-01: source.kind 'blog' is not one of",
        ),
        (
            variant(source=source_variant(VALID["source"], drop=("section",))),
            "BOOT-01: missing field 'source.section' for a ipfs-spec source",
        ),
        (
            variant(source=source_variant(VALID["source"], document="kad-dht/README.md")),
            "BOOT-01: source.document 'kad-dht/README.md' is not one of",
        ),
        (
            variant(source=source_variant(VALID["source"], phrase="word " * 30)),
            "BOOT-01: source.phrase is 149 characters",
        ),
        (
            variant(source=source_variant(VALID["source"], phrase="SHOULD contain")),
            "BOOT-01: a MUST from ipfs-spec must quote a phrase that says MUST",
        ),
        (
            variant(source=source_variant(VALID["source"], everywhere="x")),
            "BOOT-01: source.everywhere is only for robustness sources",
        ),
        (
            variant(source=source_variant(VALID["source"], page="3")),
            "BOOT-01: unknown field 'source.page'",
        ),
        (
            variant(source=source_variant(ROBUST_SOURCE, drop=("prevents",))),
            "BOOT-01: missing field 'source.prevents'",
        ),
        (
            variant(source=source_variant(ROBUST_SOURCE, prevents="some bug somewhere")),
            "BOOT-01: source.prevents names no tracker reference",
        ),
        (
            variant(source=source_variant(ROBUST_SOURCE, drop=("everywhere",))),
            "BOOT-01: missing field 'source.everywhere'",
        ),
        (
            variant(level="SHOULD", text="x SHOULD y", source=ROBUST_SOURCE),
            "BOOT-01: source.everywhere is only for a robustness MUST",
        ),
        (
            variant(source=source_variant(ROBUST_SOURCE, section="Bucket Size")),
            "BOOT-01: missing field 'source.document' for a robustness source",
        ),
    ],
)
def test_malformed_requirements_are_rejected_naming_id_and_field(
    entry: Mapping[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_requirements(document(entry))


def test_a_robustness_rule_may_cite_a_weaker_spec_sentence_without_raising_its_level() -> None:
    related = source_variant(
        ROBUST_SOURCE,
        document="kad-dht/README.md",
        section="Client and server mode",
        phrase="if and only if that node operates in server mode",
    )
    parsed = parse_requirements(document(variant(source=related)))["BOOT-01"]
    assert not parsed.source.spec_backed and parsed.source.citation.startswith("kad-dht/README")


def test_invalid_toml_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="not valid TOML"):
        parse_requirements("[[requirement]\n")


def test_duplicate_ids_are_rejected() -> None:
    one = document(VALID)
    with pytest.raises(SpecError, match="BOOT-01: defined twice"):
        parse_requirements(one + one)
