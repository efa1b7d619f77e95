"""User-supplied scenarios: a small TOML file describing a network to check.

Every field is validated, and an error names the field, what was expected and what arrived::

    horizon = 3
    faults = 1
    fault_kinds = ["crash", "lose"]
    keys = [6]
    provides = [[1, 0]]          # node 1 may provide key number 0

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
from pathlib import Path
from typing import Any

from kadspec.models.config import Config, ConfigError, ModeSetting, NodeConfig, Reach
from kadspec.models.scenarios import MODEL_TIMING, Scenario
from kadspec.models.state import FAULT_KINDS

MAX_HORIZON = 12
MAX_FAULTS = 4


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{field}: expected an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{field}: {value} is outside {low}..{high}")
    return value


def _choice(value: Any, field: str, choices: dict[str, Any]) -> Any:
    if value not in choices:
        raise ConfigError(f"{field}: expected one of {sorted(choices)}, got {value!r}")
    return choices[value]


def _pairs(value: Any, field: str, nodes: int, keys: int) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{field}: expected a list of [node, key] pairs, got {value!r}")
    out = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"{field}[{i}]: expected [node, key], got {pair!r}")
        out.append(
            (
                _int(pair[0], f"{field}[{i}] node", 0, nodes - 1),
                _int(pair[1], f"{field}[{i}] key", 0, keys - 1),
            )
        )
    return tuple(out)


def parse_scenario(document: str, name: str = "custom") -> Scenario:
    """Build a Scenario from TOML text, or raise ConfigError naming the offending field."""
    try:
        data = tomllib.loads(document)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}") from None
    known = {"horizon", "faults", "fault_kinds", "keys", "id_bits", "provides", "finds", "node"}
    for field in data:
        if field not in known:
            raise ConfigError(f"{field}: unknown field (expected one of {sorted(known)})")
    raw_nodes = data.get("node")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError("node: at least one [[node]] table is required")
    nodes = []
    for i, raw in enumerate(raw_nodes):
        where = f"node[{i}]"
        for field in raw:
            if field not in {"id", "mode", "reach", "bootstrap"}:
                raise ConfigError(f"{where}.{field}: unknown field")
        if "id" not in raw:
            raise ConfigError(f"{where}.id: required")
        bootstrap = raw.get("bootstrap", [])
        if not isinstance(bootstrap, list):
            raise ConfigError(f"{where}.bootstrap: expected a list of node indexes")
        nodes.append(
            NodeConfig(
                id=_int(raw["id"], f"{where}.id", 0, 255),
                mode=_choice(
                    raw.get("mode", "auto"),
                    f"{where}.mode",
                    {
                        "auto": ModeSetting.AUTO,
                        "client": ModeSetting.CLIENT,
                        "server": ModeSetting.SERVER,
                    },
                ),
                reach=_choice(
                    raw.get("reach", "public"),
                    f"{where}.reach",
                    {"public": Reach.PUBLIC, "nat": Reach.NAT},
                ),
                bootstrap=tuple(
                    _int(b, f"{where}.bootstrap", 0, len(raw_nodes) - 1) for b in bootstrap
                ),
            )
        )
    keys = data.get("keys", [0])
    if not isinstance(keys, list) or not keys:
        raise ConfigError("keys: expected a non-empty list of key IDs")
    config = Config(
        nodes=tuple(nodes),
        keys=tuple(_int(k, "keys", 0, 255) for k in keys),
        id_bits=_int(data.get("id_bits", 4), "id_bits", 1, 8),
        timing=MODEL_TIMING,
    ).validate()
    kinds = data.get("fault_kinds", ["crash", "disconnect", "lose"])
    if not isinstance(kinds, list):
        raise ConfigError("fault_kinds: expected a list")
    for kind in kinds:
        _choice(kind, "fault_kinds", {k: k for k in FAULT_KINDS})
    return Scenario(
        name=name,
        summary=f"user scenario with {len(nodes)} nodes",
        config=config,
        horizon=_int(data.get("horizon", 3), "horizon", 0, MAX_HORIZON),
        faults=_int(data.get("faults", 0), "faults", 0, MAX_FAULTS),
        fault_kinds=frozenset(kinds),
        provides=_pairs(data.get("provides", []), "provides", len(nodes), len(keys)),
        finds=_pairs(data.get("finds", []), "finds", len(nodes), len(keys)),
    )


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    return parse_scenario(text, name=path.stem)
