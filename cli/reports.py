"""Runs of the checking engines, as plain data: what ``kadspec check`` and ``kadspec mutants`` do.

Nothing here prints; the command line renders these reports as tables and JSON.

A requirement's status is honest (issue 7): it *holds* only where a scenario was explored to
the end and the requirement's premise was live in some explored state, transition or quiescent
state; it is *violated* with a counterexample; *not exercised* where every run ended but its
premise was never live; *unchecked* where a run stopped early (at a first violation or a cap),
or a progress requirement met no quiescent state. MUST-level and SHOULD-level violations are
kept apart: only a MUST violation fails a run, unless ``strict``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.queues
import os
import queue
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs

from kadspec.engines.explorer import Counterexample, Exploration, Snapshot, explore
from kadspec.engines.trace import render, to_itf
from kadspec.models.checks import NODE_INVARIANTS, PROGRESS, STEP_CHECKS, WORLD_INVARIANTS
from kadspec.models.config import check_timing_defaults
from kadspec.models.mutants import MUTANTS, Mutant
from kadspec.models.policy import SPEC, Policy
from kadspec.models.requirements_registry import requirements_of
from kadspec.models.scenarios import SCENARIOS, Scenario
from kadspec.models.state import World
from kadspec.spec import requirement, requirements

Progress = Callable[[str], None]
Status = Literal["holds", "violated", "not exercised", "unchecked"]
STATUSES: tuple[Status, ...] = ("holds", "violated", "not exercised", "unchecked")

CONFIG_CHECKS = (check_timing_defaults,)

#: exit codes, the same for every command
EXIT_OK, EXIT_VIOLATION, EXIT_BAD_INPUT, EXIT_INCOMPLETE = 0, 1, 2, 3

#: default caps of one ``check`` (and of the check inside ``verify``); both overridable
DEFAULT_MAX_STATES = 2_000_000  # per scenario: about 300 MB of explorer memory
DEFAULT_MAX_SECONDS = 600.0  # for the whole run


def is_must(rid: str) -> bool:
    """A MUST or MUST NOT requirement (its violation fails a run); SHOULD and MAY otherwise."""
    return requirement(rid).level.startswith("MUST")


def checks_by_requirement() -> dict[str, list[str]]:
    """requirement ID -> names of the model checks that carry it, as ``kind:function``."""
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
                if rid in table:
                    table[rid].append(f"{kind}:{check.__name__}")
    return table


def _kinds(checked_by: list[str]) -> set[str]:
    return {name.split(":", 1)[0] for name in checked_by}


@attrs.frozen
class ScenarioRun:
    scenario: Scenario
    exploration: Exploration

    @property
    def witnesses(self) -> tuple[str, ...]:
        return tuple(w.name for w in getattr(self.scenario, "witnesses", ()))

    @property
    def witnesses_missed(self) -> tuple[str, ...]:
        """Witnesses no explored state reached, judged only when the exploration ended."""
        if self.exploration.stop_reason != "complete":
            return ()
        return tuple(w for w in self.witnesses if w not in self.exploration.witnesses_reached)

    def status(self, rid: str, checked_by: list[str]) -> Status:
        """This run's verdict on one requirement (config requirements are judged apart)."""
        e = self.exploration
        if rid in e.counterexamples:
            return "violated"
        if e.stop_reason != "complete":
            return "unchecked"
        if "progress" in _kinds(checked_by) and e.quiescent_states == 0:
            return "unchecked"
        return "holds" if e.exercised.get(rid, 0) > 0 else "not exercised"


def combine(statuses: Iterable[Status]) -> Status:
    """One status from several scenarios': violated anywhere, else held in one, else unchecked
    in one (it might have failed there), else not exercised."""
    seen = set(statuses)
    order: tuple[Status, ...] = ("violated", "holds", "unchecked")
    for status in order:
        if status in seen:
            return status
    return "not exercised" if seen else "unchecked"


@attrs.frozen
class Caps:
    """The limits of one run, reported with it."""

    max_states: int | None = DEFAULT_MAX_STATES
    max_seconds: float | None = DEFAULT_MAX_SECONDS

    def to_json(self) -> dict[str, Any]:
        return {"max_states": self.max_states, "max_seconds": self.max_seconds}

    def describe(self) -> str:
        states = "no state cap" if self.max_states is None else f"{self.max_states:,} states"
        seconds = "no time cap" if self.max_seconds is None else f"{self.max_seconds:g} s"
        return f"caps: {states} per scenario, {seconds} per run"


