"""The Kademlia key space: keys of a configurable width and the XOR metric (TIME-01).

Peers and content live in one space: the spec's key of a peer ID or a content key is
``sha256(bytes)``, 256 bits. The width is a parameter so that the same core runs on the model's
small IDs; :class:`FixedKeyspace` maps chosen byte strings to chosen small IDs for that.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from typing import Protocol

import attrs


class Keyspace(Protocol):
    """Where a peer ID or content key sits: an integer below ``2 ** bits``."""

    @property
    def bits(self) -> int: ...

    def key_of(self, data: bytes) -> int:
        """The position of a peer ID or content key."""
        ...


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 256:
        raise ValueError(f"key width must be 1..256 bits, got {bits}")


@functools.lru_cache(maxsize=65536)
def _sha256_key(data: bytes) -> int:
    # Peer IDs recur in every reply: hashing each once keeps large simulations fast.
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


@attrs.frozen
class Sha256Keyspace:
    """The spec's key space: the top ``bits`` bits of sha256 (all 256 in production)."""

    bits: int = 256

    def __attrs_post_init__(self) -> None:
        _check_bits(self.bits)

    def key_of(self, data: bytes) -> int:
        return _sha256_key(data) >> (256 - self.bits)


@attrs.frozen
class FixedKeyspace:
    """Chosen positions for chosen byte strings (the model's small IDs); others are an error."""

    bits: int
    table: Mapping[bytes, int]

    def __attrs_post_init__(self) -> None:
        _check_bits(self.bits)
        for data, key in self.table.items():
            if not 0 <= key < 2**self.bits:
                raise ValueError(f"key {key} of {data!r} does not fit in {self.bits} bits")

    def key_of(self, data: bytes) -> int:
        try:
            return self.table[data]
        except KeyError:
            raise KeyError(f"{data!r} has no position in this fixed key space") from None


def distance(a: int, b: int) -> int:
    """XOR distance between two keys."""
    return a ^ b


def common_prefix_length(a: int, b: int, bits: int) -> int:
    """Leading bits two keys share: the bucket index of ``b`` in ``a``'s table."""
    return bits - (a ^ b).bit_length()


def nearest(target: int, keyed: Iterable[tuple[int, bytes]], count: int) -> list[bytes]:
    """The at most ``count`` items (key, peer) nearest ``target``, nearest first.

    Ties (equal keys, possible only in a truncated space) break on the peer ID bytes, so the
    order never depends on iteration order.
    """
    # Plain (distance, peer) tuples compare in C; a key= function was a third of the cost of a
    # 1,000-node simulation. Tables and lookups hold a few hundred items at most, so one sort
    # beats a heap.
    ranked = sorted([(key ^ target, peer) for key, peer in keyed])
    return [peer for _, peer in ranked[:count]]
