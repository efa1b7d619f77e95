"""Every requirement the reference node claims to implement is a real one."""

from __future__ import annotations

import pytest

import kadspec.impl.core
import kadspec.impl.records
import kadspec.impl.store  # imported for its markings
from kadspec.impl.requirements import IMPLEMENTED, implements
from kadspec.spec import UnknownRequirement, requirements


def test_every_implemented_id_is_defined_in_spec() -> None:
    assert IMPLEMENTED
    assert set(IMPLEMENTED) <= set(requirements())
    assert kadspec.impl.records.MemoryStore.get.__qualname__ in str(IMPLEMENTED["PROV-04"])


def test_an_unknown_id_fails_at_decoration() -> None:
    with pytest.raises(UnknownRequirement, match="PROV-99"):
        implements("PROV-99")


def test_the_core_marks_the_lifecycle_requirements_it_implements() -> None:
    assert kadspec.impl.core.Core.__name__ == "Core"
    for rid in ("BOOT-01", "BOOT-05", "RT-02", "RT-04", "PROV-02", "PROV-06", "PROV-08", "FIND-03"):
        assert rid in IMPLEMENTED, rid
