"""Binds model code to the requirement IDs it implements or checks.

``@requirement("PROV-02")`` resolves the ID against spec/ at import time, so a typo fails
loudly, and records the function so that a test can demand that every requirement has a check
and that every check names a real requirement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kadspec.spec import requirement as lookup

F = TypeVar("F", bound=Callable[..., Any])

#: requirement ID -> the functions carrying it, in import order
REGISTRY: dict[str, list[Callable[..., Any]]] = {}


def requirement(*ids: str) -> Callable[[F], F]:
    """Mark a function as implementing or checking the given requirements."""
    for rid in ids:
        lookup(rid)  # raises UnknownRequirement naming the bad ID

    def mark(function: F) -> F:
        function.__requirements__ = ids  # type: ignore[attr-defined]
        for rid in ids:
            REGISTRY.setdefault(rid, []).append(function)
        return function

    return mark


def requirements_of(function: Callable[..., Any]) -> tuple[str, ...]:
    """The requirement IDs a function was marked with (empty when unmarked)."""
    ids: tuple[str, ...] = getattr(function, "__requirements__", ())
    return ids
