"""Suite-wide pytest set-up.

The suite runs in worker processes (pytest-xdist, ``-n auto --dist loadgroup`` in
pyproject.toml) so that both cores work. Tests that share files on disk must run in one worker:
everything under tests/docs builds or reads ``docs/_build`` and ``results/`` and caches one build
per process, so those tests form a single group.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DOCS_TESTS = Path(__file__).parent / "docs"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DOCS_TESTS in Path(item.path).parents:
            item.add_marker(pytest.mark.xdist_group("docs"))
