"""Iterative lookups: FIND_NODE and GET_PROVIDERS with at most alpha requests in flight.

A :class:`Lookup` is pure bookkeeping: which peers it has seen, asked, heard from, lost; the core
sends the requests it chooses and feeds back replies and failures. Peers learned from
``closerPeers`` are candidates here and nowhere else (FIND-05).
"""

from __future__ import annotations

import bisect
import enum
import hashlib

from kadspec.impl.keyspace import FixedKeyspace, Keyspace, Sha256Keyspace
from kadspec.impl.requirements import implements
from kadspec.impl.wire import PeerInfo


class Purpose(enum.Enum):
    SELF = "self"  # bootstrap / refresh: look up our own ID (BOOT-02)
    PROVIDE = "provide"  # GetClosestPeers for a key we provide (PROV-01)
    FIND_PROVIDERS = "find-providers"  # GET_PROVIDERS
    REFRESH = "refresh"  # an ID in one empty bucket, after the self-lookup (BOOT-03)


#: the deepest bucket a refresh looks up: go's kbucket refreshes common prefix lengths up to 15
#: (maxCplForRefresh), the reach of its table of IDs with a chosen 16-bit prefix
MAX_REFRESH_BUCKET = 15


def refresh_target(own_key: int, bits: int, bucket: int) -> int:
    """The position a refresh of ``bucket`` aims at: our own with bit ``bucket`` (from the top)
    flipped, the model's target (``kadspec.models.lookup.refresh_target``)."""
    return own_key ^ (1 << (bits - 1 - bucket))


def fixed_refresh_name(position: int) -> bytes:
    """The kad key a fixed key space (the model's small IDs) gives position ``position`` for a
    refresh; the lockstep driver names the mirror of every node's ID this way."""
    return b"refresh/" + position.to_bytes(32, "big")


#: per key width: candidate kad keys found so far by their leading bits, {length: {prefix: key}}
_PREFIXED: dict[int, dict[int, dict[int, bytes]]] = {}
_DRAWN: dict[int, int] = {}  # per key width: how many candidates have been hashed


def _candidate(n: int) -> bytes:
    """The ``n``-th candidate kad key: a sha2-256 multihash, shaped like a peer ID (as go's
    GenRandPeerID draws), so that no receiver rejects it as malformed."""
    return b"\x12\x20" + hashlib.sha256(b"kadspec refresh %d" % n).digest()


def refresh_position(keyspace: Keyspace, own_key: int, bucket: int) -> int | None:
    """Where the kad key :func:`refresh_key` picks sits (a replay of a reference node's run
    gives the model this target), or None when there is none."""
    key = refresh_key(keyspace, own_key, bucket)
    return None if key is None else keyspace.key_of(key)


@implements("BOOT-03")
def refresh_key(keyspace: Keyspace, own_key: int, bucket: int) -> bytes | None:
    """A kad key whose position shares exactly ``bucket`` leading bits with ``own_key``.

    The spec asks for "a randomly generated Peer ID matching the bucket"; the core draws no
    randomness, so the key is the first of a fixed sequence of candidates whose position starts
    like :func:`refresh_target` (the same leading ``bucket + 1`` bits). Candidates are hashed
    once per process and indexed by their leading bits, so all nodes of a simulation share the
    work (a few thousand hashes for a 1,000-node network, whose deepest buckets are ~10). A
    fixed key space answers only for the names the lockstep driver gave it: there the position
    is the model's target exactly; None when it names none (that bucket is not looked up).
    """
    bits = keyspace.bits
    target = refresh_target(own_key, bits, bucket)
    if isinstance(keyspace, FixedKeyspace):
        name = fixed_refresh_name(target)
        return name if keyspace.table.get(name) == target else None
    length = bucket + 1
    prefix = target >> (bits - length)
    tables = _PREFIXED.setdefault(bits, {})
    found = tables.get(length, {}).get(prefix)
    while found is None:
        n = _DRAWN.get(bits, 0)
        _DRAWN[bits] = n + 1
        key = _candidate(n)
        if isinstance(keyspace, Sha256Keyspace):  # hashed here: the keyspace's cache is for peers
            position = int.from_bytes(hashlib.sha256(key).digest(), "big") >> (256 - bits)
        else:
            position = keyspace.key_of(key)
        for size in range(1, min(bits, MAX_REFRESH_BUCKET + 1) + 1):
            tables.setdefault(size, {}).setdefault(position >> (bits - size), key)
        found = tables[length].get(prefix)
    return found