@attrs.frozen
class CheckReport:
    """``kadspec check``: scenarios explored under one policy, every requirement's status."""

    policy_name: str
    runs: tuple[ScenarioRun, ...]
    config_problems: tuple[str, ...]
    seconds: float
    not_run: tuple[str, ...] = ()  # scenarios skipped after a run stopped at a violation
    caps: Caps = Caps()
    strict: bool = False
    keep_going: bool = False

    @property
    def counterexample(self) -> Counterexample | None:
        """The first counterexample of a failing requirement (else of any), for the text."""
        found = self.counterexamples()
        failing = [rid for rid in found if self.fails(rid)]
        chosen = failing or list(found)
        return found[chosen[0]] if chosen else None

    def counterexamples(self) -> dict[str, Counterexample]:
        """requirement ID -> its first counterexample, over the runs in order."""
        found: dict[str, Counterexample] = {}
        for run in self.runs:
            for rid, ce in run.exploration.counterexamples.items():
                found.setdefault(rid, ce)
        return found

    def fails(self, rid: str) -> bool:
        """Whether a violation of ``rid`` fails the run (MUST level, or any under strict)."""
        return self.strict or is_must(rid)

    @property
    def incomplete(self) -> tuple[str, ...]:
        """Scenarios whose exploration hit a cap."""
        return tuple(
            r.scenario.name
            for r in self.runs
            if r.exploration.stop_reason in ("state-cap", "time-cap")
        )

    def witnesses_missed(self) -> dict[str, tuple[str, ...]]:
        return {r.scenario.name: r.witnesses_missed for r in self.runs if r.witnesses_missed}

    def status(self) -> dict[str, Status]:
        """requirement ID -> holds | violated | not exercised | unchecked."""
        checks = checks_by_requirement()
        config_broken = bool(self.config_problems)
        result: dict[str, Status] = {}
        for rid in requirements():
            kinds = _kinds(checks[rid])
            if not kinds:
                result[rid] = "unchecked"
            elif kinds == {"config"}:
                result[rid] = "violated" if config_broken else "holds"
            else:
                result[rid] = combine(r.status(rid, checks[rid]) for r in self.runs)
        return result

    def violated(self) -> tuple[list[str], list[str]]:
        """The violated requirements that fail the run, and those only listed (SHOULD)."""
        broken = [rid for rid, s in self.status().items() if s == "violated"]
        return [r for r in broken if self.fails(r)], [r for r in broken if not self.fails(r)]

    @property
    def exit_code(self) -> int:
        failing, _ = self.violated()
        if failing or self.witnesses_missed():
            return EXIT_VIOLATION
        if self.incomplete or "unchecked" in self.status().values():
            return EXIT_INCOMPLETE
        return EXIT_OK

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def exercised(self) -> dict[str, int]:
        total: dict[str, int] = {rid: 0 for rid in requirements()}
        for run in self.runs:
            for rid, times in run.exploration.exercised.items():
                if rid in total:
                    total[rid] += times
        return total

    def to_json(self) -> dict[str, Any]:
        status = self.status()
        checks = checks_by_requirement()
        exercised = self.exercised()
        failing, listed = self.violated()
        return {
            "policy": self.policy_name,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "strict": self.strict,
            "keep_going": self.keep_going,
            "caps": self.caps.to_json(),
            "seconds": round(self.seconds, 3),
            "scenarios": [_run_json(r, checks) for r in self.runs],
            "not_run": list(self.not_run),
            "requirements": [
                {
                    "id": rid,
                    "title": req.title,
                    "level": req.level,
                    "check": req.check,
                    "status": status[rid],
                    "exercised": exercised[rid],
                    "checked_by": checks[rid],
                }
                for rid, req in requirements().items()
            ],
            "summary": {
                **{
                    s.replace(" ", "_"): sum(1 for v in status.values() if v == s) for s in STATUSES
                },
                "violated_must": [r for r in failing + listed if is_must(r)],
                "violated_should": [r for r in failing + listed if not is_must(r)],
                "failing": failing,
            },
            "witnesses_missed": {k: list(v) for k, v in self.witnesses_missed().items()},
            "config_problems": list(self.config_problems),
            "counterexamples": [
                _counterexample_json(rid, ce) for rid, ce in self.counterexamples().items()
            ],
        }


