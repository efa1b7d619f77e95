"""The command line as a user meets it: exit codes, one-line errors, JSON reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def kadspec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kadspec", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_help_teaches_the_commands() -> None:
    result = kadspec("--help")
    assert result.returncode == 0
    for command in ("check", "mutants", "verify", "list"):
        assert command in result.stdout


def test_check_writes_every_requirement_with_its_status(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = kadspec(
        "check", "--scenario", "client-joins", "--scenario", "mode-change", "--json", str(report)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert data["ok"] is True
    statuses = {r["id"]: r["status"] for r in data["requirements"]}
    assert len(statuses) >= 30
    assert set(statuses.values()) == {"holds"}


def test_check_of_a_mutant_exits_1_with_a_counterexample(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = kadspec(
        "check",
        "--policy",
        "identify-addresses-not-routed",
        "--scenario",
        "join",
        "--json",
        str(report),
    )
    assert result.returncode == 1
    assert "ADDR-06" in result.stdout and "UnroutablePeer" in result.stdout
    assert "  1. n0 starts" in result.stdout
    data = json.loads(report.read_text())
    assert data["counterexample"]["requirements"] == ["ADDR-06"]
    assert data["counterexample"]["itf"]["states"][0]["action"] == "init"


def test_mutants_json_has_one_entry_per_mutant(tmp_path: Path) -> None:
    report = tmp_path / "m.json"
    result = kadspec(
        "mutants",
        "--only",
        "provide-before-ready-error-dropped",
        "--only",
        "observed-address-promoted",
        "--json",
        str(report),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    entries = json.loads(report.read_text())["mutants"]
    assert [e["name"] for e in entries] == [
        "provide-before-ready-error-dropped",
        "observed-address-promoted",
    ]
    for entry in entries:
        assert entry["detected"] and entry["expected"] in entry["violated"]
        assert {"source", "counterexample_length", "seconds", "engine"} <= set(entry)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["check", "--policy", "nope"], "unknown policy 'nope'"),
        (["check", "--scenario", "nope"], "unknown scenario 'nope'"),
        (["check", "--max-states", "0"], "--max-states"),
        (["mutants", "--only", "nope"], "unknown mutant 'nope'"),
        (["check", "--bogus"], "No such option"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    result = kadspec(*args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_an_out_of_range_configuration_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "net.toml"
    config.write_text("horizon = 3\n[[node]]\nid = 99\n[[node]]\nid = 3\nbootstrap = [0]\n")
    result = kadspec("check", "--config", str(config))
    assert result.returncode == 2
    assert "nodes[0].id: 99 does not fit in 4 bits" in result.stderr
    config.write_text("horizon = 30\n[[node]]\nid = 9\n")
    result = kadspec("check", "--config", str(config))
    assert result.returncode == 2 and "horizon: 30 is outside 0..12" in result.stderr


def test_a_user_network_is_explored(tmp_path: Path) -> None:
    config = tmp_path / "net.toml"
    config.write_text(
        'horizon = 2\n[[node]]\nid = 8\nmode = "server"\n[[node]]\nid = 3\nbootstrap = [0]\n'
    )
    result = kadspec("check", "--scenario", "nat-joins", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "net" in result.stdout
