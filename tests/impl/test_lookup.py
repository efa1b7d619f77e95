"""Lookup bookkeeping: alpha, termination, closer peers as candidates only."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kadspec.impl.lookup import Lookup, Purpose

Peer = tuple[bytes, int, tuple[bytes, ...]]


def peer(key: int) -> Peer:
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


def nearest_by_sorting(target: int, keyed: list[tuple[int, bytes]], count: int) -> list[bytes]:
    return [peer for _, peer in sorted((key ^ target, peer) for key, peer in keyed)][:count]


def finished_by_sorting(lookup: Lookup) -> bool:
    """FIND-04 straight from the definition, over the lookup's public state."""
    live = [
        (key, p) for p, key in lookup.keys.items() if p not in lookup.failed and lookup.addrs[p]
    ]
    top = nearest_by_sorting(lookup.target, live, lookup.k)
    if top and all(p in lookup.answered for p in top):
        return True
    return not lookup.inflight and not unasked(lookup)


def unasked(lookup: Lookup) -> list[tuple[int, bytes]]:
    done = lookup.inflight | lookup.answered | lookup.failed
    return [(key, p) for p, key in lookup.keys.items() if p not in done and lookup.addrs[p]]


@settings(max_examples=150, deadline=None)
@given(
    bits=st.integers(2, 8),
    k=st.integers(1, 5),
    alpha=st.integers(1, 4),
    data=st.data(),
)
def test_the_sorted_candidate_list_answers_as_sorting_everything_would(
    bits: int, k: int, alpha: int, data: st.DataObject
) -> None:
    """finished, next_queries and result agree with their definitions over the public state,
    whatever replies, failures and address-less candidates arrive (ties in a narrow space)."""
    keys = st.integers(0, 2**bits - 1)
    candidates = st.lists(
        st.tuples(st.integers(0, 30), keys, st.sampled_from([(), (b"/a",)])), max_size=6
    )

    def as_peers(drawn: list[tuple[int, int, tuple[bytes, ...]]]) -> list[Peer]:
        return [(bytes([n]), key, addrs) for n, key, addrs in drawn]

    target = data.draw(keys, label="target")
    seeds = as_peers(data.draw(candidates, label="seeds"))
    lookup = Lookup(1, Purpose.SELF, target, b"", seeds, k=k, alpha=alpha)
    for _ in range(data.draw(st.integers(0, 12), label="steps")):
        assert lookup.finished() == finished_by_sorting(lookup)
        expected: list[bytes] = []
        if not finished_by_sorting(lookup) and alpha > len(lookup.inflight):
            expected = nearest_by_sorting(target, unasked(lookup), alpha - len(lookup.inflight))
        assert lookup.next_queries() == expected
        if not lookup.inflight:
            break
        peer = data.draw(st.sampled_from(sorted(lookup.inflight)), label="peer")
        if data.draw(st.booleans(), label="fails"):
            lookup.on_failure(peer)
        else:
            lookup.on_reply(peer, as_peers(data.draw(candidates, label="closer")))
    answered = [(lookup.keys[p], p) for p in lookup.answered]
    assert lookup.result() == nearest_by_sorting(target, answered, k)
