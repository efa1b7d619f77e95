"""Processes for the interop tests and the loopback benchmark: adapters and reference nodes.

- :class:`AdapterProcess` runs an adapter of protocol ``kadspec-adapter/1`` (js-libp2p or
  py-libp2p), sends requests, waits for their replies, keeps the events, and checks every line
  the adapter writes against the protocol's JSON Schemas (``problems`` lists what broke them).
- :class:`ReferenceNode` runs ``python -m kadspec node --json-log`` and reads its log.

Every process is started by this module and stopped by its own pid (``close``), whatever
happened; both classes are context managers. Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
JS_ADAPTER_DIR = ROOT / "conformance" / "adapters" / "js-libp2p"
LOOPBACK = "/ip4/127.0.0.1/tcp/0"
#: how long ``npm ci`` may take when a test has to install the js-libp2p adapter itself
NPM_INSTALL_TIMEOUT_S = 180.0

Record = dict[str, Any]


class Missing(Exception):
    """A dependency the interop tests need is not installed (npm, node, py-libp2p)."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def js_adapter_command() -> list[str]:
    """The js-libp2p adapter's command line, installing its npm dependencies when missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise Missing("node and npm are needed for the js-libp2p adapter")
    if not (JS_ADAPTER_DIR / "node_modules" / "libp2p" / "package.json").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_ADAPTER_DIR,
            check=True,
            timeout=NPM_INSTALL_TIMEOUT_S,
            stdout=subprocess.DEVNULL,
        )
    return [node, str(JS_ADAPTER_DIR / "adapter.mjs")]  # it loads its Node 20 polyfill itself


def py_adapter_command() -> list[str]:
    try:
        import libp2p  # noqa: F401
    except ImportError:
        raise Missing("py-libp2p is needed: pip install 'kadspec[node]'") from None
    return [sys.executable, "-m", "kadspec.conformance.adapters.py_libp2p"]


ADAPTERS: dict[str, Callable[[], list[str]]] = {
    "js-libp2p": js_adapter_command,
    "py-libp2p": py_adapter_command,
}


def adapter_command_for_test(name: str) -> list[str]:
    """The adapter's command for a test: a missing dependency skips it on a developer's
    machine and fails it under ``CI=true`` (CI must run interop, never skip it)."""
    import pytest

    try:
        return ADAPTERS[name]()
    except Missing as missing:
        if in_ci():
            pytest.fail(f"{missing} (CI=true: interop must run, not skip)")
        pytest.skip(str(missing))


def base58_peer(hex_id: str) -> str:
    """A peer ID as the reference node logs it (hex of its bytes) in libp2p's text form."""
    from kadspec.conformance.protocol import base58

    return str(base58(bytes.fromhex(hex_id)))


