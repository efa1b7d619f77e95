"""The core's configuration defaults and its validation."""

from __future__ import annotations

import pytest

from kadspec.impl.config import HOUR, BootstrapPeer, ConfigError, CoreConfig


def test_defaults_are_the_spec_constants() -> None:
    config = CoreConfig(peer_id=b"me")
    assert (config.k, config.alpha) == (20, 10)
    assert (config.record_ttl, config.republish_interval) == (48 * HOUR, 22 * HOUR)
    assert config.keyspace.bits == 256
    assert config.validated() is config


def test_every_problem_is_named() -> None:
    bad = CoreConfig(
        peer_id=b"me", k=0, republish_interval=48 * HOUR, bootstrap=(BootstrapPeer(b"me", ()),)
    )
    with pytest.raises(ConfigError) as error:
        bad.validated()
    message = str(error.value)
    assert "k must be positive" in message
    assert "republish_interval" in message and "TIME-02" in message
    assert "own peer ID" in message
