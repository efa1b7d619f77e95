"""Options shared by the commands, validated before any work starts.

A bad value is one line and exit 2 (the caller turns ``click.BadParameter`` into that), found
when the command line is parsed: an unwritable ``--json`` path is reported before a proof or an
exploration runs, never after it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from kadspec.provenance import provenance

F = TypeVar("F", bound=Callable[..., Any])

#: where the README's commands write their reports (git ignores it)
RESULTS = Path("results")

#: the arguments of the command being run, as ``main`` received them (for provenance)
ARGUMENTS: list[str] | None = None


class OutputPath(click.ParamType[Path]):
    """A file the command will write: its folder is created if missing, and the file must be
    writable. Checked at parse time, so a typo costs nothing."""

    name = "FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        if isinstance(value, Path):
            path = value
        else:
            text = str(value)
            if not text or "\0" in text:
                self.fail(f"{text!r} is not a file name", param, ctx)
            path = Path(text)
        problem = writable_problem(path)
        if problem is not None:
            self.fail(f"{path}: {problem}", param, ctx)
        return path


def writable_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written as a report (None when it can). Creates missing parent
    folders, as ``pytest --junitxml`` does, and probes the folder with a scratch file."""
    try:
        if path.is_dir():
            return "is a folder, not a file"
        folder = path.parent
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is a file, not a folder"
        folder.mkdir(parents=True, exist_ok=True)
        if path.exists() and not os.access(path, os.W_OK):
            return "is not writable"
        probe = folder / f".{path.name}.{os.getpid()}.probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        return f"cannot write here ({error.strerror or error})"
    return None


def json_option(help_text: str) -> Callable[[F], F]:
    """``--json FILE``: the one definition every command's report option shares."""
    return click.option(
        "--json",
        "json_path",
        type=OutputPath(),
        default=None,
        metavar="FILE",
        help=f"{help_text} Folders are created; the path is checked before any work starts.",
    )


def write_report(path: Path | None, kind: str, data: dict[str, Any]) -> None:
    """Write a report of ``kind`` (check, mutants, verify, prove) with its provenance, through a
    temporary file so a reader never sees half a report."""
    if path is None:
        return
    document = {"report": kind, "schema_version": 1, "provenance": provenance(ARGUMENTS), **data}
    scratch = path.with_name(path.name + ".tmp")
    try:
        scratch.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
        scratch.replace(path)
    except OSError as error:
        raise click.UsageError(f"--json {path}: cannot write ({error.strerror})") from None
