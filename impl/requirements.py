"""Binds reference-node code to the requirement IDs it implements.

``@implements("PROV-02")`` resolves each ID against spec/ at import time, so a typo fails loudly,
and records the function in :data:`IMPLEMENTED`. It is kept apart from the model's registry on
purpose: the model's registry lists *checks*, and an implementation is not a check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kadspec.spec import requirement as lookup

F = TypeVar("F", bound=Callable[..., Any])

#: requirement ID -> qualified names of the functions implementing it, in import order
IMPLEMENTED: dict[str, list[str]] = {}


def implements(*ids: str) -> Callable[[F], F]:
    """Mark a function as implementing the given requirements."""
    for rid in ids:
        lookup(rid)  # raises UnknownRequirement naming the bad ID

    def mark(function: F) -> F:
        for rid in ids:
            IMPLEMENTED.setdefault(rid, []).append(f"{function.__module__}.{function.__qualname__}")
        return function

    return mark
