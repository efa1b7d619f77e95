"""Protocol constants and the network a model run starts from.

Every duration is an integer number of milliseconds, never a float and never truncated: the
defaults of :class:`Timing` are the protocol's real values (TIME-01..03), 0.1 s of retry base
included. The explorer's clock jumps straight to the next armed timer, so the size of the
numbers costs nothing; what costs states is the number of distinct timer events within a
scenario's horizon. That is why model scenarios use :data:`MODEL_TIMING`: small values in the
real order (request deadline < refresh < republish < expiry, retry cap <= refresh), defined
here once.
"""

from __future__ import annotations

import enum

import attrs

from kadspec.models.requirements_registry import requirement


class ConfigError(ValueError):
    """A configuration violates a requirement or a bound; the message names the field."""


class Reach(enum.IntEnum):
    """Whether others can dial a node: publicly reachable, or behind a NAT."""

    PUBLIC = 0
    NAT = 1


class ModeSetting(enum.IntEnum):
    """The operator's mode setting: automatic (follow reachability) or pinned."""

    AUTO = 0
    CLIENT = 1
    SERVER = 2


#: milliseconds in a second, a minute and an hour
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE


@attrs.frozen
class Timing:
    """Protocol constants; every duration in integer milliseconds (TIME-01, TIME-02, TIME-03).

    The defaults are the specification's: k = 20, alpha = 10, records expire after 48 h and are
    republished every 22 h, the table is refreshed every 10 min, a request has 10 s, and a
    provide that could not run is retried after 100 ms, doubling up to 1 min.
    """

    k: int = 20
    alpha: int = 10
    record_ttl: int = 48 * HOUR
    republish_interval: int = 22 * HOUR
    refresh_interval: int = 10 * MINUTE
    request_deadline: int = 10 * SECOND
    retry_base: int = 100
    retry_cap: int = MINUTE

    def outcome_bound(self, nodes: int) -> int:
        """BOOT-05: the longest a user's provide or find may go without an explicit outcome.

        A call the node cannot start yet is answered by the next refresh at the latest (a
        refresh that finds the node still not Ready reports not-ready; a Ready node without an
        announceable address reports no-address at once), so waiting for that costs at most one
        ``refresh_interval``. A call that runs ends once its lookup and its ADD_PROVIDER round
        have ended: every request has its own ``request_deadline``, a lookup asks each of the
        other ``nodes - 1`` nodes at most once, and the ADD_PROVIDER round is one more deadline.
        So ``refresh_interval + nodes * request_deadline`` bounds the first explicit outcome.
        """
        return self.refresh_interval + max(1, nodes) * self.request_deadline

    def problems(self) -> list[str]:
        """Every way these constants break TIME-01..03, one line each (empty when valid)."""
        found = []
        for f in attrs.fields(Timing):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                found.append(
                    f"{f.name} must be an integer (milliseconds for durations), got {value!r}"
                )
            elif value <= 0:
                found.append(f"{f.name} must be positive, got {value}")
        if found:
            return found
        if self.republish_interval >= self.record_ttl:
            found.append(
                f"republish_interval ({self.republish_interval}) must be shorter than "
                f"record_ttl ({self.record_ttl}) (TIME-02)"
            )
        if self.retry_base > self.retry_cap:
            found.append(
                f"retry_base ({self.retry_base}) exceeds retry_cap ({self.retry_cap}) (TIME-03)"
            )
        if not self.request_deadline < self.refresh_interval < self.republish_interval:
            found.append(
                f"request_deadline ({self.request_deadline}) < refresh_interval "
                f"({self.refresh_interval}) < republish_interval ({self.republish_interval}) "
                "is the protocol's order (TIME-03)"
            )
        return found


@requirement("TIME-01", "TIME-02", "TIME-03")
def check_timing_defaults() -> list[str]:
    """The default constants are the spec's, and validation rejects inverted ones."""
    d = Timing()
    found = d.problems()
    expected = {
        "k": 20,
        "alpha": 10,
        "record_ttl": 172_800_000,
        "republish_interval": 79_200_000,
        "refresh_interval": 600_000,
        "request_deadline": 10_000,
        "retry_base": 100,
        "retry_cap": 60_000,
    }
    for name, value in expected.items():
        if getattr(d, name) != value:
            found.append(f"default {name} is {getattr(d, name)}, the spec says {value}")
    if not Timing(republish_interval=48 * HOUR).problems():
        found.append("republish_interval equal to record_ttl was not rejected")
    if not Timing(retry_base=2 * MINUTE).problems():
        found.append("retry_base above retry_cap was not rejected")
    return found


