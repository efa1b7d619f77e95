"""The Kademlia XOR metric over small IDs (the executable twin of ``symbolic.metric``).

The model uses IDs of a few bits so that state spaces stay small, but distance, bucket index and
closest-peer selection are the real ones: the lemmas proved for 256-bit IDs in
``kadspec.engines.symbolic.metric`` hold for any width.
"""

from __future__ import annotations

from collections.abc import Iterable


def distance(a: int, b: int) -> int:
    """XOR distance between two IDs."""
    return a ^ b


def common_prefix_length(a: int, b: int, bits: int) -> int:
    """Leading bits shared by two IDs of width ``bits``: the bucket index of b in a's table."""
    return bits - (a ^ b).bit_length()


def closest(
    target: int, candidates: Iterable[int], ids: tuple[int, ...], k: int
) -> tuple[int, ...]:
    """The at most k node indexes whose IDs are closest to ``target``, nearest first.

    XOR distance is a strict total order on distinct IDs around a target, so the result is
    unique: no tie-break is needed.
    """
    return tuple(sorted(candidates, key=lambda n: ids[n] ^ target)[:k])
