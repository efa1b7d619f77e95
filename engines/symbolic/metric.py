"""Lemmas about the Kademlia XOR metric, proved by z3 for every 256-bit key.

Routing rests on a handful of facts about ``d(a, b) = a XOR b`` read as an unsigned integer:
it is a metric, it is unidirectional, the k-bucket a peer falls in is its common prefix length
with the table's owner, those buckets partition the key space, and "the k closest peers" is well
defined and can be found bucket by bucket. The executable model uses a few-bit key space and
relies on these facts holding at every width; this module proves them over bitvectors, at 256
bits by default (the width of libp2p's SHA-256 keys).

Each lemma is proved by asserting its negation in a fresh solver and getting ``unsat``. A ``sat``
answer is a counterexample, reported as hex values; ``unknown`` (a timeout, say) is a failure to
prove, never a pass: only `LemmaResult.ok` says a lemma holds.

Every parameter of a lemma's claim is one n-bit key, universally quantified. Index variables
(bucket numbers) are n-bit too and restrict themselves to ``i < n``; bucket indices are returned
as n-bit values, which hold 0..n for every n >= 1.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any, Literal

import attrs
import z3

DEFAULT_BITS = 256
"""The public claim: libp2p Kademlia keys are SHA-256 digests."""

DEFAULT_TIMEOUT_MS = 60_000

Verdict = Literal["proved", "refuted", "unknown"]

Claim = Callable[..., Any]
"""Builds a z3 Boolean from one n-bit bitvector per parameter (z3 ships no type stubs)."""


# -- the metric and buckets as z3 terms ---------------------------------------------------------


def distance(a: z3.BitVecRef, b: z3.BitVecRef) -> z3.BitVecRef:
    """The Kademlia distance ``a XOR b``; compare distances with the unsigned `z3.ULT`."""
    return a ^ b


def leading_zeros(x: z3.BitVecRef) -> z3.BitVecRef:
    """The number of leading zero bits of ``x``, as a bitvector of x's width (n when x = 0).

    Encoded as a chain of ``If`` over single-bit extractions, most significant bit outermost, so
    z3 bit-blasts it into multiplexers rather than arithmetic.
    """
    width = x.size()
    count = z3.BitVecVal(width, width)
    for position in range(width):
        # Built from the least significant bit outwards: the outermost test is the top bit.
        is_set = z3.Extract(position, position, x) == 1
        count = z3.If(is_set, z3.BitVecVal(width - 1 - position, width), count)
    return count


def bucket_index(owner: z3.BitVecRef, peer: z3.BitVecRef) -> z3.BitVecRef:
    """The k-bucket of ``peer`` in the table owned by ``owner``: leading zeros of their distance.

    Equal to n exactly when ``peer == owner``, which no bucket holds (RT-07).
    """
    return leading_zeros(distance(owner, peer))


def _width_of(x: z3.BitVecRef) -> z3.BitVecRef:
    return z3.BitVecVal(x.size(), x.size())


def _prefix_mask(length: z3.BitVecRef) -> z3.BitVecRef:
    """A mask of the top ``length`` bits: none for 0, all for n or more.

    Prefixes are cut with masks made by shifting a constant, not by shifting the keys: at 256
    bits z3 proved the bucket lemmas in about 0.3-0.4 s each this way, against 2-15 s when both
    keys were shifted by the symbolic amount.
    """
    all_ones = z3.BitVecVal(-1, length.size())
    return ~z3.LShR(all_ones, length)


def _next_bit_mask(length: z3.BitVecRef) -> z3.BitVecRef:
    """A mask of the single bit right after the top ``length`` bits (none for n or more)."""
    top_bit = z3.BitVecVal(1 << (length.size() - 1), length.size())
    return z3.LShR(top_bit, length)


def shares_prefix(a: z3.BitVecRef, b: z3.BitVecRef, length: z3.BitVecRef) -> z3.BoolRef:
    """Whether the top ``length`` bits of ``a`` and ``b`` agree (always true for length 0).

    Stated on ``a`` and ``b`` themselves, not on their XOR, so that it is an independent reading
    of "common prefix" to check `bucket_index` against.
    """
    mask = _prefix_mask(length)
    return a & mask == b & mask


def agrees_after_prefix(a: z3.BitVecRef, b: z3.BitVecRef, length: z3.BitVecRef) -> z3.BoolRef:
    """Whether ``a`` and ``b`` agree on the bit right after their top ``length`` bits."""
    mask = _next_bit_mask(length)
    return a & mask == b & mask


def in_bucket(owner: z3.BitVecRef, peer: z3.BitVecRef, index: z3.BitVecRef) -> z3.BoolRef:
    """Whether ``peer`` belongs in bucket ``index`` of ``owner``'s table, by the textbook rule.

    Bucket i holds the peers that share exactly the first i bits with the owner: the top i bits
    agree and the next one differs. Only indices below n name a bucket.
    """
    return z3.And(
        z3.ULT(index, _width_of(owner)),
        shares_prefix(owner, peer, index),
        z3.Not(agrees_after_prefix(owner, peer, index)),
    )


def _unsigned_min(x: z3.BitVecRef, y: z3.BitVecRef) -> z3.BitVecRef:
    return z3.If(z3.ULE(x, y), x, y)


def _unsigned_max(x: z3.BitVecRef, y: z3.BitVecRef) -> z3.BitVecRef:
    return z3.If(z3.UGE(x, y), x, y)


def _widen(x: z3.BitVecRef) -> z3.BitVecRef:
    """``x`` zero-extended by one bit, so that the sum of two n-bit values cannot wrap."""
    return z3.ZeroExt(1, x)


# -- lemmas and results -------------------------------------------------------------------------


def _parameter_names(claim: Claim) -> tuple[str, ...]:
    parameters = inspect.signature(claim).parameters.values()
    return tuple(p.name for p in parameters)


def _check_claim(instance: Lemma, attribute: attrs.Attribute[Claim], claim: Claim) -> None:
    """Reject claims whose parameters cannot each stand for one key, naming the lemma."""
    parameters = inspect.signature(claim).parameters.values()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not parameters or any(p.kind not in positional for p in parameters):
        raise ValueError(
            f"lemma {instance.name!r}: {attribute.name} must take one or more plain positional "
            f"parameters (one per key), got {inspect.signature(claim)}"
        )


@attrs.frozen
class Lemma:
    """A named claim about n-bit keys, with the statement people read next to it.

    ``claim`` receives one fresh n-bit bitvector per parameter, named after the parameter, and
    returns the z3 Boolean that must hold for all of them; counterexamples use those names.
    ``supports`` lists the requirement IDs whose checks lean on the lemma.
    """

    name: str
    statement: str
    claim: Claim = attrs.field(validator=_check_claim)
    supports: tuple[str, ...] = ()

    @property
    def variables(self) -> tuple[str, ...]:
        """The universally quantified keys, in the claim's parameter order."""
        return _parameter_names(self.claim)


