"""The normative requirements of kadspec, loaded from ``requirements.toml``.

That file is the only place a requirement ID is defined. The model's checks, the mutants, the
docs and the conformance reports all name requirements by ID and resolve them here, so an unknown
ID is an error wherever it appears.
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

GROUPS = ("BOOT", "ADDR", "RT", "PROV", "FIND", "TIME")
_LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY")
_CHECKS = ("invariant", "step", "progress", "config")
_ID = re.compile(r"^(?P<group>[A-Z]+)-(?P<number>\d{2})$")


class SpecError(ValueError):
    """The requirements file, or a reference to it, is malformed."""


class UnknownRequirement(SpecError):
    """Code named a requirement ID that spec/requirements.toml does not define."""


@attrs.frozen
class Requirement:
    """One normative requirement: an ID, its RFC 2119 level and how the model checks it."""

    id: str
    group: str
    level: Level
    check: CheckKind
    title: str
    text: str
    rationale: str
    sources: tuple[str, ...]


def _parse(entry: Mapping[str, object], position: int) -> Requirement:
    where = f"requirement #{position}"
    for field in ("id", "level", "check", "title", "text", "rationale", "sources"):
        if field not in entry:
            raise SpecError(f"{where}: missing field {field!r}")
    rid = str(entry["id"])
    match = _ID.match(rid)
    if match is None or match["group"] not in GROUPS:
        raise SpecError(f"{where}: id {rid!r} is not GROUP-NN with GROUP one of {GROUPS}")
    level = str(entry["level"])
    if level not in _LEVELS:
        raise SpecError(f"{rid}: level {level!r} is not one of {_LEVELS}")
    check = str(entry["check"])
    if check not in _CHECKS:
        raise SpecError(f"{rid}: check {check!r} is not one of {_CHECKS}")
    sources = entry["sources"]
    if not isinstance(sources, list) or not sources:
        raise SpecError(f"{rid}: sources must be a non-empty list")
    text = " ".join(str(entry["text"]).split())
    if level.split()[0] not in text:
        raise SpecError(f"{rid}: text does not use its level keyword {level!r}")
    return Requirement(
        id=rid,
        group=match["group"],
        level=level,  # type: ignore[arg-type]
        check=check,  # type: ignore[arg-type]
        title=str(entry["title"]),
        text=text,
        rationale=" ".join(str(entry["rationale"]).split()),
        sources=tuple(str(s) for s in sources),
    )


def parse_requirements(document: str) -> dict[str, Requirement]:
    """Parse a requirements document (TOML text), checking every field and ID."""
    data = tomllib.loads(document)
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
    "CheckKind",
    "Level",
    "Requirement",
    "SpecError",
    "UnknownRequirement",
    "parse_requirements",
    "requirement",
    "requirements",
]
