"""The documentation builds without warnings and renders every requirement of kadspec.spec.

Each test runs a real Sphinx build (``-W``, so any warning fails it) into ``tmp_path``; the
requirement IDs the assertions look for come from kadspec.spec, never from this file.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from sphinx.cmd.build import build_main

from kadspec.spec import Requirement, parse_requirements, requirements

DOCS = Path(__file__).resolve().parents[2] / "docs"

# Deprecations raised inside sphinx-needs and docutils on every build; nothing here can fix them.
pytestmark = [
    pytest.mark.filterwarnings("ignore:'sphinx.environment.BuildEnvironment.app' is deprecated"),
    pytest.mark.filterwarnings("ignore:The frontend.Option"),
]

# Appended to the real requirements document: markup characters in every field, so the test
# also shows the generator renders requirement text literally instead of parsing it as markup.
FAKE_REQUIREMENT = '''
[[requirement]]
id = "PROV-99"
level = "MAY"
check = "step"
title = "Fake: *stars*, `ticks` and ref_"
text = """A test node MAY keep *stars*, `ticks`, |pipes| and ref_ as written."""
rationale = """- a leading dash is prose, not a list."""
sources = [".. not a comment", "1. not a list"]
level_reason = """**Not bold**: a test level."""

[requirement.source]
kind = "robustness"
prevents = """example/repo#1: a *fake* bug_"""
'''


def build_html(out: Path, srcdir: Path = DOCS, overrides: Sequence[str] = ()) -> tuple[int, str]:
    """Build ``srcdir`` into ``out`` as the project build does; return the code and warnings."""
    warnings = out / "warnings.txt"
    args = ["-W", "--keep-going", "-E", "-q", "-b", "html"]
    args += ["-d", str(out / "doctrees"), "-w", str(warnings)]
    for override in overrides:
        args += ["-D", override]
    code = build_main([*args, str(srcdir), str(out / "html")])
    return code, warnings.read_text("utf-8") if warnings.exists() else ""


@pytest.fixture(scope="module")
def spec_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("docs")
    code, warnings = build_html(out)
    assert code == 0, f"sphinx build failed:\n{warnings}"
    return (out / "html" / "spec.html").read_text("utf-8")


def rendered_need(page: str, req: Requirement) -> bool:
    """Whether the page holds ``req`` as a need: its anchor, and its title in the need's head."""
    title = html.escape(req.title, quote=False)
    return f'id="{req.id}"' in page and f'<span class="needs_data">{title}</span>' in page


def test_spec_page_renders_every_requirement(spec_html: str) -> None:
    missing = [rid for rid, req in requirements().items() if not rendered_need(spec_html, req)]
    assert missing == []


def test_summary_table_lists_requirements_in_document_order(spec_html: str) -> None:
    rows = re.findall(r'<tr class="need [^"]*" data-need-id="([^"]+)"', spec_html)
    assert rows == list(requirements())


def test_generator_renders_the_configured_document(tmp_path: Path) -> None:
    real = (DOCS.parent / "spec" / "requirements.toml").read_text("utf-8")
    document = tmp_path / "requirements.toml"
    document.write_text(real + FAKE_REQUIREMENT, "utf-8")
    fake = parse_requirements(document.read_text("utf-8"))["PROV-99"]

    code, warnings = build_html(tmp_path, overrides=[f"kadspec_requirements_file={document}"])

    assert code == 0, f"sphinx build failed:\n{warnings}"
    page = (tmp_path / "html" / "spec.html").read_text("utf-8")
    assert rendered_need(page, fake)
    assert "A test node <strong>MAY</strong> keep *stars*, `ticks`, |pipes| and ref_ as" in page
    assert "<p><em>Rationale:</em> - a leading dash is prose" in page
    assert "<li><p>.. not a comment</p></li>" in page
    assert "<li><p>1. not a list</p></li>" in page


def test_a_group_left_out_of_the_docs_fails_the_build(tmp_path: Path) -> None:
    # The copy keeps the repository's shape: architecture.rst includes ../pyproject.toml.
    srcdir = tmp_path / "docs"
    shutil.copytree(DOCS, srcdir, ignore=shutil.ignore_patterns("_build", "__pycache__"))
    shutil.copy(DOCS.parent / "pyproject.toml", tmp_path)
    spec_page = srcdir / "spec.rst"
    spec_page.write_text(
        spec_page.read_text("utf-8").replace(".. kadspec-requirements:: TIME", ""), "utf-8"
    )

    code, warnings = build_html(tmp_path / "out", srcdir=srcdir)

    time_ids = [rid for rid, req in requirements().items() if req.group == "TIME"]
    assert code != 0
    # The missing group must be the only reason the build failed.
    [warning] = warnings.splitlines()
    assert f"requirements missing from the docs: {', '.join(time_ids)}" in warning
