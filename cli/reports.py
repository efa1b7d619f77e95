"""Runs of the checking engines, as plain data: what ``kadspec check`` and ``kadspec mutants`` do.

Nothing here prints; the command line renders these reports as tables and JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from kadspec.models.checks import NODE_INVARIANTS, PROGRESS, STEP_CHECKS, WORLD_INVARIANTS
from kadspec.models.config import check_timing_defaults
from kadspec.models.explorer import Counterexample, Exploration, explore
from kadspec.models.mutants import MUTANTS, Mutant
from kadspec.models.policy import SPEC, Policy
from kadspec.models.requirements_registry import requirements_of
from kadspec.models.scenarios import SCENARIOS, Scenario
from kadspec.models.trace import render, to_itf
from kadspec.spec import requirements

Progress = Callable[[str], None]

CONFIG_CHECKS = (check_timing_defaults,)


def checks_by_requirement() -> dict[str, list[str]]:
    """requirement ID -> names of the model checks that carry it."""
    table: dict[str, list[str]] = {rid: [] for rid in requirements()}
    groups: Iterable[tuple[str, tuple[Callable[..., Any], ...]]] = (
        ("invariant", NODE_INVARIANTS + WORLD_INVARIANTS),
        ("step", STEP_CHECKS),
        ("progress", PROGRESS),
        ("config", CONFIG_CHECKS),
    )
    for kind, checks in groups:
        for check in checks:
            for rid in requirements_of(check):
                table[rid].append(f"{kind}:{check.__name__}")
    return table


@attrs.frozen
class ScenarioRun:
    scenario: Scenario
    exploration: Exploration


@attrs.frozen
class CheckReport:
    """``kadspec check``: every scenario explored under one policy, every requirement's status."""

    policy_name: str
    runs: tuple[ScenarioRun, ...]
    config_problems: tuple[str, ...]
    seconds: float

    @property
    def counterexample(self) -> Counterexample | None:
        return next(
            (
                r.exploration.counterexample
                for r in self.runs
                if r.exploration.counterexample is not None
            ),
            None,
        )

    @property
    def incomplete(self) -> tuple[str, ...]:
        return tuple(
            r.scenario.name
            for r in self.runs
            if not r.exploration.complete and r.exploration.counterexample is None
        )

    @property
    def ok(self) -> bool:
        return self.counterexample is None and not self.config_problems and not self.incomplete

    def status(self) -> dict[str, str]:
        """requirement ID -> holds | violated | unchecked (no scenario completed)."""
        broken = set(self.counterexample.requirements) if self.counterexample else set()
        if self.config_problems:
            broken |= {"TIME-01", "TIME-02", "TIME-03"}
        covered = checks_by_requirement()
        result = {}
        for rid in requirements():
            if rid in broken:
                result[rid] = "violated"
            elif not covered[rid] or (self.incomplete and not self.runs):
                result[rid] = "unchecked"
            else:
                result[rid] = "holds"
        return result

    def to_json(self) -> dict[str, Any]:
        status = self.status()
        checks = checks_by_requirement()
        ce = self.counterexample
        return {
            "policy": self.policy_name,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "scenarios": [
                {
                    "name": r.scenario.name,
                    "nodes": len(r.scenario.config.nodes),
                    "states": r.exploration.states,
                    "transitions": r.exploration.transitions,
                    "depth": r.exploration.depth,
                    "complete": r.exploration.complete,
                    "seconds": round(r.exploration.seconds, 3),
                    "states_per_second": round(r.exploration.states_per_second),
                    "violated": list(r.exploration.counterexample.requirements)
                    if r.exploration.counterexample
                    else [],
                }
                for r in self.runs
            ],
            "requirements": [
                {
                    "id": rid,
                    "title": req.title,
                    "level": req.level,
                    "check": req.check,
                    "status": status[rid],
                    "checked_by": checks[rid],
                }
                for rid, req in requirements().items()
            ],
            "config_problems": list(self.config_problems),
            "counterexample": None
            if ce is None
            else {"requirements": list(ce.requirements), "text": render(ce), "itf": to_itf(ce)},
        }


