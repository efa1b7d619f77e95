"""Render kadspec's model as tables, read from the code at build time.

The pages that describe the model name no action, knob, mutant, scenario or requirement
themselves; these directives read them from ``kadspec.models`` while the docs build, so a page
cannot drift from the code it describes:

``.. kadspec-modules::``
   every module of ``kadspec.models`` with the summary its docstring opens with (reStructuredText,
   as docstrings are).
``.. kadspec-actions::``
   the transition relation: one row per kind of ``kadspec.models.actions.ACTIONS``.
``.. kadspec-policy::``
   the knobs of ``kadspec.models.policy.Policy``: the spec's default and the ``#:`` comment above
   the field, read by Sphinx's own source analyser (the one autodoc uses).
``.. kadspec-mutants::`` and ``.. kadspec-scenarios::``
   ``MUTANTS`` (with the knobs each changes, computed against ``SPEC``) and ``SCENARIOS``.
``.. kadspec-traceability::``
   requirement -> model checks -> mutants, then the requirements no mutant shows necessary; a
   requirement that no model check carries fails the build.
``.. kadspec-example:: NAME``
   the example network file ``kadspec example-config NAME`` writes, from the package.
``.. kadspec-proofs::``
   requirement -> source -> its status in ``kadspec check`` and the scenarios that exercised it
   -> the z3 obligations of ``kadspec prove --nodes 2`` and their results -> the test files
   that name it; the check and the proofs run while the page builds.
``.. kadspec-try:: MUTANT``
   the commands that show MUTANT's bug (checked against the command line's own options) and the
   counterexample they print, computed by running the same exploration.
``.. kadspec-diagram:: VIEW``
   a state diagram of ``kadspec.diagrams.VIEWS[VIEW]``, computed by walking the model's
   scenarios and drawn with Graphviz while the docs build.
``.. kadspec-sequences::``
   for every mutant, the counterexample the explorer finds for it, as a sequence diagram.
``.. kadspec-counterexample:: MUTANT``
   what ``kadspec check --policy MUTANT --scenario S`` prints (S: the mutant's scenario), as
   text, then the same trace as a sequence diagram.

Diagrams are SVG files written next to the page's other images and embedded as ``<img>``; the
walks and explorations behind them run once per process (``kadspec.diagrams`` caches them), so a
build pays for each once however many pages use it.

As in ``kadspec_spec``, each directive generates reStructuredText and parses it in place, so the
tables are ordinary list-tables. Requirement IDs in them are written with the role
``:kadspec-req:`ID```, which becomes a link to the requirement's need once every page has been
read. An ID that is in the requirements document but on no page is left as plain text, because
``kadspec_spec`` has already failed the build for it; an ID the document lacks is a warning.
"""

from __future__ import annotations

import ast
import contextlib
import enum
import fcntl
import functools
import hashlib
import html
import importlib.metadata
import importlib.util
import os
import pickle
import pkgutil
import re
import string
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, TypeVar

import attrs
from docutils import nodes
from docutils.statemachine import StringList
from kadspec_spec import load_requirements
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.errors import NoUri, PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole
from sphinx.util.nodes import make_refnode
from sphinx.util.parsing import nested_parse_to_nodes
from sphinx.util.typing import ExtensionMetadata, OptionSpec
from sphinx.writers.html5 import HTML5Translator
from sphinx_needs.api import get_needs_view

import kadspec.main
import kadspec.models
import kadspec.spec
from kadspec import diagrams, reports
from kadspec.engines.explorer import Counterexample, explore
from kadspec.engines.symbolic.lifecycle import Obligation, ProofReport, prove_lifecycle
from kadspec.engines.trace import render
from kadspec.models.actions import ACTIONS
from kadspec.models.mutants import MUTANTS, Mutant
from kadspec.models.policy import SPEC, Policy
from kadspec.models.scenarios import SCENARIOS
from kadspec.spec import GROUPS, SpecError, requirements

__all__ = [
    "DiagramImage",
    "RequirementReference",
    "RequirementRole",
    "changed_knobs",
    "check_cell",
    "checked_counterexample",
    "describe_template",
    "knob_value",
    "list_table",
    "module_summaries",
    "mutant_counterexample",
    "policy_comments",
    "proof_cell",
    "proof_report",
    "setup",
    "spec_check",
    "tests_naming",
]

logger = logging.getLogger(__name__)

# The config value kadspec_spec reads the requirements document from; both extensions must agree
# on which IDs are documented.
REQUIREMENTS_FILE = "kadspec_requirements_file"

# Every ASCII punctuation character is escaped, as in kadspec_spec: the generated cells hold
# prose and names from the code, never markup.
_PUNCTUATION = re.compile(f"([{re.escape(string.punctuation)}])")
_REQUIREMENT_ID = re.compile(rf"\b(?:{'|'.join(GROUPS)})-\d{{2}}\b")

# Sphinx labels of the rows of the mutants and scenarios tables, so other tables can link them.
MUTANT_LABEL = "mutant-{}"
SCENARIO_LABEL = "scenario-{}"

