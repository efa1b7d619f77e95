"""k-buckets and the admission rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kadspec.impl.routing import Added, Entry, Evidence, RoutingTable, admission
from kadspec.impl.wire import PeerInfo


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
    assert not table.has_room(11) and table.has_room(1) and table.has_room(4)  # 4: bucket 1
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


@settings(max_examples=200, deadline=None)
@given(
    bits=st.integers(2, 10),
    data=st.data(),
    k=st.integers(1, 6),
)
def test_closest_is_the_plain_xor_sort_of_the_table(bits: int, data: st.DataObject, k: int) -> None:
    """The bucket walk gives exactly the sorted (distance, peer ID) order of every entry, with
    exclusions and equal keys (a narrow space makes both common)."""
    top = 2**bits - 1
    own = data.draw(st.integers(0, top), label="own")
    table = RoutingTable(own_key=own, bits=bits, k=k)
    keys = data.draw(st.lists(st.integers(0, top).filter(lambda x: x != own), max_size=40))
    for number, key in enumerate(keys):
        table.add(Entry(number.to_bytes(2, "big"), key, (b"/a",), Evidence.IDENTIFY))
    target = data.draw(st.integers(0, top), label="target")
    count = data.draw(st.integers(0, 30), label="count")
    entries = list(table)
    exclude = frozenset(data.draw(st.sets(st.sampled_from([e.peer for e in entries] or [b""]))))
    expected = sorted(
        (e for e in entries if e.peer not in exclude), key=lambda e: (e.key ^ target, e.peer)
    )[:count]
    assert table.closest(target, count, exclude) == expected
    assert all(e.info == PeerInfo(id=e.peer, addrs=e.addrs) for e in expected)


@settings(max_examples=200, deadline=None)
@given(bits=st.integers(2, 8), data=st.data(), k=st.integers(1, 4))
def test_closest_stays_the_plain_sort_through_removals_and_updates(
    bits: int, data: st.DataObject, k: int
) -> None:
    """closest() ranks its own copy of each bucket: removing, refreshing (new addresses) and
    re-adding entries must leave it equal to the sort of what the table holds."""
    top = 2**bits - 1
    own = data.draw(st.integers(0, top), label="own")
    table = RoutingTable(own_key=own, bits=bits, k=k)
    keys = st.integers(0, top).filter(lambda x: x != own)
    steps = data.draw(
        st.lists(st.tuples(st.sampled_from(["add", "remove"]), st.integers(0, 12), keys)),
        label="steps",
    )
    for number, (action, peer_number, key) in enumerate(steps):
        peer = peer_number.to_bytes(2, "big")
        if action == "remove":
            table.remove(peer)
        else:
            known = table.get(peer)
            table.add(
                Entry(peer, known.key if known else key, (b"/a%d" % number,), Evidence.IDENTIFY)
            )
        target = data.draw(st.integers(0, top), label="target")
        expected = sorted(table, key=lambda e: (e.key ^ target, e.peer))
        assert table.closest(target, len(expected) + 1) == expected
        assert [e.addrs for e in table.closest(target, 30)] == [e.addrs for e in expected]