def run_check(
    policy: Policy,
    scenarios: Iterable[Scenario],
    *,
    policy_name: str = "spec",
    max_states: int | None = None,
    progress: Progress | None = None,
) -> CheckReport:
    """Explore every scenario exhaustively under ``policy``; stop at the first counterexample."""
    started = time.perf_counter()
    runs: list[ScenarioRun] = []
    problems = tuple(p for check in CONFIG_CHECKS for p in check())
    for scenario in scenarios:

        def report(states: int, transitions: int, depth: int, name: str = scenario.name) -> None:
            if progress is not None:
                progress(f"exploring {name}: {states:,} states, depth {depth}")

        exploration = explore(scenario.initial(), policy, max_states=max_states, progress=report)
        runs.append(ScenarioRun(scenario, exploration))
        if exploration.counterexample is not None:
            break
    return CheckReport(policy_name, tuple(runs), problems, time.perf_counter() - started)


@attrs.frozen
class MutantRun:
    mutant: Mutant
    engine: str
    detected: bool
    violated: tuple[str, ...]
    counterexample: Counterexample | None
    seconds: float
    states: int | None

    def to_json(self) -> dict[str, Any]:
        ce = self.counterexample
        return {
            "name": self.mutant.name,
            "source": self.mutant.source,
            "summary": self.mutant.summary,
            "scenario": self.mutant.scenario,
            "expected": self.mutant.expected,
            "detected": self.detected,
            "violated": list(self.violated),
            "counterexample_length": len(ce.steps) if ce else None,
            "seconds": round(self.seconds, 3),
            "engine": self.engine,
            "states": self.states,
            "counterexample": render(ce, title=f"{self.mutant.name}") if ce else None,
        }


def hunt_with_explorer(mutant: Mutant, max_states: int | None = 2_000_000) -> MutantRun:
    e = explore(
        mutant.scenario_spec.initial(), mutant.policy, max_states=max_states, target=mutant.expected
    )
    violated = tuple(
        sorted(
            e.also_violated | (set(e.counterexample.requirements) if e.counterexample else set())
        )
    )
    return MutantRun(
        mutant,
        "explorer",
        e.counterexample is not None,
        violated,
        e.counterexample,
        e.seconds,
        e.states,
    )


def hunt_with_hypothesis(mutant: Mutant, max_examples: int = 2000) -> MutantRun:
    from kadspec.models.stateful import hunt  # Hypothesis is imported only when asked for

    started = time.perf_counter()
    found = hunt(mutant.scenario_spec, mutant.policy, mutant.expected, max_examples=max_examples)
    ce = found.counterexample
    violated = tuple(sorted(found.violated)) if found.violated else (ce.requirements if ce else ())
    return MutantRun(
        mutant, "hypothesis", found.detected, violated, ce, time.perf_counter() - started, None
    )


ENGINES: dict[str, Callable[[Mutant], MutantRun]] = {
    "explorer": hunt_with_explorer,
    "hypothesis": hunt_with_hypothesis,
}


def run_mutants(
    mutants: Iterable[Mutant], engines: Iterable[str], progress: Progress | None = None
) -> list[MutantRun]:
    runs = []
    for mutant in mutants:
        for engine in engines:
            if progress is not None:
                progress(f"hunting {mutant.name} with the {engine}")
            runs.append(ENGINES[engine](mutant))
    return runs


def mutants_ok(runs: Iterable[MutantRun]) -> bool:
    """Every mutant detected, by at least one engine, violating its expected requirement."""
    detected: dict[str, bool] = {}
    for run in runs:
        detected[run.mutant.name] = detected.get(run.mutant.name, False) or (
            run.detected and run.mutant.expected in run.violated
        )
    return all(detected.values()) and bool(detected)


def all_scenarios() -> list[Scenario]:
    return list(SCENARIOS.values())


def policy_named(name: str) -> Policy:
    """``spec`` or a mutant's name; KeyError for anything else."""
    if name == "spec":
        return SPEC
    return MUTANTS[name].policy
