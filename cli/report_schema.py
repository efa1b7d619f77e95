"""The JSON Schemas of kadspec's reports, one per report, built from one set of parts.

A report's part has one schema wherever it appears: the ``check`` part of ``verify.json`` is
the same object as ``check.json``'s body, and so on. The shipped files under
``kadspec/schemas/`` are generated from this module (``python3 -m kadspec.report_schema``); a
test keeps them equal and validates real reports against them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DRAFT = "https://json-schema.org/draft/2020-12/schema"
REPORTS = ("check", "mutants", "verify", "prove")
STATUSES = ["holds", "violated", "not exercised", "unchecked"]
STOP_REASONS = ["complete", "violation", "state-cap", "time-cap"]

_STR = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
_NUM = {"type": "number", "minimum": 0}
_BOOL = {"type": "boolean"}
_IDS = {"type": "array", "items": {"$ref": "#/$defs/requirement_id"}}
_EXIT = {"type": "integer", "enum": [0, 1, 2, 3]}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


DEFS: dict[str, Any] = {
    "requirement_id": {"type": "string", "pattern": "^[A-Z]+-[0-9]{2}$"},
    "provenance": {
        **_object(
            {
                "tool": {"const": "kadspec"},
                "kadspec_version": _STR,
                "git_commit": {"type": ["string", "null"], "pattern": "^[0-9a-f]{40}$"},
                "git_dirty": {"type": ["boolean", "null"]},
                "created_utc": {"type": "string", "format": "date-time"},
                "command": {"type": "array", "items": _STR, "minItems": 1},
                "python_version": _STR,
                "z3_version": {"type": ["string", "null"]},
                "hypothesis_version": {"type": ["string", "null"]},
                "platform": _STR,
                "cores": {"type": ["integer", "null"], "minimum": 1},
            }
        ),
        "additionalProperties": False,
    },
    "counterexample": _object(
        {
            "requirement": {"$ref": "#/$defs/requirement_id"},
            "level": _STR,
            "requirements": _IDS,
            "steps": _INT,
            "text": _STR,
            "itf": {"type": "object"},
        }
    ),
    "scenario_run": _object(
        {
            "name": _STR,
            "nodes": _INT,
            "states": _INT,
            "transitions": _INT,
            "quiescent_states": _INT,
            "depth": _INT,
            "stop_reason": {"enum": STOP_REASONS},
            "complete": _BOOL,
            "seconds": _NUM,
            "states_per_second": _NUM,
            "violated": _IDS,
            "exercised": {"type": "object", "additionalProperties": _INT},
            "statuses": {"type": "object", "additionalProperties": {"enum": STATUSES}},
            "witnesses": {"type": "array", "items": _STR},
            "witnesses_reached": {"type": "array", "items": _STR},
        }
    ),
    "requirement_status": _object(
        {
            "id": {"$ref": "#/$defs/requirement_id"},
            "title": _STR,
            "level": _STR,
            "check": _STR,
            "status": {"enum": STATUSES},
            "exercised": _INT,
            "checked_by": {"type": "array", "items": _STR},
        }
    ),
    "check": _object(
        {
            "policy": _STR,
            "ok": _BOOL,
            "exit_code": _EXIT,
            "strict": _BOOL,
            "keep_going": _BOOL,
            "caps": _object(
                {
                    "max_states": {"type": ["integer", "null"], "minimum": 1},
                    "max_seconds": {"type": ["number", "null"], "exclusiveMinimum": 0},
                }
            ),
            "seconds": _NUM,
            "scenarios": {"type": "array", "items": {"$ref": "#/$defs/scenario_run"}},
            "not_run": {"type": "array", "items": _STR},
            "requirements": {
                "type": "array",
                "items": {"$ref": "#/$defs/requirement_status"},
                "minItems": 1,
            },
            "summary": _object(
                {
                    "holds": _INT,
                    "violated": _INT,
                    "not_exercised": _INT,
                    "unchecked": _INT,
                    "violated_must": _IDS,
                    "violated_should": _IDS,
                    "failing": _IDS,
                }
            ),
            "witnesses_missed": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": _STR},
            },
            "config_problems": {"type": "array", "items": _STR},
            "counterexamples": {"type": "array", "items": {"$ref": "#/$defs/counterexample"}},
        }
    ),
    "mutant_run": _object(
        {
            "name": _STR,
            "source": _STR,
            "summary": _STR,
            "scenario": _STR,
            "expected": {"$ref": "#/$defs/requirement_id"},
            "level": _STR,
            "detected": _BOOL,
            "caught": _BOOL,
            "violated": _IDS,
            "counterexample_length": {"type": ["integer", "null"], "minimum": 0},
            "seconds": _NUM,
            "engine": {"enum": ["explorer", "hypothesis"]},
            "states": {"type": ["integer", "null"], "minimum": 0},
            "counterexample": {"type": ["string", "null"]},
        }
    ),
    "mutants": _object(
        {
            "ok": _BOOL,
            "exit_code": _EXIT,
            "engines": {"type": "array", "items": {"enum": ["explorer", "hypothesis"]}},
            "caught": {"type": "object", "additionalProperties": _INT},
            "total": _INT,
            "mutants": {"type": "array", "items": {"$ref": "#/$defs/mutant_run"}},
        }
    ),
    "prove": _object(
        {
            "nodes": _INT,
            "policy": _STR,
            "ok": _BOOL,
            "seconds": _NUM,
            "counts": _object({"proved": _INT, "refuted": _INT, "unknown": _INT}),
            "obligations": {
                "type": "array",
                "items": _object(
                    {
                        "name": _STR,
                        "requirements": {"type": "array", "items": _STR},
                        "kind": _STR,
                        "result": {"enum": ["proved", "refuted", "unknown"]},
                        "seconds": _NUM,
                    }
                ),
            },
        },
        {"exit_code": _EXIT},
    ),
    "verify": _object(
        {
            "ok": _BOOL,
            "exit_code": _EXIT,
            "seconds": _NUM,
            "parts": _object(
                {
                    "check": {"$ref": "#/$defs/check"},
                    "mutants": {"$ref": "#/$defs/mutants"},
                    "prove": {"$ref": "#/$defs/prove"},
                }
            ),
        }
    ),
}


def schema(report: str) -> dict[str, Any]:
    """The JSON Schema of one report: its part plus the header every report carries."""
    if report not in REPORTS:
        raise ValueError(f"unknown report {report!r}: one of {', '.join(REPORTS)}")
    return {
        "$schema": DRAFT,
        "$id": f"urn:kadspec:report:{report}:1",
        "title": f"kadspec {report} report",
        "description": f"What `kadspec {report} --json FILE` writes.",
        "allOf": [
            _object(
                {
                    "report": {"const": report},
                    "schema_version": {"const": 1},
                    "provenance": {"$ref": "#/$defs/provenance"},
                }
            ),
            {"$ref": f"#/$defs/{report}"},
        ],
        "$defs": DEFS,
    }


def schema_text(report: str) -> str:
    return json.dumps(schema(report), indent=2) + "\n"


def folder() -> Path:
    return Path(__file__).resolve().parent / "schemas"


def write_all(target: Path | None = None) -> list[Path]:
    """Write every schema file (the package's ``schemas/`` folder by default)."""
    where = target or folder()
    where.mkdir(parents=True, exist_ok=True)
    written = []
    for report in REPORTS:
        path = where / f"{report}.schema.json"
        path.write_text(schema_text(report), "utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - a maintainer's regeneration step
    for path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(path)
