"""``kadspec docs`` and the commands the documentation shows.

``kadspec docs`` builds the site, or says in one line what is missing and exits 2. Every shell
command in the README's ``sh`` blocks and in the guides' ``console`` blocks runs exactly as
written, from the repository root; one that ends in ``# exit N`` must exit with N, any other
with 0. Commands CI itself runs (installing, pytest, ``verify``) are left to CI.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
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


def test_kadspec_docs_is_a_command_of_the_command_line() -> None:
    from kadspec.main import cli

    assert cli.commands["docs"] is docs
    result = CliRunner().invoke(cli, ["docs", "--help"])
    assert result.exit_code == 0 and "--out DIR" in result.output and "--open" in result.output


def test_the_docs_source_is_the_repository_docs_folder() -> None:
    source = docs_command.docs_source()
    assert (source / "conf.py").is_file() and (source / "index.rst").is_file()


# -- every shell command the README and the guides show ------------------------------------------

REPO = Path(__file__).resolve().parents[2]
CI_SCRIPT = REPO / ".ci" / "run"
GUIDES = REPO / "docs" / "guides"
#: ``# exit N`` at the end of a shown command: the status it is expected to exit with
EXPECTED_EXIT = re.compile(r"#\s*exit\s+(\d+)\b[^#]*$")
COMMAND_SECONDS = 900


def readme_commands(text: str) -> list[str]:
    """The lines of the README's ```sh blocks (output blocks have no language and are skipped)."""
    commands, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside and line.strip() == "```sh"
            continue
        if inside and line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


def console_commands(text: str) -> list[str]:
    """The ``$ `` lines of a page's ``code-block:: console`` blocks, in order."""
    commands, inside = [], False
    for line in text.splitlines():
        if line.strip().startswith(".. code-block::"):
            inside = line.split("::", 1)[1].strip() == "console"
            continue
        if inside and line and not line[0].isspace():
            inside = False  # the block ended at the first unindented line
        if inside and line.strip().startswith("$ "):
            commands.append(line.strip()[2:])
    return commands


def shown_commands() -> dict[str, list[str]]:
    """Document (relative to the repository) -> the commands it shows, in order."""
    shown = {"README.md": readme_commands((REPO / "README.md").read_text("utf-8"))}
    for page in sorted(GUIDES.glob("*.rst")):
        commands = console_commands(page.read_text("utf-8"))
        if commands:
            shown[str(page.relative_to(REPO))] = commands
    return shown


def run_by_ci(command: str) -> bool:
    """A command CI itself runs (a line of .ci/run starts with it): installing the package
    again or running pytest inside pytest is left to CI, which runs it exactly as written."""
    return any(line.strip().startswith(command) for line in CI_SCRIPT.read_text().splitlines())


def expected_exit(command: str) -> int:
    match = EXPECTED_EXIT.search(command)
    return int(match.group(1)) if match else 0


def test_commands_are_found_in_the_readme_and_every_guide() -> None:
    shown = shown_commands()
    assert len(shown["README.md"]) >= 5
    for page in GUIDES.glob("*.rst"):
        if page.name != "index.rst":
            assert str(page.relative_to(REPO)) in shown, f"{page.name} shows no command"


def test_a_command_marked_to_fail_says_with_which_status() -> None:
    assert expected_exit("kadspec check --policy x  # exit 1") == 1
    assert expected_exit("kadspec check  # explore every scenario") == 0
    assert console_commands(".. code-block:: console\n\n   $ a  # exit 2\n\ntext\n") == [
        "a  # exit 2"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("document", sorted(shown_commands()))
def test_every_shown_command_runs_as_written(document: str) -> None:
    """Each command of the document, in order, from the repository root, in bash."""
    failures = []
    for command in shown_commands()[document]:
        if run_by_ci(command):
            continue
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != expected_exit(command):
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            failures.append(
                f"{command!r} exited {done.returncode}, expected {expected_exit(command)}: "
                + " | ".join(tail)
            )
    assert not failures, f"{document}:\n" + "\n".join(failures)
