"""Named conformance scenarios: what the runner asks of an adapter, step by step.

A :class:`Scenario` is a list of steps the runner (``runner.py``) executes through the client:

- :class:`Call`: one request (an op of protocol v1 and its args). With ``wait`` the runner waits
  for its reply (at most ``timeout_ms``) before the next step; without, it sends it and goes on,
  and the reply is collected whenever it arrives (still bounded by ``timeout_ms``), so a provide
  can be issued at start-up while other nodes start. Any string ``"@NAME"`` in the args, alone
  or in a list, stands for node NAME's first listen address with ``/p2p/<its peer id>``
  (:func:`resolve`), so a node bootstraps through another one started earlier.
- :class:`Wait`: let the network run for ``ms`` milliseconds.
- :class:`Snapshot`: snapshot every running node (or the ones named): a *round*, which is
  where the judge runs the progress checks.

Every scenario states the requirements it is meant to exercise (``exercises``) and the judge's
deadlines it was written for (``deadlines``: the runner hands them to ``judge``); the waits
before its last round are at least the progress deadline. Scenarios needing an optional op say
so in ``needs`` (``set_mode``, or a capability such as ``crash_restart``); the runner still runs
them against an adapter that lacks it, and the judge reports the affected requirements as not
applicable.

:func:`command_sequences` is a Hypothesis strategy of valid random scenarios over a few nodes,
for adapters that allow them; :func:`explore` runs them through a runner callable and lets
Hypothesis shrink a failing one to a minimal command sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from kadspec.conformance.judge import Deadlines, Result, must_failures

LISTEN = "/ip4/127.0.0.1/tcp/0"

#: timings that make a loopback run short (ms, CoreConfig names as protocol.TIMINGS)
FAST: Mapping[str, int] = {
    "refresh_interval": 1000,
    "request_deadline": 2000,
    "retry_base": 100,
    "retry_cap": 1000,
    "record_ttl": 60_000,
    "republish_interval": 30_000,
    "gc_interval": 1000,
}
#: a record lifetime short enough to watch records expire in a run
SHORT_TTL: Mapping[str, int] = {**FAST, "record_ttl": 3000, "republish_interval": 2500}

#: the deadlines the scenarios below are written for (progress within 3 s of the last
#: disturbance; every provide and find answered within 5 s)
SCENARIO_DEADLINES = Deadlines(progress_ms=3000, outcome_ms=5000)
#: the wait before a scenario's rounds: the progress deadline plus a margin for late replies
SETTLE_MS = SCENARIO_DEADLINES.progress_ms + 1000


@attrs.frozen
class Call:
    op: str
    args: Mapping[str, Any] = attrs.field(factory=dict)
    wait: bool = True
    timeout_ms: int = 8000


@attrs.frozen
class Wait:
    ms: int


@attrs.frozen
class Snapshot:
    nodes: tuple[str, ...] = ()  # () = every running node


ScenarioStep = Call | Wait | Snapshot


@attrs.frozen
class Scenario:
    name: str
    text: str
    steps: tuple[ScenarioStep, ...]
    exercises: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset()
    deadlines: Deadlines = SCENARIO_DEADLINES

    def nodes(self) -> tuple[str, ...]:
        """The node names the scenario starts, in order."""
        names: list[str] = []
        for step in self.steps:
            if isinstance(step, Call) and step.op == "start":
                name = str(step.args["node"])
                if name not in names:
                    names.append(name)
        return tuple(names)


# --- step builders -----------------------------------------------------------------------------


def start(
    node: str,
    mode: str = "server",
    bootstrap: Sequence[str] = (),
    timings: Mapping[str, int] = FAST,
) -> Call:
    return Call(
        "start",
        {
            "node": node,
            "mode": mode,
            "listen": LISTEN,
            "bootstrap": [f"@{b}" for b in bootstrap],
            "timings": dict(timings),
        },
    )


def provide(node: str, key: str, wait: bool = True) -> Call:
    return Call("provide", {"node": node, "key": key}, wait=wait)


def find(node: str, key: str, deadline_ms: int = 3000) -> Call:
    return Call("find_providers", {"node": node, "key": key, "deadline_ms": deadline_ms})


def op(name: str, node: str, **args: Any) -> Call:
    return Call(name, {"node": node, **args})


def resolve(value: Any, addresses: Mapping[str, str]) -> Any:
    """``value`` with every ``"@NAME"`` string replaced by ``addresses[NAME]`` (a node's dialable
    multiaddr ending in ``/p2p/<peer id>``), in lists and dicts too. KeyError names an unknown
    node."""
    if isinstance(value, str) and value.startswith("@"):
        name = value[1:]
        if name not in addresses:
            raise KeyError(f"the scenario refers to node {name!r} before it was started")
        return addresses[name]
    if isinstance(value, Mapping):
        return {k: resolve(v, addresses) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, addresses) for v in value]
    return value


def settle() -> tuple[ScenarioStep, ...]:
    return (Wait(SETTLE_MS), Snapshot())


# --- the scenarios -----------------------------------------------------------------------------

SCENARIOS: dict[str, Scenario] = {}


def _scenario(scenario: Scenario) -> Scenario:
    SCENARIOS[scenario.name] = scenario
    return scenario


_scenario(
    Scenario(
        "provide-at-startup",
        "A node provides a key right after it starts, before its table is ready; the provide "
        "must be held until the node is ready and then reach an outcome (go-quai #1802: the "
        "start-up provide failed and its error was dropped). Another node then finds it.",
        (
            start("boot"),
            start("a", bootstrap=["boot"]),
            provide("a", "startup-key", wait=False),
            start("b", bootstrap=["boot"]),
            start("c", bootstrap=["boot", "b"]),
            Wait(1500),
            find("c", "startup-key"),
            *settle(),
        ),
        exercises=("BOOT-05", "BOOT-02", "PROV-02", "ADDR-07", "PROV-07", "FIND-01"),
    )
)

_scenario(
    Scenario(
        "listener-side-join",
        "A node joins through a bootstrap node that was not configured with it and only sees a "
        "listener-side connection (the joiner's ephemeral port): the bootstrap node must learn "
        "the joiner's listen addresses from identify and route to it (ADDR-06), never through "
        "the ephemeral address (RT-04).",
        (
            start("boot"),
            start("joiner", bootstrap=["boot"]),
            Wait(1500),
            provide("boot", "joined-key"),
            find("joiner", "joined-key"),
            *settle(),
        ),
        exercises=("ADDR-06", "BOOT-06", "RT-04", "RT-03", "BOOT-01"),
    )
)

_scenario(
    Scenario(
        "client-requests",
        "A client-mode peer joins two servers and sends them requests (a find and a provide): "
        "the servers answer but never admit it (RT-01, RT-02), and it answers no request "
        "itself (ADDR-01).",
        (
            start("boot"),
            start("server", bootstrap=["boot"]),
            start("client", mode="client", bootstrap=["boot", "server"]),
            Wait(1500),
            provide("server", "served-key"),
            find("client", "served-key"),
            provide("client", "client-key"),
            *settle(),
        ),
        exercises=("RT-01", "RT-02", "ADDR-01", "PROV-07", "BOOT-05"),
    )
)

_scenario(
    Scenario(
        "mode-switch",
        "A client switches to server mode and back while connected: its peers must learn each "
        "change (identify push) and admit it as a server, then drop it as a client (ADDR-02, "
        "RT-01); it advertises kad exactly while a server (ADDR-01).",
        (
            start("a"),
            start("b", bootstrap=["a"]),
            start("switcher", mode="client", bootstrap=["a", "b"]),
            *settle(),
            op("set_mode", "switcher", mode="server"),
            *settle(),
            op("set_mode", "switcher", mode="client"),
            *settle(),
        ),
        exercises=("ADDR-02", "RT-01", "ADDR-01", "ADDR-04", "ADDR-06"),
        needs=frozenset({"set_mode"}),
    )
)

_scenario(
    Scenario(
        "bootstrap-restart",
        "The bootstrap node crashes and restarts (same identity) while the others run: they "
        "keep serving each other, the restarted node rejoins, and content stays findable.",
        (
            start("boot"),
            start("a", bootstrap=["boot"]),
            start("b", bootstrap=["boot"]),
            Wait(1500),
            provide("a", "before-restart"),
            op("crash", "boot"),
            Wait(500),
            op("restart", "boot"),
            Wait(1500),
            find("b", "before-restart"),
            provide("boot", "after-restart"),
            find("a", "after-restart"),
            *settle(),
        ),
        exercises=("BOOT-01", "BOOT-05", "RT-01", "ADDR-06", "PROV-07"),
        needs=frozenset({"crash_restart"}),
    )
)

_scenario(
    Scenario(
        "churn",
        "Six nodes form a network; two leave and two new ones join through other nodes while "
        "keys are provided and found.",
        (
            start("n0"),
            start("n1", bootstrap=["n0"]),
            start("n2", bootstrap=["n0"]),
            start("n3", bootstrap=["n1"]),
            start("n4", bootstrap=["n1", "n2"]),
            start("n5", bootstrap=["n0", "n3"]),
            Wait(1500),
            provide("n1", "churn-a"),
            op("stop", "n2"),
            op("stop", "n3"),
            start("n6", bootstrap=["n1"]),
            start("n7", bootstrap=["n4", "n5"]),
            Wait(1000),
            provide("n6", "churn-b"),
            find("n7", "churn-a"),
            find("n0", "churn-b"),
            *settle(),
        ),
        exercises=("BOOT-05", "RT-07", "RT-01", "FIND-01", "PROV-07", "PROV-02"),
    )
)

_scenario(
    Scenario(
        "several-keys",
        "Four nodes provide five keys between them concurrently and each key is found from "
        "another node: records must not be mixed up between keys (PROV-03, PROV-07).",
        (
            start("k0"),
            start("k1", bootstrap=["k0"]),
            start("k2", bootstrap=["k0"]),
            start("k3", bootstrap=["k1"]),
            Wait(1500),
            provide("k0", "key-1", wait=False),
            provide("k1", "key-2", wait=False),
            provide("k2", "key-3", wait=False),
            provide("k3", "key-4", wait=False),
            provide("k1", "key-5", wait=False),
            Wait(1500),
            find("k3", "key-1"),
            find("k2", "key-2"),
            find("k0", "key-3"),
            find("k1", "key-4"),
            find("k2", "key-5"),
            *settle(),
        ),
        exercises=("PROV-03", "PROV-07", "PROV-02", "ADDR-07", "FIND-01", "BOOT-05"),
    )
)

_scenario(
    Scenario(
        "record-expiry",
        "A provider announces a key and then leaves before republishing; after the record's "
        "lifetime (3 s here) a find must not be served the expired record (PROV-04), whether "
        "or not the holders' garbage collection has run.",
        (
            start("h0", timings=SHORT_TTL),
            start("h1", bootstrap=["h0"], timings=SHORT_TTL),
            start("h2", bootstrap=["h0"], timings=SHORT_TTL),
            start("provider", bootstrap=["h0"], timings=SHORT_TTL),
            Wait(1500),
            provide("provider", "short-lived"),
            find("h2", "short-lived"),
            op("stop", "provider"),
            Wait(4000),
            find("h1", "short-lived"),
            find("h2", "short-lived"),
            *settle(),
        ),
        exercises=("PROV-04", "PROV-07", "BOOT-05"),
    )
)


# --- generated command sequences -----------------------------------------------------------------


def command_sequences(nodes: int = 4, max_commands: int = 10, crash_restart: bool = False) -> Any:
    """A Hypothesis strategy of valid scenarios over ``nodes`` servers: each starts (through the
    first), then random provides, finds, stops, restarts, waits and snapshots, ending in a
    settled round. Valid by construction: an op names only a running node (a stopped node is
    started again under its name). Hypothesis shrinks a failing one towards fewer, simpler
    commands."""
    from hypothesis import strategies as st

    names = [f"g{i}" for i in range(nodes)]
    keys = ["gen-a", "gen-b", "gen-c"]
    kinds = ["provide", "find", "wait", "snapshot", "stop"]
    if crash_restart:
        kinds.append("restart")
    command = st.tuples(
        st.sampled_from(kinds), st.integers(0, nodes - 1), st.sampled_from(keys),
        st.sampled_from([200, 800]),
    )  # fmt: skip

    def build(commands: list[tuple[str, int, str, int]]) -> Scenario:
        steps: list[ScenarioStep] = [start(names[0])]
        steps += [start(n, bootstrap=[names[0]]) for n in names[1:]]
        steps.append(Wait(1000))
        running = set(names)
        for kind, index, key, ms in commands:
            name = names[index]
            if kind == "wait":
                steps.append(Wait(ms))
            elif kind == "snapshot":
                steps.append(Snapshot())
            elif name not in running:
                anchors = [n for n in names if n in running]
                steps.append(start(name, bootstrap=anchors[:1]))
                running.add(name)
            elif kind == "provide":
                steps.append(provide(name, key))
            elif kind == "find":
                steps.append(find(name, key))
            elif kind == "stop" and len(running) > 2 and index != 0:
                steps.append(op("stop", name))
                running.discard(name)
            elif kind == "restart":
                steps.extend((op("crash", name), Wait(200), op("restart", name)))
        steps.extend(settle())
        return Scenario(
            "generated",
            "A generated command sequence (Hypothesis): " + ", ".join(c[0] for c in commands),
            tuple(steps),
        )

    return st.lists(command, max_size=max_commands).map(build)


def explore(
    run_and_judge: Callable[[Scenario], Sequence[Result]],
    *,
    nodes: int = 4,
    max_commands: int = 10,
    max_examples: int = 10,
    crash_restart: bool = False,
    seed: int | None = 0,
) -> Scenario | None:
    """Run generated scenarios until one breaks a MUST requirement; return the shrunk scenario
    (None: every example conformed). ``run_and_judge`` runs a scenario against the adapter and
    judges it (the runner does both)."""
    from hypothesis import HealthCheck, given, settings

    found: list[Scenario] = []

    @settings(
        max_examples=max_examples, deadline=None, database=None, derandomize=seed is not None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(command_sequences(nodes, max_commands, crash_restart))
    def conforms(scenario: Scenario) -> None:
        failures = must_failures(run_and_judge(scenario))
        if failures:
            found.append(scenario)
            raise AssertionError(f"{failures[0].requirement}: {failures[0].evidence}")

    try:
        conforms()
    except AssertionError:
        return found[-1]  # the last failing example Hypothesis tried is the shrunk one
    return None


def explore_adapter(
    command: Sequence[str],
    *,
    profile: Any = None,
    nodes: int = 3,
    max_commands: int = 6,
    max_examples: int = 5,
    crash_restart: bool = False,
) -> Scenario | None:
    """:func:`explore` against a live adapter: each generated scenario runs in a fresh adapter
    process through the runner and is judged; a run the adapter broke (aborted) counts as a
    failure too. Returns the shrunk failing scenario, or None. Each example costs a live run
    (seconds), so keep ``max_examples`` small."""
    from kadspec.conformance.judge import judge
    from kadspec.conformance.observe import LOOPBACK
    from kadspec.conformance.runner import run_scenario

    def run_and_judge(scenario: Scenario) -> Sequence[Result]:
        run, _ = run_scenario(command, scenario)
        if run.aborted:
            return [Result("BOOT-05", "MUST", "fail", f"the run broke: {run.aborted}", ())]
        return judge(run, profile or LOOPBACK, scenario.deadlines)

    return explore(
        run_and_judge,
        nodes=nodes,
        max_commands=max_commands,
        max_examples=max_examples,
        crash_restart=crash_restart,
    )


__all__ = [
    "FAST",
    "LISTEN",
    "SCENARIOS",
    "SCENARIO_DEADLINES",
    "SHORT_TTL",
    "Call",
    "Scenario",
    "ScenarioStep",
    "Snapshot",
    "Wait",
    "command_sequences",
    "explore",
    "explore_adapter",
    "find",
    "op",
    "provide",
    "resolve",
    "start",
]
