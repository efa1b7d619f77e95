"""Each test-only breakage of the reference node fails the requirement it breaks, with evidence
and the entries that show it; the same scenario without it passes that requirement.

Simulated runs (reference cores in the in-process network, milliseconds each) cover all five;
a few live runs through the runner and the reference adapter (py-libp2p hosts on loopback)
confirm the same verdicts on real hosts.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
from test_observe import simulated

from kadspec.conformance.breakage import BREAKAGES, IgnoresExpiry, WrappedCore
from kadspec.conformance.judge import Result, judge
from kadspec.conformance.observe import LOOPBACK
from kadspec.conformance.scenarios import SCENARIOS
from kadspec.impl.config import CoreConfig, ModeSetting
from kadspec.impl.core import Core
from kadspec.impl.records import MemoryStore, ProviderRecord

REQUIRED = {
    "admit-client": "RT-02",
    "serve-expired": "PROV-04",
    "success-without-store": "PROV-02",
    "drop-provide-before-ready": "BOOT-05",
    "find-node-returns-requester": "FIND-01",
}


def verdict(results: list[Result], rid: str) -> Result:
    return next(r for r in results if r.requirement == rid)


def test_the_five_required_breakages_exist_and_name_their_requirement() -> None:
    for name, rid in REQUIRED.items():
        assert BREAKAGES[name].requirement == rid
        assert BREAKAGES[name].scenario in SCENARIOS


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_each_breakage_fails_its_requirement_in_simulation(name: str) -> None:
    breakage = BREAKAGES[name]
    scenario = SCENARIOS[breakage.scenario]
    broken = verdict(
        judge(simulated(breakage.scenario, name), LOOPBACK, scenario.deadlines),
        breakage.requirement,
    )
    assert broken.status == "fail", broken
    assert broken.entries and broken.evidence
    correct = verdict(
        judge(simulated(breakage.scenario), LOOPBACK, scenario.deadlines), breakage.requirement
    )
    assert correct.status == "pass", correct


def _core(mode: ModeSetting = ModeSetting.SERVER) -> Core:
    config = CoreConfig(peer_id=b"\x00\x05peer1", announce_addrs=(b"/sim/1",), mode=mode)
    return Core(config, MemoryStore())


def test_a_wrapped_core_delegates_everything_but_handle() -> None:
    core = _core()
    wrapped = BREAKAGES["admit-client"].wrap(core)
    assert isinstance(wrapped, WrappedCore)
    assert wrapped.table is core.table and wrapped.mode is core.mode
    assert wrapped.is_ready is False
    wrapped.store = MemoryStore()
    assert core.store is wrapped.store


def test_serve_expired_store_serves_past_expiry_and_never_collects() -> None:
    core = _core()
    BREAKAGES["serve-expired"].wrap(core)
    assert isinstance(core.store, IgnoresExpiry)
    core.store.add(ProviderRecord(b"k", b"p", (b"/sim/2",), expires_at=100))
    assert core.store.expire(1000) == 0
    (record,) = core.store.get(b"k", 1000)
    assert record.live_at(1000)  # the bug: a stale record looks live


# --- live runs on real hosts ---------------------------------------------------------------------


def _live_or_skip() -> None:
    if importlib.util.find_spec("libp2p") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("py-libp2p is missing in CI: the live conformance runs cannot run")
        pytest.skip("py-libp2p is not installed (the reference adapter needs it)")


@pytest.mark.parametrize("name", ["admit-client", "serve-expired"])
def test_live_breakage_fails_its_requirement_on_real_hosts(name: str) -> None:
    _live_or_skip()
    from kadspec.conformance.runner import reference_command, run_scenario

    breakage = BREAKAGES[name]
    scenario = SCENARIOS[breakage.scenario]
    # Under heavy load a deadline may pass before the premise arises (inconclusive): one more
    # try then. A pass is never retried.
    for _ in range(2):
        run, _ = run_scenario(reference_command(name), scenario)
        assert run.aborted is None, run.aborted
        found = verdict(judge(run, LOOPBACK, scenario.deadlines), breakage.requirement)
        if found.status != "inconclusive":
            break
    assert found.status == "fail", found
    assert found.entries
