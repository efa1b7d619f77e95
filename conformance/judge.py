"""Judge a live run with the model's own checks: one result per requirement.

The oracle is the model. Every check run here is one of ``kadspec.models.checks``'
``@observable`` checks, given what :mod:`kadspec.conformance.observe` makes of the run:

- node invariants (``NODE_INVARIANTS``) on every snapshot, and BOOT-05's bound
  (``operations_answered_in_time``) on every snapshot and at the run's end;
- step checks (``STEP_CHECKS``) on every event that is a step: FIND_NODE and GET_PROVIDERS
  replies sent, ADD_PROVIDER sent, identify received, routing-table admissions, provide outcomes;
- progress checks (``PROGRESS``) on every *round* (every running node snapshotted) that comes at
  least ``Deadlines.progress_ms`` after the last request that disturbed the network: progress is
  "bounded eventually", and the bound is stated in each progress result.

Each :class:`Result` is tied to a requirement ID and its level (``spec/requirements.toml``):

- ``fail``: some check found a violation; the evidence is the check's own words, the entries
  are the seq numbers of the moments that show it (a request's seq when it was never answered);
- ``pass``: the requirement's premise arose at least once (so the check had teeth) and every
  check held;
- ``not applicable``: the requirement is internal to the model (``checks.observability``), a
  configuration rule, needs what protocol v1 cannot show, needs a capability the adapter lacks,
  or is built from an event kind the adapter never reported in the run (``EVENTS_NEEDED``: an
  absent event is no evidence of absence); the evidence says which;
- ``inconclusive``: the premise never arose, or a bound had not passed when the run ended; never
  ``pass`` for a check that never met its premise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import attrs

from kadspec.conformance.observe import LOOPBACK, Moment, Observer, Profile
from kadspec.conformance.protocol import Run
from kadspec.models import checks
from kadspec.models.metric import common_prefix_length
from kadspec.models.observe import ObservedNode, ObservedStep, is_observable
from kadspec.models.requirements_registry import requirements_of
from kadspec.models.state import Addr, Conn, Kind, Mode
from kadspec.spec import requirements as spec_requirements

Status = Literal["pass", "fail", "not applicable", "inconclusive"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "not applicable", "inconclusive")


@attrs.frozen
class Result:
    """The verdict on one requirement for one run."""

    requirement: str
    level: str
    status: Status
    evidence: str
    entries: tuple[int, ...] = ()
    #: how the requirement was judged: invariant, step, progress or config (its check kind)
    check: str = ""
    #: the real-time bound of a progress or outcome requirement, in ms (None: none applies)
    deadline_ms: int | None = None
    #: how many moments (snapshots, steps, rounds) met the premise
    exercised: int = 0

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"entries": list(self.entries)}


@attrs.frozen
class Deadlines:
    """The real-time bounds the judge applies, stated in every result that uses them.

    ``progress_ms``: a progress requirement must hold in every round taken at least this long
    after the last request that disturbed the network (start, stop, crash, restart, set_mode,
    dial, provide, find) and after its reply. ``outcome_ms``: BOOT-05's bound for a provide
    or find to be answered.
    ``grace_ms``: how far back a sender's mode may be matched with what a receiver saw
    (ADDR-01: an identify or reply is observed after it was sent). ``expiry_tolerance_ms``: the
    clock slack around a record's expiry (PROV-04 and PROV-07 give the node the benefit of it).
    """

    progress_ms: int = 3000
    outcome_ms: int = 15000
    grace_ms: int = 500
    expiry_tolerance_ms: int = 200


#: requirements whose every check needs something protocol v1 cannot show
UNOBSERVABLE_LIVE: dict[str, str] = {
    "RT-06": "failed dials are not events of protocol v1, so the observer cannot know which "
    "peers are unresponsive",
}
#: the event kinds a requirement's ghost or between-snapshot state is built from: an adapter that
#: never reports one of them (events are optional one by one) cannot be judged on it, since
#: absent evidence would read as evidence of absence
EVENTS_NEEDED: dict[str, tuple[str, ...]] = {
    "BOOT-01": ("connection_opened",),
    "ADDR-03": ("identify_received",),
    "RT-02": ("identify_received", "kad_response_received"),
    "RT-03": ("identify_received", "kad_response_received"),
    "PROV-02": ("kad_request_received", "provide_outcome"),
    "PROV-03": ("kad_request_received",),
    "PROV-04": ("kad_request_received", "kad_response_sent"),
    "PROV-07": ("kad_request_received", "kad_response_sent"),
    "FIND-01": ("kad_response_sent", "routing_table_added"),
    "FIND-02": ("kad_response_sent", "routing_table_added"),
}
#: requirements whose violation an unreported event could excuse: (the event, why)
UNSEEN_EXCUSE: dict[str, tuple[str, str]] = {
    "ADDR-03": (
        "dial_back",
        "AutoNAT dial-backs are not events of protocol v1, so a successful dial-back that "
        "would justify the confirmation cannot be ruled out",
    ),
}
#: requirements judged from snapshots and replies alone (the rest read the event-built ghost)
WITHOUT_EVENTS = frozenset(
    {"RT-04", "RT-05", "RT-07", "ADDR-04", "ADDR-05", "RT-01", "BOOT-06", "ADDR-06", "ADDR-02",
     "BOOT-05"}
)  # fmt: skip
#: premises that a loopback/LAN profile cannot produce (no NAT, no reachability candidates)
PROFILE_BOUND: dict[str, str] = {
    "ADDR-03": "no external address was confirmed, and under the loopback/LAN profile no "
    "observed address is a reachability candidate",
    "ADDR-05": "under the loopback/LAN profile no observed address is a reachability candidate",
}


def _observable(group: Iterable[Callable[..., list[str]]]) -> list[tuple[str, Any]]:
    return [(requirements_of(c)[0], c) for c in group if is_observable(c)]


_NODE_CHECKS = _observable(checks.NODE_INVARIANTS)
_STEP_CHECKS = _observable(checks.STEP_CHECKS)
_PROGRESS_CHECKS = _observable(checks.PROGRESS)


@attrs.define
class _Tally:
    violations: list[tuple[str, tuple[int, ...]]] = attrs.Factory(list)
    exercised: int = 0
    first_seq: int | None = None
    pending: list[str] = attrs.Factory(list)
    #: what could not be decided at all (a call still open, within its bound, at the end)
    unknown: list[str] = attrs.Factory(list)

    def premise(self, seqs: Sequence[int]) -> None:
        self.exercised += 1
        if self.first_seq is None and seqs:
            self.first_seq = seqs[0]

    def fail(self, found: list[str], seqs: tuple[int, ...]) -> None:
        self.violations.extend((d, seqs) for d in found)


def judge(
    run: Run, profile: Profile = LOOPBACK, deadlines: Deadlines | None = None
) -> list[Result]:
    """Every requirement's verdict on ``run``, in the specification's order."""
    deadlines = deadlines or Deadlines()
    observer = Observer(run, profile)
    observer.outcome_bound = deadlines.outcome_ms
    observer.grace_ms = deadlines.grace_ms
    tallies: dict[str, _Tally] = {rid: _Tally() for rid in spec_requirements()}
    rounds = 0
    for moment in observer.moments():
        if moment.kind == "snapshot" and moment.node is not None:
            _judge_snapshot(moment, moment.node, tallies)
        elif moment.kind == "step" and moment.step is not None:
            _judge_step(moment, moment.step, tallies, deadlines)
            if moment.node is not None:  # an admission: the node invariants judge it at once
                _judge_snapshot(moment, moment.node, tallies)
        elif moment.kind == "round":
            rounds += 1
            _judge_round(moment, observer, tallies, deadlines)
        elif moment.kind == "end":
            _judge_end(moment, tallies, run)
    results = _verdicts(run, profile, deadlines, tallies, rounds)
    return [_readable(r, observer) for r in results]


def _readable(result: Result, observer: Observer) -> Result:
    """The model's checks name keys by index (``key3``); show the key's text as well."""

    def name(match: re.Match[str]) -> str:
        index = int(match.group(1))
        text = observer.key_text.get(index)
        if text is not None:
            return f'key "{text}"'
        wire = next((w for w, i in observer.keys.items() if i == index), None)
        return f"key {wire}" if wire is not None else match.group(0)

    return attrs.evolve(result, evidence=re.sub(r"\bkey(\d+)\b", name, result.evidence))


# --- moments -----------------------------------------------------------------------------------


def _judge_snapshot(moment: Moment, o: ObservedNode, tallies: dict[str, _Tally]) -> None:
    for rid, check in _NODE_CHECKS:
        tallies[rid].fail(check(o), moment.seqs)
    tallies["BOOT-05"].fail(checks.operations_answered_in_time(o, moment.now), moment.seqs)
    for rid in _snapshot_premises(o):
        tallies[rid].premise(moment.seqs)


def _snapshot_premises(o: ObservedNode) -> set[str]:
    live: set[str] = set()
    if not o.up:
        return live
    table = o.table()
    if table:
        live.update({"RT-04", "RT-07", "RT-03"})
        if any(p in o.ghost.heard for p in table):
            live.add("RT-02")
        sizes: dict[int, int] = {}
        for p in table:
            b = common_prefix_length(o.id, o.peer_ids[p], o.id_bits)
            sizes[b] = sizes.get(b, 0) + 1
        if any(c >= o.k for c in sizes.values()):
            live.add("RT-05")
    if any(r.provider != o.node for r in o.records):
        live.add("PROV-03")
    if o.confirmed or o.candidate:
        live.add("ADDR-03")
    return live


def _judge_step(
    moment: Moment, step: ObservedStep, tallies: dict[str, _Tally], deadlines: Deadlines
) -> None:
    serves = any(m.kind is Kind.GET_PROVIDERS_REPLY for m in step.sent)
    for rid, check in _STEP_CHECKS:
        if rid == "PROV-04" and serves:  # expired only once the slack passed: the node's benefit
            found = check(_ttl(step, +deadlines.expiry_tolerance_ms))
        elif rid == "PROV-07" and serves:  # live only until the slack before expiry
            found = check(_ttl(step, -deadlines.expiry_tolerance_ms))
        else:
            found = check(step)
        tallies[rid].fail(found, moment.seqs)
    for rid in _step_premises(step, deadlines):
        tallies[rid].premise(moment.seqs)


def _ttl(step: ObservedStep, delta: int) -> ObservedStep:
    """The step with the record lifetime of each GET_PROVIDERS responder shifted by ``delta``."""
    responders = {m.src for m in step.sent if m.kind is Kind.GET_PROVIDERS_REPLY}

    def shift(nodes: tuple[ObservedNode, ...]) -> tuple[ObservedNode, ...]:
        return tuple(
            attrs.evolve(o, record_ttl=o.record_ttl + delta) if n in responders else o
            for n, o in enumerate(nodes)
        )

    return attrs.evolve(step, before=shift(step.before), after=shift(step.after))


def _step_premises(step: ObservedStep, deadlines: Deadlines) -> set[str]:
    live: set[str] = set()
    for m in step.sent:
        o = step.before[m.src]
        if m.kind in (Kind.IDENTIFY, Kind.IDENTIFY_PUSH):
            live.add("ADDR-01")
        elif m.kind is Kind.ADD_PROVIDER:
            live.add("ADDR-07")
        elif m.kind is Kind.FIND_NODE_REPLY:
            eligible = [p for p in o.table() if p != m.dst]
            if eligible:
                live.add("FIND-01")  # the reply had peers to choose from
                if m.target == o.id:
                    live.add("FIND-02")
            if o.mode is Mode.CLIENT:
                live.add("ADDR-01")
        elif m.kind is Kind.GET_PROVIDERS_REPLY:
            tolerance = deadlines.expiry_tolerance_ms
            for key, provider, at in o.ghost.publishes:
                if key != m.key:
                    continue
                if at + o.record_ttl + tolerance <= step.now:
                    live.add("PROV-04")  # an expired record was on the shelf
                elif provider != m.dst and any(
                    r.key == key and r.provider == provider for r in o.records
                ):
                    live.add("PROV-07")  # a live record of someone else was on the shelf
    if any(e.kind == "provide-succeeded" for e in step.events):
        live.add("PROV-02")
    if any(e.kind in ("provide-failed", "find-failed") for e in step.events):
        live.add("BOOT-05")
    for a, b in zip(step.before, step.after, strict=True):
        if a is not b and set(b.table()) - set(a.table()):
            live.add("RT-07")
    return live


def _judge_round(
    moment: Moment, observer: Observer, tallies: dict[str, _Tally], deadlines: Deadlines
) -> None:
    disturbed = [t for t, _ in observer.disturbed if t <= moment.now]
    since = moment.now - max(disturbed) if disturbed else moment.now
    nodes = moment.nodes
    settled = since >= deadlines.progress_ms
    for rid, check in _PROGRESS_CHECKS:
        found = check(nodes, moment.now, moment.now)
        if not found:
            continue
        if settled:
            tallies[rid].fail(
                [f"{d} ({since} ms after the last disturbing request)" for d in found], moment.seqs
            )
        else:
            tallies[rid].pending.append(found[0])
    if settled:
        changed = {i for i, v in observer.views.items() if v.up and len(v.modes) > 1}
        for rid in _round_premises(nodes, changed):
            tallies[rid].premise(moment.seqs)


def _round_premises(nodes: tuple[ObservedNode, ...], changed: set[int]) -> set[str]:
    """``changed``: the running nodes whose mode changed since they started."""
    live: set[str] = set()
    for o in nodes:
        if not o.up:
            continue
        live.add("ADDR-04")
        if o.bootstrap:
            live.add("BOOT-01")
        connected = any(v.connection is not Conn.NONE for v in o.peers)
        if connected and o.node in changed:
            live.add("ADDR-02")
        if o.candidate and o.listen_public:
            live.add("ADDR-05")
        if o.ghost.asked:
            live.add("BOOT-05")
        for p in o.table():
            if nodes[p].up and o.peers[p].connection is not Conn.NONE:
                live.add("RT-01")
    pairs = checks._routable_server_pairs(nodes)
    if pairs:
        live.add("ADDR-06")
        if any(nodes[n].peers[p].address is Addr.DIALABLE for n, p in pairs):
            live.add("BOOT-06")
    return live


def _judge_end(moment: Moment, tallies: dict[str, _Tally], run: Run) -> None:
    """BOOT-05 at the end: a call whose bound passed unanswered fails; one whose bound had not
    passed when the run ended cannot be judged."""
    for o in moment.nodes:
        if not o.up:
            continue
        for op, key, at in sorted(o.ghost.asked):
            seqs = _request_seqs(run, o.name, at)
            if o.outcome_bound is not None and moment.now >= at + o.outcome_bound:
                tallies["BOOT-05"].fail(
                    [f"{o.name} was asked ({'provide' if op == 0 else 'find'} of key{key}) and "
                     f"reported no outcome within {o.outcome_bound} ms"],
                    seqs,
                )  # fmt: skip
                tallies["BOOT-05"].premise(seqs)
            else:
                tallies["BOOT-05"].unknown.append(
                    f"{o.name}'s call at {at} ms was unanswered when the run ended, before its "
                    f"{o.outcome_bound} ms bound"
                )
    calls = {
        e.payload.get("id"): e.seq
        for e in run.entries
        if e.kind == "request" and e.payload.get("op") in ("provide", "find_providers")
    }
    for entry in run.entries:  # a call answered: an outcome, or "failed" (attempted, failed)
        error = (entry.payload.get("error") or {}).get("kind")
        answered = entry.payload.get("ok") is True or error == "failed"
        if entry.kind == "reply" and entry.payload.get("id") in calls and answered:
            tallies["BOOT-05"].premise((calls[entry.payload["id"]], entry.seq))
        elif entry.kind == "event" and entry.payload.get("event") in OUTCOME_EVENTS:
            tallies["BOOT-05"].premise((entry.seq,))


OUTCOME_EVENTS = ("provide_outcome", "find_outcome")


def _request_seqs(run: Run, name: str, at: int) -> tuple[int, ...]:
    found = [
        e.seq
        for e in run.entries
        if e.kind == "request"
        and e.payload.get("op") in ("provide", "find_providers")
        and (e.payload.get("args", {}) or {}).get("node") in (name, name.rstrip("'"))
    ]
    return tuple(found[-3:])


# --- verdicts ----------------------------------------------------------------------------------


def _unsupported(run: Run) -> set[str]:
    ops = {e.payload.get("id"): e.payload.get("op") for e in run.entries if e.kind == "request"}
    return {
        str(ops.get(e.payload.get("id")))
        for e in run.entries
        if e.kind == "reply"
        and not e.payload.get("ok")
        and (e.payload.get("error", {}) or {}).get("kind") == "unsupported"
    }


def _has_event(run: Run, name: str) -> bool:
    kinds = _KINDS.get(id(run))
    if kinds is None or kinds[0] is not run:
        _KINDS.clear()
        kinds = _KINDS[id(run)] = (run, {str(e.payload.get("event")) for e in run.events()})
    return name in kinds[1]


_KINDS: dict[int, tuple[Run, set[str]]] = {}


Verdict = tuple[Status, str, tuple[int, ...]]

_INTERNAL = (
    "internal: the model judges it on its own bookkeeping (timers, lookups, backoff), which a "
    "live node does not show; its observable checks, if any, found nothing"
)
_NO_EVENTS = (
    "the adapter has no event stream (capability 'events'), and this requirement is judged from it"
)


def _verdicts(
    run: Run,
    profile: Profile,
    deadlines: Deadlines,
    tallies: dict[str, _Tally],
    rounds: int,
) -> list[Result]:
    results = []
    for rid, req in spec_requirements().items():
        kind = str(req.check)
        tally = tallies[rid]
        deadline = deadlines.progress_ms if kind == "progress" else None
        if rid == "BOOT-05":
            deadline = deadlines.outcome_ms
        status, evidence, entries = _verdict(rid, kind, tally, run, profile, deadlines, rounds)
        results.append(
            Result(rid, str(req.level), status, evidence, entries, kind, deadline, tally.exercised)
        )
    return results


def _verdict(
    rid: str,
    kind: str,
    tally: _Tally,
    run: Run,
    profile: Profile,
    deadlines: Deadlines,
    rounds: int,
) -> Verdict:
    """One requirement's status, evidence and entries (the order of the rules matters)."""
    if kind == "config":
        return "not applicable", "a configuration rule: judged on the model's constants", ()
    if not run.hello.capabilities.events and rid not in WITHOUT_EVENTS:
        return "not applicable", _NO_EVENTS, ()
    if rid in UNOBSERVABLE_LIVE:
        return "not applicable", UNOBSERVABLE_LIVE[rid], ()
    missing = [kind for kind in EVENTS_NEEDED.get(rid, ()) if not _has_event(run, kind)]
    if missing:
        return "not applicable", f"the adapter reported no {' or '.join(missing)} events", ()
    if tally.violations:
        detail, seqs = tally.violations[0]
        if rid in UNSEEN_EXCUSE and not _has_event(run, UNSEEN_EXCUSE[rid][0]):
            return "inconclusive", f"{detail}; {UNSEEN_EXCUSE[rid][1]}", seqs
        more = len(tally.violations) - 1
        shown = tuple(sorted({s for _, ss in tally.violations[:5] for s in ss}))
        evidence = detail + (f" (and {more} more)" if more else "")
        if kind == "progress":
            evidence += f"; bound: {deadlines.progress_ms} ms after the last disturbance"
        return "fail", evidence, shown
    if checks.observability(rid) == "internal":
        return "not applicable", _INTERNAL, ()
    if tally.unknown:
        return "inconclusive", tally.unknown[0], ()
    if tally.exercised:
        first = (tally.first_seq,) if tally.first_seq is not None else ()
        return "pass", _passed(rid, kind, tally, deadlines), first
    if rid == "ADDR-02" and "set_mode" in _unsupported(run):
        return "not applicable", "the adapter does not support set_mode", ()
    if rid in PROFILE_BOUND and profile.name == "loopback":
        return "not applicable", PROFILE_BOUND[rid], ()
    if tally.pending:
        return "inconclusive", f"the bound had not passed at the end: {tally.pending[-1]}", ()
    reason = "its premise never arose in this run"
    if kind == "progress" and not rounds:
        reason = "no round (every running node snapshotted) was taken"
    elif kind == "progress":
        reason += f" in a round {deadlines.progress_ms} ms after the last disturbance"
    return "inconclusive", reason, ()


