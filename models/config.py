"""Protocol constants and the network a model run starts from.

Durations are in model ticks. The defaults of :class:`Timing` are the protocol's real values in
seconds (TIME-01..03); model scenarios use small tick counts with the same ordering
(deadline < republish < expiry), because the explorer's state space grows with every distinct
clock value.
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


@attrs.frozen
class Timing:
    """Protocol constants. Defaults are the spec's, in seconds (TIME-01, TIME-02, TIME-03)."""

    k: int = 20
    alpha: int = 10
    record_ttl: int = 48 * 3600
    republish_interval: int = 22 * 3600
    refresh_interval: int = 10 * 60
    request_deadline: int = 10
    retry_base: float = 0.1
    retry_cap: float = 60.0

    def problems(self) -> list[str]:
        """Every way these constants break TIME-01..03, one line each (empty when valid)."""
        found = []
        for name in (
            "k",
            "alpha",
            "record_ttl",
            "republish_interval",
            "refresh_interval",
            "request_deadline",
            "retry_base",
            "retry_cap",
        ):
            if getattr(self, name) <= 0:
                found.append(f"{name} must be positive, got {getattr(self, name)}")
        if self.republish_interval >= self.record_ttl:
            found.append(
                f"republish_interval ({self.republish_interval}) must be shorter than "
                f"record_ttl ({self.record_ttl}) (TIME-02)"
            )
        if self.retry_base > self.retry_cap:
            found.append(
                f"retry_base ({self.retry_base}) exceeds retry_cap ({self.retry_cap}) (TIME-03)"
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
        "record_ttl": 172800,
        "republish_interval": 79200,
        "refresh_interval": 600,
        "request_deadline": 10,
        "retry_base": 0.1,
        "retry_cap": 60.0,
    }
    for name, value in expected.items():
        if getattr(d, name) != value:
            found.append(f"default {name} is {getattr(d, name)}, the spec says {value}")
    if not Timing(republish_interval=48 * 3600).problems():
        found.append("republish_interval equal to record_ttl was not rejected")
    if not Timing(retry_base=120).problems():
        found.append("retry_base above retry_cap was not rejected")
    return found


@attrs.frozen
class NodeConfig:
    """One node of a model network: small XOR ID, reachability, mode setting, bootstrap peers."""

    id: int
    reach: Reach = Reach.PUBLIC
    mode: ModeSetting = ModeSetting.AUTO
    bootstrap: tuple[int, ...] = ()


MAX_NODES = 5
MAX_ID_BITS = 8


@attrs.frozen
class Config:
    """A model network: nodes, keys (small IDs), the ID width and the model's tick constants."""

    nodes: tuple[NodeConfig, ...]
    keys: tuple[int, ...] = (0,)
    id_bits: int = 4
    timing: Timing = Timing(
        k=2,
        alpha=2,
        record_ttl=6,
        republish_interval=3,
        refresh_interval=4,
        request_deadline=1,
        retry_base=1,
        retry_cap=2,
    )

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(n.id for n in self.nodes)

    def name(self, node: int) -> str:
        """How traces and messages call a node."""
        return f"n{node}"

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
