"""A tiny adapter for the client's tests: correct by default, broken on request.

``python fake.py [FAULT]``; FAULT is one of the cases a runner must survive: ``crash`` (dies
with a traceback at the second request), ``hang`` (stops answering at the second request),
``garbage`` (prints a non-JSON line instead of the second reply), ``wrong-id`` (answers the
second request with another id), ``twice`` (answers the first request twice), ``no-hello``,
``old-protocol`` (hello with another version), ``bad-reply`` (a reply that breaks its schema),
``grandchild`` (starts a sleeping child process, then hangs), ``stubborn`` (ignores SIGTERM and
end of input, then hangs). Standard library only, so it starts fast.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

PEER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
T0 = time.monotonic()


def now_ms() -> int:
    return int((time.monotonic() - T0) * 1000)


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def result_for(op: str, args: dict[str, Any]) -> dict[str, Any]:
    if op == "start":
        return {"peer_id": PEER, "listen_addrs": ["/ip4/127.0.0.1/tcp/4001"]}
    if op == "provide":
        return {"outcome": "success", "count": 1, "reason": None}
    if op == "find_providers":
        return {"providers": []}
    if op == "snapshot":
        return {
            "peer_id": PEER,
            "mode": "server",
            "listen_addrs": ["/ip4/127.0.0.1/tcp/4001"],
            "external_addrs": [],
            "connections": [],
            "routing_table": [],
            "protocols": {},
            "provider_records": [],
            "time_ms": now_ms(),
        }
    return {}


def main() -> None:
    fault = sys.argv[1] if len(sys.argv) > 1 else "none"
    if fault == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if fault == "no-hello":
        time.sleep(3600)
    protocol = "kadspec-adapter/0" if fault == "old-protocol" else "kadspec-adapter/1"
    capabilities = {"auto_mode": False, "timings": False, "crash_restart": False, "events": True}
    send(
        {
            "type": "hello",
            "protocol": protocol,
            "implementation": f"fake-{fault}",
            "version": "0",
            "capabilities": capabilities,
        }
    )
    if fault == "grandchild":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        print(f"grandchild {child.pid}", file=sys.stderr, flush=True)
    count = 0
    for line in sys.stdin:
        request = json.loads(line)
        count += 1
        ident, op, args = request["id"], request["op"], request["args"]
        if fault in ("grandchild", "stubborn") or (fault == "hang" and count >= 2):
            continue
        if fault == "crash" and count >= 2:
            raise RuntimeError(f"fake adapter crashed on purpose at request {ident}")
        if fault == "garbage" and count >= 2:
            print("Segmentation fault (core dumped)", flush=True)
            continue
        if fault == "wrong-id" and count >= 2:
            ident += 100
        if fault == "bad-reply" and count >= 2:
            send({"type": "reply", "id": ident, "ok": True, "result": {"peer_id": 7}})
            continue
        if op == "start":
            send(
                {
                    "type": "event",
                    "node": args["node"],
                    "time_ms": now_ms(),
                    "event": "mode_changed",
                    "mode": "server",
                }
            )
        send({"type": "reply", "id": ident, "ok": True, "result": result_for(op, args)})
        if fault == "twice" and count == 1:
            send({"type": "reply", "id": ident, "ok": True, "result": result_for(op, args)})
        if op == "shutdown":
            return
    if fault == "stubborn":
        time.sleep(3600)


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        os._exit(1)
