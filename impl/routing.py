"""The routing table: k-buckets of server peers with dialable addresses (RT-01..07).

What may enter is decided by :func:`admission`, from the evidence the core gathered about a
peer; the table itself only keeps buckets bounded (RT-05) and answers closest-peer queries
(FIND-01). A peer whose request failed is removed, not demoted (RT-06), so a full bucket holds
only live peers and refuses newcomers: Kademlia's preference for old contacts.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator

import attrs

from kadspec.impl.keyspace import common_prefix_length
from kadspec.impl.requirements import implements
from kadspec.impl.wire import PeerInfo


class Evidence(enum.Enum):
    """Why we believe a peer is a kad server (RT-02, RT-03): never 'it sent us a request'."""

    CONFIG = "config"  # a configured bootstrap peer we dialed
    IDENTIFY = "identify"  # it advertised /ipfs/kad/1.0.0 in identify
    RESPONSE = "response"  # it answered one of our kad requests (a client refuses them)


@attrs.frozen
class Entry:
    """One routing-table entry: a server peer, its key, the addresses to dial it at."""

    peer: bytes
    key: int
    addrs: tuple[bytes, ...]
    evidence: Evidence
    #: the entry as a reply's closerPeers carry it, built once: a server hands its entries out
    #: in every FIND_NODE and GET_PROVIDERS reply (not part of equality or repr)
    info: PeerInfo = attrs.field(init=False, eq=False, repr=False)

    @info.default
    def _info(self) -> PeerInfo:
        return PeerInfo(id=self.peer, addrs=self.addrs)


class Added(enum.Enum):
    ADDED = "added"
    UPDATED = "updated"
    BUCKET_FULL = "bucket-full"


@implements("RT-02", "RT-03", "RT-04")
def admission(
    evidence: set[Evidence], protocols_known: bool, advertises_kad: bool, addrs: tuple[bytes, ...]
) -> Evidence | None:
    """The evidence that admits a peer, or None when it may not (yet) enter.

    Identify is the strongest word: a peer whose identify lists no kad protocol is a client
    and stays out whatever else we saw (RT-01, ADDR-02). With no dialable address nothing
    admits (RT-04): the remote address of an inbound connection never counts as one.
    """
    if not addrs:
        return None
    if protocols_known:
        return Evidence.IDENTIFY if advertises_kad else None
    for strongest in (Evidence.RESPONSE, Evidence.CONFIG):
        if strongest in evidence:
            return strongest
    return None


class RoutingTable:
    """k-buckets indexed by common prefix length with our own key (RT-05, RT-07)."""

    def __init__(self, own_key: int, bits: int, k: int) -> None:
        self.own_key = own_key
        self.bits = bits
        self.k = k
        self._buckets: dict[int, list[Entry]] = {}
        #: each bucket again as (key, peer, entry) rows: closest() ranks them without reading
        #: two attributes of every entry on every request served
        self._rows: dict[int, list[tuple[int, bytes, Entry]]] = {}
        self._where: dict[bytes, int] = {}
        self._entries: dict[bytes, Entry] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, peer: object) -> bool:
        return peer in self._where

    def __iter__(self) -> Iterator[Entry]:
        for index in sorted(self._buckets):
            yield from self._buckets[index]

    def get(self, peer: bytes) -> Entry | None:
        return self._entries.get(peer)

    def has_room(self, key: int) -> bool:
        """Whether the bucket a peer with ``key`` belongs in takes a newcomer (RT-05): go asks
        this (UsefulNewPeer) before it probes a candidate, so a full bucket costs no probe."""
        index = common_prefix_length(self.own_key, key, self.bits)
        return len(self._buckets.get(index, ())) < self.k

    def bucket_sizes(self) -> dict[int, int]:
        return {i: len(b) for i, b in sorted(self._buckets.items()) if b}

    @implements("RT-05", "RT-07")
    def add(self, entry: Entry) -> Added:
        """Insert or refresh an entry; a full bucket refuses a newcomer."""
        if entry.key == self.own_key:
            raise ValueError("a node never holds itself in its routing table (RT-07)")
        index = common_prefix_length(self.own_key, entry.key, self.bits)
        bucket = self._buckets.setdefault(index, [])
        rows = self._rows.setdefault(index, [])
        if entry.peer in self._where:
            position = next(i for i, e in enumerate(bucket) if e.peer == entry.peer)
            bucket[position] = entry
            rows[position] = (entry.key, entry.peer, entry)
            self._entries[entry.peer] = entry
            return Added.UPDATED
        if len(bucket) >= self.k:
            return Added.BUCKET_FULL
        bucket.append(entry)
        rows.append((entry.key, entry.peer, entry))
        self._where[entry.peer] = index
        self._entries[entry.peer] = entry
        return Added.ADDED

    @implements("RT-06")
    def remove(self, peer: bytes) -> bool:
        index = self._where.pop(peer, None)
        if index is None:
            return False
        del self._entries[peer]
        self._buckets[index] = [e for e in self._buckets[index] if e.peer != peer]
        self._rows[index] = [row for row in self._rows[index] if row[1] != peer]
        return True

    @implements("FIND-01", "FIND-02")
    def closest(
        self, target: int, count: int, exclude: frozenset[bytes] = frozenset()
    ) -> list[Entry]:
        """The at most ``count`` entries nearest ``target``, nearest first, none in ``exclude``.

        Our own key is never in the table, so a lookup for our own ID gets our neighbours.

        The buckets are visited in increasing order of distance, and each is sorted only when
        reached (why this order is exact: :meth:`_buckets_by_distance`). In a large network
        the target's own bucket is usually full, so one bucket of k entries is sorted instead
        of the whole table, on every request served and every lookup started.
        """
        chosen: list[Entry] = []
        if count <= 0:
            return chosen
        where = self._where
        skip = [peer for peer in exclude if peer in where]  # usually none: the requester
        for group in self._buckets_by_distance(target):
            ranked = sorted([(key ^ target, peer, entry) for key, peer, entry in group])
            if skip:
                ranked = [row for row in ranked if row[1] not in skip]
            need = count - len(chosen)
            if len(ranked) >= need:
                chosen.extend([row[2] for row in ranked[:need]])
                return chosen
            chosen.extend([row[2] for row in ranked])
        return chosen

    def _buckets_by_distance(self, target: int) -> Iterator[list[tuple[int, bytes, Entry]]]:
        """Groups of (key, peer, entry) rows such that every entry of a group is nearer
        ``target`` than every entry of a later group.

        With c = cpl(own key, target): an entry of bucket c agrees with the target on the first
        c + 1 bits, so its distance is below 2^(bits-c-1); an entry of a bucket i > c agrees
        with us, hence not with the target, on bit c: its distance has top bit c; an entry of a
        bucket i < c differs from the target first at bit i, so the lower i, the farther. Equal
        distances mean equal keys, hence the same bucket: ties stay inside one group.
        """
        bits = self.bits
        nearest_index = common_prefix_length(self.own_key, target, bits)
        rows = self._rows
        if nearest_index < bits and nearest_index in rows:
            yield rows[nearest_index]
        deeper = [row for index, b in rows.items() if index > nearest_index for row in b]
        if deeper:
            yield deeper
        for index in range(min(nearest_index, bits) - 1, -1, -1):
            bucket = rows.get(index)
            if bucket:
                yield bucket
