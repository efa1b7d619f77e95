"""Lockstep refinement: the reference core and the model take the same steps and agree on
every field after each one, over every scenario of ``kadspec check`` (issue 8, item 3).

Hypothesis draws a list of choice indices; each picks one of the actions the model enables
and the cores can take (``Lockstep.choices``), so a shrunk failure is a short list of numbered
steps, printed with the fields that differ. The same walks run from four lockstep-only
starting points (``WALKS``: full tables meeting a joiner, a crowd forming from nothing, crashes
in formed networks). A last test replays fixed schedules that reach each scenario's witnesses,
so the check is known to cover the interesting states (a network formed, a provide delivered,
a record found after expiry) and not only early ones.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kadspec.impl.refinement import Divergence, Lockstep, replay
from kadspec.models.actions import Action
from kadspec.models.scenarios import CROWD, FIVE, SCENARIOS, TWO_BOOTSTRAPS, Scenario
from kadspec.models.state import Kind, Outcome, World

#: examples per scenario: 20 scenarios x 80 walks (each ends with its scenario's budget and
#: horizon, under 100 steps): 14 s of CPU for the whole file, 56 s wall measured at load 13
EXAMPLES = 80
STEPS = 150

#: Lockstep-only starting points beyond ``kadspec check``'s (too large to explore, cheap to
#: walk): a joiner meets full tables, so admission probes fail and succeed (BOOT-06); a crowd
#: forms from nothing with a loss or a disconnect; crashes and restarts of bootstrap peers
#: and providers in formed networks.
WALKS = {
    s.name: s
    for s in (
        Scenario("five-join", "n4 joins a formed crowd through n0 and n1", FIVE, horizon=3,
                 provides=((4, 1),), finds=((2, 1),), running=(0, 1, 2, 3), formed=True),
        Scenario("crowd-forms", "four servers form a network from nothing", CROWD, horizon=3,
                 faults=1, fault_kinds=frozenset({"lose", "disconnect"}), provides=((1, 0),),
                 finds=((0, 0),)),
        Scenario("two-bootstraps-crash", "a joiner, two bootstrap peers, crashes and restarts",
                 TWO_BOOTSTRAPS, horizon=4, faults=2,
                 fault_kinds=frozenset({"crash", "restart", "disconnect"}), provides=((2, 0),)),
        Scenario("five-crash", "five formed nodes provide and find while two faults strike",
                 FIVE, horizon=4, faults=2, fault_kinds=frozenset({"crash", "restart"}),
                 provides=((4, 1), (1, 0)), finds=((2, 1),), running=(0, 1, 2, 3, 4),
                 formed=True),
    )
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(WALKS))
@settings(
    max_examples=EXAMPLES // 2,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(picks=st.lists(st.integers(min_value=0, max_value=2**16), max_size=2 * STEPS))
def test_cores_and_model_agree_beyond_the_check_scenarios(name: str, picks: list[int]) -> None:
    replay(WALKS[name], picks)


#: what each choice kind weighs in the fixed schedules (lower goes first)
_PREFERENCE = {
    "deliver": 0,
    "dial_bootstrap": 0,
    "dial_back": 0,
    "start": 1,
    "provide": 2,
    "set_mode": 2,
    "find_providers": 3,
    "tick": 4,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(picks=st.lists(st.integers(min_value=0, max_value=2**16), max_size=STEPS))
def test_cores_and_model_agree_on_every_field_after_every_step(name: str, picks: list[int]) -> None:
    replay(SCENARIOS[name], picks)  # raises Divergence with the numbered trace


def scheduled(scenario: Scenario, schedule: str, limit: int = 400) -> set[str]:
    """Run a fixed schedule without faults in lockstep and return the witnesses some state
    along the way satisfied. ``network-first``: the network's own steps, then the user's,
    time only when nothing else is left; ``find-late``: the same, but finds wait for every
    tick; ``time-first``: like ``network-first`` until every provide succeeded, then time
    passes whenever the model lets it (messages lag behind the clock) and a find goes out
    before the network catches up: it asks for a record whose renewal is still on its way."""
    run = Lockstep(scenario)
    reached = {w.name for w in scenario.witnesses if w.holds(run.world)}
    for _ in range(limit):
        options = [a for a in run.choices() if a.kind in _PREFERENCE]
        ticking = any(a.kind == "tick" for a in options)
        if schedule == "find-late" and ticking:
            options = [a for a in options if a.kind != "find_providers"] or options
        rank = _rank
        if schedule == "time-first" and _provided(run.world, scenario):
            options = [a for a in options if a.kind == "tick"] or options
            rank = _find_first
        if not options:
            break
        run.step(min(options, key=rank))
        reached |= {w.name for w in scenario.witnesses if w.holds(run.world)}
    return reached


def _rank(action: Action) -> int:
    return _PREFERENCE[action.kind]


def _provided(world: World, scenario: Scenario) -> bool:
    return all(
        world.nodes[n].provides[k].outcome is Outcome.SUCCEEDED for n, k in scenario.provides
    )


def _find_first(action: Action) -> int:
    return -1 if action.kind == "find_providers" else _PREFERENCE[action.kind]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fixed_schedules_reach_every_witness_in_lockstep(name: str) -> None:
    scenario = SCENARIOS[name]
    reached: set[str] = set()
    for schedule in ("network-first", "find-late", "time-first"):
        reached |= scheduled(scenario, schedule)
    missing = {w.name for w in scenario.witnesses} - reached
    assert not missing, f"{name}: no fixed schedule reached {sorted(missing)}"


def test_a_divergence_names_the_steps_and_the_field() -> None:
    """The report a failure prints: numbered steps, then node, field path, both values."""
    run = Lockstep(SCENARIOS["join"])
    run.step(run.choices()[0])
    core = run.cores[1] if run.cores[1] is not None else run.cores[0]
    assert core is not None
    core.self_lookup_done = True  # what a broken core might believe
    with pytest.raises(Divergence) as caught:
        run.check()
    text = str(caught.value)
    assert "  1. n" in text and "starts" in text
    assert "self_lookup_done: model False, core True" in text


#: A path of the ``expiry`` scenario (found by a breadth-first search of the model, queries
#: taken as soon as enabled, as the core sends them) on which n1's GET_PROVIDERS reaches n0
#: after n0's copy of n1's record expired: the one place PROV-04 (never serve an expired record)
#: shows, and one the random walks rarely reach.
EXPIRED_RECORD_ASKED = (
    "the user asks n1 to provide key0",
    "n0 receives FIND_NODE(target=0110) from n1",
    "n1 receives FIND_NODE_REPLY(closer=[-]) from n0",
    "the user asks n1 to find providers of key0",
    "n0 receives ADD_PROVIDER(key0, provider=n1, with addrs) from n1",
    "time passes to the next timer",
    "time passes to the next timer",
    "time passes to the next timer",
    "time passes to the next timer",
    "n0 receives GET_PROVIDERS(target=0110) from n1",
)


def test_an_expired_record_is_asked_for_in_lockstep() -> None:
    run = Lockstep(SCENARIOS["expiry"])
    for text in EXPIRED_RECORD_ASKED:
        before = run.world
        (action,) = [a for a in run.choices() if run.describe(a) == text]
        run.step(action)  # compares every field, the reply in flight included
    holder = before.nodes[0]
    assert any(r.key == 0 and r.provider == 1 and r.expires <= before.clock for r in holder.records)
    (reply,) = [m for m in run.world.channel(0, 1) if m.kind is Kind.GET_PROVIDERS_REPLY]
    assert reply.providers == frozenset()  # PROV-04, in the model and in the core
