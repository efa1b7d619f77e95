"""``kadspec docs``: builds the site, or says in one line what is missing and exits 2."""

from __future__ import annotations

import importlib.util
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest
from click.testing import CliRunner

from kadspec import docs_command
from kadspec.docs_command import docs

# Deprecations raised inside sphinx-needs and docutils on every build; nothing here can fix them.
pytestmark = [
    pytest.mark.filterwarnings("ignore:'sphinx.environment.BuildEnvironment.app' is deprecated"),
    pytest.mark.filterwarnings("ignore:The frontend.Option"),
]


def test_a_missing_docs_extra_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_furo(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "furo" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_furo)
    result = CliRunner().invoke(docs, [])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "missing furo" in lines[0] and "pip install -e '.[docs]'" in lines[0]


def test_a_missing_dot_program_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    result = CliRunner().invoke(docs, [])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: Graphviz's dot program is missing: apt-get install graphviz"
    ]


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    if docs_command.missing_requirements():
        pytest.skip("; ".join(docs_command.missing_requirements()))
    (tmp_path / "site").write_text("a file")
    result = CliRunner().invoke(docs, ["--out", str(tmp_path / "site")])
    assert result.exit_code == 2
    assert "is a file" in result.output


def test_the_docs_source_is_the_repository_docs_folder() -> None:
    source = docs_command.docs_source()
    assert (source / "conf.py").is_file() and (source / "index.rst").is_file()
