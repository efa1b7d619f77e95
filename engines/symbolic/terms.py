"""Small constant-folding builders over z3 terms and plain Python values.

The encoding is written once and run in two modes: with a symbolic configuration (z3 constants,
for proofs over every configuration of a shape) and with a concrete one (Python ints and bools,
for bounded model checking and the fidelity test). These builders fold what is already known, so
a concrete configuration yields small formulas, and they never call ``bool()`` on a z3 term: a
Python ``if`` on a symbolic value would raise, which keeps the two modes honest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import z3

Term = Any
"""A z3 expression, or a Python bool/int standing for a known value (z3 ships no type stubs)."""


def known(x: Term) -> bool:
    """Whether ``x`` is a known value. Only Python values count: z3 literals are left to z3,
    because asking z3 whether a term is a literal costs more than the folding saves."""
    return isinstance(x, bool | int)


def value(x: Term) -> bool | int:
    """The Python value of a known term."""
    if isinstance(x, bool | int):
        return x
    raise ValueError(f"term {x} is symbolic")


def is_true(x: Term) -> bool:
    return known(x) and value(x) is True


def is_false(x: Term) -> bool:
    return known(x) and value(x) is False


def z(x: Term) -> Any:
    """``x`` as a z3 expression."""
    if isinstance(x, bool):
        return z3.BoolVal(x)
    if isinstance(x, int):
        return z3.IntVal(x)
    return x


def and_(*xs: Term) -> Term:
    items: list[Any] = []
    for x in xs:
        if is_false(x):
            return False
        if not is_true(x):
            items.append(x)
    if not items:
        return True
    if len(items) == 1:
        return items[0]
    return z3.And(*items)


def or_(*xs: Term) -> Term:
    items: list[Any] = []
    for x in xs:
        if is_true(x):
            return True
        if not is_false(x):
            items.append(x)
    if not items:
        return False
    if len(items) == 1:
        return items[0]
    return z3.Or(*items)


def all_(xs: Iterable[Term]) -> Term:
    return and_(*xs)


def any_(xs: Iterable[Term]) -> Term:
    return or_(*xs)


def not_(x: Term) -> Term:
    if isinstance(x, bool):
        return not x
    return z3.Not(x)


def implies(a: Term, b: Term) -> Term:
    return or_(not_(a), b)


def _same(a: Term, b: Term) -> bool:
    if isinstance(a, bool | int) or isinstance(b, bool | int):
        return type(a) is type(b) and a == b
    return a is b


def ite(c: Term, a: Term, b: Term) -> Term:
    """``If(c, a, b)``, folded when ``c`` is known or both branches are the same."""
    if is_true(c):
        return a
    if is_false(c):
        return b
    if _same(a, b):
        return a
    return z3.If(c, z(a), z(b))


def eq(a: Term, b: Term) -> Term:
    if known(a) and known(b):
        return value(a) == value(b)
    if _same(a, b):
        return True
    return z(a) == z(b)


def ne(a: Term, b: Term) -> Term:
    return not_(eq(a, b))


def lt(a: Term, b: Term) -> Term:
    if known(a) and known(b):
        return value(a) < value(b)
    if _same(a, b):
        return False
    return z(a) < z(b)


def le(a: Term, b: Term) -> Term:
    if known(a) and known(b):
        return value(a) <= value(b)
    if _same(a, b):
        return True
    return z(a) <= z(b)


def add(a: Term, b: Term) -> Term:
    if known(a) and known(b):
        return int(value(a)) + int(value(b))
    if known(b) and value(b) == 0:
        return a
    return z(a) + z(b)


def card(bits: Iterable[Term]) -> Term:
    """How many of ``bits`` hold, as an integer term."""
    constant = 0
    parts: list[Any] = []
    for b in bits:
        if is_true(b):
            constant += 1
        elif not is_false(b):
            parts.append(z3.If(b, z3.IntVal(1), z3.IntVal(0)))
    if not parts:
        return constant
    total = z3.Sum(*parts) if len(parts) > 1 else parts[0]
    return total + constant if constant else total


def one_hot_first(bits: list[Term]) -> list[Term]:
    """``result[i]`` holds when ``bits[i]`` is the first bit that holds."""
    out: list[Term] = []
    seen: Term = False
    for b in bits:
        out.append(and_(b, not_(seen)))
        seen = or_(seen, b)
    return out
