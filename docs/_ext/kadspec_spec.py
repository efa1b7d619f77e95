"""Render kadspec's normative requirements as sphinx-needs items.

``.. kadspec-requirements:: BOOT`` emits one ``req`` need for every requirement of group BOOT,
in the order of spec/requirements.toml, read through ``kadspec.spec``. The pages name groups,
never requirement IDs: an ID exists only in the TOML file.

The needs are produced by generating the reStructuredText of sphinx-needs' own ``req``
directive and parsing it in place, rather than by building nodes here. That keeps every check
sphinx-needs applies to a hand-written need (ID pattern, duplicate IDs, field schemas) in force,
and relies only on the directive syntax, which is sphinx-needs' most stable interface.

Each need shows the requirement's level and the reason for it, its normative source (kind,
document, section and the quoted phrase; for a robustness rule, the bug it prevents) and whether
the model checks it over a node's observable projection or over model internals, as
``kadspec.models.checks.observability`` says. The level, source kind and observability are
also need fields, so tables can list and filter them.

After reading, the build warns about every requirement whose group no page rendered, so with
``-W`` a requirement missing from the docs fails the build.

Config value ``kadspec_requirements_file`` (path, relative to conf.py) replaces the packaged
requirements document; the tests use it to render a variant with an extra requirement.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Set
from importlib import resources
from pathlib import Path
from typing import ClassVar, get_args

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.parsing import nested_parse_to_nodes
from sphinx.util.typing import ExtensionMetadata, OptionSpec
from sphinx_needs.api import add_field

from kadspec.spec import (
    GROUPS,
    SOURCE_KINDS,
    SPEC_DOCUMENTS,
    Level,
    Requirement,
    Source,
    SpecError,
    parse_requirements,
    requirements,
)

__all__ = [
    "KadspecRequirements",
    "load_requirements",
    "need_source",
    "observability_of",
    "setup",
    "source_lines",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "kadspec_requirements_file"

# Attribute on the build environment: group -> docname that rendered it. The environment is
# pickled between incremental builds, so this survives exactly as long as the pages it describes.
_RENDERED = "kadspec_rendered_groups"

# Every ASCII punctuation character is escaped: a backslash before any of them is a literal in
# reStructuredText, and requirement text is prose, not markup, so `*`, `_` or a leading `-`
# must never turn into emphasis, a reference or a list.
_PUNCTUATION = re.compile(f"([{re.escape(string.punctuation)}])")

# The keywords are the levels the loader accepts, and count only in capitals (RFC 8174). The
# longer forms come first so that "MUST NOT" is marked as one keyword, not as "MUST" and "NOT".
_KEYWORDS = sorted(get_args(Level), key=len, reverse=True)
_KEYWORD = re.compile(rf"\b({'|'.join(_KEYWORDS)})\b")


def load_requirements(config_file: str) -> tuple[Mapping[str, Requirement], Path | None]:
    """The requirements to render and the file they came from (None if not on disk).

    An empty ``config_file`` means the packaged spec/requirements.toml. Raises `SpecError`
    (naming the bad field) or `OSError` when the document cannot be used.
    """
    if config_file:
        path = Path(config_file)
        return parse_requirements(path.read_text("utf-8")), path
    packaged = resources.files("kadspec.spec").joinpath("requirements.toml")
    # In a strict editable install the packaged file is a symlink into spec/; resolving it makes
    # Sphinx watch the file people actually edit.
    on_disk = Path(str(packaged)).resolve() if isinstance(packaged, Path) else None
    return requirements(), on_disk


def _one_line(text: str) -> str:
    # A line break would end the need directive's indented block in the middle of a field.
    return " ".join(text.split())


def _escape(text: str) -> str:
    return _PUNCTUATION.sub(r"\\\1", _one_line(text))


def _normative(text: str) -> str:
    """Text escaped for reStructuredText, with its RFC 2119 keywords in bold."""
    return _KEYWORD.sub(r"**\1**", _escape(text))


# Where each spec document is read on GitHub. The loader accepts only these documents, so a
# missing entry here is a programming error, not a data error.
_DOCUMENT_URLS = {
    "libp2p-spec": "https://github.com/libp2p/specs/blob/master/",
    "ipfs-spec": "https://github.com/ipfs/specs/blob/main/",
}
_REPOSITORIES = {"libp2p-spec": "libp2p/specs", "ipfs-spec": "ipfs/specs"}
_SOURCE_KIND_NAMES = {
    "libp2p-spec": "libp2p spec",
    "ipfs-spec": "IPFS Kademlia DHT spec",
    "robustness": "kadspec robustness rule",
}

OBSERVABILITY = ("observable", "internal")
_OBSERVABILITY_TEXT = {
    "observable": "observable: checked over what a running node can show",
    "internal": "internal: checked over model internals (timers, lookup bookkeeping, backoff)",
}


def _spec_sentence(source: Source) -> str:
    """The cited document as a link, its section and the quoted phrase."""
    # The document is one of the loader's fixed list (SPEC_DOCUMENTS), so its path is safe as
    # link text; the section and phrase are prose and are escaped. A robustness rule's related
    # sentence may come from either repository, so the document decides, not the kind.
    kind = next(k for k, docs in SPEC_DOCUMENTS.items() if source.document in docs)
    url = _DOCUMENT_URLS[kind] + source.document
    link = f"`{_REPOSITORIES[kind]} {source.document} <{url}>`__"
    return f"{link}, section '{_escape(source.section)}': \"{_escape(source.phrase)}\""


def source_lines(req: Requirement) -> list[str]:
    """The lines that state a requirement's level, its reason and its normative source."""
    source = req.source
    lines = [
        f"   *Level:* **{req.level}**. {_escape(req.level_reason)}",
        "",
        f"   *Source:* {_SOURCE_KIND_NAMES[source.kind]}"
        + (f", {_spec_sentence(source)}" if source.spec_backed else "."),
        "",
    ]
    if not source.spec_backed:
        lines += [f"   *Prevents:* {_escape(source.prevents)}", ""]
        if source.everywhere:
            lines += [f"   *A bug in every implementation:* {_escape(source.everywhere)}", ""]
        if source.phrase:
            lines += [f"   *Related spec text:* {_spec_sentence(source)}", ""]
    return lines


