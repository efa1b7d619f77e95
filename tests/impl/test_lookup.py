"""Lookup bookkeeping: alpha, termination, closer peers as candidates only."""

from __future__ import annotations

from kadspec.impl.lookup import Lookup, Purpose


def peer(key: int) -> tuple[bytes, int, tuple[bytes, ...]]:
    return bytes([key]), key, (b"/a",)


def test_a_lookup_converges_on_the_k_closest_that_answered() -> None:
    lookup = Lookup(1, Purpose.SELF, target=0, key=b"", seeds=[peer(12), peer(13)], k=2, alpha=1)
    assert lookup.next_queries() == [bytes([12])]
    assert lookup.next_queries() == []  # FIND-03: alpha = 1
    lookup.on_reply(bytes([12]), [peer(1), peer(2), (bytes([3]), 3, ())])
    assert lookup.next_queries() == [bytes([1])]
    lookup.on_reply(bytes([1]), [])
    assert lookup.next_queries() == [bytes([2])]
    lookup.on_failure(bytes([2]))
    # peer 3 has no address: it cannot be asked, so 12 (next closest live) completes the set
    assert lookup.finished()  # FIND-04
    assert lookup.result() == [bytes([1]), bytes([12])]
    assert lookup.max_hops() == 1


def test_a_lookup_with_nothing_to_ask_is_finished() -> None:
    assert Lookup(1, Purpose.PROVIDE, 0, b"k", [], k=20, alpha=10).finished()
