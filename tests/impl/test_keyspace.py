"""The key space: sha256 positions of any width, fixed positions for the model's small IDs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kadspec.impl.keyspace import FixedKeyspace, Sha256Keyspace, common_prefix_length, nearest


def test_the_production_key_is_the_spec_sha256() -> None:
    assert Sha256Keyspace().key_of(b"peer") == int.from_bytes(
        hashlib.sha256(b"peer").digest(), "big"
    )


@given(st.binary(max_size=20), st.integers(min_value=1, max_value=256))
def test_a_narrow_space_keeps_the_top_bits(data: bytes, bits: int) -> None:
    wide = Sha256Keyspace().key_of(data)
    assert Sha256Keyspace(bits).key_of(data) == wide >> (256 - bits)


def test_widths_and_fixed_positions_are_checked() -> None:
    with pytest.raises(ValueError, match=r"1\.\.256"):
        Sha256Keyspace(0)
    with pytest.raises(ValueError, match="does not fit in 3 bits"):
        FixedKeyspace(3, {b"a": 8})
    with pytest.raises(KeyError, match="no position"):
        FixedKeyspace(3, {b"a": 1}).key_of(b"b")


def test_prefix_length_and_nearest_follow_xor() -> None:
    assert common_prefix_length(0b1000, 0b1011, 4) == 2
    assert common_prefix_length(5, 5, 4) == 4
    keyed = [(0b0001, b"a"), (0b0110, b"b"), (0b0111, b"c"), (0b0001, b"d")]
    assert nearest(0b0111, keyed, 3) == [b"c", b"b", b"a"]  # ties break on the ID bytes


@given(
    st.integers(0, 15),
    st.lists(
        st.tuples(st.integers(0, 15), st.binary(min_size=1, max_size=2)), unique_by=lambda kp: kp[1]
    ),
    st.integers(0, 10),
)
def test_nearest_orders_by_distance_then_peer_bytes(
    target: int, keyed: list[tuple[int, bytes]], count: int
) -> None:
    ranked = sorted(keyed, key=lambda kp: (kp[0] ^ target, kp[1]))
    assert nearest(target, keyed, count) == [peer for _, peer in ranked[:count]]
    assert nearest(target, iter(keyed), count) == nearest(target, list(reversed(keyed)), count)
