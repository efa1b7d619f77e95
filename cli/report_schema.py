"""The JSON Schema of kadspec's reports: one hand-maintained file, ``schemas/reports.schema.json``.

Every part of a report has one schema wherever it appears: the ``check`` part of
``verify.json`` is the same object as ``check.json``'s body, and so on. The file holds each
part once under ``$defs`` and one entry per report (``check_report``, ``mutants_report``,
``verify_report``, ``prove_report``, ``conform_report``); the whole schema accepts any of them.
This module only reads the file; tests validate real reports against it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

REPORTS = ("check", "mutants", "verify", "prove", "conform")
FILE = "reports.schema.json"


@cache
def _document() -> str:
    return resources.files("kadspec").joinpath("schemas", FILE).read_text("utf-8")


def schema(report: str | None = None) -> dict[str, Any]:
    """The whole schema (any report), or the schema of one report: its entry with the
    shared ``$defs``."""
    whole: dict[str, Any] = json.loads(_document())
    if report is None:
        return whole
    if report not in REPORTS:
        raise ValueError(f"unknown report {report!r}: one of {', '.join(REPORTS)}")
    return {
        "$schema": whole["$schema"],
        "$id": f"{whole['$id']}:{report}",
        "title": f"kadspec {report} report",
        "$ref": f"#/$defs/{report}_report",
        "$defs": whole["$defs"],
    }


def schema_text(report: str | None = None) -> str:
    """What ``kadspec schema [REPORT]`` prints: the file itself, or one report's view."""
    if report is None:
        return _document()
    return json.dumps(schema(report), indent=2) + "\n"