def _run_json(run: ScenarioRun, checks: Mapping[str, list[str]]) -> dict[str, Any]:
    e = run.exploration
    return {
        "name": run.scenario.name,
        "nodes": len(run.scenario.config.nodes),
        "states": e.states,
        "transitions": e.transitions,
        "quiescent_states": e.quiescent_states,
        "depth": e.depth,
        "stop_reason": e.stop_reason,
        "complete": e.complete,
        "seconds": round(e.seconds, 3),
        "states_per_second": round(e.states_per_second),
        "engine": {
            "workers": e.workers,
            "fingerprints": e.fingerprints,
            "omission_probability": e.omission_probability,
            "cpu_seconds": round(e.cpu_seconds, 3),
            "peak_memory_mb": round(e.peak_memory_mb, 1),
            "widest_level": max(e.levels, default=0),
        },
        "violated": sorted(e.counterexamples),
        "exercised": dict(sorted(e.exercised.items())),
        "statuses": {
            rid: run.status(rid, c) for rid, c in checks.items() if _kinds(c) - {"config"}
        },
        "witnesses": [
            {
                "name": w.name,
                "text": str(getattr(w, "text", w.name)),
                "reached": w.name in e.witnesses_reached,
            }
            for w in getattr(run.scenario, "witnesses", ())
        ],
    }


def _counterexample_json(rid: str, ce: Counterexample) -> dict[str, Any]:
    return {
        "requirement": rid,
        "level": requirement(rid).level,
        "requirements": list(ce.requirements),
        "steps": len(ce.steps),
        "text": render(ce),
        "itf": to_itf(ce),
    }


def run_check(
    policy: Policy,
    scenarios: Iterable[Scenario],
    *,
    policy_name: str = "spec",
    max_states: int | None = DEFAULT_MAX_STATES,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    keep_going: bool = False,
    strict: bool = False,
    progress: Progress | None = None,
    jobs: int = 1,
    workers: int = 1,
    fingerprints: bool = False,
    ray: str | None = None,
) -> CheckReport:
    """Explore every scenario exhaustively under ``policy``.

    A violation of a failing requirement (MUST, or any under ``strict``) ends the run unless
    ``keep_going``; a SHOULD violation is recorded and the search goes on. ``max_states`` caps
    each scenario, ``max_seconds`` the whole run. With ``jobs`` above 1 the scenarios are
    explored side by side in that many worker processes, each one serially and the largest
    started first (progress then shows each scenario under way, and each one finished);
    ``workers`` must then be 1 and ``ray`` None.

    ``workers`` above 1 partitions each scenario's states over that many processes
    (``kadspec.engines.parallel``), ``fingerprints`` keeps 64-bit fingerprints instead of
    states, and ``ray`` (a cluster address, or "local") partitions over Ray actors
    (``kadspec.engines.distributed``); the results are the serial explorer's.
    """
    started = time.perf_counter()
    runs: list[ScenarioRun] = []
    problems = tuple(p for check in CONFIG_CHECKS for p in check())
    stop_at = None if strict else frozenset(rid for rid in requirements() if is_must(rid))
    pending = list(scenarios)
    caps = Caps(max_states, max_seconds)
    if jobs > 1 and (ray is not None or workers > 1):
        # one or the other: never a setting silently dropped
        raise ValueError(
            f"jobs={jobs} runs whole scenarios side by side; it cannot be combined with "
            f"workers={workers} or ray={ray!r}, which partition each scenario"
        )
    if jobs > 1 and len(pending) > 1:
        runs, not_run = _explore_in_workers(
            pending, policy, caps, keep_going, stop_at, progress, jobs, fingerprints
        )
        return CheckReport(
            policy_name,
            tuple(runs),
            problems,
            time.perf_counter() - started,
            tuple(not_run),
            caps,
            strict,
            keep_going,
        )
    while pending:
        scenario = pending.pop(0)
        left = (
            None if max_seconds is None else max(0.0, max_seconds - (time.perf_counter() - started))
        )

        def report(snapshot: Snapshot, name: str = scenario.name) -> None:
            if progress is not None:
                progress(_describe(name, snapshot))

        exploration = explore_with(
            scenario.initial(),
            policy,
            workers=workers,
            fingerprints=fingerprints,
            ray=ray,
            max_states=max_states,
            max_seconds=left,
            keep_going=keep_going,
            stop_at=stop_at,
            witnesses=getattr(scenario, "witnesses", ()),
            progress=report,
        )
        runs.append(ScenarioRun(scenario, exploration))
        if exploration.stop_reason in ("violation", "time-cap"):
            break
    return CheckReport(
        policy_name,
        tuple(runs),
        problems,
        time.perf_counter() - started,
        tuple(s.name for s in pending),
        caps,
        strict,
        keep_going,
    )


