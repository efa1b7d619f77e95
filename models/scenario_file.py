"""User-supplied scenarios: a small TOML file describing a network to check.

The format is specified in docs/network-file.rst; commented examples ship with the package
(``kadspec example-config``). Every field is validated before anything is explored, and an
error names the field, what was expected and what arrived::

    horizon = 3                  # the model clock stops here: timers due later never fire
    faults = 1                   # how many faults the environment may inject
    fault_kinds = ["crash"]      # crash | restart | disconnect | lose | forge_add_provider
    keys = [6]
    provides = [[1, 0]]          # node 1 may provide key number 0
    finds = [[2, 0]]             # node 2 may look key number 0 up
    mode_changes = [[1, "client"]]  # node 1's operator may switch it to client mode once

    [timing]                     # protocol constants, integers, durations in ms (see Timing)
    defaults = "model"           # model (small, the default) | spec (the real values)
    k = 2

    [[node]]
    id = 8
    mode = "server"              # auto | client | server
    reach = "public"             # public | nat

    [[node]]
    id = 3
    bootstrap = [0]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from kadspec.models.config import (
    MODEL_TIMING,
    Config,
    ConfigError,
    ModeSetting,
    NodeConfig,
    Reach,
    Timing,
)
from kadspec.models.scenarios import Scenario
from kadspec.models.state import FAULT_KINDS

#: the model clock counts milliseconds and jumps from timer to timer, so a horizon costs states
#: by the timer events it lets fire, not by its size: up to 30 days, enough for real timings
MAX_HORIZON = 30 * 24 * 3600 * 1000
MAX_FAULTS = 4
MAX_FILE_BYTES = 1 << 20

#: top-level fields -> what they hold (the reference page lists the same)
FIELDS = {
    "horizon": "the model clock's last value in ms: timers due after it never fire",
    "faults": "how many faults the environment may inject (0..4)",
    "fault_kinds": f"which faults: a list of {', '.join(FAULT_KINDS)}",
    "keys": "the keys (small IDs) that may be provided or found",
    "id_bits": "the ID width in bits (1..8); node IDs and keys must fit",
    "provides": "[node, key] pairs: the user of node may call provide(key) once",
    "finds": "[node, key] pairs: the user of node may call find_providers(key) once",
    "mode_changes": '[node, "auto"|"client"|"server"] pairs: the operator may switch once',
    "timing": "protocol constants (k, alpha, durations in ms), integers; defaults = model|spec",
    "node": "one [[node]] table per node, in order: node 0 first",
    "name": "a name for the reports (default: the file name)",
    "summary": "one line saying what the network is for",
}
NODE_FIELDS = {
    "id": "the node's ID (an integer that fits in id_bits)",
    "mode": "auto | client | server (default auto)",
    "reach": "public | nat (default public)",
    "bootstrap": "indexes of the nodes it bootstraps from (default none)",
}
MODES = {"auto": ModeSetting.AUTO, "client": ModeSetting.CLIENT, "server": ModeSetting.SERVER}
REACHES = {"public": Reach.PUBLIC, "nat": Reach.NAT}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(value: Any, field: str, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{field}: expected an integer, got {_show(value)}")
    if value < low or (high is not None and value > high):
        upper = "" if high is None else str(high)
        raise ConfigError(f"{field}: {value} is outside {low}..{upper}")
    return value


def _choice(value: Any, field: str, choices: Mapping[str, Any]) -> Any:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{field}: expected one of {', '.join(choices)}, got {_show(value)}")
    return choices[value]


def _list(value: Any, field: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{field}: expected a list of {what}, got {_show(value)}")
    return value


def _table(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{field}: expected a table, got {_show(value)}")
    return value


def _known(table: Mapping[str, Any], where: str, known: Mapping[str, str]) -> None:
    for field in table:
        if field not in known:
            raise ConfigError(f"{where}{field}: unknown field (expected one of {', '.join(known)})")


def _pairs(value: Any, field: str, nodes: int, keys: int) -> tuple[tuple[int, int], ...]:
    out = []
    for i, pair in enumerate(_list(value, field, "[node, key] pairs")):
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"{field}[{i}]: expected [node, key], got {_show(pair)}")
        out.append(
            (
                _int(pair[0], f"{field}[{i}] node", 0, nodes - 1),
                _int(pair[1], f"{field}[{i}] key", 0, keys - 1),
            )
        )
    if len(set(out)) != len(out):
        raise ConfigError(f"{field}: a [node, key] pair is given twice")
    return tuple(out)


def _mode_changes(value: Any, nodes: int) -> tuple[tuple[int, ModeSetting], ...]:
    out = []
    for i, pair in enumerate(_list(value, "mode_changes", '[node, "mode"] pairs')):
        where = f"mode_changes[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(
                f'{where}: expected [node, "auto"|"client"|"server"], got {_show(pair)}'
            )
        out.append(
            (_int(pair[0], f"{where} node", 0, nodes - 1), _choice(pair[1], f"{where} mode", MODES))
        )
    if len(set(out)) != len(out):
        raise ConfigError("mode_changes: a [node, mode] pair is given twice")
    return tuple(out)


def timing_fields() -> dict[str, Any]:
    """The settable protocol constants: :class:`Timing`'s fields and the model's defaults."""
    return {f.name: getattr(MODEL_TIMING, f.name) for f in attrs.fields(Timing)}


#: ``[timing] defaults``: the constants a network file starts from
TIMING_DEFAULTS = {"model": MODEL_TIMING, "spec": Timing()}


def _timing(value: Any) -> Timing:
    table = dict(_table(value, "timing"))
    base: Timing = _choice(table.pop("defaults", "model"), "timing.defaults", TIMING_DEFAULTS)
    _known(table, "timing.", {"defaults": "", **{name: "" for name in timing_fields()}})
    changes = {name: _int(v, f"timing.{name}", 0, None) for name, v in table.items()}
    try:
        timing: Timing = attrs.evolve(base, **changes)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"timing: {error}") from None
    return timing


def _node(raw: Any, i: int, count: int) -> NodeConfig:
    where = f"node[{i}]"
    table = _table(raw, where)
    _known(table, f"{where}.", NODE_FIELDS)
    if "id" not in table:
        raise ConfigError(f"{where}.id: required")
    bootstrap = _list(table.get("bootstrap", []), f"{where}.bootstrap", "node indexes")
    if len(bootstrap) != len({repr(b) for b in bootstrap}):
        raise ConfigError(f"{where}.bootstrap: a node is listed twice")
    return NodeConfig(
        id=_int(table["id"], f"{where}.id", 0, 255),
        mode=_choice(table.get("mode", "auto"), f"{where}.mode", MODES),
        reach=_choice(table.get("reach", "public"), f"{where}.reach", REACHES),
        bootstrap=tuple(
            _int(b, f"{where}.bootstrap[{j}]", 0, count - 1) for j, b in enumerate(bootstrap)
        ),
    )


def parse_scenario(document: str, name: str = "custom") -> Scenario:
    """Build a Scenario from TOML text, or raise ConfigError naming the offending field."""
    try:
        data = tomllib.loads(document)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}") from None
    _known(data, "", FIELDS)
    raw_nodes = data.get("node")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError("node: at least one [[node]] table is required")
    nodes = tuple(_node(raw, i, len(raw_nodes)) for i, raw in enumerate(raw_nodes))
    keys = _list(data.get("keys", [0]), "keys", "key IDs")
    if not keys:
        raise ConfigError("keys: expected a non-empty list of key IDs")
    config = Config(
        nodes=nodes,
        keys=tuple(_int(k, f"keys[{i}]", 0, 255) for i, k in enumerate(keys)),
        id_bits=_int(data.get("id_bits", 4), "id_bits", 1, 8),
        timing=_timing(data.get("timing", {})),
    ).validate()
    kinds = _list(data.get("fault_kinds", ["crash", "disconnect", "lose"]), "fault_kinds", "names")
    chosen = frozenset(
        _choice(kind, f"fault_kinds[{i}]", {k: k for k in FAULT_KINDS})
        for i, kind in enumerate(kinds)
    )
    label = data.get("name", name)
    if not isinstance(label, str) or not label.strip():
        raise ConfigError(f"name: expected a non-empty string, got {_show(label)}")
    summary = data.get("summary", f"user scenario with {len(nodes)} nodes")
    if not isinstance(summary, str):
        raise ConfigError(f"summary: expected a string, got {_show(summary)}")
    return Scenario(
        name=label,
        summary=summary,
        config=config,
        horizon=_int(data.get("horizon", 3), "horizon", 0, MAX_HORIZON),
        faults=_int(data.get("faults", 0), "faults", 0, MAX_FAULTS),
        fault_kinds=chosen,
        provides=_pairs(data.get("provides", []), "provides", len(nodes), len(keys)),
        finds=_pairs(data.get("finds", []), "finds", len(nodes), len(keys)),
        mode_changes=_mode_changes(data.get("mode_changes", []), len(nodes)),
    )


def decode(raw: bytes, where: str) -> str:
    """The text of a network file, or ConfigError saying where it is not UTF-8."""
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{where}: {len(raw):,} bytes; a network file is at most {MAX_FILE_BYTES:,}"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        bad = raw[error.start : error.start + 1]
        raise ConfigError(
            f"{where}: not UTF-8 text (byte {error.start}, line {line}: {bad!r})"
        ) from None


def load_scenario(path: Path) -> Scenario:
    """Read, decode and validate a network file; ConfigError for anything wrong with it."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror or error})") from None
    return parse_scenario(decode(raw, str(path)), name=path.stem)
