"""Every requirement the reference node claims to implement is a real one."""

from __future__ import annotations

import pytest

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