def explore_with(
    initial: World,
    policy: Policy,
    *,
    workers: int = 1,
    fingerprints: bool = False,
    ray: str | None = None,
    **options: Any,
) -> Exploration:
    """The explorer the options ask for: serial, partitioned over processes, or over Ray."""
    if ray is not None:
        from kadspec.engines.distributed import explore_ray

        return explore_ray(
            initial, policy, address=ray, workers=workers, fingerprints=fingerprints, **options
        )
    if workers > 1 or fingerprints:
        from kadspec.engines.parallel import explore_parallel

        return explore_parallel(
            initial, policy, workers=workers, fingerprints=fingerprints, **options
        )
    return explore(initial, policy, **options)


#: the first pass over several scenarios in worker processes explores each up to this many
#: states: most built-in scenarios end within it, and how fast the breadth-first levels of the
#: others are still growing there orders their full runs (see _explore_in_workers)
SIZING_STATES = 5_000


#: where a worker process of _explore_in_workers sends its progress (set as it starts)
_live: multiprocessing.queues.Queue[tuple[int, str]] | None = None
#: seconds between two progress notes of one worker
LIVE_INTERVAL = 0.5


def _relay_progress_to(notes: multiprocessing.queues.Queue[tuple[int, str]]) -> None:
    global _live
    _live = notes


def _explore_one(
    index: int,
    scenario: Scenario | str,
    policy: Policy,
    max_states: int | None,
    deadline: float | None,
    keep_going: bool,
    stop_at: frozenset[str] | None,
    fingerprints: bool,
) -> Exploration:
    """One scenario's exploration in a worker (a built-in scenario is passed by name: its
    witnesses are functions, which do not travel between processes). Its progress goes to
    the parent as (index, text), at most every :data:`LIVE_INTERVAL` seconds."""
    chosen = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    noted = [0.0]

    def relay(snapshot: Snapshot) -> None:
        now = time.monotonic()
        if _live is not None and now - noted[0] >= LIVE_INTERVAL:
            noted[0] = now
            _live.put((index, _describe(chosen.name, snapshot)))

    return explore_with(
        chosen.initial(),
        policy,
        fingerprints=fingerprints,
        max_states=max_states,
        max_seconds=None if deadline is None else max(0.0, deadline - time.time()),
        keep_going=keep_going,
        stop_at=stop_at,
        witnesses=getattr(chosen, "witnesses", ()),
        progress=relay,
    )


def _describe(name: str, snapshot: Snapshot) -> str:
    return (
        f"exploring {name}: {snapshot.states:,} states, depth {snapshot.depth}, "
        f"frontier {snapshot.frontier:,}, {snapshot.states_per_second:,.0f} states/s, "
        f"{snapshot.memory_mb:,.0f} MB"
    )


def work_ahead(exploration: Exploration) -> float:
    """How much work a breadth-first search cut short by its state cap still had ahead of it,
    as a figure for ordering, not a prediction: the last full level's width over the one
    before (how fast the levels were still widening; the last level is cut short by the cap)
    times the transitions per state (how much each state costs). Of the built-in scenarios
    sized at 5,000 states, the one that runs longest (``crowd-unresponsive-find``, 10 of the
    catalogue's 29 CPU seconds) scores highest, 1.71 x 3.03 = 5.2. Below the largest it is
    rough: ``republish`` (3 s) scores 1.78 x 1.79 = 3.2, level with ``join-lossy`` (0.6 s)."""
    levels = exploration.levels
    if len(levels) < 3:
        return float("inf")
    widening = levels[-2] / max(1, levels[-3])
    return widening * exploration.transitions / max(1, exploration.states)


