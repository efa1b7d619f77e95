"""The model pages render every action, knob, mutant, scenario and requirement from the code.

One real Sphinx build (``-W``, so any warning fails it) is shared by the page tests; everything
they look for comes from kadspec.models and kadspec.spec, never from this file. The tables are
read back cell by cell, so a test also sees where a name landed, not only that it is somewhere.
"""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import attrs
import pytest
from test_docs_build import DOCS, build_html

import kadspec.engines
import kadspec.models
from kadspec.main import main
from kadspec.models.actions import ACTIONS
from kadspec.models.mutants import MUTANTS
from kadspec.models.policy import SPEC, Policy, Retry
from kadspec.models.scenarios import SCENARIOS
from kadspec.spec import requirements

sys.path.insert(0, str(DOCS / "_ext"))
# The generator lives in docs/_ext, which the line above puts on the path.
import kadspec_model

pytestmark = [
    pytest.mark.filterwarnings("ignore:'sphinx.environment.BuildEnvironment.app' is deprecated"),
    pytest.mark.filterwarnings("ignore:The frontend.Option"),
]


@attrs.frozen
class Cell:
    text: str
    links: tuple[str, ...]  # the href of every link in the cell


Table = list[list[Cell]]


class _Tables(HTMLParser):
    """A page's tables as rows of cells (header row included), paragraphs and preformatted text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[Table] = []
        self.paragraphs: list[str] = []
        self.blocks: list[str] = []
        self._cell: list[str] | None = None
        self._links: list[str] = []
        self._paragraph: list[str] | None = None
        self._pre: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._links = [], []
        elif tag == "a" and self._cell is not None:
            self._links.append(dict(attrs).get("href") or "")
        elif tag == "p" and self._cell is None:
            self._paragraph = []
        elif tag == "pre":
            self._pre = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            text = " ".join("".join(self._cell).split())
            self.tables[-1][-1].append(Cell(text, tuple(self._links)))
            self._cell = None
        elif tag == "p" and self._paragraph is not None:
            self.paragraphs.append(" ".join("".join(self._paragraph).split()))
            self._paragraph = None
        elif tag == "pre" and self._pre is not None:
            self.blocks.append("".join(self._pre))
            self._pre = None

    def handle_data(self, data: str) -> None:
        if self._pre is not None:
            self._pre.append(data)
        elif self._cell is not None:
            self._cell.append(data)
        elif self._paragraph is not None:
            self._paragraph.append(data)


def parse(page: str) -> _Tables:
    parser = _Tables()
    parser.feed(page)
    return parser


def table(page: _Tables, *header: str) -> dict[str, list[Cell]]:
    """The page's table with this header row, as header -> column of cells."""
    for rows in page.tables:
        if [cell.text for cell in rows[0]] == list(header):
            return {name: [row[i] for row in rows[1:]] for i, name in enumerate(header)}
    raise AssertionError(f"no table with header {header}; found {[t[0] for t in page.tables]}")


def texts(column: list[Cell]) -> list[str]:
    return [cell.text for cell in column]


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, _Tables]:
    out = tmp_path_factory.mktemp("docs")
    code, warnings = build_html(out)
    assert code == 0, f"sphinx build failed:\n{warnings}"
    names = ("model", "mutants", "traceability", "architecture")
    return {name: parse((out / "html" / f"{name}.html").read_text("utf-8")) for name in names}


def test_transition_table_lists_every_action_with_linked_requirements(
    pages: dict[str, _Tables],
) -> None:
    actions = table(pages["model"], "action", "family", "requirements", "description")

    assert texts(actions["action"]) == list(ACTIONS)
    assert texts(actions["family"]) == [a.family.value for a in ACTIONS.values()]
    for cell, action in zip(actions["requirements"], ACTIONS.values(), strict=True):
        assert cell.text == ", ".join(action.requirements)
        assert cell.links == tuple(f"spec.html#{rid}" for rid in action.requirements)
    # Placeholders are named, never left as format fields.
    assert not [text for text in texts(actions["description"]) if "{" in text]


def test_policy_table_lists_every_knob_with_its_default_and_comment(
    pages: dict[str, _Tables],
) -> None:
    knobs = table(pages["model"], "knob", "spec default", "what it decides")

    fields = attrs.fields_dict(Policy)
    assert texts(knobs["knob"]) == list(fields)
    defaults = [kadspec_model.knob_value(field.default) for field in fields.values()]
    assert texts(knobs["spec default"]) == defaults
    comments = kadspec_model.policy_comments()
    for name, cell in zip(fields, knobs["what it decides"], strict=True):
        assert comments[name] in cell.text


