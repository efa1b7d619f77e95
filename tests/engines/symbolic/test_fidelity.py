"""The symbolic transition relation agrees with the executable model on random (state, action)
pairs, and the check has teeth.

Hypothesis chooses a scenario, a policy set (the spec or a mutant) and a random walk from the
scenario's initial world; every step of the walk is one (state, action) pair checked by
:class:`FidelityChecker` (guards, successor, exactness, reply contents). The number of pairs per
run is ``PAIRS``: 10,000 with ``HYPOTHESIS_PROFILE=thorough``, 1,000 otherwise (CI).
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kadspec.engines.symbolic import encoding
from kadspec.engines.symbolic.concretize import concretize
from kadspec.engines.symbolic.encoding import project, shape_of
from kadspec.engines.symbolic.fidelity import Divergence, FidelityChecker
from kadspec.engines.symbolic.terms import add, and_
from kadspec.models.actions import apply, enabled
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC, Policy
from kadspec.models.scenarios import SCENARIOS
from kadspec.models.state import World

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
PAIRS = 10_000 if THOROUGH else 1_000
STEPS = 50  # pairs per Hypothesis example
EXAMPLES = -(-PAIRS // STEPS)

POLICIES: dict[str, Policy] = {"spec": SPEC, **{m.name: m.policy for m in MUTANTS.values()}}
CHECKER = FidelityChecker()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # A divergence names the pair and the variables; shrinking 50-step walks costs minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    scenario=st.sampled_from(sorted(SCENARIOS)),
    policy=st.sampled_from(sorted(POLICIES)),
    data=st.data(),
)
def _walks(scenario: str, policy: str, data: Any) -> None:
    """One example: STEPS pairs along random walks from the scenario's initial world (a walk
    that reaches a dead end starts over)."""
    chosen = POLICIES[policy]
    world = SCENARIOS[scenario].initial()
    for _ in range(STEPS):
        actions = enabled(world, chosen)
        if not actions:
            world = SCENARIOS[scenario].initial()
            actions = enabled(world, chosen)
        action = actions[data.draw(st.integers(0, len(actions) - 1), label="action")]
        after = apply(world, chosen, action)
        CHECKER.check(world, chosen, action, after, actions)
        world = after


def test_symbolic_relation_agrees_with_the_executable_model() -> None:
    before = CHECKER.pairs
    _walks()
    checked = CHECKER.pairs - before
    assert checked >= PAIRS, f"only {checked} (state, action) pairs were checked"
    # Every kind of action the scenarios can take was exercised.
    assert {
        "start",
        "tick",
        "query",
        "deliver_identify",
        "deliver_request",
        "deliver_reply",
    } <= set(CHECKER.by_group)
    assert CHECKER.relation_checks >= checked // CHECKER.relation_every


def _walk(scenario: str, policy: Policy, length: int) -> list[tuple[World, Any, World]]:
    world = SCENARIOS[scenario].initial()
    out = []
    for step in range(length):
        actions = enabled(world, policy)
        if not actions:
            break
        action = actions[(step * 7) % len(actions)]
        after = apply(world, policy, action)
        out.append((world, action, after))
        world = after
    return out


def test_a_divergent_encoding_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break one effect (dial_back forgets to confirm a public node's address): the checker
    names the action and the variable on which the two encodings now disagree."""
    pairs = [p for p in _walk("join", SPEC, 60) if p[1].kind == "dial_back"]
    assert pairs, "the walk should contain a dial-back"

    def broken_dial_back(self: Any, w: Any, n: int) -> None:
        self.put(w, "dial_back_tried", (n,), True)  # ... and never confirms

    monkeypatch.setattr(encoding._Effect, "dial_back", broken_dial_back)
    checker = FidelityChecker()
    with pytest.raises(Divergence, match=r"dial.*confirmed\[1\]: symbolic False, executable True"):
        for world, action, after in pairs:
            checker.check(world, SPEC, action, after)


def test_a_divergent_guard_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break one guard (dial_back also demands a confirmed address): the checker reports the
    action as enabled concretely but not symbolically."""
    world, action, after = next(p for p in _walk("join", SPEC, 60) if p[1].kind == "dial_back")
    real = encoding._Effect.guard

    def broken_guard(self: Any, inst: encoding.Instance) -> Any:
        g = real(self, inst)
        return and_(g, self.g("confirmed", inst.node)) if inst.kind == "dial_back" else g

    monkeypatch.setattr(encoding._Effect, "guard", broken_guard)
    with pytest.raises(Divergence, match="enabled in the executable model, not symbolically"):
        FidelityChecker().check(world, SPEC, action, after)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_projection_and_concretization_round_trip(scenario: str) -> None:
    for world, _, _ in _walk(scenario, SPEC, 40):
        values = project(world)
        rebuilt = concretize(
            values,
            shape_of(world),
            world.config,
            SPEC,
            world.budget.fault_kinds,
            horizon=world.horizon,
        )
        assert project(rebuilt) == values


def _refresh_pairs() -> list[tuple[World, Any, World, list[Any]]]:
    """Seeded random walks of crowd-unresponsive-find, the shipped scenario whose nodes have
    empty buckets below their deepest one: every (state, action) pair whose instance runs a
    REFRESH lookup, carries a refresh FIND_NODE or reply, or starts or ends a REFRESH lookup."""
    rng = random.Random(8)
    out = []
    for _ in range(20):
        world = SCENARIOS["crowd-unresponsive-find"].initial()
        for _ in range(60):
            actions = enabled(world, SPEC)
            if not actions:
                break
            action = actions[rng.randrange(len(actions))]
            after = apply(world, SPEC, action)
            inst = encoding.instance_of(world, action)
            refresh = shape_of(world).refresh_slot
            running = [
                encoding.project(w)["active"][n, refresh]
                for w in (world, after)
                for n in range(len(world.nodes))
            ]
            half = len(running) // 2
            if (
                (inst.kind == "query" and inst.slot == refresh)
                or encoding.class_cpl(inst.cls) >= 0
                or running[:half] != running[half:]
            ):
                out.append((world, action, after, actions))
            world = after
    return out


def test_refresh_lookups_agree_with_the_executable_model() -> None:
    """The bucket refresh (REFRESH lookups, one bucket at a time, their FIND_NODEs and replies
    with a refresh target) is mirrored exactly: the random walks above reach it more often
    than the sampled walks of the test above, which rarely pick this scenario."""
    pairs = _refresh_pairs()
    checker = FidelityChecker()
    labels = [checker.check(w, SPEC, a, after, acts) for w, a, after, acts in pairs]
    kinds = {i.kind if i.kind != "deliver" else f"deliver {i.cls[:6]}" for i in labels}
    assert {"query", "deliver FN_REF", "deliver FNR_RE"} <= kinds, kinds
    assert len(pairs) >= 40


def test_a_refresh_that_repeats_its_bucket_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the mirror of lifecycle.refresh_buckets (after a bucket's lookup ends, the next
    search starts at that bucket again, not the one after it): the checker names the step."""
    real = encoding._Effect.refresh_buckets

    def repeats(self: Any, w: Any, n: int, first: Any, *, new_run: bool = False) -> None:
        real(self, w, n, first if new_run else add(first, -1), new_run=new_run)

    monkeypatch.setattr(encoding._Effect, "refresh_buckets", repeats)
    checker = FidelityChecker()
    with pytest.raises(Divergence, match=r"ref_cpl|active\[\d,\d\]|seen\["):
        for world, action, after, actions in _refresh_pairs():
            checker.check(world, SPEC, action, after, actions)