def _explore_in_workers(
    scenarios: list[Scenario],
    policy: Policy,
    caps: Caps,
    keep_going: bool,
    stop_at: frozenset[str] | None,
    progress: Progress | None,
    jobs: int,
    fingerprints: bool = False,
) -> tuple[list[ScenarioRun], list[str]]:
    """The scenarios explored side by side in worker processes, reported in the order given.

    Whole scenarios are the unit of work: each runs serially in one worker, so nothing is
    exchanged between workers and two cores finish the built-in catalogue close to twice as
    fast as one (``benchmarks/explorer_bench.py``, section ``jobs``). Only the order matters:
    a large scenario started last leaves the other cores idle while it runs. So a first pass
    explores every scenario up to :data:`SIZING_STATES` states; a scenario that ends there is
    done (a capped breadth-first search is a prefix of the full one, so its result is the full
    run's), and the rest are then explored in full, the most work ahead first
    (:func:`work_ahead`): longest-processing-time-first scheduling on an estimate.

    A stopping violation or the time cap cancels the scenarios not yet started (reported as
    not run)."""
    deadline = None if caps.max_seconds is None else time.time() + caps.max_seconds
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    found: dict[int, Exploration] = {}
    first = SIZING_STATES if caps.max_states is None else min(SIZING_STATES, caps.max_states)
    ahead: list[tuple[float, int]] = []  # (-work ahead, index) of the scenarios the sizing cut
    live: multiprocessing.queues.Queue[tuple[int, str]] = context.Queue()
    running: dict[int, str] = {}  # the latest progress note of each scenario under way
    with concurrent.futures.ProcessPoolExecutor(
        min(jobs, len(scenarios)),
        mp_context=context,
        initializer=_relay_progress_to,
        initargs=(live,),
    ) as pool:

        def relay() -> None:
            """Pass the workers' latest notes on, as one line (states of every scenario under
            way, then how many are done)."""
            while True:
                try:
                    index, note = live.get_nowait()
                except queue.Empty:
                    break
                running[index] = note
            if progress is not None and running:
                progress(
                    "; ".join(running[i] for i in sorted(running))
                    + f" ({len(found)} of {len(scenarios)} scenarios done, {jobs} workers)"
                )

        def run(indexes: Iterable[int], max_states: int | None, sizing: bool) -> bool:
            """Explore these scenarios under ``max_states``; False once the run must stop.
            In the ``sizing`` pass a scenario stopped by the cap is put ``ahead``, not done."""
            futures = {
                pool.submit(
                    _explore_one,
                    i,
                    scenarios[i].name
                    if SCENARIOS.get(scenarios[i].name) is scenarios[i]
                    else scenarios[i],
                    policy,
                    max_states,
                    deadline,
                    keep_going,
                    stop_at,
                    fingerprints,
                ): i
                for i in indexes
            }
            going = True
            waiting = set(futures)
            while waiting:
                done, waiting = concurrent.futures.wait(
                    waiting, timeout=LIVE_INTERVAL, return_when=concurrent.futures.FIRST_COMPLETED
                )
                relay()
                for future in done:
                    if future.cancelled():
                        continue
                    exploration, index = future.result(), futures[future]
                    running.pop(index, None)
                    if sizing and exploration.stop_reason == "state-cap":
                        ahead.append((-work_ahead(exploration), index))
                        continue
                    found[index] = exploration
                    if progress is not None:
                        progress(
                            f"explored {len(found)} of {len(scenarios)} scenarios in {jobs} "
                            f"workers (last: {scenarios[index].name}, {exploration.states:,} "
                            "states)"
                        )
                    if exploration.stop_reason in ("violation", "time-cap"):
                        going = False
                        for other in futures:
                            other.cancel()
            return going

        if run(range(len(scenarios)), first, sizing=first != caps.max_states) and ahead:
            order = [index for _, index in sorted(ahead)]
            if progress is not None:
                progress(
                    f"{len(found)} of {len(scenarios)} scenarios ended within {first:,} states; "
                    f"exploring the other {len(order)} in full, the most work ahead first: "
                    + ", ".join(scenarios[i].name for i in order)
                )
            run(order, caps.max_states, sizing=False)
    runs = [ScenarioRun(s, found[i]) for i, s in enumerate(scenarios) if i in found]
    return runs, [s.name for i, s in enumerate(scenarios) if i not in found]