@attrs.frozen
class LemmaResult:
    """What the solver said about one lemma at one width, and how long it took.

    ``counterexample`` holds (key name, hex value) pairs when the verdict is "refuted"; ``reason``
    is z3's explanation when it is "unknown". Callers MUST use `ok`: an unknown is not a proof.
    """

    lemma: Lemma
    bits: int
    verdict: Verdict
    seconds: float
    counterexample: tuple[tuple[str, str], ...] = ()
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True only when the lemma was proved."""
        return self.verdict == "proved"

    def values(self) -> dict[str, int]:
        """The counterexample as integers, for re-checking it outside z3."""
        return {name: int(text, 16) for name, text in self.counterexample}

    def describe(self) -> str:
        """One line for people: verdict, lemma, width, time, and the counterexample or reason."""
        line = f"{self.verdict:<8} {self.lemma.name} ({self.bits} bits, {self.seconds:.2f} s)"
        if self.counterexample:
            line += ": " + ", ".join(f"{name} = {value}" for name, value in self.counterexample)
        if self.reason:
            line += f": {self.reason}"
        return line


def _hex(value: int, bits: int) -> str:
    return f"0x{value:0{(bits + 3) // 4}x}"


def prove(
    lemma: Lemma, timeout_ms: int = DEFAULT_TIMEOUT_MS, bits: int = DEFAULT_BITS
) -> LemmaResult:
    """Prove ``lemma`` for all ``bits``-wide keys by showing its negation unsatisfiable.

    Each call uses its own solver, so no lemma can borrow assertions from another. ``seconds``
    covers building the formula and solving it.
    """
    if bits < 1:
        raise ValueError(f"lemma {lemma.name!r}: key width must be at least 1 bit, got {bits}")
    started = time.perf_counter()
    keys = [z3.BitVec(name, bits) for name in lemma.variables]
    solver = z3.Solver()
    solver.set(timeout=timeout_ms)
    solver.add(z3.Not(lemma.claim(*keys)))
    answer = solver.check()
    seconds = time.perf_counter() - started
    if answer == z3.unsat:
        return LemmaResult(lemma, bits, "proved", seconds)
    if answer == z3.sat:
        model = solver.model()
        counterexample = tuple(
            (name, _hex(int(model.eval(key, model_completion=True).as_long()), bits))
            for name, key in zip(lemma.variables, keys, strict=True)
        )
        return LemmaResult(lemma, bits, "refuted", seconds, counterexample)
    return LemmaResult(lemma, bits, "unknown", seconds, reason=str(solver.reason_unknown()))


# -- the lemmas ---------------------------------------------------------------------------------


def _triangle(a: z3.BitVecRef, b: z3.BitVecRef, c: z3.BitVecRef) -> z3.BoolRef:
    via_b = _widen(distance(a, b)) + _widen(distance(b, c))
    return z3.ULE(_widen(distance(a, c)), via_b)


def _unidirectional(x: z3.BitVecRef, d: z3.BitVecRef, y: z3.BitVecRef) -> z3.BoolRef:
    witness = x ^ d
    return z3.And(distance(x, witness) == d, z3.Implies(distance(x, y) == d, y == witness))


def _bucket_is_prefix_length(s: z3.BitVecRef, p: z3.BitVecRef, i: z3.BitVecRef) -> z3.BoolRef:
    exactly_i = z3.And(shares_prefix(s, p, i), z3.Not(agrees_after_prefix(s, p, i)))
    return z3.Implies(z3.ULT(i, _width_of(s)), (bucket_index(s, p) == i) == exactly_i)


def _bucket_range(s: z3.BitVecRef, p: z3.BitVecRef) -> z3.BoolRef:
    index, width = bucket_index(s, p), _width_of(s)
    return z3.And(z3.ULE(index, width), (s != p) == z3.ULT(index, width))


def _disjoint(s: z3.BitVecRef, p: z3.BitVecRef, i: z3.BitVecRef, j: z3.BitVecRef) -> z3.BoolRef:
    return z3.Implies(z3.And(in_bucket(s, p, i), in_bucket(s, p, j)), i == j)


def _cover(s: z3.BitVecRef, p: z3.BitVecRef, i: z3.BitVecRef) -> z3.BoolRef:
    return z3.And(
        z3.Not(in_bucket(s, s, i)),
        z3.Implies(s != p, in_bucket(s, p, bucket_index(s, p))),
    )


def _longer_prefix_closer(t: z3.BitVecRef, a: z3.BitVecRef, b: z3.BitVecRef) -> z3.BoolRef:
    return z3.Implies(
        z3.UGT(bucket_index(t, a), bucket_index(t, b)),
        z3.ULT(distance(t, a), distance(t, b)),
    )


def _closer_prefix_no_shorter(t: z3.BitVecRef, a: z3.BitVecRef, b: z3.BitVecRef) -> z3.BoolRef:
    return z3.Implies(
        z3.ULT(distance(t, a), distance(t, b)),
        z3.UGE(bucket_index(t, a), bucket_index(t, b)),
    )


def _first_difference_decides(t: z3.BitVecRef, a: z3.BitVecRef, b: z3.BitVecRef) -> z3.BoolRef:
    a_is_closer = z3.ULT(distance(t, a), distance(t, b))
    return z3.Implies(a != b, a_is_closer == agrees_after_prefix(a, t, bucket_index(a, b)))


def _prefix_ultrametric(a: z3.BitVecRef, b: z3.BitVecRef, c: z3.BitVecRef) -> z3.BoolRef:
    return z3.UGE(bucket_index(a, c), _unsigned_min(bucket_index(a, b), bucket_index(b, c)))


def _prefix_from_buckets(s: z3.BitVecRef, t: z3.BitVecRef, p: z3.BitVecRef) -> z3.BoolRef:
    peer_bucket, target_bucket = bucket_index(s, p), bucket_index(s, t)
    return z3.Implies(
        peer_bucket != target_bucket,
        bucket_index(t, p) == _unsigned_min(peer_bucket, target_bucket),
    )


def _target_bucket_closest(
    s: z3.BitVecRef, t: z3.BitVecRef, a: z3.BitVecRef, b: z3.BitVecRef
) -> z3.BoolRef:
    target_bucket = bucket_index(s, t)
    return z3.Implies(
        z3.And(bucket_index(s, a) == target_bucket, bucket_index(s, b) != target_bucket),
        z3.ULT(distance(t, a), distance(t, b)),
    )


METRIC_LEMMAS: tuple[Lemma, ...] = (
    # The metric axioms.
    Lemma(
        "distance_zero_iff_equal",
        "d(a, b) = 0 if and only if a = b.",
        lambda a, b: (distance(a, b) == 0) == (a == b),
    ),
    Lemma(
        "distance_is_symmetric",
        "d(a, b) = d(b, a).",
        lambda a, b: distance(a, b) == distance(b, a),
    ),
    Lemma(
        "triangle_inequality",
        "d(a, c) <= d(a, b) + d(b, c), the sum taken in n + 1 bits so that it cannot wrap.",
        _triangle,
    ),
    Lemma(
        "distance_bounded_by_bitwise_or",
        "d(a, c) <= d(a, b) | d(b, c) (bitwise or), a bound tighter than the triangle inequality "
        "that needs no extra bit.",
        lambda a, b, c: z3.ULE(distance(a, c), distance(a, b) | distance(b, c)),
    ),
    # Unidirectionality: lookups for one key converge along the same path.
    Lemma(
        "distance_is_unidirectional",
        "For every key x and distance d, y = x XOR d is at distance d from x, and it is the only "
        "key that is.",
        _unidirectional,
    ),
    # Buckets.
    Lemma(
        "bucket_index_is_common_prefix_length",
        "For i < n, p is in bucket i of s's table (i leading zeros in s XOR p) if and only if the "
        "top i bits of s and p agree and the bit after them differs.",
        _bucket_is_prefix_length,
        supports=("RT-05",),
    ),
    Lemma(
        "bucket_index_in_range",
        "The bucket index of p in s's table is at most n, and below n exactly when p != s.",
        _bucket_range,
        supports=("RT-05", "RT-07"),
    ),
    Lemma(
        "buckets_are_disjoint",
        "No key is in two buckets of one table: in_bucket(s, p, i) and in_bucket(s, p, j) imply "
        "i = j.",
        _disjoint,
        supports=("RT-05",),
    ),
    Lemma(
        "buckets_cover_every_other_key",
        "The owner s is in no bucket of its own table, and every p != s is in the bucket its "
        "index names; with disjointness, the buckets partition all keys but s.",
        _cover,
        supports=("RT-05", "RT-07"),
    ),
    # Closest-k selection.
    Lemma(
        "longer_shared_prefix_is_strictly_closer",
        "If a shares a longer prefix with target t than b does, then d(t, a) < d(t, b).",
        _longer_prefix_closer,
        supports=("FIND-01",),
    ),
    Lemma(
        "closer_key_shares_at_least_as_long_a_prefix",
        "If d(t, a) < d(t, b), then a shares at least as long a prefix with t as b does.",
        _closer_prefix_no_shorter,
        supports=("FIND-01",),
    ),
    Lemma(
        "distinct_keys_are_never_tied",
        "d(t, a) = d(t, b) implies a = b: distance to a target orders distinct peers strictly and "
        "totally, so 'the k closest' is well defined.",
        lambda t, a, b: z3.Implies(distance(t, a) == distance(t, b), a == b),
        supports=("FIND-01", "FIND-04"),
    ),
    Lemma(
        "first_differing_bit_decides_closeness",
        "For a != b, d(t, a) < d(t, b) exactly when a agrees with t on the first bit where a and "
        "b differ.",
        _first_difference_decides,
        supports=("FIND-01",),
    ),
    Lemma(
        "common_prefix_is_ultrametric",
        "cpl(a, c) >= min(cpl(a, b), cpl(b, c)) for common prefix length cpl: at bucket "
        "granularity the metric is an ultrametric.",
        _prefix_ultrametric,
        supports=("FIND-01",),
    ),
    Lemma(
        "target_prefix_follows_from_bucket_indices",
        "If p and target t lie in different buckets of s's table, then cpl(t, p) is the smaller "
        "of their two bucket indices: a table can rank its buckets by closeness to t.",
        _prefix_from_buckets,
        supports=("FIND-01",),
    ),
    Lemma(
        "target_bucket_holds_the_closest_keys",
        "Every key in the bucket of s's table that t falls in is strictly closer to t than every "
        "key in any other bucket (or s itself), so closest-k selection starts there.",
        _target_bucket_closest,
        supports=("FIND-01",),
    ),
)

FALSE_ULTRAMETRIC = Lemma(
    "xor_distance_is_ultrametric",
    "FALSE, kept to show the prover is not vacuous: d(a, c) <= max(d(a, b), d(b, c)).",
    lambda a, b, c: z3.ULE(distance(a, c), _unsigned_max(distance(a, b), distance(b, c))),
)
"""A claim that does not hold (a = 1, b = 0, c = 2 gives 3 > 2); tests expect it refuted."""


def prove_all(
    timeout_ms: int = DEFAULT_TIMEOUT_MS, bits: int = DEFAULT_BITS
) -> tuple[LemmaResult, ...]:
    """Prove every lemma in `METRIC_LEMMAS`, each in its own solver, with timings.

    Returns every result, failures included; the lemmas hold only if all of them are `ok`.
    """
    return tuple(prove(lemma, timeout_ms, bits) for lemma in METRIC_LEMMAS)


__all__ = [
    "DEFAULT_BITS",
    "DEFAULT_TIMEOUT_MS",
    "FALSE_ULTRAMETRIC",
    "METRIC_LEMMAS",
    "Claim",
    "Lemma",
    "LemmaResult",
    "Verdict",
    "agrees_after_prefix",
    "bucket_index",
    "distance",
    "in_bucket",
    "leading_zeros",
    "prove",
    "prove_all",
    "shares_prefix",
]
