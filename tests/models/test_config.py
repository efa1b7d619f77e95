"""Configuration validation (TIME-01..03) and user scenario files name the offending field."""

from __future__ import annotations

import attrs
import pytest

from kadspec.models.config import (
    HOUR,
    MINUTE,
    MODEL_TIMING,
    SECOND,
    Config,
    ConfigError,
    NodeConfig,
    Timing,
    check_timing_defaults,
)
from kadspec.models.scenario_file import parse_scenario
from kadspec.models.scenarios import SCENARIOS


def test_the_defaults_are_the_specs_in_whole_milliseconds() -> None:
    assert check_timing_defaults() == []
    timing = Timing()
    assert timing.k == 20 and timing.alpha == 10
    assert timing.record_ttl == 48 * HOUR == 172_800_000
    assert timing.republish_interval == 22 * HOUR
    assert timing.refresh_interval == 10 * MINUTE
    assert timing.request_deadline == 10 * SECOND
    assert (timing.retry_base, timing.retry_cap) == (100, MINUTE)  # 0.1 s is not truncated
    assert all(type(getattr(timing, name)) is int for name in attrs.fields_dict(Timing))


def test_there_is_one_model_timing_and_configs_default_to_it() -> None:
    assert Config(nodes=(NodeConfig(id=1),)).timing is MODEL_TIMING
    assert MODEL_TIMING.problems() == []


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_keeps_the_real_order_of_durations(name: str) -> None:
    t = SCENARIOS[name].config.timing
    # reality: 10 s << 10 min << 22 h < 48 h, and the retry cap (1 min) below the refresh
    assert t.request_deadline < t.refresh_interval < t.republish_interval < t.record_ttl
    assert t.retry_base <= t.retry_cap <= t.refresh_interval


def test_the_outcome_bound_covers_a_refresh_and_a_full_lookup() -> None:
    t = Timing()
    assert t.outcome_bound(5) == 10 * MINUTE + 5 * 10 * SECOND
    assert t.outcome_bound(1) > t.refresh_interval


@pytest.mark.parametrize(
    ("timing", "message"),
    [
        (Timing(republish_interval=48 * HOUR), "republish_interval"),
        (Timing(k=0), "k must be positive"),
        (Timing(retry_base=61 * SECOND), "retry_base"),
        (Timing(retry_base=0.1), "must be an integer"),  # type: ignore[arg-type]
        (Timing(refresh_interval=5 * SECOND), "the protocol's order"),
    ],
)
def test_inverted_or_empty_timing_is_rejected(timing: Timing, message: str) -> None:
    assert any(message in p for p in timing.problems())
    with pytest.raises(ConfigError, match=message):
        Config(nodes=(NodeConfig(id=1),), timing=timing).validate()


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ((), "nodes: 0 nodes given"),
        ((NodeConfig(id=1), NodeConfig(id=1)), "not distinct"),
        ((NodeConfig(id=1, bootstrap=(0,)),), r"nodes\[0\].bootstrap: 0 is not another node"),
        ((NodeConfig(id=16),), r"nodes\[0\].id: 16 does not fit in 4 bits"),
    ],
)
def test_bad_networks_name_the_field(nodes: tuple[NodeConfig, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(nodes=nodes).validate()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("horizon = 3\n", "at least one"),
        ("colour = 1\n[[node]]\nid = 1\n", "colour: unknown field"),
        ('[[node]]\nid = 1\nmode = "boss"\n', r"node\[0\].mode: expected one of"),
        ("[[node]]\nid = 1\nprovides = 2\n", r"node\[0\].provides: unknown field"),
        ("provides = [[5, 0]]\n[[node]]\nid = 1\n", r"provides\[0\] node: 5 is outside 0..0"),
        ('fault_kinds = ["meteor"]\n[[node]]\nid = 1\n', r"fault_kinds\[0\]: expected one of"),
        ("[[node]\n", "not valid TOML"),
    ],
)
def test_scenario_files_name_the_bad_field(document: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scenario(document)