# The command a reader types, as the README spells it: it works without the console script.
PROGRAM = "python3 -m kadspec"

Cell = str | Sequence[str]
"""One table cell: a line of reStructuredText, or several (blank lines separate paragraphs)."""


# -- reStructuredText building blocks -----------------------------------------------------------


def _literal(text: str) -> str:
    if "`" in text:
        raise ValueError(f"cannot write {text!r} as an inline literal")
    return f"``{text}``"


def _req(rid: str) -> str:
    return f":kadspec-req:`{rid}`"


def _escape(text: str) -> str:
    """Text escaped as in kadspec_spec, keeping its (single) spaces at either end."""
    return _PUNCTUATION.sub(r"\\\1", text)


def _text(text: str) -> str:
    """Text from the code as literal prose on one line."""
    return _escape(" ".join(text.split()))


def _prose(text: str) -> str:
    """Text from the code as literal prose, with every requirement ID in it linked."""
    text = " ".join(text.split())
    out, start = [], 0
    for match in _REQUIREMENT_ID.finditer(text):
        before, after = text[start : match.start()], text[match.end() : match.end() + 1]
        out.append(_escape(before))
        # Inline markup must not touch a word character; an escaped space is reStructuredText's
        # "nothing here", so "PROV-06's" still links its ID.
        out.append("\\ " if before and not before[-1].isspace() else "")
        out.append(_req(match.group()))
        out.append("\\ " if after and not after.isspace() else "")
        start = match.end()
    out.append(_escape(text[start:]))
    return "".join(out)


def _joined(items: Iterable[str], empty: str = "none") -> str:
    listed = list(items)
    return ", ".join(listed) if listed else empty


def list_table(caption: str, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> list[str]:
    """The lines of a ``list-table`` with one header row."""
    lines = [f".. list-table:: {_text(caption)}", "   :header-rows: 1", "   :widths: auto", ""]
    for row in [list(header), *rows]:
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} cells, the header {len(header)}")
        for index, cell in enumerate(row):
            cell_lines = [cell] if isinstance(cell, str) else list(cell)
            bullet = "   * - " if index == 0 else "     - "
            lines.append(bullet + cell_lines[0])
            lines.extend(" " * len(bullet) + line if line else "" for line in cell_lines[1:])
    lines.append("")
    return lines


def _labelled(label: str, text: str) -> list[str]:
    """A cell that other pages can link to with ``:ref:`` (an explicit target on its text)."""
    return [f".. _{label}:", "", text]


# -- what the tables say ------------------------------------------------------------------------


def describe_template(template: str) -> str:
    """An action's sentence with each placeholder shown as its parameter's name, in italics.

    ``"{node} dials bootstrap peer {peer}"`` -> ``*node* dials bootstrap peer *peer*``.
    """
    parts = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        parts.append(_escape(literal))
        if field is not None:
            if spec or conversion or not field.isidentifier():
                raise ValueError(f"template {template!r}: cannot describe {{{field}}}")
            parts.append(f"*{field.replace('_', ' ')}*")
    return "".join(parts)


def knob_value(value: object) -> str:
    """A knob's value as the policy comments speak of it: on/off, an enum's value, a number."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def policy_comments() -> dict[str, str]:
    """Policy field -> the ``#:`` comment above it, read from the module's source."""
    analyzer = ModuleAnalyzer.for_module(Policy.__module__)
    docs = analyzer.find_attr_docs()
    return {
        name: " ".join(" ".join(lines).split())
        for (namespace, name), lines in docs.items()
        if namespace == Policy.__qualname__
    }


def changed_knobs(policy: Policy, reference: Policy = SPEC) -> dict[str, object]:
    """The knobs on which ``policy`` differs from ``reference``, in field order."""
    return {
        field.name: getattr(policy, field.name)
        for field in attrs.fields(Policy)
        if getattr(policy, field.name) != getattr(reference, field.name)
    }


def _mutant_ref(mutant: Mutant) -> str:
    return f":ref:`{mutant.name} <{MUTANT_LABEL.format(mutant.name)}>`"


def _command(*args: str) -> str:
    """A command line a reader can run, checked against the options the command line has."""
    command = kadspec.main.cli.commands.get(args[0])
    if command is None:
        raise ValueError(f"kadspec has no command {args[0]!r}")
    options = {opt for param in command.params for opt in param.opts}
    unknown = [arg for arg in args[1:] if arg.startswith("-") and arg not in options]
    if unknown:
        raise ValueError(f"'kadspec {args[0]}' has no option {', '.join(unknown)}")
    return " ".join([PROGRAM, *args])


# -- directives ---------------------------------------------------------------------------------


