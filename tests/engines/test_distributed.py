"""Tests for kadspec.engines.distributed: the explorer on a local Ray of two workers.

The Ray mode runs the partitioned explorer's rounds over actors; it must find what the serial
explorer finds (states level by level, premises, witnesses, violations, counterexample lengths)
on every scenario: completely where a scenario has up to 100,000 states, level by level under a
state cap above that; and on mutants. One local Ray serves the module: starting Ray costs
seconds.

Ray is an optional extra. Outside CI the tests skip when it is not installed; under CI=true
(where the set-up script installs the extra) a missing Ray fails them instead.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

from kadspec.engines.explorer import Exploration, explore
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC
from kadspec.models.scenarios import SCENARIOS

try:
    import ray
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        raise  # the set-up script installs the 'ray' extra in CI: its absence is a failure
    pytest.skip("Ray is not installed (pip install 'kadspec[ray]')", allow_module_level=True)

from test_parallel import CAP, assert_capped_levels_agree

from kadspec.engines.distributed import HASH_SEED, explore_ray

#: one xdist worker runs them all, so only one local Ray is started
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray with two CPUs for the module, stopped after it (with its processes)."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONHASHSEED": HASH_SEED}},
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


def agreement(result: Exploration) -> dict[str, Any]:
    """What two engines must agree on after a complete run (as in test_parallel.py)."""
    return {
        "states": result.states,
        "transitions": result.transitions,
        "levels": result.levels,
        "quiescent": result.quiescent_states,
        "exercised": dict(result.exercised),
        "violated": sorted(result.counterexamples),
        "lengths": {rid: len(ce.steps) for rid, ce in result.counterexamples.items()},
    }


#: scenarios of over 100,000 states: compared under a state cap, level by level
LARGE = ("trio-forgery", "crowd-unresponsive-find", "republish", "expiry")


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n not in LARGE])
def test_ray_agrees_with_the_serial_explorer(local_ray: None, name: str) -> None:
    scenario = SCENARIOS[name]
    initial = scenario.initial()
    witnesses = getattr(scenario, "witnesses", ())
    serial = explore(initial, SPEC, keep_going=True, witnesses=witnesses)
    distributed = explore_ray(initial, SPEC, workers=2, keep_going=True, witnesses=witnesses)
    assert distributed.workers == 2 and distributed.complete
    assert agreement(distributed) == agreement(serial)
    assert distributed.witnesses_reached == serial.witnesses_reached


@pytest.mark.parametrize("name", LARGE)
def test_a_capped_ray_run_agrees_level_by_level(local_ray: None, name: str) -> None:
    """A state cap ends the serial search inside a level and the Ray one after it: every
    level both completed must hold the same number of states."""
    initial = SCENARIOS[name].initial()
    serial = explore(initial, SPEC, keep_going=True, max_states=CAP)
    distributed = explore_ray(initial, SPEC, workers=2, keep_going=True, max_states=CAP)
    assert_capped_levels_agree(serial, distributed)


@pytest.mark.parametrize("name", ["admit-on-inbound-request", "lookup-check-deadlock"])
def test_ray_finds_the_mutants_bugs_with_traces_as_short(local_ray: None, name: str) -> None:
    mutant = MUTANTS[name]
    initial = mutant.scenario_spec.initial()
    serial = explore(initial, mutant.policy, keep_going=True)
    distributed = explore_ray(initial, mutant.policy, workers=2, keep_going=True)
    assert serial.counterexamples and agreement(distributed) == agreement(serial)


def test_ray_with_fingerprints(local_ray: None) -> None:
    mutant = MUTANTS["admit-on-inbound-request"]
    initial = mutant.scenario_spec.initial()
    serial = explore(initial, mutant.policy, keep_going=True)
    found = explore_ray(initial, mutant.policy, workers=2, fingerprints=True, keep_going=True)
    assert found.fingerprints and found.omission_probability is not None
    assert agreement(found) == agreement(serial)


def test_the_actors_are_gone_after_a_run(local_ray: None) -> None:
    """Each run kills its actors: their CPUs come back to the pool."""
    explore_ray(SCENARIOS["client-joins"].initial(), SPEC, workers=2)
    available = cast(Callable[[], dict[str, float]], ray.available_resources)
    deadline = time.monotonic() + 30
    while available().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert available().get("CPU", 0) == 2
