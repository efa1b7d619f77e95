"""Reference node processes for the tests (`kadspec node --json-log`): start, read, command, stop.

Every process is started in a session of its own, so :meth:`NodeProcess.kill` can end it and
anything it started by its process group, and :func:`running_nodes` kills every process it
started when the test ends, passed or failed. Not a test module: test_node.py and
test_loopback.py import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kadspec.impl.node import content_key

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
COMMAND = [sys.executable, "-m", "kadspec", "node", "--json-log"]
#: the same node without the kadspec command group's imports: quicker to start
MODULE_COMMAND = [sys.executable, "-m", "kadspec.impl.node", "--json-log"]

Event = dict[str, Any]


class NodeProcess:
    """One ``kadspec node --json-log`` process; its events are collected as they arrive."""

    def __init__(self, *args: str, listen: str = LOOPBACK) -> None:
        self.args = args
        self.process = subprocess.Popen(
            [*COMMAND, "--listen", listen, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: kill() reaches all it started
        )
        self.events: list[Event] = []
        self.stderr: list[str] = []
        self.addr = ""
        self.peer_hex = ""
        threading.Thread(target=self._read_events, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_events(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.events.append({"event": "not-json", "line": line})

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def wait_listening(self, timeout: float = 60) -> NodeProcess:
        listening = self.wait_for(lambda e: e["event"] == "node.listening", timeout)
        self.addr = listening["addrs"][0]
        self.peer_hex = listening["peer"]
        return self

    def named(self, name: str) -> list[Event]:
        return [e for e in list(self.events) if e["event"] == name]

    def wait_for(self, match: Callable[[Event], bool], timeout: float = 60) -> Event:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            events = list(self.events)
            for event in events[seen:]:
                if match(event):
                    return event
            seen = len(events)
            if self.process.poll() is not None:
                time.sleep(0.2)  # let the readers drain the pipes
                if len(self.events) == seen:
                    raise AssertionError(
                        f"node {self.args} exited ({self.process.returncode}): "
                        f"{''.join(self.stderr)[-2000:]}"
                    )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s; last events: {events[-5:]}")
            time.sleep(0.05)

    def command(self, *lines: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("".join(line + "\n" for line in lines))
        self.process.stdin.flush()

    def stats(self, timeout: float = 30) -> Event:
        before = len(self.named("node.stats"))
        self.command("stats")
        self.wait_for(lambda e: e["event"] == "node.stats", timeout)
        deadline = time.monotonic() + timeout
        while len(self.named("node.stats")) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.named("node.stats")[-1]

    def stored(self) -> set[tuple[str, str]]:
        """(provider hex, key hex) of every record this node logged as stored."""
        return {(e["provider"], e["key"]) for e in self.named("record.stored")}

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM to this process (by its pid); its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL to the process group this node leads, if it is still running."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


@contextlib.contextmanager
def running_nodes() -> Iterator[list[NodeProcess]]:
    """A list to put started nodes in; every one is killed at the end, whatever happens."""
    nodes: list[NodeProcess] = []
    try:
        yield nodes
    finally:
        for node in nodes:
            node.kill()


def key_hex(text: str) -> str:
    """How the JSON log writes the kad key of a text key (the key rule)."""
    return content_key(text).hex()


def provide_settled(key: str) -> Callable[[Event], bool]:
    """Matches the provide outcome for a text key that ends it: a success or a final failure."""
    wanted = key_hex(key)
    return lambda e: (
        e["event"] == "provide.outcome" and e["key_hex"] == wanted and (e["ok"] or e["final"])
    )


def find_outcome(key: str) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "find.outcome" and e["key"] == key
