"""Sphinx configuration for the kadspec documentation site.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.

The requirements are not written in these pages: the local extension ``kadspec_spec`` renders
them from ``kadspec.spec`` (spec/requirements.toml) as sphinx-needs items, so an ID is defined
in exactly one place. Likewise ``kadspec_model`` renders the model's tables (actions, policy
knobs, mutants, scenarios, traceability) from ``kadspec.models`` while the docs build.
"""

from __future__ import annotations

import sys
from importlib.metadata import version as _installed_version
from pathlib import Path
from typing import get_args

from kadspec.spec import GROUPS, CheckKind, Level

# The local extension lives next to this file, not in the package: it is documentation tooling,
# and keeping it out of kadspec.* keeps Sphinx out of the package's import graph.
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "kadspec"
author = "kadspec contributors"
copyright = "2026, kadspec contributors"
release = _installed_version("kadspec")
version = release

extensions = ["sphinx.ext.autodoc", "sphinx_needs", "kadspec_spec", "kadspec_model"]

exclude_patterns = ["_build"]
# furo: the theme readers of modern Python documentation expect, with Sphinx's full-text search
# (searchindex.js) in its sidebar; it is part of the docs extra.
html_theme = "furo"
html_title = f"kadspec {release}"
# kadspec.css sizes the diagrams kadspec_model draws from the model.
html_static_path = ["_static"]
# Requirement text uses RFC 2119 keywords and plain quotes; render it as written.
smartquotes = False

# -- sphinx-needs ------------------------------------------------------------------------------

# Only requirements exist as needs today; checks and implementation results come later as types
# of their own, so a stray directive of another type is an error rather than a silent extra.
needs_types = [
    {
        "directive": "req",
        "title": "Requirement",
        "prefix": "",
        "color": "#BFD8D2",
        "style": "node",
    },
]

# kadspec.spec validates IDs as GROUP-NN; mirror that here (from the same GROUPS tuple) so that a
# need written by hand with any other ID is rejected by sphinx-needs as well.
needs_id_required = True
needs_id_regex = rf"^(?:{'|'.join(GROUPS)})-\d{{2}}$"

# The fields every requirement carries besides id and title. Allowed values come from the
# loader's own types, so the docs cannot accept a level or check kind the spec would reject.
needs_fields = {
    "level": {
        "description": "RFC 2119 keyword of the requirement",
        "schema": {"type": "string", "enum": list(get_args(Level))},
    },
    "check": {
        "description": "How the model checks it: invariant, step, progress or config",
        "schema": {"type": "string", "enum": list(get_args(CheckKind))},
    },
    "group": {
        "description": "Lifecycle area the requirement belongs to",
        "schema": {"type": "string", "enum": list(GROUPS)},
    },
}

# The summary table is read as a plain table (and must list every row without JavaScript).
needs_table_style = "TABLE"
