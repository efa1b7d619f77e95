"""A missing npm or py-libp2p skips the interop tests on a developer's machine, fails them in CI."""

from __future__ import annotations

import builtins
import shutil
from typing import Any

import pytest
from interop_harness import adapter_command_for_test


def without_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)


def without_libp2p(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def refuse_libp2p(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "libp2p" or name.startswith("libp2p."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse_libp2p)


@pytest.mark.parametrize(
    ("adapter", "remove"), [("js-libp2p", without_node), ("py-libp2p", without_libp2p)]
)
def test_missing_dependency_skips_outside_ci_and_fails_in_ci(
    adapter: str, remove: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    remove(monkeypatch)
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        adapter_command_for_test(adapter)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        adapter_command_for_test(adapter)
