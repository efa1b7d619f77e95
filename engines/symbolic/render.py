"""Symbolic states for people: one line per node, per channel and for the budget; diffs."""

from __future__ import annotations

from kadspec.engines.symbolic.encoding import FIELDS, Idx, Shape, Values
from kadspec.models.config import ModeSetting
from kadspec.models.state import Addr, Conn, Outcome, Phase, Proto


def _set(values: Values, field: str, prefix: Idx, nodes: int) -> str:
    members = [f"n{p}" for p in range(nodes) if values[field].get((*prefix, p), False)]
    return "{" + ",".join(members) + "}"


def render_state(values: Values, shape: Shape) -> list[str]:
    """The state as short lines, leaving out what is at its default."""
    v = values
    n_nodes = shape.nodes
    lines = [f"clock={v['clock'][()]} faults={v['faults'][()]}"]
    for n in range(n_nodes):
        flags = [
            name
            for name in ("candidate", "confirmed", "dial_back_tried", "self_done", "refresh_armed")
            if v[name][n,]
        ]
        setting = ModeSetting(v["setting"][n,]).name.lower() if 0 <= v["setting"][n,] <= 2 else "?"
        head = (
            f"n{n}: {'up' if v['up'][n,] else 'down'}, "
            f"{'server' if v['mode'][n,] else 'client'} ({setting})"
        )
        if v["starts"][n,]:
            head += ", not yet started"
        if flags:
            head += ", " + ", ".join(flags)
        lines.append(head)
        views = []
        for p in range(n_nodes):
            conn, proto, addr = v["conn"][n, p], v["proto"][n, p], v["addr"][n, p]
            table, failed = v["in_table"][n, p], v["failed"][n, p]
            if (conn, proto, addr, table, failed) == (0, 0, 0, False, False):
                continue
            bits = [
                _enum(Conn, conn),
                _enum(Proto, proto),
                _enum(Addr, addr),
            ]
            if table:
                bits.append("IN TABLE")
            if failed:
                bits.append("failed")
            views.append(f"n{p}[{' '.join(bits)}]")
        if views:
            lines.append("    views: " + " ".join(views))
        for q in range(shape.slots):
            if v["active"][n, q]:
                lk = " ".join(
                    f"{f}={_set(v, f, (n, q), n_nodes)}"
                    for f in ("seen", "inflight", "answered", "lfailed")
                )
                name = shape.slot_name(q)
                if q == shape.refresh_slot:
                    name += f" cpl {v['ref_cpl'][n,]}"
                lines.append(f"    lookup {name}: {lk}")
        for k in range(shape.keys):
            phase, outcome = v["phase"][n, k], v["outcome"][n, k]
            if not v["providing"][n, k] and phase == 0 and outcome == 0:
                continue
            text = (
                f"    provide key{k}: {'providing' if v['providing'][n, k] else 'not providing'}, "
                f"{_enum(Phase, phase)}, outcome {_enum(Outcome, outcome)}, "
                f"delivered {v['delivered'][n, k]}, attempts {v['attempts'][n, k]}"
            )
            if v["retry_armed"][n, k]:
                text += ", retry armed"
            if v["pub_set"][n, k]:
                text += f", published at {v['pub_at'][n, k]}"
            if v["repub_set"][n, k]:
                text += f", republish at {v['repub_at'][n, k]}"
            text += f", pending {_set(v, 'pending', (n, k), n_nodes)}"
            text += f", acked {_set(v, 'acked', (n, k), n_nodes)}"
            lines.append(text)
        records = [
            f"key{k} by n{c} (expires {v['expires'][n, k, c]})"
            for k in range(shape.keys)
            for c in range(n_nodes)
            if v["has"][n, k, c]
        ]
        if records:
            lines.append("    records: " + ", ".join(records))
        ghost = _ghost(v, shape, n)
        if ghost:
            lines.append("    ghost: " + "; ".join(ghost))
    for a, b in shape.pairs():
        msgs = [
            f"{cls}x{v['count'][a, b, i]}"
            for i, cls in enumerate(shape.classes)
            if v["count"][a, b, i]
        ]
        if msgs:
            text = f"channel n{a}->n{b}: " + " ".join(msgs)
            identify = v["count"][a, b, 0] + v["count"][a, b, 1]
            if identify:
                text += f" (newest identify: kad={v['last_srv'][a, b]})"
            lines.append(text)
    budget = []
    provides = [
        f"n{n}/key{k}" for n in range(n_nodes) for k in range(shape.keys) if v["prov_left"][n, k]
    ]
    finds = [
        f"n{n}/key{k}" for n in range(n_nodes) for k in range(shape.keys) if v["find_left"][n, k]
    ]
    modes = [
        f"n{n}->{ModeSetting(m).name.lower()}"
        for n in range(n_nodes)
        for m in range(3)
        if v["mode_left"][n, m]
    ]
    if provides:
        budget.append("provides " + ",".join(provides))
    if finds:
        budget.append("finds " + ",".join(finds))
    if modes:
        budget.append("mode changes " + ",".join(modes))
    if budget:
        lines.append("budget: " + "; ".join(budget))
    return lines


def _ghost(v: Values, shape: Shape, n: int) -> list[str]:
    """What the observer's ghost holds for node n, leaving out what is empty."""
    out = [name for name in ("g_self_answered", "g_dialed_back") if v.get(name, {}).get((n,))]
    for field in ("g_heard", "g_server", "g_unresponsive", "g_observer"):
        if field in v and any(v[field].get((n, p), False) for p in range(shape.nodes)):
            out.append(f"{field[2:]}={_set(v, field, (n,), shape.nodes)}")
    for k in range(shape.keys):
        if "g_stored" in v and any(v["g_stored"].get((n, k, p)) for p in range(shape.nodes)):
            out.append(f"stored key{k}={_set(v, 'g_stored', (n, k), shape.nodes)}")
        out += [
            f"published key{k} by n{c} at {v['g_pub_at'][n, k, c]}"
            for c in range(shape.nodes)
            if v.get("g_pub_set", {}).get((n, k, c))
        ]
    return out


def _enum(cls: type, value: int) -> str:
    try:
        return str(cls(value).name)
    except ValueError:
        return f"?{value}"


def render_diff(pre: Values, post: Values, shape: Shape) -> list[str]:
    """Every variable the step changed, as ``field[index]: before -> after``."""
    out = []
    for f in FIELDS:
        for idx, before in pre[f.name].items():
            after = post[f.name][idx]
            if after != before:
                out.append(f"{f.name}[{_where(f.name, idx, shape)}]: {before} -> {after}")
    return out or ["(nothing)"]


def _where(field: str, idx: Idx, shape: Shape) -> str:
    """An index for people: channels as ``n0->n1``, message classes and slots by name."""
    if field in ("count", "rep_closer"):
        text = f"n{idx[0]}->n{idx[1]} {shape.classes[idx[2]]}"
        return text + (f" n{idx[3]}" if len(idx) > 3 else "")
    if field in ("last_srv", "first_srv", "first_push", "last_push", "head_ident", "claims"):
        return f"n{idx[0]}->n{idx[1]}" + "".join(f",{i}" for i in idx[2:])
    if field in ("active", "seen", "inflight", "answered", "lfailed", "dl_inflight", "older"):
        rest = (
            [f"n{idx[2]}" if field != "older" else shape.slot_name(idx[2])] if len(idx) > 2 else []
        )
        return ",".join([f"n{idx[0]}", shape.slot_name(idx[1]), *rest])
    return ",".join(map(str, idx))


__all__ = ["render_diff", "render_state"]
