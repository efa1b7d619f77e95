"""Tests for kadspec.engines.symbolic.metric: the XOR-metric lemmas and the prover around them."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from kadspec.engines.symbolic.metric import (
    FALSE_ULTRAMETRIC,
    METRIC_LEMMAS,
    Lemma,
    LemmaResult,
    bucket_index,
    prove,
    prove_all,
)
from kadspec.spec import requirement

BITS = 256
keys = st.integers(min_value=0, max_value=2**BITS - 1)


def _lemma(name: str) -> Lemma:
    return next(lemma for lemma in METRIC_LEMMAS if lemma.name == name)


@pytest.mark.parametrize("lemma", METRIC_LEMMAS, ids=lambda lemma: lemma.name)
def test_every_lemma_is_proved_for_256_bit_keys(lemma: Lemma) -> None:
    result = prove(lemma, bits=BITS)
    assert result.ok, result.describe()
    assert result.verdict == "proved"
    assert result.counterexample == ()


@pytest.mark.parametrize("bits", [1, 2, 3, 8])
def test_every_lemma_also_holds_at_the_small_widths_the_model_uses(bits: int) -> None:
    failures = [result.describe() for result in prove_all(bits=bits) if not result.ok]
    assert failures == []


def test_prove_all_reports_each_lemma_once_in_order_with_its_time() -> None:
    results = prove_all(bits=4)
    assert tuple(result.lemma for result in results) == METRIC_LEMMAS
    assert all(result.bits == 4 and result.seconds >= 0 for result in results)


def test_lemma_names_are_unique() -> None:
    names = [lemma.name for lemma in METRIC_LEMMAS]
    assert len(names) == len(set(names))


def test_every_supported_requirement_exists() -> None:
    for lemma in METRIC_LEMMAS:
        for rid in lemma.supports:
            requirement(rid)  # raises UnknownRequirement naming the ID


def test_the_false_ultrametric_claim_is_refuted_by_a_real_counterexample() -> None:
    result = prove(FALSE_ULTRAMETRIC, bits=BITS)
    assert result.verdict == "refuted"
    assert not result.ok
    values = result.values()
    assert set(values) == {"a", "b", "c"}
    a, b, c = values["a"], values["b"], values["c"]
    assert all(0 <= value < 2**BITS for value in (a, b, c))
    # Re-checked with plain integers, independently of z3.
    assert a ^ c > max(a ^ b, b ^ c)
    assert all(
        text.startswith("0x") and len(text) == 2 + BITS // 4 for _, text in result.counterexample
    )


def test_a_timeout_is_unknown_and_never_ok() -> None:
    # About 0.8 s to prove at 256 bits; 1 ms is far too little, so z3 gives up.
    result = prove(_lemma("target_prefix_follows_from_bucket_indices"), timeout_ms=1, bits=BITS)
    assert result.verdict == "unknown"
    assert not result.ok
    assert result.reason
    assert result.counterexample == ()


def test_a_claim_must_take_one_positional_parameter_per_key() -> None:
    with pytest.raises(ValueError, match="'no_keys'"):
        Lemma("no_keys", "nothing to quantify over", lambda: z3.BoolVal(True))
    with pytest.raises(ValueError, match="'star_args'"):
        Lemma("star_args", "keys of unknown number", lambda *keys: z3.BoolVal(True))


def test_key_width_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1 bit"):
        prove(METRIC_LEMMAS[0], bits=0)


def test_describe_names_the_verdict_lemma_and_counterexample() -> None:
    result = LemmaResult(FALSE_ULTRAMETRIC, 2, "refuted", 0.0, (("a", "0x0"), ("b", "0x2")))
    assert result.describe() == (
        "refuted  xor_distance_is_ultrametric (2 bits, 0.00 s): a = 0x0, b = 0x2"
    )


@cache
def _symbolic_bucket_index() -> tuple[Any, Any, Any]:
    """The bucket-index term over two free keys, built once: 256 nested ``If``s."""
    owner, peer = z3.BitVec("owner", BITS), z3.BitVec("peer", BITS)
    return owner, peer, bucket_index(owner, peer)


@settings(max_examples=300, deadline=None)
@given(owner=keys, peer=keys | st.just(0), flip=st.integers(min_value=0, max_value=BITS - 1))
def test_bucket_index_encoding_agrees_with_python(owner: int, peer: int, flip: int) -> None:
    owner_var, peer_var, term = _symbolic_bucket_index()
    # Random pairs almost always differ in the top bit; also test a peer that shares a long
    # prefix with the owner (one flipped bit) and the owner itself.
    for other in (peer, owner ^ (1 << flip), owner):
        concrete = z3.substitute(
            term, (owner_var, z3.BitVecVal(owner, BITS)), (peer_var, z3.BitVecVal(other, BITS))
        )
        value = z3.simplify(concrete)
        assert z3.is_bv_value(value)
        assert value.as_long() == BITS - (owner ^ other).bit_length()
