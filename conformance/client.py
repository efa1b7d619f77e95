"""The runner's side of the adapter protocol: one adapter process, spoken to safely.

:class:`AdapterClient` starts the adapter in its own process group, checks its hello (protocol
``kadspec-adapter/1``), numbers requests, waits for each reply with a deadline, validates every
line against its JSON Schema and records everything, time-stamped, as protocol
:class:`~kadspec.conformance.protocol.Entry` values, the raw material of a
:class:`~kadspec.conformance.protocol.Run`.

An adapter is someone else's code, so nothing it does may hang or crash the runner. A reader
thread takes its standard output line by line; the first line that breaks the protocol
(garbage, a schema violation, a reply to an id never sent or already answered), the end of its
output, or a hard deadline passing turns into one :class:`AdapterError` whose text names the
adapter, the last request and what arrived (with the tail of the adapter's standard error).
Every entry recorded up to then stays, so the runner can still judge and report.

:meth:`AdapterClient.close` always ends the process group: a polite ``shutdown``, then SIGTERM,
then SIGKILL. Live clients are also closed at interpreter exit, so a runner stopped by Ctrl-C or
SIGTERM (which the CLI turns into an exception) leaves no adapter behind.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Final

import attrs

from kadspec.conformance import protocol as p

#: how long an adapter may take to say hello (py-libp2p imports take a while on a busy machine)
HELLO_TIMEOUT_S: Final = 30.0
#: the default deadline of a control request (start, dial, snapshot, stop ...)
REQUEST_TIMEOUT_S: Final = 30.0
#: how long close() waits at each step (shutdown reply, exit after end of input, after SIGTERM)
CLOSE_STEP_S: Final = 3.0
#: how many lines of the adapter's standard error an error message quotes
STDERR_TAIL: Final = 8

_LIVE: set[AdapterClient] = set()
_LIVE_LOCK = threading.Lock()


class AdapterError(RuntimeError):
    """The adapter broke the protocol, exited, or missed a hard deadline; the run ends here.

    The text is the one message a person needs: the adapter, the last request, what arrived.
    """


@attrs.define(eq=False)
class Pending:
    """A request sent and not yet answered (or answered: ``reply`` is set)."""

    request: p.Request
    sent_ms: int
    done: threading.Event = attrs.Factory(threading.Event)
    reply: p.Reply | None = None
    timed_out: bool = False


def describe_command(command: Sequence[str]) -> str:
    return shlex.join(command)


class AdapterClient:
    """One adapter process. Use as a context manager, or call :meth:`start` and :meth:`close`.

    ``on_entry`` is called (from the reader thread) with every entry recorded, for live
    progress; it must be quick and must not raise.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        hello_timeout: float = HELLO_TIMEOUT_S,
        on_entry: Callable[[p.Entry], None] | None = None,
        stderr_log: IO[str] | None = None,
        close_step: float = CLOSE_STEP_S,
    ) -> None:
        self.command = list(command)
        self.name = name or describe_command(command)
        self.env = dict(env) if env is not None else None
        self.hello_timeout = hello_timeout
        self.on_entry = on_entry
        self.stderr_log = stderr_log
        self.close_step = close_step
        self.hello: p.Hello | None = None
        self.entries: list[p.Entry] = []
        self.returncode: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._t0 = time.monotonic()
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._next_id = 1
        self._pending: dict[int, Pending] = {}
        self._answered: set[int] = set()
        self._ops: dict[int, str] = {}
        self._hello_seen = threading.Event()
        self._broken: AdapterError | None = None
        self._ended = threading.Event()
        self._last_request: p.Request | None = None
        self._last_line: str | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._threads: list[threading.Thread] = []

    # --- life cycle --------------------------------------------------------------------------

    def __enter__(self) -> AdapterClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def now_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    def start(self) -> p.Hello:
        """Start the adapter and wait for its hello; AdapterError if it does not come."""
        try:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                start_new_session=True,  # its own process group: we stop all of it, it alone
            )
        except OSError as error:
            raise AdapterError(f"adapter {self.name!r} could not be started: {error}") from None
        self._t0 = time.monotonic()
        with _LIVE_LOCK:
            _LIVE.add(self)
        for target in (self._read_stdout, self._read_stderr):
            thread = threading.Thread(target=target, name=f"adapter-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if not self._hello_seen.wait(self.hello_timeout) or self.hello is None:
            self._raise_if_broken()
            raise self._error(f"sent no hello within {self.hello_timeout:g} s")
        return self.hello

    def close(self) -> None:
        """Stop the adapter and everything it started: shutdown, then SIGTERM, then SIGKILL."""
        process = self._process
        if process is None:
            return
        try:
            if process.poll() is None and self.hello is not None and self._broken is None:
                with contextlib.suppress(AdapterError):
                    self.request("shutdown", {}, timeout=self.close_step)
            self._close_stdin()
            if not _wait(process, self.close_step):
                _signal_group(process, signal.SIGTERM)
                if not _wait(process, self.close_step):
                    _signal_group(process, signal.SIGKILL)
                    _wait(process, self.close_step)
            # the leader is gone; anything it started in its group goes too
            _signal_group(process, signal.SIGKILL)
        finally:
            self.returncode = process.poll()
            for thread in self._threads:
                thread.join(timeout=self.close_step)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
            with _LIVE_LOCK:
                _LIVE.discard(self)

    def _close_stdin(self) -> None:
        assert self._process is not None
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()

    # --- requests ----------------------------------------------------------------------------

    def submit(self, op: str, args: Mapping[str, Any]) -> Pending:
        """Send a request; the reply arrives on the returned Pending (see :meth:`wait`)."""
        self._raise_if_broken()
        with self._lock:
            request = p.Request(self._next_id, op, dict(args))
            self._next_id += 1
            found = p.problems(request.to_json())
            if found:  # the runner's own mistake: say so rather than blame the adapter
                raise ValueError(f"request {op} {dict(args)}: " + "; ".join(found))
            pending = Pending(request, self.now_ms())
            self._pending[request.id] = pending
            self._ops[request.id] = op
            self._last_request = request
            self._record("request", request.node, request.to_json(), None, pending.sent_ms)
        line = (p.encode(request) + "\n").encode("utf-8")
        assert self._process is not None and self._process.stdin is not None
        try:
            with self._write_lock:
                self._process.stdin.write(line)
                self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            self._ended.wait(1.0)  # let the reader see the exit, for a better message
            self._raise_if_broken()
            raise self._break("stopped reading requests (its standard input is closed)") from None
        return pending

    def wait(self, pending: Pending, timeout: float, *, hard: bool = True) -> p.Reply | None:
        """The reply to ``pending``. When ``timeout`` passes: AdapterError if ``hard``, else None
        (the request stays open and a late reply is still accepted and recorded)."""
        end = time.monotonic() + timeout
        while not pending.done.wait(min(0.05, max(0.0, end - time.monotonic()))):
            self._raise_if_broken()
            if time.monotonic() >= end:
                if hard:
                    raise self._break(
                        f"sent no reply to request #{pending.request.id} ({pending.request.op}) "
                        f"within {timeout:g} s"
                    )
                pending.timed_out = True
                return None
        self._raise_if_broken()
        return pending.reply

    def request(
        self, op: str, args: Mapping[str, Any], timeout: float = REQUEST_TIMEOUT_S
    ) -> p.Reply:
        """Send one request and wait for its reply (hard deadline)."""
        reply = self.wait(self.submit(op, args), timeout)
        assert reply is not None
        return reply

    def call(
        self, op: str, args: Mapping[str, Any], timeout: float = REQUEST_TIMEOUT_S
    ) -> Mapping[str, Any]:
        """:meth:`request`, returning the result; an error reply raises AdapterError."""
        reply = self.request(op, args, timeout)
        if not reply.ok:
            assert reply.error is not None
            raise self._error(f"answered {op} with error {reply.error.kind}: {reply.error.message}")
        return reply.result

    @property
    def broken(self) -> AdapterError | None:
        return self._broken

    # --- the adapter's output ----------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        try:
            for raw in self._process.stdout:
                if self._broken is None:
                    self._take(raw)
        except (OSError, ValueError):
            pass
        # End of output: the adapter exited (or closed its standard output, which is as bad).
        # Wait briefly for its status and the rest of its standard error: a crash's traceback
        # is what makes the message useful.
        _wait(self._process, 1.0)
        for thread in self._threads[1:]:
            thread.join(timeout=1.0)
        with self._lock:
            if self._broken is None and "shutdown" not in self._answered_ops():
                status = self._process.poll()
                if status is None:
                    self._break("closed its standard output")
                else:
                    self._break(f"exited (status {status})")
        self._ended.set()
        self._hello_seen.set()
        self._wake_all()

    def _answered_ops(self) -> list[str]:
        return [self._ops[i] for i in self._answered if i in self._ops]

    def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        try:
            for raw in self._process.stderr:
                text = raw.decode("utf-8", errors="replace").rstrip("\n")
                self._stderr.append(text)
                if self.stderr_log is not None:
                    try:
                        self.stderr_log.write(text + "\n")
                        self.stderr_log.flush()
                    except (OSError, ValueError):
                        pass
        except (OSError, ValueError):
            pass

    def _take(self, raw: bytes) -> None:
        """One line of the adapter's standard output."""
        now = self.now_ms()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._last_line = raw.decode("utf-8", errors="replace")
            self._break("wrote a line that is not UTF-8")
            return
        if not text.strip():
            return
        with self._lock:
            self._last_line = text
            if self.hello is None:
                self._take_hello(text)
                return
            try:
                message = json.loads(text)
            except ValueError:
                message = None
            if isinstance(message, dict) and message.get("type") == "reply":
                ident = message.get("id")
                if isinstance(ident, int) and ident in self._answered:
                    self._break(f"answered request #{ident} twice")
                    return
                if isinstance(ident, int) and ident not in self._pending:
                    self._break(f"sent a reply to request #{ident}, which was never sent")
                    return
            try:
                parsed = p.parse_line(text, self._ops)
            except p.ProtocolError as error:
                self._break(f"broke the protocol: {error}")
                return
            if isinstance(parsed, p.Hello):
                self._break("sent a second hello")
            elif isinstance(parsed, p.Reply):
                self._take_reply(parsed, message or {}, now)
            else:
                self._record("event", parsed.node, message or {}, None, now)

    def _take_hello(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if (
            isinstance(message, dict)
            and message.get("type") == "hello"
            and message.get("protocol") != p.PROTOCOL
        ):
            self._break(f"speaks {message.get('protocol')!r}; this runner speaks {p.PROTOCOL!r}")
            self._hello_seen.set()
            return
        try:
            parsed = p.parse_line(text)
        except p.ProtocolError as error:
            self._break(f"did not start with a valid hello: {error}")
            self._hello_seen.set()
            return
        if not isinstance(parsed, p.Hello):
            self._break("did not start with a hello")
        else:
            self.hello = parsed
        self._hello_seen.set()

    def _take_reply(self, reply: p.Reply, message: Mapping[str, Any], now: int) -> None:
        pending = self._pending.pop(reply.id)
        self._answered.add(reply.id)
        request = pending.request
        if reply.ok and request.op == "snapshot":
            self._record("snapshot", request.node, reply.result, reply.id, now)
        else:
            self._record("reply", request.node, message, reply.id, now)
        pending.reply = reply
        pending.done.set()

    def _record(
        self, kind: p.EntryKind, node: str, payload: Mapping[str, Any], request: int | None, at: int
    ) -> None:
        with self._lock:
            entry = p.Entry(len(self.entries), at, kind, node, dict(payload), request)
            self.entries.append(entry)
        if self.on_entry is not None:
            # live progress is decoration; it never stops a run
            with contextlib.suppress(Exception):
                self.on_entry(entry)

    # --- failure -----------------------------------------------------------------------------

    def _error(self, problem: str) -> AdapterError:
        parts = [f"adapter {self.name!r} {problem}"]
        request = self._last_request
        if request is not None:
            args = json.dumps(dict(request.args), separators=(",", ":"))
            parts.append(f"last request: #{request.id} {request.op} {p.shorten(args, 120)}")
        else:
            parts.append("no request sent yet")
        if self._last_line is not None:
            parts.append(f"last line from the adapter: {p.shorten(self._last_line)}")
        else:
            parts.append("nothing arrived on its standard output")
        if self._stderr:
            tail = " | ".join(p.shorten(line, 200) for line in self._stderr)
            parts.append(f"its standard error ended with: {tail}")
        return AdapterError("; ".join(parts))

    def _break(self, problem: str) -> AdapterError:
        """Record the first protocol break (later ones are consequences) and wake waiters."""
        with self._lock:
            if self._broken is None:
                self._broken = self._error(problem)
        self._wake_all()
        return self._broken

    def _wake_all(self) -> None:
        with self._lock:
            for pending in self._pending.values():
                pending.done.set()

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise self._broken


def _wait(process: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        process.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the adapter's whole process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


@atexit.register
def _close_live_clients() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for client in live:
        try:
            client.close()
        except Exception:
            if client._process is not None:
                _signal_group(client._process, signal.SIGKILL)