def test_mutants_table_lists_every_mutant_and_what_it_breaks(pages: dict[str, _Tables]) -> None:
    header = ("mutant", "source", "what goes wrong", "must break", "scenario", "knobs changed")
    mutants = table(pages["mutants"], *header)

    assert texts(mutants["mutant"]) == list(MUTANTS)
    assert texts(mutants["must break"]) == [m.expected for m in MUTANTS.values()]
    assert texts(mutants["scenario"]) == [m.scenario for m in MUTANTS.values()]
    for cell, mutant in zip(mutants["knobs changed"], MUTANTS.values(), strict=True):
        assert cell.links == ()
        for knob in kadspec_model.changed_knobs(mutant.policy):
            assert knob in cell.text


def test_scenarios_table_lists_every_scenario(pages: dict[str, _Tables]) -> None:
    scenarios = table(pages["mutants"], "scenario", "nodes", "horizon", "faults", "summary")

    assert texts(scenarios["scenario"]) == list(SCENARIOS)
    assert texts(scenarios["nodes"]) == [str(len(s.config.nodes)) for s in SCENARIOS.values()]


def test_try_it_shows_runnable_commands_and_their_counterexample(
    pages: dict[str, _Tables],
) -> None:
    blocks = pages["mutants"].blocks
    [commands] = [b for b in blocks if "$ python3 -m kadspec mutants" in b]
    match = re.search(r"\$ (python3 -m kadspec check --policy (\S+) --scenario (\S+))", commands)
    assert match is not None, commands
    line, name, scenario = match.groups()
    mutant = MUTANTS[name]

    assert scenario == mutant.scenario
    # The counterexample shown is the one that command prints, down to the broken requirement.
    [trace] = [b for b in blocks if b.startswith("Counterexample (")]
    assert f"broken: {mutant.expected} " in trace
    with pytest.raises(SystemExit) as exited:
        main(line.split()[3:])
    assert exited.value.code == 1  # a requirement is violated, as the page says


def test_traceability_matrix_lists_every_requirement(pages: dict[str, _Tables]) -> None:
    header = ("requirement", "level", "check kind", "model checks", "shown necessary by")
    matrix = table(pages["traceability"], *header)

    reqs = requirements()
    assert texts(matrix["requirement"]) == list(reqs)
    assert [cell.links for cell in matrix["requirement"]] == [(f"spec.html#{r}",) for r in reqs]
    assert texts(matrix["level"]) == [req.level for req in reqs.values()]
    assert texts(matrix["check kind"]) == [req.check for req in reqs.values()]
    for rid, cell in zip(reqs, matrix["shown necessary by"], strict=True):
        names = [m.name for m in MUTANTS.values() if m.expected == rid]
        assert cell.text == (", ".join(names) or "none")
        assert cell.links == tuple(f"mutants.html#mutant-{name}" for name in names)


def test_traceability_names_the_requirements_no_mutant_shows_necessary(
    pages: dict[str, _Tables],
) -> None:
    untested = [rid for rid in requirements() if rid not in {m.expected for m in MUTANTS.values()}]
    [sentence] = [p for p in pages["traceability"].paragraphs if p.startswith("No mutant shows")]

    assert sentence.endswith(f"necessary yet: {', '.join(untested)}.")


def test_architecture_lists_every_model_and_engine_module(pages: dict[str, _Tables]) -> None:
    header = ["module", "what it holds"]
    tables = [rows for rows in pages["architecture"].tables if texts(rows[0]) == header]
    listed = [[row[0].text for row in rows[1:]] for rows in tables]

    assert listed == [
        sorted(kadspec_model.module_summaries(kadspec.models)),
        sorted(kadspec_model.module_summaries(kadspec.engines)),
    ]
    assert all(name.startswith("kadspec.engines.") for name in listed[1])