class _Child:
    """A child process with piped standard input and output and its standard error kept in a
    temporary file (shown when a test fails); ``close`` stops it by its pid."""

    def __init__(self, command: list[str]) -> None:
        self.argv = command
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed by close())
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
            cwd=ROOT,
        )

    def write_line(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stderr_tail(self, lines: int) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return "".join(self.stderr.readlines()[-lines:])

    def stop(self, grace_s: float) -> None:
        try:
            _stop_process(self.process, grace_s)
        finally:
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            self.stderr.close()


def _stop_process(process: subprocess.Popen[Any], grace_s: float) -> None:
    """SIGTERM, a grace period, then SIGKILL; always by the process's own pid."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class _Lines:
    """Reads a process's standard output on a thread, one JSON object per line."""

    def __init__(self, stream: IO[str], on_record: Callable[[Record], None]) -> None:
        self.records: list[Record] = []
        self.unreadable: list[str] = []
        self.changed = threading.Condition()
        self._on_record = on_record
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()
        self.ended = False

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                record = json.loads(line)
            except ValueError:
                with self.changed:
                    self.unreadable.append(line.rstrip("\n"))
                continue
            if not isinstance(record, dict):
                self.unreadable.append(line.rstrip("\n"))
                continue
            record["_received"] = time.monotonic()
            with self.changed:
                self._on_record(record)
                self.records.append(record)
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def wait_for(self, found: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while True:
                result = found()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    raise TimeoutError(f"no {what} within {timeout_s:.0f} s")
                self.changed.wait(min(left, 0.5))


class AdapterProcess(_Child):
    """One adapter process speaking ``kadspec-adapter/1`` on its standard input and output."""

    def __init__(self, command: list[str], hello_timeout_s: float = 60.0) -> None:
        super().__init__(command)
        self.problems: list[str] = []
        self.replies: dict[int, Record] = {}
        self.events: list[Record] = []
        self._ops: dict[int, str] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        assert self.process.stdout is not None
        self.lines = _Lines(self.process.stdout, self._check)
        try:
            self.hello: Record = self.lines.wait_for(
                lambda: next((r for r in self.lines.records if r.get("type") == "hello"), None),
                hello_timeout_s,
                f"hello from {' '.join(command)}",
            )
        except BaseException:
            self.close()
            raise

    def _check(self, record: Record) -> None:
        """Validate one line against the protocol's schemas and file it (under the lock)."""
        from kadspec.conformance.protocol import problems

        message = {k: v for k, v in record.items() if k != "_received"}
        op = self._ops.get(message["id"]) if isinstance(message.get("id"), int) else None
        self.problems.extend(problems(message, op))
        if message.get("type") == "reply" and isinstance(message.get("id"), int):
            self.replies[message["id"]] = record
        elif message.get("type") == "event":
            self.events.append(record)

    def send(self, op: str, **args: Any) -> int:
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            self._ops[ident] = op
            self.write_line(json.dumps({"type": "request", "id": ident, "op": op, "args": args}))
        return ident

    def wait_reply(self, ident: int, timeout_s: float) -> Record:
        reply: Record = self.lines.wait_for(
            lambda: self.replies.get(ident), timeout_s, f"reply to request {ident}"
        )
        return reply

    def request(self, op: str, timeout_s: float = 30.0, **args: Any) -> Record:
        """Send a request and return its result; AssertionError when it failed."""
        reply = self.wait_reply(self.send(op, **args), timeout_s)
        if reply.get("ok") is not True:
            raise AssertionError(f"{op} {args} failed: {reply.get('error')}\n{self.log_tail()}")
        result: Record = reply["result"]
        return result

    def log_tail(self, lines: int = 20) -> str:
        return self.stderr_tail(lines)

    def close(self) -> None:
        """Ask for shutdown, then stop the process by its pid whatever it answered."""
        try:
            if self.process.poll() is None and self.process.stdin is not None:
                ident = self.send("shutdown")
                self.wait_reply(ident, 10.0)
                self.process.wait(timeout=5)
        except (OSError, TimeoutError, subprocess.TimeoutExpired, ValueError):
            pass  # it did not shut down by itself: stopped by its pid below
        finally:
            self.stop(grace_s=3.0)

    def __enter__(self) -> AdapterProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReferenceNode(_Child):
    """``python -m kadspec node --json-log`` on 127.0.0.1, its JSON log read as it comes."""

    def __init__(
        self,
        bootstrap: Sequence[str] = (),
        mode: str = "server",
        provide: Sequence[str] = (),
        listen_timeout_s: float | None = 60.0,
    ) -> None:
        """Start the node; unless ``listen_timeout_s`` is None, wait until it listens."""
        command = [sys.executable, "-m", "kadspec", "node", "--listen", LOOPBACK, "--json-log"]
        command += ["--mode", mode]
        for addr in bootstrap:
            command += ["--bootstrap", addr]
        for key in provide:
            command += ["--provide", key]
        self.started = time.monotonic()
        super().__init__(command)
        assert self.process.stdout is not None
        self.lines = _Lines(self.process.stdout, lambda record: None)
        self.addrs: list[str] = []
        self.addr = self.peer_id = ""
        if listen_timeout_s is not None:
            try:
                self.wait_listening(listen_timeout_s)
            except BaseException:
                self.close()
                raise

    def wait_listening(self, timeout_s: float) -> None:
        """Wait for the node's listen addresses (``addr``: the first, with /p2p/)."""
        listening = self.wait_for(lambda r: r.get("event") == "node.listening", timeout_s)
        self.addrs = list(listening["addrs"])
        self.addr = self.addrs[0]
        self.peer_id = self.addr.rsplit("/p2p/", 1)[1]

    @property
    def records(self) -> list[Record]:
        return self.lines.records

    def wait_for(self, match: Callable[[Record], bool], timeout_s: float) -> Record:
        """The first log record that matches, waiting up to ``timeout_s``."""

        def found() -> Record | None:
            return next((r for r in self.lines.records if match(r)), None)

        try:
            record: Record = self.lines.wait_for(found, timeout_s, "matching log record")
        except TimeoutError as error:
            raise TimeoutError(f"{error}; reference node log:\n{self.log_tail()}") from None
        return record

    def command(self, line: str) -> None:
        """One line on the node's standard input: ``provide KEY``, ``find KEY`` ..."""
        self.write_line(line)

    def events(self, name: str) -> Iterator[Record]:
        return (r for r in list(self.lines.records) if r.get("event") == name)

    def log_tail(self, lines: int = 25) -> str:
        shown = [
            json.dumps({k: v for k, v in r.items() if k != "_received"})[:300]
            for r in self.lines.records[-lines:]
        ]
        return "\n".join(shown) + "\nstderr: " + self.stderr_tail(5)

    def close(self) -> None:
        self.stop(grace_s=5.0)

    def __enter__(self) -> ReferenceNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