@attrs.frozen
class NodeConfig:
    """One node of a model network: small XOR ID, reachability, mode setting, bootstrap peers."""

    id: int
    reach: Reach = Reach.PUBLIC
    mode: ModeSetting = ModeSetting.AUTO
    bootstrap: tuple[int, ...] = ()


#: The model scenarios' constants: k and alpha small enough that buckets fill and lookups have
#: more candidates than alpha in 4 and 5 nodes, durations in the real order (request deadline
#: 1 < retry cap 2 < refresh 3 < republish 5 < expiry 7; reality: 10 s, 1 min, 10 min, 22 h,
#: 48 h), so a record outlives one republish interval but not two.
MODEL_TIMING = Timing(
    k=2,
    alpha=2,
    record_ttl=7,
    republish_interval=5,
    refresh_interval=3,
    request_deadline=1,
    retry_base=1,
    retry_cap=2,
)

#: PROV-05: how long before a record's expiry its republish must have started (ms). Zero: the
#: bound is the expiry itself; the checks and the z3 twin all read this one value.
REPUBLISH_MARGIN = 0

#: the explorer and the Hypothesis machine take networks of up to this many nodes (states are
#: integer keys, so the bound is the state space, not the encoding)
MAX_NODES = 8
#: the z3 encoding's bound: it proves the lifecycle for 2 to this many nodes
SYMBOLIC_MAX_NODES = 5
MAX_ID_BITS = 8


@attrs.frozen
class Config:
    """A model network: nodes, keys (small IDs), the ID width and its protocol constants
    (:data:`MODEL_TIMING` unless given)."""

    nodes: tuple[NodeConfig, ...]
    keys: tuple[int, ...] = (0,)
    id_bits: int = 4
    timing: Timing = MODEL_TIMING

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(n.id for n in self.nodes)

    def name(self, node: int) -> str:
        """How traces and messages call a node."""
        return f"n{node}"

    def refresh_target(self, node: int, bucket: int) -> int:
        """The ID a refresh of ``node``'s bucket ``bucket`` looks up (BOOT-03): the node's own
        ID with bit ``bucket`` (from the top) flipped, so it shares exactly ``bucket`` leading
        bits with it. The spec draws a random ID in the bucket; this one needs no randomness,
        and no node can steer it anywhere but its own ID's mirror. A replay of a real node's
        run gives the ID that node looked up instead."""
        return self.ids[node] ^ (1 << (self.id_bits - 1 - bucket))

    def validate(self) -> Config:
        """Return self, or raise ConfigError naming the first field that is out of range."""
        count = len(self.nodes)
        if not 1 <= count <= MAX_NODES:
            raise ConfigError(f"nodes: {count} nodes given, the model supports 1 to {MAX_NODES}")
        if not 1 <= self.id_bits <= MAX_ID_BITS:
            raise ConfigError(f"id_bits: {self.id_bits} is outside 1..{MAX_ID_BITS}")
        limit = 1 << self.id_bits
        if len(set(self.ids)) != count:
            raise ConfigError(f"nodes: IDs {list(self.ids)} are not distinct")
        for index, node in enumerate(self.nodes):
            if not 0 <= node.id < limit:
                raise ConfigError(
                    f"nodes[{index}].id: {node.id} does not fit in {self.id_bits} bits"
                )
            for peer in node.bootstrap:
                if not 0 <= peer < count or peer == index:
                    raise ConfigError(f"nodes[{index}].bootstrap: {peer} is not another node")
        for key in self.keys:
            if not 0 <= key < limit:
                raise ConfigError(f"keys: {key} does not fit in {self.id_bits} bits")
        problems = self.timing.problems()
        if problems:
            raise ConfigError(f"timing: {problems[0]}")
        return self