def test_traceability_shows_each_requirements_conformance(pages: dict[str, _Tables]) -> None:
    simulated = kadspec_model.simulated_conformance()
    column = f"{simulated.implementation} (simulated network)"
    # live reports in results/conformance/ (the README's conform command writes one) add columns
    header = ["requirement", "level", column]
    [rows] = [t for t in pages["traceability"].tables if texts(t[0])[:3] == header]
    matrix = {name: [row[i] for row in rows[1:]] for i, name in enumerate(header)}
    judged = {row.requirement: row.status for row in simulated.rows()}

    assert texts(matrix["requirement"]) == list(requirements())
    assert texts(matrix[column]) == [judged.get(rid, "not judged") for rid in requirements()]
    # the reference node conforms: no requirement fails on it
    assert "fail" not in texts(matrix[column])
    assert judged, "the simulated runs judged no requirement at all"


def test_live_conformance_reports_are_read_and_bad_ones_named(tmp_path: Path) -> None:
    folder = tmp_path / "results" / "conformance"
    folder.mkdir(parents=True)
    report = {
        "implementation": "js-libp2p",
        "version": "3.3.11",
        "requirements": [{"requirement": "RT-02", "status": "fail"}],
    }
    (folder / "js.json").write_text(json.dumps(report), "utf-8")

    [(name, statuses, path)] = kadspec_model.live_conformance(tmp_path)
    assert (name, statuses, path.name) == ("js-libp2p 3.3.11", {"RT-02": "fail"}, "js.json")

    (folder / "py.json").write_text('{"implementation": "py-libp2p"}', "utf-8")
    with pytest.raises(ValueError, match=r"py\.json: not a kadspec conform --json report"):
        kadspec_model.live_conformance(tmp_path)


# -- the generator's helpers, without a build -------------------------------------------------


def test_templates_name_their_placeholders() -> None:
    described = kadspec_model.describe_template("{node} dials bootstrap peer {peer}")
    assert described == "*node* dials bootstrap peer *peer*"


def test_template_text_is_escaped_not_parsed() -> None:
    described = kadspec_model.describe_template("{node} sends *x* (`y`)")
    assert described == r"*node* sends \*x\* \(\`y\`\)"


def test_knob_values_read_as_the_policy_comments_do() -> None:
    assert kadspec_model.knob_value(True) == "on"
    assert kadspec_model.knob_value(False) == "off"
    assert kadspec_model.knob_value(Retry.DROP_ERROR) == Retry.DROP_ERROR.value
    assert kadspec_model.knob_value(2) == "2"


def test_changed_knobs_compares_field_by_field() -> None:
    policy = attrs.evolve(SPEC, retry=Retry.DROP_ERROR, republish=False)
    assert kadspec_model.changed_knobs(policy) == {"retry": Retry.DROP_ERROR, "republish": False}
    assert kadspec_model.changed_knobs(SPEC) == {}


def test_kept_results_are_reused_for_the_same_sources_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result the build computed is read back by another build (a fresh wrapper stands for
    another process) while the sources are the same, and computed again once they change."""
    monkeypatch.setenv(kadspec_model.CACHE_ENV, str(tmp_path))
    calls: list[int] = []

    def expensive() -> dict[str, int]:
        calls.append(1)
        return {"states": len(calls)}

    assert kadspec_model.kept(expensive)() == {"states": 1}
    assert kadspec_model.kept(expensive)() == {"states": 1} and len(calls) == 1
    assert [p.name for p in tmp_path.glob("*.pickle")] == [
        f"expensive-{kadspec_model.source_digest()}.pickle"
    ]
    monkeypatch.setattr(kadspec_model, "source_digest", lambda: "0" * 64)  # the code changed
    assert kadspec_model.kept(expensive)() == {"states": 2}
    monkeypatch.setenv(kadspec_model.CACHE_ENV, "off")
    assert kadspec_model.kept(expensive)() == {"states": 3}


def test_the_source_digest_reads_every_kadspec_module() -> None:
    """Every kadspec module imported here comes from a folder the digest reads, so no change
    of the code the kept results came from goes unnoticed."""
    assert re.fullmatch(r"[0-9a-f]{64}", kadspec_model.source_digest())
    folders = kadspec_model.digested_folders()
    files = [m.__file__ for n, m in list(sys.modules.items()) if n.startswith("kadspec.")]
    # as imported, not resolved: a link tree's file is a link to the repository's
    loaded = [Path(file).absolute() for file in files if file is not None]
    assert len(loaded) > 50
    outside = [f for f in loaded if not any(folder in f.parents for folder in folders)]
    assert not outside
