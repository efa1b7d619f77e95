"""The normative requirements of kadspec, loaded from ``requirements.toml``.

That file is the only place a requirement ID is defined. The model's checks, the mutants, the
docs and the conformance reports all name requirements by ID and resolve them here, so an unknown
ID is an error wherever it appears.

Every requirement names its normative source (`Source`), of one of three kinds:

``libp2p-spec``
    libp2p/specs: kad-dht, identify or autonat;
``ipfs-spec``
    ipfs/specs ``src/routing/kad-dht.md``, the IPFS Kademlia DHT spec (RFC 2119 keywords);
``robustness``
    kadspec's own rule, which names the real bug it prevents (with a tracker reference).

The level must match the source: a MUST or MUST NOT backed by a spec quotes a phrase of that
spec which says MUST (or, in the libp2p specs, which use no RFC 2119 capitals, "must"); a
robustness MUST says why breaking it is a bug in every implementation. Every requirement gives
the reason for its level. The loader checks all of this field by field, and its errors name the
requirement and the field.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Literal

import attrs

Level = Literal["MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY"]
CheckKind = Literal["invariant", "step", "progress", "config"]
SourceKind = Literal["libp2p-spec", "ipfs-spec", "robustness"]

GROUPS = ("BOOT", "ADDR", "RT", "PROV", "FIND", "TIME")
_LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY")
_CHECKS = ("invariant", "step", "progress", "config")
SOURCE_KINDS: tuple[SourceKind, ...] = ("libp2p-spec", "ipfs-spec", "robustness")
_ID = re.compile(r"^(?P<group>[A-Z]+)-(?P<number>\d{2})$")

#: The documents each spec kind may cite, as paths in their repositories.
SPEC_DOCUMENTS: Mapping[str, tuple[str, ...]] = {
    "libp2p-spec": (
        "kad-dht/README.md",
        "identify/README.md",
        "autonat/autonat-v1.md",
        "autonat/autonat-v2.md",
    ),
    "ipfs-spec": ("src/routing/kad-dht.md",),
}
_REPOSITORY = {"libp2p-spec": "libp2p/specs", "ipfs-spec": "ipfs/specs"}

# A quoted phrase is a short excerpt, not a paragraph: the text of a requirement is our own.
_MAX_PHRASE = 120
# A spec-backed MUST quotes its keyword: RFC 2119 capitals, or the lowercase "must" of the
# libp2p specs, which predate RFC 2119 keywords.
_MUST_WORD = re.compile(r"\b(MUST|must)\b")
# A tracker reference: owner/repo#123, owner/repo PR #123, owner/repo issue #123 or
# owner/repo commit 0618ef10.
_TRACKER = re.compile(r"\b[\w.-]+/[\w.-]+(?:#\d+| (?:PR |issue )?#\d+| commit [0-9a-f]{7,40})")

_REQUIRED = ("id", "level", "check", "title", "text", "rationale", "level_reason", "source")
_OPTIONAL = ("sources",)
_SOURCE_FIELDS = ("kind", "document", "section", "phrase", "prevents", "everywhere")


class SpecError(ValueError):
    """The requirements file, or a reference to it, is malformed."""


class UnknownRequirement(SpecError):
    """Code named a requirement ID that spec/requirements.toml does not define."""


@attrs.frozen
class Source:
    """Where a requirement comes from: a section of a spec, or a bug kadspec guards against.

    For the spec kinds, ``document`` / ``section`` / ``phrase`` locate the sentence the level
    rests on. A robustness rule has ``prevents`` (the real bug, with its tracker reference),
    ``everywhere`` when it is a MUST (why breaking it is a bug in every implementation), and may
    still point at a related spec sentence that is weaker than the rule.
    """

    kind: SourceKind
    document: str = ""
    section: str = ""
    phrase: str = ""
    prevents: str = ""
    everywhere: str = ""

    @property
    def spec_backed(self) -> bool:
        """Whether a spec, rather than kadspec's robustness judgement, sets the level."""
        return self.kind != "robustness"

    @property
    def citation(self) -> str:
        """One line naming the document and section, e.g. ``ipfs/specs src/routing/...``."""
        if not self.document:
            return "kadspec robustness rule"
        repository = _REPOSITORY.get(self.kind, "")
        where = f"{repository} {self.document}" if repository else self.document
        return f"{where}, section '{self.section}'"


@attrs.frozen
class Requirement:
    """One normative requirement: an ID, its RFC 2119 level, its source and how it is checked.

    ``sources`` are supporting references (implementation code, issues, pull requests); the
    normative ``source`` is what the level rests on, and ``level_reason`` says why the level is
    what it is.
    """

    id: str
    group: str
    level: Level
    check: CheckKind
    title: str
    text: str
    rationale: str
    sources: tuple[str, ...]
    source: Source
    level_reason: str

    @property
    def source_kind(self) -> SourceKind:
        """The kind of the normative source: libp2p-spec, ipfs-spec or robustness."""
        return self.source.kind

    @property
    def is_must(self) -> bool:
        """Whether breaking this requirement is a MUST-level violation (MUST or MUST NOT)."""
        return self.level in ("MUST", "MUST NOT")


def _prose(value: object) -> str:
    return " ".join(str(value).split())