def memory_mb() -> float:
    """This process's resident memory in MB (its peak where the current one is unknown)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


@attrs.frozen
class MutantRun:
    mutant: Mutant
    engine: str
    detected: bool
    violated: tuple[str, ...]
    counterexample: Counterexample | None
    seconds: float
    states: int | None

    @property
    def caught(self) -> bool:
        """Detected by the requirement the mutant is expected to break."""
        return self.detected and self.mutant.expected in self.violated

    def to_json(self) -> dict[str, Any]:
        ce = self.counterexample
        return {
            "name": self.mutant.name,
            "source": self.mutant.source,
            "summary": self.mutant.summary,
            "scenario": self.mutant.scenario,
            "expected": self.mutant.expected,
            "level": requirement(self.mutant.expected).level,
            "detected": self.detected,
            "caught": self.caught,
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


#: the Hypothesis budget per mutant of ``mutants --engine hypothesis`` and of ``verify``: the
#: machine's targeted rules catch every mutant well within it (``stateful.HUNT_EXAMPLES``)
HYPOTHESIS_EXAMPLES = 300


def hunt_with_hypothesis(mutant: Mutant, max_examples: int = HYPOTHESIS_EXAMPLES) -> MutantRun:
    from kadspec.engines.stateful import hunt  # Hypothesis is imported only when asked for

    started = time.perf_counter()
    found = hunt(mutant.scenario_spec, mutant.policy, mutant.expected, max_examples=max_examples)
    ce = found.counterexample
    violated = tuple(sorted(found.violated)) if found.violated else (ce.requirements if ce else ())
    return MutantRun(
        mutant, "hypothesis", found.detected, violated, ce, time.perf_counter() - started, None
    )


ENGINES: dict[str, Callable[..., MutantRun]] = {
    "explorer": hunt_with_explorer,
    "hypothesis": hunt_with_hypothesis,
}


def _hunt(mutant: Mutant, engine: str, hypothesis_examples: int) -> MutantRun:
    if engine == "hypothesis":
        return hunt_with_hypothesis(mutant, hypothesis_examples)
    return ENGINES[engine](mutant)


def default_jobs() -> int:
    """Worker processes for mutant hunts: the machine's cores, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def run_mutants(
    mutants: Iterable[Mutant],
    engines: Iterable[str],
    progress: Progress | None = None,
    *,
    hypothesis_examples: int = HYPOTHESIS_EXAMPLES,
    jobs: int = 1,
) -> list[MutantRun]:
    """Hunt every mutant with every engine, in the order given (mutant by mutant). With
    ``jobs`` above 1 the hunts run in that many worker processes; each hunt is seeded, so the
    results are the same."""
    tasks = [(mutant, engine) for mutant in mutants for engine in tuple(engines)]
    if jobs <= 1 or len(tasks) <= 1:
        runs = []
        for mutant, engine in tasks:
            if progress is not None:
                progress(f"hunting {mutant.name} with the {engine}")
            runs.append(_hunt(mutant, engine, hypothesis_examples))
        return runs
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = [
            pool.submit(_hunt, mutant, engine, hypothesis_examples) for mutant, engine in tasks
        ]
        for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            future.result()  # a worker's error surfaces here, at once
            if progress is not None:
                progress(f"hunted {done} of {len(tasks)} (mutant, engine) pairs, {jobs} workers")
        return [future.result() for future in futures]


def mutants_ok(runs: Iterable[MutantRun]) -> bool:
    """Every mutant caught (detected violating its expected requirement) by every engine that
    hunted it: an engine that misses a bug is a failure of that engine, not a pass."""
    runs = list(runs)
    return bool(runs) and all(r.caught for r in runs)


def mutants_json(runs: Iterable[MutantRun]) -> dict[str, Any]:
    """The mutants part of a report (``kadspec mutants --json`` and ``verify``'s)."""
    runs = list(runs)
    engines = sorted({r.engine for r in runs})
    return {
        "ok": mutants_ok(runs),
        "exit_code": EXIT_OK if mutants_ok(runs) else EXIT_VIOLATION,
        "engines": engines,
        "caught": {e: sum(1 for r in runs if r.engine == e and r.caught) for e in engines},
        "total": len({r.mutant.name for r in runs}),
        "mutants": [r.to_json() for r in runs],
    }


def all_scenarios() -> list[Scenario]:
    return list(SCENARIOS.values())


def policy_named(name: str) -> Policy:
    """``spec`` or a mutant's name; KeyError for anything else."""
    if name == "spec":
        return SPEC
    return MUTANTS[name].policy