class Lookup:
    """One lookup towards ``target``; ``seeds`` are (peer, key, addrs) from the routing table."""

    def __init__(
        self,
        ident: int,
        purpose: Purpose,
        target: int,
        key: bytes,
        seeds: list[tuple[bytes, int, tuple[bytes, ...]]],
        k: int,
        alpha: int,
    ) -> None:
        self.ident = ident
        self.purpose = purpose
        self.target = target
        self.key = key  # the kad message key: our peer ID or the content key
        self.k = k
        self.alpha = alpha
        self.keys: dict[bytes, int] = {}
        self.addrs: dict[bytes, tuple[bytes, ...]] = {}
        self.inflight: set[bytes] = set()
        self.answered: set[bytes] = set()
        self.failed: set[bytes] = set()
        self.providers: dict[bytes, PeerInfo] = {}
        self.hops: dict[bytes, int] = {}
        #: (distance to the target, peer) of every peer seen, nearest first, kept sorted as peers
        #: are learned: the questions below walk it from the front instead of sorting every
        #: candidate again on every reply (ties break on the peer ID bytes, as in ``nearest``)
        self._order: list[tuple[int, bytes]] = []
        for peer, peer_key, addrs in seeds:  # the whole table, often: sorted once below
            if peer not in self.keys:
                self.keys[peer] = peer_key
                self.addrs[peer] = addrs
                self.hops[peer] = 0
            elif addrs and not self.addrs[peer]:
                self.addrs[peer] = addrs
        self._order = sorted([(peer_key ^ target, peer) for peer, peer_key in self.keys.items()])

    def learn(self, peer: bytes, key: int, addrs: tuple[bytes, ...], hop: int) -> None:
        """A candidate from the table or from a reply's closerPeers (FIND-05)."""
        if peer not in self.keys:
            self.keys[peer] = key
            self.addrs[peer] = addrs
            self.hops[peer] = hop
            bisect.insort(self._order, (key ^ self.target, peer))
        elif addrs and not self.addrs[peer]:
            self.addrs[peer] = addrs

    @implements("FIND-04")
    def finished(self) -> bool:
        """The k closest live peers seen have answered, or nothing is left to ask or await.

        Live: not failed, and with an address to ask them at.
        """
        failed, addrs, answered = self.failed, self.addrs, self.answered
        remaining = self.k
        top_answered = remaining > 0
        for _, peer in self._order:
            if not remaining:
                break
            if peer in failed or not addrs[peer]:
                continue
            if peer not in answered:
                top_answered = False
                break
            remaining -= 1
        if top_answered and remaining < self.k:
            return True
        return not self.inflight and not self._nearest_unasked(1)

    def _nearest_unasked(self, count: int) -> list[bytes]:
        """The at most ``count`` nearest peers not asked yet that have an address."""
        inflight, answered, failed, addrs = self.inflight, self.answered, self.failed, self.addrs
        chosen: list[bytes] = []
        for _, peer in self._order:
            if len(chosen) >= count:
                break
            if peer in inflight or peer in answered or peer in failed or not addrs[peer]:
                continue
            chosen.append(peer)
        return chosen

    @implements("FIND-03")
    def next_queries(self) -> list[bytes]:
        """Peers to ask now, closest first, keeping at most alpha requests in flight."""
        if self.finished():
            return []
        room = self.alpha - len(self.inflight)
        if room <= 0:
            return []
        chosen = self._nearest_unasked(room)
        self.inflight.update(chosen)
        return chosen

    def on_reply(
        self, peer: bytes, closer: list[tuple[bytes, int, tuple[bytes, ...]]],
        providers: tuple[PeerInfo, ...] = (),
    ) -> None:  # fmt: skip
        self.inflight.discard(peer)
        self.answered.add(peer)
        hop = self.hops.get(peer, 0) + 1
        for other, key, addrs in closer:
            self.learn(other, key, addrs, hop)
        for info in providers:
            known = self.providers.get(info.id)
            if known is None or (info.addrs and not known.addrs):
                self.providers[info.id] = info

    def on_failure(self, peer: bytes) -> None:
        self.inflight.discard(peer)
        self.failed.add(peer)

    def result(self) -> list[bytes]:
        """The at most k closest peers that answered, nearest first."""
        answered = self.answered
        return [peer for _, peer in self._order if peer in answered][: self.k]

    def max_hops(self) -> int:
        """The longest chain of replies that led to an answering peer (for the benchmark)."""
        return max((self.hops[p] for p in self.answered), default=0)