def _note_model_sources(env: BuildEnvironment) -> None:
    """Re-read a generated page in an incremental build whenever the code it reads changes."""
    package = Path(kadspec.models.__file__).parent
    spec = Path(kadspec.spec.__file__).parent
    sources = [
        *package.rglob("*.py"),
        *spec.glob("*.py"),
        *spec.glob("*.toml"),
        Path(reports.__file__),
        Path(kadspec.main.__file__),
    ]
    for path in sorted(sources):
        # Resolved: in a strict editable install these are symlinks to the files people edit.
        env.note_dependency(str(path.resolve()))


class _Generated(SphinxDirective):
    """A directive whose output is generated reStructuredText, parsed in place.

    ``generate`` raises ValueError (or the loaders' own errors) for input it cannot render; the
    build reports that as an error of the directive, naming it.
    """

    has_content = False
    option_spec: ClassVar[OptionSpec] = {}

    def generate(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        _note_model_sources(self.env)
        try:
            lines = self.generate()
        except (ValueError, SpecError, PycodeError) as err:
            raise self.error(f"{self.name}: {err}") from None
        # Every generated line points at this directive, so a warning about a cell names the
        # page and line that produced it.
        source, line = self.get_source_info()
        content = StringList()
        for text in lines:
            content.append(text, source, (line or 1) - 1)
        return nested_parse_to_nodes(self.state, content, allow_section_headings=False)


def module_summaries(package: ModuleType) -> dict[str, str]:
    """Dotted name -> first paragraph of the docstring, for every module below ``package``.

    The sources are parsed, not imported, so listing a module cannot run it.
    """
    summaries = {}
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        spec = importlib.util.find_spec(info.name)
        if spec is None or spec.origin is None:
            continue
        docstring = ast.get_docstring(ast.parse(Path(spec.origin).read_text("utf-8")))
        if info.ispkg and not docstring:
            continue  # a namespace-only package: its modules are listed
        summaries[info.name] = (docstring or "").strip().split("\n\n")[0]
    return summaries


class KadspecModules(_Generated):
    """``.. kadspec-modules:: [PACKAGE]``: every module of a package (default kadspec.models)
    with its docstring's summary."""

    optional_arguments = 1

    def generate(self) -> list[str]:
        name = self.arguments[0] if self.arguments else "kadspec.models"
        if not name.startswith("kadspec."):
            raise ValueError(f"{name!r} is not a kadspec package")
        package = importlib.import_module(name)
        rows = [
            [_literal(module), " ".join(summary.split()) or "(no module docstring)"]
            for module, summary in sorted(module_summaries(package).items())
        ]
        return list_table(f"The modules of {name}", ["module", "what it holds"], rows)


class KadspecActions(_Generated):
    """``.. kadspec-actions::``: the transition relation, one row per action kind."""

    def generate(self) -> list[str]:
        rows = [
            [
                _literal(kind),
                action.family.value,
                _joined(_req(rid) for rid in action.requirements),
                describe_template(action.template),
            ]
            for kind, action in ACTIONS.items()
        ]
        header = ["action", "family", "requirements", "description"]
        return list_table("The transition relation", header, rows)


class KadspecPolicy(_Generated):
    """``.. kadspec-policy::``: every knob of Policy, its spec default and its comment."""

    def generate(self) -> list[str]:
        comments = policy_comments()
        rows = []
        for field in attrs.fields(Policy):
            comment = comments.get(field.name)
            if not comment:
                logger.warning(
                    "policy knob %s has no '#:' comment in %s",
                    field.name,
                    Policy.__module__,
                    location=self.get_location(),
                    type="kadspec",
                    subtype="policy",
                )
            meaning = _prose(comment or "undocumented")
            if comment is not None and comment in requirements():
                # A bare ID says which requirement decides the knob; its title says what for.
                meaning += f": {_text(requirements()[comment].title)}"
            if isinstance(field.default, enum.Enum):
                members = type(field.default)
                choices = _joined(_literal(knob_value(member)) for member in members)
                meaning += f" (one of {choices})"
            rows.append([_literal(field.name), _literal(knob_value(field.default)), meaning])
        header = ["knob", "spec default", "what it decides"]
        return list_table("The policy knobs", header, rows)


class KadspecMutants(_Generated):
    """``.. kadspec-mutants::``: every mutant, the requirement it breaks and its knobs."""

    def generate(self) -> list[str]:
        rows: list[list[Cell]] = []
        for mutant in MUTANTS.values():
            knobs = changed_knobs(mutant.policy)
            if not knobs:
                logger.warning(
                    "mutant %s does not differ from the spec policy",
                    mutant.name,
                    location=self.get_location(),
                    type="kadspec",
                    subtype="mutant",
                )
            rows.append(
                [
                    _labelled(MUTANT_LABEL.format(mutant.name), _literal(mutant.name)),
                    _text(mutant.source),
                    _prose(mutant.summary),
                    _req(mutant.expected),
                    f":ref:`{mutant.scenario} <{SCENARIO_LABEL.format(mutant.scenario)}>`",
                    _joined(f"{_literal(k)} = {_literal(knob_value(v))}" for k, v in knobs.items()),
                ]
            )
        header = ["mutant", "source", "what goes wrong", "must break", "scenario", "knobs changed"]
        return list_table("The mutants", header, rows)


class KadspecScenarios(_Generated):
    """``.. kadspec-scenarios::``: every scenario: size, horizon, fault budget, summary."""

    def generate(self) -> list[str]:
        rows: list[list[Cell]] = []
        for scenario in SCENARIOS.values():
            faults = (
                f"{scenario.faults} ({', '.join(sorted(scenario.fault_kinds))})"
                if scenario.faults
                else "none"
            )
            rows.append(
                [
                    _labelled(SCENARIO_LABEL.format(scenario.name), _literal(scenario.name)),
                    str(len(scenario.config.nodes)),
                    str(scenario.horizon),
                    _text(faults),
                    _prose(scenario.summary),
                ]
            )
        header = ["scenario", "nodes", "horizon", "faults", "summary"]
        return list_table("The scenarios", header, rows)


class KadspecTraceability(_Generated):
    """``.. kadspec-traceability::``: requirement -> model checks -> mutants that need it."""

    def generate(self) -> list[str]:
        checks = reports.checks_by_requirement()
        shown_by: dict[str, list[Mutant]] = {}
        for mutant in MUTANTS.values():
            shown_by.setdefault(mutant.expected, []).append(mutant)
        rows = []
        for rid, req in requirements().items():
            carried = []
            for check in checks[rid]:
                kind, _, function = check.partition(":")
                carried.append(f"{_literal(function)} ({kind})")
            rows.append(
                [
                    _req(rid),
                    _text(req.level),
                    req.check,
                    _joined(carried),
                    _joined(_mutant_ref(m) for m in shown_by.get(rid, [])),
                ]
            )
        header = ["requirement", "level", "check kind", "model checks", "shown necessary by"]
        lines = list_table("Requirements, checks and mutants", header, rows)

        unchecked = [rid for rid in requirements() if not checks[rid]]
        if unchecked:
            # A requirement nothing checks is a promise the suite does not keep: fail the build.
            logger.warning(
                "requirements carried by no model check: %s",
                ", ".join(unchecked),
                location=self.get_location(),
                type="kadspec",
                subtype="traceability",
            )
            links = _joined(_req(rid) for rid in unchecked)
            lines += [f"Not yet carried by any model check: {links}.", ""]
        else:
            lines += ["Every requirement is carried by at least one model check.", ""]
        untested = [rid for rid in requirements() if rid not in shown_by]
        if untested:
            links = _joined(_req(rid) for rid in untested)
            lines += [
                f"No mutant shows these {len(untested)} of {len(requirements())} requirements "
                f"necessary yet: {links}.",
                "",
            ]
        else:
            lines += ["Every requirement is shown necessary by at least one mutant.", ""]
        return lines


#: the symbolic encoding's size for the proofs the traceability page shows (seconds to prove)
PROOF_NODES = 2
PROOF_TIMEOUT_MS = 20_000


# -- results computed from the code, kept between builds -----------------------------------------
#
# The traceability page runs ``kadspec check`` over every scenario, the z3 proofs and the
# simulated conformance runs: about a minute of CPU per build. They are functions of the
# package's sources (and of the Python and solver versions), so each result is kept on disk
# under a digest of those: another build of the same sources (another process, a test worker)
# reads it instead of computing it again, and any change of the code computes it afresh.

_T = TypeVar("_T")

#: the folder results are kept in (default: the user's cache folder); "off" keeps none
CACHE_ENV = "KADSPEC_CACHE_DIR"
#: the kadspec packages whose folders the digest reads (their subpackages are inside them)
_DIGESTED = (
    "kadspec",
    "kadspec.spec",
    "kadspec.models",
    "kadspec.engines",
    "kadspec.impl",
    "kadspec.conformance",
)


def cache_folder() -> Path | None:
    """Where computed results are kept: ``$KADSPEC_CACHE_DIR``, else ``kadspec/docs`` in the
    user's cache folder; None when the variable says "off"."""
    chosen = os.environ.get(CACHE_ENV, "")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kadspec" / "docs"


def digested_folders() -> list[Path]:
    """The folders the kadspec packages are imported from (an editable install's link tree
    or the repository's folders), without one that lies inside another. Their files may be
    links (a link tree's are): the digest reads what they point to."""
    modules = [importlib.import_module(name) for name in _DIGESTED]
    found = {Path(p).resolve() for module in modules for p in module.__path__}
    return sorted(f for f in found if not any(o != f and o in f.parents for o in found))


@functools.cache
def source_digest() -> str:
    """sha256 over every Python and TOML file of the kadspec packages, with the Python, z3
    and attrs versions: what the kept results are a function of."""
    digest = hashlib.sha256(sys.version.encode())
    for dist in ("z3-solver", "attrs"):
        digest.update(f"{dist} {importlib.metadata.version(dist)}".encode())
    for folder in digested_folders():
        for path in sorted(folder.rglob("*")):
            skipped = {"__pycache__", "node_modules"} & set(path.parts)
            if path.suffix in (".py", ".toml") and not skipped and path.is_file():
                digest.update(path.relative_to(folder).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def kept(compute: Callable[[], _T]) -> Callable[[], _T]:
    """``compute`` run once per process, and once per source digest across processes: the
    first build of a digest computes and writes the result while others wait on its lock,
    then read it. A kept file that cannot be read is computed again."""

    @functools.cache
    def once() -> _T:
        folder = cache_folder()
        if folder is None:
            return compute()
        path = folder / f"{compute.__name__}-{source_digest()}.pickle"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = open(path.with_suffix(".lock"), "w")  # noqa: SIM115 - held across the body
        except OSError:
            return compute()
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists():
                with contextlib.suppress(Exception):  # unreadable: computed again below
                    found: _T = pickle.loads(path.read_bytes())
                    return found
            result = compute()
            with contextlib.suppress(OSError):
                # written whole, then renamed: a reader never sees half a file
                with tempfile.NamedTemporaryFile(dir=folder, delete=False) as out:
                    out.write(pickle.dumps(result))
                os.replace(out.name, path)
            return result

    functools.update_wrapper(once, compute)
    return once


@attrs.frozen
class CheckSummary:
    """What the traceability page shows of ``kadspec check`` under the spec policy."""

    status: dict[str, str]
    exercised_in: dict[str, int]  # requirement -> scenarios where its premise was live
    scenarios: int
    states: int
    seconds: float


@kept
def spec_check() -> CheckSummary:
    """``kadspec check`` under the spec policy over every scenario."""
    report = reports.run_check(SPEC, reports.all_scenarios())
    return CheckSummary(
        status=dict(report.status()),
        exercised_in={
            rid: sum(1 for run in report.runs if run.exploration.exercised.get(rid, 0) > 0)
            for rid in report.status()
        },
        scenarios=len(report.runs),
        states=sum(run.exploration.states for run in report.runs),
        seconds=report.seconds,
    )


def check_cell(report: CheckSummary, rid: str) -> str:
    """A requirement's status in ``kadspec check`` and how many scenarios exercised it."""
    live = report.exercised_in.get(rid, 0)
    return f"{report.status[rid]} (exercised in {live} of {report.scenarios} scenarios)"


@kept
def proof_report() -> ProofReport:
    """``kadspec prove --nodes PROOF_NODES`` under the spec policy."""
    return prove_lifecycle(PROOF_NODES, SPEC, timeout_ms=PROOF_TIMEOUT_MS)


def tests_naming(tests: Path) -> dict[str, list[str]]:
    """Requirement ID -> the test files (relative to ``tests``) whose source names it.

    A file that names every requirement (the requirements document's own tests) tests the list,
    not each requirement, and is left out.
    """
    named: dict[str, list[str]] = {}
    for path in sorted(tests.rglob("test_*.py")):
        found = set(_REQUIREMENT_ID.findall(path.read_text("utf-8")))
        if found >= requirements().keys():
            continue
        for rid in sorted(found):
            named.setdefault(rid, []).append(path.relative_to(tests).as_posix())
    return named


def proof_cell(obligations: Sequence[Obligation]) -> str:
    """How many of a requirement's obligations z3 proved, naming any that it did not."""
    if not obligations:
        return "not encoded"
    proved = sum(1 for o in obligations if o.ok)
    if proved == len(obligations):
        return f"{proved} proved"
    failed = [f"{_literal(o.name)} ({o.result})" for o in obligations if not o.ok]
    return f"{proved} of {len(obligations)} proved; not proved: {', '.join(failed)}"


class KadspecProofs(_Generated):
    """``.. kadspec-example:: NAME``
       the example network file ``kadspec example-config NAME`` writes, from the package.
    ``.. kadspec-proofs::``: requirement -> z3 obligations and their results -> tests."""

    def generate(self) -> list[str]:
        report = proof_report()
        checked = spec_check()
        tests = Path(self.env.srcdir).parent / "tests"
        for path in tests.rglob("test_*.py"):
            self.env.note_dependency(str(path.resolve()))
        named = tests_naming(tests)
        rows = []
        for rid, req in requirements().items():
            mine = [o for o in report.obligations if rid in o.requirements]
            files = named.get(rid, [])
            source = (
                f"{req.source.kind}: {req.source.citation}"
                if req.source.spec_backed or not req.source.prevents
                else f"robustness, prevents {req.source.prevents}"
            )
            rows.append(
                [
                    _req(rid),
                    _text(source),
                    _text(check_cell(checked, rid)),
                    proof_cell(mine),
                    _joined(_literal(f) for f in files),
                ]
            )
        header = [
            "requirement",
            "source",
            "kadspec check",
            f"z3 obligations ({PROOF_NODES} nodes)",
            "tests (in tests/) that name it",
        ]
        lines = list_table("Requirements, proofs and tests", header, rows)
        proved = report.count("proved")
        lines += [
            f"For these sources, ``kadspec check`` explored {checked.states:,} states of "
            f"{checked.scenarios} scenarios in {checked.seconds:.1f} s, and z3 discharged "
            f"{proved} of {len(report.obligations)} obligations in {report.seconds:.1f} s "
            "(computed by the docs build; a build of the same sources reuses them).",
            "",
        ]
        return lines


#: where the conformance table looks for live ``kadspec conform --json`` reports, relative to the
#: repository's root (one file per implementation; none is needed for the build)
CONFORMANCE_REPORTS = "results/conformance/*.json"


@kept
def simulated_conformance() -> Any:
    """Every conformance scenario run on reference cores in the simulated network, judged by
    the model's checks and replayed by trace validation (about 20 s)."""
    import time

    from kadspec.conformance.observe import LOOPBACK
    from kadspec.conformance.runner import Conformance, ScenarioReport, judge_run
    from kadspec.conformance.scenarios import SCENARIOS as CONFORMANCE_SCENARIOS
    from kadspec.conformance.simulate import HELLO, simulate

    started = time.monotonic()
    reports_ = []
    for scenario in CONFORMANCE_SCENARIOS.values():
        begun = time.monotonic()
        run = simulate(scenario)
        results, validation, error = judge_run(scenario, run, LOOPBACK)
        seconds = time.monotonic() - begun
        reports_.append(ScenarioReport(scenario, run, results, validation, seconds, error=error))
    return Conformance(
        adapter="in-process simulation",
        implementation=HELLO.implementation,
        version=HELLO.version,
        profile=LOOPBACK,
        strict=False,
        scenarios=tuple(reports_),
        seconds=time.monotonic() - started,
    )


def live_conformance(root: Path) -> list[tuple[str, dict[str, str], Path]]:
    """(implementation and version, requirement -> status, file) of every live report found."""
    import json

    found = []
    for path in sorted(root.glob(CONFORMANCE_REPORTS)):
        try:
            report = json.loads(path.read_text("utf-8"))
            name = f"{report['implementation']} {report['version']}"
            statuses = {row["requirement"]: row["status"] for row in report["requirements"]}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a kadspec conform --json report ({error})") from None
        found.append((name, statuses, path))
    return found


class KadspecConformance(_Generated):
    """``.. kadspec-conformance::``: requirement -> the conformance status per implementation:
    the reference node on the simulated network (run while the page is built) and every live
    report in ``results/conformance/``."""

    def generate(self) -> list[str]:
        simulated = simulated_conformance()
        by_rid = {row.requirement: row for row in simulated.rows()}
        root = Path(self.env.srcdir).parent
        live = live_conformance(root)
        for _, _, path in live:
            self.env.note_dependency(str(path.resolve()))
        rows = []
        for rid, req in requirements().items():
            row = by_rid.get(rid)
            cells = [_req(rid), _text(req.level)]
            cells.append(_text(row.status if row is not None else "not judged"))
            cells += [_text(statuses.get(rid, "not judged")) for _, statuses, _ in live]
            rows.append(cells)
        header = ["requirement", "level", f"{simulated.implementation} (simulated network)"]
        header += [name for name, _, _ in live]
        lines = list_table("Conformance by implementation", header, rows)
        validated = [s for s in simulated.scenarios if s.validation is not None]
        accepted = sum(1 for s in validated if s.validation.accepted)
        lines += [
            f"For these sources, {len(simulated.scenarios)} conformance scenarios ran on "
            f"reference cores in the simulated network in {simulated.seconds:.1f} s "
            f"(verdict {simulated.verdict()}; trace validation accepted {accepted} of "
            f"{len(validated)} runs). Profile: {simulated.profile.describe()}",
            "",
        ]
        if live:
            files = ", ".join(f"``{path.relative_to(root).as_posix()}``" for _, _, path in live)
            lines += [f"Live results read from {files}.", ""]
        else:
            lines += [
                f"No live report was found in ``{CONFORMANCE_REPORTS}`` when this page was built; "
                "see :doc:`guides/conformance` for the commands that write them.",
                "",
            ]
        return lines


class KadspecTry(_Generated):
    """``.. kadspec-try:: MUTANT``: commands that show MUTANT's bug, and what they print."""

    required_arguments = 1

    def generate(self) -> list[str]:
        name = self.arguments[0]
        if name not in MUTANTS:
            raise ValueError(f"unknown mutant {name!r}; expected one of {', '.join(MUTANTS)}")
        mutant = MUTANTS[name]
        lines = [".. code-block:: console", ""]
        lines += [
            f"   $ {_command('mutants')}",
            f"   $ {_command('check', '--policy', name, '--scenario', mutant.scenario)}",
            "",
        ]
        # The exploration `kadspec check` runs, so the page shows the trace the reader will see.
        report = reports.run_check(mutant.policy, [mutant.scenario_spec], policy_name=name)
        if report.counterexample is None:
            logger.warning(
                "mutant %s is not caught in scenario %s: the page cannot show its counterexample",
                name,
                mutant.scenario,
                location=self.get_location(),
                type="kadspec",
                subtype="mutant",
            )
            return lines
        lines += [
            f"The second command ends with this counterexample: {_req(mutant.expected)} broken "
            f"in scenario :ref:`{mutant.scenario} <{SCENARIO_LABEL.format(mutant.scenario)}>`.",
            "",
            ".. code-block:: text",
            "",
        ]
        trace = render(report.counterexample).split("\n")
        lines += [f"   {line}" if line else "" for line in trace]
        lines.append("")
        return lines


class KadspecExample(_Generated):
    """``.. kadspec-example:: NAME``: the example network file ``kadspec example-config NAME``
    writes, as a TOML block (read from the package, so the page shows what the command does)."""

    required_arguments = 1

    def generate(self) -> list[str]:
        name = self.arguments[0]
        if name not in kadspec.main.EXAMPLES:
            raise ValueError(f"unknown example {name!r}; one of {', '.join(kadspec.main.EXAMPLES)}")
        text = kadspec.main.example_text(name)
        lines = [".. code-block:: toml", f"   :caption: results/{name}.toml", ""]
        lines += [f"   {line}" if line else "" for line in text.splitlines()]
        return [*lines, ""]


# -- diagrams -----------------------------------------------------------------------------------


# docutils ships no type information, so its node classes are Any to mypy.
class DiagramImage(nodes.General, nodes.Inline, nodes.Element):  # type: ignore[misc]
    """An SVG drawn while reading: written out as a file and embedded as ``<img>`` in HTML."""


def _diagram_node(svg: str, name: str, alt: str) -> DiagramImage:
    digest = hashlib.sha256(svg.encode("utf-8")).hexdigest()[:12]
    return DiagramImage(svg=svg, filename=f"kadspec-{name}-{digest}.svg", alt=alt)


def _visit_diagram_html(translator: HTML5Translator, node: DiagramImage) -> None:
    images = Path(translator.builder.outdir) / translator.builder.imagedir
    images.mkdir(parents=True, exist_ok=True)
    target = images / node["filename"]
    if not target.exists():
        target.write_text(node["svg"], "utf-8")
    source = f"{translator.builder.imgpath}/{node['filename']}"
    # The image links to itself: a wide diagram is scaled to the page, and opens full size.
    translator.body.append(
        f'<a class="kadspec-diagram" href="{html.escape(source)}">'
        f'<img class="kadspec-diagram" src="{html.escape(source)}" '
        f'alt="{html.escape(node["alt"])}" /></a>'
    )
    raise nodes.SkipNode


def _skip_diagram(translator: object, node: DiagramImage) -> None:
    """Builders without images (text, man, LaTeX here) show the caption alone."""
    raise nodes.SkipNode


def _render(directive: SphinxDirective, make: Callable[[], str]) -> str:
    try:
        return make()
    except diagrams.DiagramError as err:
        raise directive.error(f"{directive.name}: {err}") from None


class KadspecDiagram(SphinxDirective):
    """``.. kadspec-diagram:: VIEW``: a state diagram drawn from the model's explored steps."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        _note_model_sources(self.env)
        name = self.arguments[0]
        view = diagrams.VIEWS.get(name)
        if view is None:
            choices = ", ".join(diagrams.VIEWS)
            raise self.error(f"{self.name}: unknown view {name!r}; expected one of {choices}")
        diagram = diagrams.state_diagram(view)
        svg = _render(self, lambda: diagrams.render_svg(diagrams.to_dot(diagram)))
        figure = nodes.figure(classes=["kadspec-figure"])
        figure += _diagram_node(svg, name, diagram.title)
        scenarios = ", ".join(view.scenarios)
        caption = (
            f"{diagram.title}. Drawn from {diagram.explored_states:,} states the model reaches "
            f"in scenarios {scenarios} under the specification's policy"
        )
        if view.mutants:
            caption += f"; in red, what mutants {', '.join(view.mutants)} do that it never does"
        figure += nodes.caption("", caption + ".")
        return [figure]


@functools.cache
def mutant_counterexample(name: str) -> Counterexample | None:
    """The explorer's (shortest) counterexample for mutant ``name``'s expected requirement."""
    mutant = MUTANTS[name]
    found = explore(
        mutant.scenario_spec.initial(), mutant.policy, max_states=2_000_000, target=mutant.expected
    )
    return found.counterexample


class KadspecSequences(SphinxDirective):
    """``.. kadspec-sequences::``: every mutant's counterexample as a sequence diagram."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        _note_model_sources(self.env)
        out: list[nodes.Node] = []
        for name, mutant in MUTANTS.items():
            found = mutant_counterexample(name)
            if found is None:
                logger.warning(
                    "mutant %s is not caught in scenario %s: no sequence diagram",
                    name,
                    mutant.scenario,
                    location=self.get_location(),
                    type="kadspec",
                    subtype="mutant",
                )
                continue
            title = f"{name}: {mutant.expected} broken in scenario {mutant.scenario}"
            sequence = diagrams.sequence_of(found, title=title)
            rubric = nodes.rubric("", "", nodes.literal(name, name))
            rubric["ids"].append(f"sequence-{name}")
            figure = nodes.figure(classes=["kadspec-figure", "kadspec-sequence"])
            figure += _diagram_node(diagrams.sequence_svg(sequence), name, title)
            figure += nodes.caption(
                "",
                f"{len(sequence.steps)} steps from the initial state of scenario "
                f"{mutant.scenario} under mutant {name}; the last step (shaded) breaks "
                f"{mutant.expected}.",
            )
            out += [rubric, figure]
        return out


@functools.cache
def checked_counterexample(name: str) -> Counterexample | None:
    """The counterexample ``kadspec check --policy NAME --scenario S`` prints, S the mutant's."""
    mutant = MUTANTS[name]
    report = reports.run_check(mutant.policy, [mutant.scenario_spec], policy_name=name)
    return report.counterexample


class KadspecCounterexample(SphinxDirective):
    """``.. kadspec-counterexample:: MUTANT``: the checked trace as text and as a diagram."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        _note_model_sources(self.env)
        name = self.arguments[0]
        if name not in MUTANTS:
            raise self.error(f"{self.name}: unknown mutant {name!r}")
        found = checked_counterexample(name)
        if found is None:
            raise self.error(f"{self.name}: mutant {name} is not caught; nothing to show")
        text = render(found)
        block = nodes.literal_block(text, text, language="text")
        title = f"{name}: {', '.join(found.requirements)} broken"
        figure = nodes.figure(classes=["kadspec-figure", "kadspec-sequence"])
        figure += _diagram_node(
            diagrams.sequence_svg(diagrams.sequence_of(found, title=title)), name, title
        )
        figure += nodes.caption("", f"The same {len(found.steps)} steps as a sequence diagram.")
        return [block, figure]


# -- requirement links --------------------------------------------------------------------------


# docutils ships no type information, so its node classes are Any to mypy.
class RequirementReference(nodes.Inline, nodes.TextElement):  # type: ignore[misc]
    """A requirement ID, resolved to a link to its need once every page has been read."""


class RequirementRole(SphinxRole):
    """``:kadspec-req:`BOOT-01```: a link to requirement BOOT-01, showing its ID."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        node = RequirementReference(self.rawtext, self.text, requirement=self.text)
        self.set_source_info(node)
        return [node], []


def _documented_ids(app: Sphinx) -> Mapping[str, object]:
    try:
        documented, _ = load_requirements(app.config[REQUIREMENTS_FILE])
    except (SpecError, OSError):
        return {}  # the directive that tried to load them has already reported why
    return documented


def _resolve_requirement_links(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    found = list(doctree.findall(RequirementReference))
    if not found:
        return
    needs = get_needs_view(app)
    documented = _documented_ids(app)
    for node in found:
        rid: str = node["requirement"]
        need = needs.get(rid)
        new: nodes.Node = nodes.Text(rid)
        if need is not None and need["docname"]:
            # A builder without links (text, man) raises NoUri: the ID alone is what it shows.
            with contextlib.suppress(NoUri):
                new = make_refnode(app.builder, docname, need["docname"], rid, new, need["title"])
        elif rid not in documented:
            logger.warning(
                "unknown requirement %s: the requirements document does not define it",
                rid,
                location=node,
                type="kadspec",
                subtype="link",
            )
        # Otherwise the requirement is documented but on no page: kadspec_spec has said so.
        node.replace_self(new)


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the directives, the requirement role and its link resolution."""
    app.setup_extension("kadspec_spec")
    app.add_role("kadspec-req", RequirementRole())
    app.add_node(RequirementReference)
    app.connect("doctree-resolved", _resolve_requirement_links)
    app.add_directive("kadspec-modules", KadspecModules)
    app.add_directive("kadspec-actions", KadspecActions)
    app.add_directive("kadspec-policy", KadspecPolicy)
    app.add_directive("kadspec-mutants", KadspecMutants)
    app.add_directive("kadspec-scenarios", KadspecScenarios)
    app.add_directive("kadspec-traceability", KadspecTraceability)
    app.add_directive("kadspec-proofs", KadspecProofs)
    app.add_directive("kadspec-conformance", KadspecConformance)
    app.add_directive("kadspec-example", KadspecExample)
    app.add_directive("kadspec-try", KadspecTry)
    app.add_directive("kadspec-diagram", KadspecDiagram)
    app.add_directive("kadspec-sequences", KadspecSequences)
    app.add_directive("kadspec-counterexample", KadspecCounterexample)
    app.add_node(
        DiagramImage,
        html=(_visit_diagram_html, None),
        latex=(_skip_diagram, None),
        text=(_skip_diagram, None),
        man=(_skip_diagram, None),
        texinfo=(_skip_diagram, None),
    )
    app.add_css_file("kadspec.css")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
