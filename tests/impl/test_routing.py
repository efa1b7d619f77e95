"""k-buckets and the admission rule."""

from __future__ import annotations

import pytest

from kadspec.impl.routing import Added, Entry, Evidence, RoutingTable, admission


def entry(key: int) -> Entry:
    return Entry(bytes([key]), key, (b"/a",), Evidence.IDENTIFY)


def test_admission_needs_evidence_and_an_address_and_identify_has_the_last_word() -> None:
    addrs = (b"/a",)
    assert admission(set(), False, False, addrs) is None  # RT-03: identify pending
    assert admission({Evidence.CONFIG}, False, False, ()) is None  # RT-04
    assert admission({Evidence.CONFIG}, False, False, addrs) is Evidence.CONFIG
    assert admission({Evidence.CONFIG, Evidence.RESPONSE}, False, False, addrs) is (
        Evidence.RESPONSE
    )
    assert admission(set(), True, True, addrs) is Evidence.IDENTIFY
    assert admission({Evidence.RESPONSE}, True, False, addrs) is None  # a client: RT-01


def test_a_full_bucket_refuses_newcomers_and_never_holds_self() -> None:
    table = RoutingTable(own_key=0, bits=4, k=2)
    # keys 8..15 share no prefix bit with 0: all in bucket 0
    assert [table.add(entry(k)) for k in (8, 9, 10)] == [
        Added.ADDED,
        Added.ADDED,
        Added.BUCKET_FULL,
    ]
    assert table.add(entry(9)) is Added.UPDATED
    assert table.add(entry(1)) is Added.ADDED  # another bucket
    assert table.bucket_sizes() == {0: 2, 3: 1}
    with pytest.raises(ValueError, match="RT-07"):
        table.add(entry(0))
    assert table.remove(bytes([8])) and not table.remove(bytes([8]))
    assert table.add(entry(10)) is Added.ADDED


def test_closest_excludes_and_orders_by_distance() -> None:
    table = RoutingTable(own_key=0, bits=4, k=20)
    for key in (1, 2, 3, 12):
        table.add(entry(key))
    assert [e.key for e in table.closest(3, 3)] == [3, 2, 1]
    assert [e.key for e in table.closest(3, 3, frozenset({bytes([3])}))] == [2, 1, 12]