def need_source(req: Requirement, observability: str) -> list[str]:
    """The reStructuredText lines of one ``req`` need: fields, text, level, source, rationale."""
    lines = [
        # sphinx-needs renders the title as plain text, so it is not escaped.
        f".. req:: {_one_line(req.title)}",
        f"   :id: {req.id}",
        f"   :level: {req.level}",
        f"   :check: {req.check}",
        f"   :group: {req.group}",
        f"   :source_kind: {req.source_kind}",
        f"   :observability: {observability}",
        "",
        f"   {_normative(req.text)}",
        "",
        *source_lines(req),
        f"   *Checked:* {req.check}, {_OBSERVABILITY_TEXT[observability]}.",
        "",
        f"   *Rationale:* {_escape(req.rationale)}",
        "",
    ]
    if req.sources:
        lines += ["   *References:*", ""]
        lines.extend(f"   - {_escape(source)}" for source in req.sources)
        lines.append("")
    return lines


def observability_of(req: Requirement, packaged: bool) -> str:
    """Whether the model checks ``req`` over the observable projection or over internals.

    The answer comes from ``kadspec.models.checks.observability``. For a requirement of the
    packaged spec a missing or unexpected answer is an error; a requirement that exists only in
    a document given by ``kadspec_requirements_file`` has no check, so it is ``internal``.
    """
    from kadspec.models import checks

    try:
        answer = str(checks.observability(req.id))
    except (LookupError, ValueError):  # UnknownRequirement is a ValueError
        if packaged:
            raise
        return "internal"
    if answer not in OBSERVABILITY:
        raise SpecError(f"{req.id}: observability {answer!r} is not one of {OBSERVABILITY}")
    return answer


def _rendered_groups(env: BuildEnvironment) -> dict[str, str]:
    rendered: dict[str, str] | None = getattr(env, _RENDERED, None)
    if rendered is None:
        rendered = {}
        setattr(env, _RENDERED, rendered)
    return rendered


