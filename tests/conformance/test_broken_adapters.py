"""A broken adapter never breaks the runner: each way to be broken ends in one clear message.

The adapters are ``tests/conformance/adapters/fake.py FAULT`` (standard library only, so each
case costs a process start, not a libp2p host). Every test also checks that the client left no
process behind; test_no_process_is_left_behind covers a grandchild and an adapter that ignores
SIGTERM.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from kadspec.conformance.client import AdapterClient, AdapterError

FAKE = Path(__file__).parent / "adapters" / "fake.py"
START = {"node": "a", "mode": "server", "listen": "/ip4/127.0.0.1/tcp/0", "bootstrap": []}


def descendants() -> set[int]:
    """Our own descendants only: xdist workers are siblings, not children."""
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    before = descendants()
    yield
    deadline = time.monotonic() + 5
    while descendants() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    left = descendants() - before
    assert not left, f"processes left behind: {left}"


def client(fault: str) -> AdapterClient:
    return AdapterClient(
        [sys.executable, str(FAKE), fault], name=f"fake {fault}", hello_timeout=10, close_step=0.5
    )


def test_a_correct_adapter_is_recorded_in_order(no_leftovers: None) -> None:
    with client("none") as adapter:
        assert adapter.hello is not None and adapter.hello.implementation == "fake-none"
        assert adapter.call("start", START)["peer_id"].startswith("12D3")
        assert adapter.call("snapshot", {"node": "a"})["mode"] == "server"
    kinds = [(e.kind, e.payload.get("op") or e.payload.get("event")) for e in adapter.entries]
    assert kinds[:3] == [("request", "start"), ("event", "mode_changed"), ("reply", None)]
    assert kinds[3:5] == [("request", "snapshot"), ("snapshot", None)]
    assert [e.seq for e in adapter.entries] == list(range(len(adapter.entries)))
    assert adapter.entries[4].request == adapter.entries[3].payload["id"]
    assert adapter.returncode == 0


@pytest.mark.parametrize(
    ("fault", "problem", "arrived"),
    [
        ("crash", "exited (status 1)", "RuntimeError: fake adapter crashed on purpose"),
        ("hang", "sent no reply to request #2 (snapshot) within 1 s", "last line from"),
        ("garbage", "broke the protocol: not JSON", "Segmentation fault (core dumped)"),
        ("wrong-id", "sent a reply to request #102, which was never sent", '"id": 102'),
        ("twice", "answered request #1 twice", '"id": 1'),
        ("bad-reply", "result/peer_id: 7 is not of type 'string'", '"peer_id": 7'),
    ],
)
def test_a_broken_adapter_ends_the_run_with_one_clear_message(
    fault: str, problem: str, arrived: str, no_leftovers: None
) -> None:
    started = time.monotonic()
    with client(fault) as adapter, pytest.raises(AdapterError) as raised:
        adapter.call("start", START, timeout=5)  # "twice" may break here already
        adapter.call("snapshot", {"node": "a"}, timeout=1)
        adapter.call("snapshot", {"node": "a"}, timeout=1)
    message = str(raised.value)
    assert message.startswith(f"adapter 'fake {fault}' "), message
    assert problem in message
    assert "last request: #" in message
    assert fault == "twice" or "snapshot" in message
    assert arrived in message
    assert time.monotonic() - started < 10
    # what arrived before the break is kept for the report
    assert adapter.entries[0].kind == "request" and adapter.entries[0].payload["op"] == "start"


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("no-hello", "sent no hello within 1 s"),
        ("old-protocol", "speaks 'kadspec-adapter/0'; this runner speaks 'kadspec-adapter/1'"),
    ],
)
def test_a_missing_or_foreign_hello_is_named(fault: str, problem: str, no_leftovers: None) -> None:
    adapter = AdapterClient(
        [sys.executable, str(FAKE), fault], name=fault, hello_timeout=1, close_step=0.5
    )
    try:
        with pytest.raises(AdapterError, match="no request sent yet") as raised:
            adapter.start()
        assert problem in str(raised.value)
    finally:
        adapter.close()


def test_an_adapter_that_cannot_start_is_named() -> None:
    adapter = AdapterClient(["/nonexistent/adapter", "--x"], close_step=0.5)
    with pytest.raises(AdapterError, match="'/nonexistent/adapter --x' could not be started"):
        adapter.start()
    adapter.close()


def test_a_soft_deadline_keeps_the_run_going_and_a_late_reply_is_still_recorded(
    no_leftovers: None,
) -> None:
    with client("none") as adapter:
        adapter.call("start", START)
        pending = adapter.submit("provide", {"node": "a", "key": "k"})
        # the fake answers at once; a zero soft deadline may or may not see it, never raises
        reply = adapter.wait(pending, 0.0, hard=False)
        assert reply is None or reply.ok
        assert adapter.wait(pending, 5) is not None


@pytest.mark.parametrize("fault", ["grandchild", "stubborn"])
def test_no_process_is_left_behind(fault: str) -> None:
    before = descendants()
    adapter = client(fault)
    adapter.start()
    deadline = time.monotonic() + 5
    while fault == "grandchild" and len(descendants() - before) < 2:
        assert time.monotonic() < deadline, "the grandchild never started"
        time.sleep(0.05)
    started = descendants() - before
    assert adapter.pid in started
    adapter.close()
    deadline = time.monotonic() + 5
    while descendants() & started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not descendants() & started, f"left behind: {descendants() & started}"
