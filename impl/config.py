"""The core's configuration: protocol constants in milliseconds, bootstrap peers, mode.

Defaults are the spec's (TIME-01..03): k = 20, alpha = 10, records live 48 h and are republished
every 22 h, refresh every 10 min, a 10 s deadline per request, provide retries from 100 ms
doubling up to 1 min.
"""

from __future__ import annotations

import enum

import attrs

from kadspec.impl.keyspace import Keyspace, Sha256Keyspace

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE


class ModeSetting(enum.Enum):
    """The operator's choice: follow confirmed reachability (ADDR-04), or pin a mode."""

    AUTO = "auto"
    CLIENT = "client"
    SERVER = "server"


class Mode(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class ConfigError(ValueError):
    """A configuration breaks a bound; the message names the field."""


@attrs.frozen
class BootstrapPeer:
    """A configured bootstrap peer: its ID and the addresses to dial it at."""

    peer: bytes
    addrs: tuple[bytes, ...]


@attrs.frozen
class CoreConfig:
    """Everything a core is started with. Durations are in milliseconds."""

    peer_id: bytes
    #: addresses others can dial us at, as far as the operator knows (announced in ADD_PROVIDER
    #: and identify); confirmed external addresses are added at run time (ADDR-03)
    announce_addrs: tuple[bytes, ...] = ()
    bootstrap: tuple[BootstrapPeer, ...] = ()
    mode: ModeSetting = ModeSetting.AUTO
    keyspace: Keyspace = attrs.field(factory=Sha256Keyspace)
    k: int = 20
    alpha: int = 10
    record_ttl: int = 48 * HOUR
    republish_interval: int = 22 * HOUR
    refresh_interval: int = 10 * MINUTE
    request_deadline: int = 10 * SECOND
    retry_base: int = 100
    retry_cap: int = 1 * MINUTE
    gc_interval: int = 1 * HOUR
    #: None: retry a provide for as long as the node runs (PROV-06); n: give up after n attempts
    provide_max_attempts: int | None = None
    #: BOOT-01: stop dialling bootstrap peers once this many dials succeeded
    bootstrap_connections: int = 2

    def problems(self) -> list[str]:
        """Every bound this configuration breaks, one line each (empty when valid)."""
        found = []
        for name in (
            "k", "alpha", "record_ttl", "republish_interval", "refresh_interval",
            "request_deadline", "retry_base", "retry_cap", "gc_interval",
            "bootstrap_connections",
        ):  # fmt: skip
            if getattr(self, name) <= 0:
                found.append(f"{name} must be positive, got {getattr(self, name)}")
        if self.republish_interval >= self.record_ttl:
            found.append(
                f"republish_interval ({self.republish_interval}) must be shorter than "
                f"record_ttl ({self.record_ttl}) (TIME-02)"
            )
        if self.retry_base > self.retry_cap:
            found.append(f"retry_base ({self.retry_base}) exceeds retry_cap ({self.retry_cap})")
        if self.provide_max_attempts is not None and self.provide_max_attempts <= 0:
            found.append(f"provide_max_attempts must be positive, got {self.provide_max_attempts}")
        if any(b.peer == self.peer_id for b in self.bootstrap):
            found.append("bootstrap lists this node's own peer ID")
        return found

    def validated(self) -> CoreConfig:
        """This configuration, or ConfigError listing every problem."""
        found = self.problems()
        if found:
            raise ConfigError("; ".join(found))
        return self