class KadspecRequirements(SphinxDirective):
    """``.. kadspec-requirements:: GROUP``: every requirement of GROUP as a ``req`` need."""

    required_arguments = 1
    has_content = False
    option_spec: ClassVar[OptionSpec] = {}

    def run(self) -> list[nodes.Node]:
        group = self.arguments[0]
        if group not in GROUPS:
            raise self.error(f"unknown requirement group {group!r}; expected one of {GROUPS}")
        config_file: str = self.config[CONFIG_FILE]
        try:
            reqs, path = load_requirements(config_file)
        except (SpecError, OSError) as err:
            where = config_file or "kadspec.spec requirements.toml"
            raise self.error(f"cannot load requirements from {where}: {err}") from None
        if path is not None:
            # Without this an incremental build would keep pages rendered from a stale TOML.
            self.env.note_dependency(str(path))

        rendered = _rendered_groups(self.env)
        if rendered.get(group, self.env.docname) != self.env.docname:
            raise self.error(f"group {group} is already rendered in {rendered[group]!r}")
        rendered[group] = self.env.docname

        # Every generated line is attributed to this directive, so a warning about a need points
        # at the page that rendered it, and all needs of a group share its line number.
        source, line = self.get_source_info()
        content = StringList()
        for req in reqs.values():
            if req.group == group:
                try:
                    seen = observability_of(req, packaged=not config_file)
                except (LookupError, SpecError, AttributeError) as err:
                    message = f"{req.id}: cannot tell whether it is observable: {err}"
                    raise self.error(message) from None
                for text in need_source(req, seen):
                    content.append(text, source, (line or 1) - 1)
        return nested_parse_to_nodes(self.state, content, allow_section_headings=False)


def _resolve_config_file(app: Sphinx, config: Config) -> None:
    # Resolved once against conf.py's folder, as Sphinx resolves its own paths, so that the
    # directive does not depend on the current directory of whoever runs the build.
    if config[CONFIG_FILE]:
        config[CONFIG_FILE] = str((Path(app.confdir) / config[CONFIG_FILE]).resolve())


def _purge_doc(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    rendered = _rendered_groups(env)
    for group in [g for g, doc in rendered.items() if doc == docname]:
        del rendered[group]


def _merge_info(
    app: Sphinx, env: BuildEnvironment, docnames: Set[str], other: BuildEnvironment
) -> None:
    # Parallel reads: each worker recorded the groups of the pages it read.
    _rendered_groups(env).update(
        (group, doc) for group, doc in _rendered_groups(other).items() if doc in docnames
    )


def _check_every_requirement_rendered(app: Sphinx, env: BuildEnvironment) -> None:
    try:
        reqs, _ = load_requirements(app.config[CONFIG_FILE])
    except (SpecError, OSError):
        return  # the directive that tried to load them has already reported why
    rendered = _rendered_groups(env)
    missing = [req for req in reqs.values() if req.group not in rendered]
    if missing:
        groups = [group for group in GROUPS if any(req.group == group for req in missing)]
        logger.warning(
            "requirements missing from the docs: %s (no page has "
            "'.. kadspec-requirements:: GROUP' for %s)",
            ", ".join(req.id for req in missing),
            ", ".join(groups),
            type="kadspec",
            subtype="missing",
        )


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the directive, the need fields, the config value and the completeness check."""
    app.setup_extension("sphinx_needs")
    # The loader's own values, so the docs cannot accept a kind the spec would reject.
    add_field(
        "source_kind",
        "Kind of the normative source: libp2p-spec, ipfs-spec or robustness",
        schema={"type": "string", "enum": list(SOURCE_KINDS)},
    )
    add_field(
        "observability",
        "Whether the model checks it over a node's observable projection or over internals",
        schema={"type": "string", "enum": list(OBSERVABILITY)},
    )
    app.add_config_value(CONFIG_FILE, "", "env", types=frozenset({str}))
    app.connect("config-inited", _resolve_config_file)
    app.add_directive("kadspec-requirements", KadspecRequirements)
    app.connect("env-purge-doc", _purge_doc)
    app.connect("env-merge-info", _merge_info)
    app.connect("env-check-consistency", _check_every_requirement_rendered)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