def _passed(rid: str, kind: str, tally: _Tally, deadlines: Deadlines) -> str:
    where = {"invariant": "snapshots", "step": "steps", "progress": "settled rounds"}.get(
        kind, "moments"
    )
    text = f"held; premise met in {tally.exercised} {where}"
    if kind == "progress":
        text += f" (each at least {deadlines.progress_ms} ms after the last disturbance)"
    if rid == "BOOT-05":
        text += f"; every provide and find answered within {deadlines.outcome_ms} ms"
    return text


# --- reports -----------------------------------------------------------------------------------


def summary(results: Sequence[Result]) -> dict[str, int]:
    return {s: sum(1 for r in results if r.status == s) for s in STATUSES}


def must_failures(results: Sequence[Result]) -> list[Result]:
    """Failures of MUST / MUST NOT requirements (what makes ``kadspec conform`` exit non-zero)."""
    return [r for r in results if r.status == "fail" and r.level.startswith("MUST")]


def report(
    run: Run, results: Sequence[Result], profile: Profile, deadlines: Deadlines
) -> dict[str, Any]:
    """The JSON report of one judged run (the docs build reads ``results`` per requirement)."""
    return {
        "format": "kadspec-conformance/1",
        "implementation": run.hello.implementation,
        "version": run.hello.version,
        "scenario": run.scenario,
        "profile": {"name": profile.name, "text": profile.describe()},
        "deadlines": attrs.asdict(deadlines),
        "aborted": run.aborted,
        "summary": summary(results),
        "results": [r.to_json() for r in results],
    }


def dumps(report_: dict[str, Any]) -> str:
    return json.dumps(report_, indent=2, ensure_ascii=False)


__all__ = [
    "STATUSES",
    "Deadlines",
    "Result",
    "Status",
    "dumps",
    "judge",
    "must_failures",
    "report",
    "summary",
]
