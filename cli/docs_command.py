"""``kadspec docs``: build the documentation site (Sphinx, warnings as errors) and say where it is.

The site is built from the ``docs/`` folder of the repository the package is installed from
(an editable install, as the README sets up); its pages are generated from ``kadspec.spec`` and
``kadspec.models`` while it builds, diagrams included.

Exit status: 0 when the site built without a warning; 1 when the build failed (every warning is
an error, as in CI); 2 when it cannot start: the ``docs`` extra (Sphinx, sphinx-needs, furo,
graphviz) or Graphviz's ``dot`` program is missing, or there is no ``docs/`` folder. Each of
those is one line on stderr naming what to install.
"""

from __future__ import annotations

import importlib.util
import shutil
import webbrowser
from collections.abc import Sequence
from pathlib import Path

import click

import kadspec

#: module -> the distribution that provides it (what ``pip install 'kadspec[docs]'`` installs)
DOCS_MODULES = {
    "sphinx": "sphinx",
    "sphinx_needs": "sphinx-needs",
    "furo": "furo",
    "graphviz": "graphviz",
}

#: exit status of a build that failed (a warning, with warnings as errors)
EXIT_BUILD_FAILED = 1


class CannotBuild(click.ClickException):
    """The build cannot start here: one line naming what to install. Exit status 2."""

    exit_code = 2


DOCS_HELP = """Build the documentation site into DIR (default docs/_build/html).

\b
The spec, model, mutants and traceability pages and every diagram are generated
from the code while the site builds; any warning fails the build (exit 1).
The traceability page's check, proofs and conformance runs (about a minute)
are kept in ~/.cache/kadspec/docs under a digest of the package's sources, so
a rebuild of the same code reuses them; KADSPEC_CACHE_DIR=DIR keeps them
elsewhere, KADSPEC_CACHE_DIR=off computes them every time.
Needs the docs extra and Graphviz:
  python3 -m pip install -e '.[docs]' && apt-get install graphviz

\b
Examples:
  kadspec docs
  kadspec docs --out /tmp/kadspec-site --open
"""


def docs_source() -> Path:
    """The repository's ``docs/`` folder (the one holding conf.py), next to the package source."""
    # In an editable install the package's files are (links to) the repository's cli/ folder.
    package = Path(kadspec.__file__).resolve().parent
    for candidate in (package.parent / "docs", Path.cwd() / "docs"):
        if (candidate / "conf.py").is_file():
            return candidate
    raise CannotBuild(
        "no docs/conf.py next to the kadspec package or in the current folder: "
        "build the docs from a clone of the repository (pip install -e '.[docs]')"
    )


def missing_requirements() -> list[str]:
    """What the build needs and this machine lacks, as install hints (empty: all present)."""
    missing = [
        dist for module, dist in DOCS_MODULES.items() if importlib.util.find_spec(module) is None
    ]
    hints = []
    if missing:
        hints.append(
            f"the docs extra is not installed (missing {', '.join(missing)}): "
            "python3 -m pip install -e '.[docs]'"
        )
    if shutil.which("dot") is None:
        hints.append("Graphviz's dot program is missing: apt-get install graphviz")
    return hints


def build(source: Path, out: Path) -> int:
    """Run Sphinx as CI does (-W --keep-going, html); return its exit status.

    Every page is read again (``-E``): an incremental build would skip the pages that did not
    change and so stay silent about their warnings, and a second ``kadspec docs`` would pass
    where the first failed.
    """
    from sphinx.cmd.build import build_main  # the docs extra, checked before we get here

    args: Sequence[str] = ["-W", "--keep-going", "-E", "-q", "-b", "html", str(source), str(out)]
    return build_main(list(args))


@click.command(name="docs", help=DOCS_HELP)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="where to write the site (default: docs/_build/html of the repository)",
)
@click.option("--open", "open_", is_flag=True, help="open the built site in a web browser")
def docs(out: Path | None, open_: bool) -> None:
    hints = missing_requirements()
    if hints:
        raise CannotBuild("; ".join(hints))
    source = docs_source()
    target = (out if out is not None else source / "_build" / "html").resolve()
    click.echo(f"building the docs from {source} into {target} (a minute or two)", err=True)
    code = build(source, target)
    index = target / "index.html"
    if code != 0 or not index.is_file():
        click.echo(
            f"kadspec: docs build failed (exit {code}); the warnings above say where", err=True
        )
        raise SystemExit(EXIT_BUILD_FAILED)
    click.echo(index.as_uri())
    if open_:
        webbrowser.open(index.as_uri())
