"""Configuration validation (TIME-01..03) and user scenario files name the offending field."""

from __future__ import annotations

import pytest

from kadspec.models.config import Config, ConfigError, NodeConfig, Timing, check_timing_defaults
from kadspec.models.scenario_file import parse_scenario


def test_the_defaults_are_the_specs() -> None:
    assert check_timing_defaults() == []
    assert Timing().k == 20 and Timing().record_ttl == 48 * 3600


@pytest.mark.parametrize(
    ("timing", "message"),
    [
        (Timing(republish_interval=48 * 3600), "republish_interval"),
        (Timing(k=0), "k must be positive"),
        (Timing(retry_base=61), "retry_base"),
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
        ('fault_kinds = ["meteor"]\n[[node]]\nid = 1\n', "fault_kinds: expected one of"),
        ("[[node]\n", "not valid TOML"),
    ],
)
def test_scenario_files_name_the_bad_field(document: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scenario(document)
