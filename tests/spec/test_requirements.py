"""The requirements file: well-formed, and every ID has a check and every check a real ID."""

from __future__ import annotations

import pytest

from kadspec.models.requirements_registry import REGISTRY, requirement
from kadspec.reports import checks_by_requirement
from kadspec.spec import GROUPS, SpecError, UnknownRequirement, parse_requirements, requirements


def test_at_least_thirty_requirements_in_every_group() -> None:
    reqs = requirements()
    assert len(reqs) >= 30
    assert {r.group for r in reqs.values()} == set(GROUPS)


def test_every_requirement_has_a_check_of_its_kind() -> None:
    table = checks_by_requirement()
    for rid, req in requirements().items():
        kinds = {name.split(":")[0] for name in table[rid]}
        assert table[rid], f"{rid} has no check"
        assert req.check in kinds, f"{rid} is a {req.check} requirement, checked only by {kinds}"


def test_every_marked_function_names_a_real_requirement() -> None:
    assert set(REGISTRY) <= set(requirements())


def test_an_unknown_id_fails_at_decoration_naming_it() -> None:
    with pytest.raises(UnknownRequirement, match="BOOT-99"):
        requirement("BOOT-99")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('[[requirement]]\nid = "BOOT-01"\n', "missing field 'level'"),
        (
            '[[requirement]]\nid = "boot1"\nlevel = "MUST"\ncheck = "invariant"\ntitle = "t"\n'
            'text = "x MUST y"\nrationale = "r"\nsources = ["s"]\n',
            "not GROUP-NN",
        ),
        (
            '[[requirement]]\nid = "BOOT-01"\nlevel = "MUST"\ncheck = "invariant"\ntitle = "t"\n'
            'text = "x should y"\nrationale = "r"\nsources = ["s"]\n',
            "level keyword",
        ),
        (
            '[[requirement]]\nid = "BOOT-01"\nlevel = "MUST"\ncheck = "sometimes"\ntitle = "t"\n'
            'text = "x MUST y"\nrationale = "r"\nsources = ["s"]\n',
            "check 'sometimes'",
        ),
    ],
)
def test_malformed_requirements_are_rejected_by_field(document: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_requirements(document)


def test_duplicate_ids_are_rejected() -> None:
    one = (
        '[[requirement]]\nid = "BOOT-01"\nlevel = "MUST"\ncheck = "invariant"\ntitle = "t"\n'
        'text = "x MUST y"\nrationale = "r"\nsources = ["s"]\n'
    )
    with pytest.raises(SpecError, match="defined twice"):
        parse_requirements(one + one)
