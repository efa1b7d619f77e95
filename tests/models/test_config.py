"""Configuration validation (TIME-01..03) and user scenario files name the offending field."""

from __future__ import annotations

import attrs
import pytest

from kadspec.engines.explorer import explore
from kadspec.models.actions import Action, apply, enabled, is_protocol
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
from kadspec.models.policy import SPEC
from kadspec.models.scenario_file import parse_scenario
from kadspec.models.scenarios import SCENARIOS, Scenario
from kadspec.models.state import Outcome


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
        (tuple(NodeConfig(id=i) for i in range(9)), "nodes: 9 nodes given"),
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


def _real_join(horizon: int, **changes: object) -> Scenario:
    config = attrs.evolve(SCENARIOS["join"].config, timing=Timing())
    return attrs.evolve(SCENARIOS["join"], config=config, horizon=horizon, **changes)  # type: ignore[arg-type]


def test_a_scenario_with_the_specs_real_timing_is_explored_to_the_end() -> None:
    # 10 s deadlines, 100 ms retries and a 10 min refresh: the explorer's clock jumps from
    # timer to timer, so real values cost nothing; truncating 0.1 s to 0 used to freeze it.
    scenario = _real_join(Timing().refresh_interval + Timing().request_deadline)
    result = explore(scenario.initial(), SPEC, keep_going=True, witnesses=scenario.witnesses)
    assert result.stop_reason == "complete"
    assert not result.counterexamples
    assert {w.name for w in scenario.witnesses} <= result.witnesses_reached


def test_with_real_timing_a_republished_record_is_found_after_48_hours() -> None:
    timing = Timing()
    scenario = _real_join(
        timing.record_ttl + timing.refresh_interval, running=(0, 1), formed=True, finds=((1, 0),)
    )
    world = apply(scenario.initial(), SPEC, Action("provide", node=1, key=0))
    for _ in range(10_000):  # one schedule: the protocol first, then time; find after 48 h
        moves = enabled(world, SPEC)
        late = world.clock > timing.record_ttl
        move = next((a for a in moves if late and a.kind == "find_providers"), None)
        move = move or next((a for a in moves if is_protocol(a)), None)
        move = move or next((a for a in moves if a.kind == "tick"), None)
        if move is None:
            break
        world = apply(world, SPEC, move)
    assert world.clock > timing.record_ttl  # time never froze
    answer = world.nodes[1].find_outcomes[0]
    assert answer.outcome is Outcome.SUCCEEDED and answer.at is not None
    assert answer.at > timing.record_ttl and world.nodes[1].found[0] == frozenset({1})


def test_the_explorer_takes_more_nodes_than_the_symbolic_layer() -> None:
    """Six nodes are a valid network for the explorer (issue 6: more than five nodes where the
    engines allow it): a formed six-node network, one provide and one find, explores to the end
    and reaches its witnesses."""
    from kadspec.engines.explorer import explore
    from kadspec.models.config import MAX_NODES, SYMBOLIC_MAX_NODES, ModeSetting
    from kadspec.models.policy import SPEC
    from kadspec.models.scenarios import (
        Scenario,
        everyone_ready,
        finds_provider,
        network_forms,
        provided_at_closest,
    )

    assert MAX_NODES > SYMBOLIC_MAX_NODES == 5
    servers = [NodeConfig(id=0b1000, mode=ModeSetting.SERVER)] + [
        NodeConfig(id=i, mode=ModeSetting.SERVER, bootstrap=(0,))
        for i in (0b0011, 0b0101, 0b0110, 0b1110)
    ]
    joiner = NodeConfig(id=0b1101, bootstrap=(0, 1))
    config = Config(nodes=(*servers, joiner), keys=(0b0111, 0b1100)).validate()
    witnesses = (
        network_forms(),
        everyone_ready(),
        provided_at_closest(5, 1),
        finds_provider(2, 1, 5),
    )
    scenario = Scenario(
        "six",
        "six nodes: n5 provides key 1100, n2 looks it up",
        config,
        horizon=0,
        provides=((5, 1),),
        finds=((2, 1),),
        running=tuple(range(6)),
        formed=True,
        witnesses=witnesses,
    )
    run = explore(scenario.initial(), SPEC, keep_going=True, witnesses=witnesses)
    assert run.stop_reason == "complete"
    assert run.witnesses_reached == {w.name for w in witnesses}
