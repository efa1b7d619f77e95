"""Where a report came from: tool and library versions, commit, time, command line, machine.

Every JSON report carries this block, so a result found in a CI artifact or a bug report can be
traced to the code and the machine that produced it.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from kadspec import __version__


def git_commit(folder: Path | None = None) -> tuple[str | None, bool | None]:
    """The commit of the checkout the package runs from and whether its tree has changes;
    (None, None) when it does not run from a git checkout."""
    root = folder or Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None, None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head or None, bool(dirty)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def provenance(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The provenance block of a report (``argv``: the command's arguments, default sys.argv)."""
    commit, dirty = git_commit()
    arguments = list(sys.argv[1:] if argv is None else argv)
    return {
        "tool": "kadspec",
        "kadspec_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": ["kadspec", *arguments],
        "python_version": platform.python_version(),
        "z3_version": _version("z3-solver"),
        "hypothesis_version": _version("hypothesis"),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
    }