def _string(rid: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{rid}: field {field!r} must be a non-empty string")
    return _prose(value)


def _parse_source(rid: str, level: str, raw: object) -> Source:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{rid}: field 'source' must be a table (kind, section, phrase, ...)")
    unknown = sorted(set(raw) - set(_SOURCE_FIELDS))
    if unknown:
        raise SpecError(f"{rid}: unknown field 'source.{unknown[0]}'")
    kind = raw.get("kind")
    if kind not in SOURCE_KINDS:
        raise SpecError(f"{rid}: source.kind {kind!r} is not one of {SOURCE_KINDS}")
    fields = {
        name: _string(rid, f"source.{name}", raw[name])
        for name in _SOURCE_FIELDS[1:]
        if name in raw
    }
    must = level in ("MUST", "MUST NOT")
    located = [name for name in ("document", "section", "phrase") if name in fields]
    if kind != "robustness" or located:
        for name in ("document", "section", "phrase"):
            if name not in fields:
                raise SpecError(f"{rid}: missing field 'source.{name}' for a {kind} source")
        documents = SPEC_DOCUMENTS.get(kind, tuple(d for ds in SPEC_DOCUMENTS.values() for d in ds))
        if fields["document"] not in documents:
            raise SpecError(
                f"{rid}: source.document {fields['document']!r} is not one of {documents}"
            )
        if len(fields["phrase"]) > _MAX_PHRASE:
            raise SpecError(
                f"{rid}: source.phrase is {len(fields['phrase'])} characters; quote a short "
                f"phrase (at most {_MAX_PHRASE}) and say the rest in our own words"
            )
    if kind == "robustness":
        if "prevents" not in fields:
            raise SpecError(f"{rid}: missing field 'source.prevents' (the real bug it prevents)")
        if not _TRACKER.search(fields["prevents"]):
            raise SpecError(
                f"{rid}: source.prevents names no tracker reference "
                "(owner/repo#N, owner/repo PR #N or owner/repo commit SHA)"
            )
        if must and "everywhere" not in fields:
            raise SpecError(
                f"{rid}: missing field 'source.everywhere': a robustness {level} must say why "
                "breaking it is a bug in every implementation"
            )
        if not must and "everywhere" in fields:
            raise SpecError(f"{rid}: source.everywhere is only for a robustness MUST or MUST NOT")
    else:
        if "everywhere" in fields:
            raise SpecError(f"{rid}: source.everywhere is only for robustness sources")
        if must and not _MUST_WORD.search(fields["phrase"]):
            raise SpecError(
                f"{rid}: a {level} from {kind} must quote a phrase that says MUST (or 'must'); "
                f"source.phrase {fields['phrase']!r} does not"
            )
    return Source(kind=kind, **fields)


def _parse(entry: Mapping[str, object], position: int) -> Requirement:
    where = f"requirement #{position}"
    for field in _REQUIRED:
        if field not in entry:
            rid = entry.get("id", where)
            raise SpecError(f"{rid}: missing field {field!r}")
    rid = str(entry["id"])
    match = _ID.match(rid)
    if match is None or match["group"] not in GROUPS:
        raise SpecError(f"{where}: id {rid!r} is not GROUP-NN with GROUP one of {GROUPS}")
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise SpecError(f"{rid}: unknown field {unknown[0]!r}")
    level = str(entry["level"])
    if level not in _LEVELS:
        raise SpecError(f"{rid}: level {level!r} is not one of {_LEVELS}")
    check = str(entry["check"])
    if check not in _CHECKS:
        raise SpecError(f"{rid}: check {check!r} is not one of {_CHECKS}")
    sources = entry.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
        raise SpecError(f"{rid}: field 'sources' must be a list of non-empty strings")
    text = _string(rid, "text", entry["text"])
    # RFC 8174: the keyword counts in capitals only; "MUST NOT" must appear as written.
    if not re.search(rf"\b{level}\b", text):
        raise SpecError(f"{rid}: text does not use its level keyword {level!r}")
    return Requirement(
        id=rid,
        group=match["group"],
        level=level,  # type: ignore[arg-type]
        check=check,  # type: ignore[arg-type]
        title=_string(rid, "title", entry["title"]),
        text=text,
        rationale=_string(rid, "rationale", entry["rationale"]),
        sources=tuple(sources),
        source=_parse_source(rid, level, entry["source"]),
        level_reason=_string(rid, "level_reason", entry["level_reason"]),
    )


def parse_requirements(document: str) -> dict[str, Requirement]:
    """Parse a requirements document (TOML text), checking every field and ID."""
    try:
        data = tomllib.loads(document)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"requirements document is not valid TOML: {err}") from None
    result: dict[str, Requirement] = {}
    for position, entry in enumerate(data.get("requirement", []), start=1):
        req = _parse(entry, position)
        if req.id in result:
            raise SpecError(f"{req.id}: defined twice")
        result[req.id] = req
    return result


@cache
def requirements() -> Mapping[str, Requirement]:
    """Every requirement of the specification, by ID, in document order."""
    text = resources.files(__package__).joinpath("requirements.toml").read_text("utf-8")
    return parse_requirements(text)


def requirement(rid: str) -> Requirement:
    """The requirement with this ID; `UnknownRequirement` names the ID when there is none."""
    try:
        return requirements()[rid]
    except KeyError:
        raise UnknownRequirement(f"unknown requirement ID {rid!r}") from None


__all__ = [
    "GROUPS",
    "SOURCE_KINDS",
    "SPEC_DOCUMENTS",
    "CheckKind",
    "Level",
    "Requirement",
    "Source",
    "SourceKind",
    "SpecError",
    "UnknownRequirement",
    "parse_requirements",
    "requirement",
    "requirements",
]
