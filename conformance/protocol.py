"""The adapter protocol ``kadspec-adapter/1``: typed messages, their JSON Schemas, and the Run.

An *adapter* is a process that starts and steers nodes of one libp2p implementation for the
conformance runner. It speaks JSON lines (UTF-8, one object per line): requests arrive on its
standard input; hello, replies and events leave on its standard output; standard error is free
for logs. This module is the one place the protocol is written down in code:

- the message kinds (:class:`Hello`, :class:`Request`, :class:`Reply`, :class:`Event`) and how a
  line becomes one (:func:`parse_line`, which names the field that is wrong);
- the operations (:data:`OPS`), event kinds (:data:`EVENTS`) and error kinds
  (:data:`ERROR_KINDS`), each with its JSON Schema (:func:`schema_documents`), shipped as
  ``kadspec/conformance/schemas/*.json`` for adapters in other languages; the files are written
  from here (``python -m kadspec.conformance.protocol --write DIR``) and a test keeps them equal;
- the record of a run (:class:`Run` of :class:`Entry`), which the judge and trace validation read.

Keys come in two forms. A *key* the runner chose is text (requests and outcomes); the node works
with the key's sha2-256 multihash (the key rule: CIDv1 raw's multihash of the UTF-8 bytes, or the
multihash of a ``bafk``/``bafy`` CID). A *wire key* is the base58btc text of the raw bytes a kad
message or a stored record carries: the target's peer ID for FIND_NODE, ``Qm...`` for content.
:func:`wire_key` turns a key into its wire key, so runs compare the two without guessing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import attrs

PROTOCOL: Final = "kadspec-adapter/1"

#: request ops, in the order the protocol page lists them
OPS: Final = (
    "start",
    "dial",
    "provide",
    "find_providers",
    "snapshot",
    "stop",
    "crash",
    "restart",
    "set_mode",
    "shutdown",
)

#: event kinds an adapter may emit (an adapter emits the ones its implementation can observe)
EVENTS: Final = (
    "connection_opened",
    "connection_closed",
    "identify_received",
    "routing_table_added",
    "routing_table_removed",
    "mode_changed",
    "kad_request_sent",
    "kad_request_received",
    "kad_response_sent",
    "kad_response_received",
    "provide_outcome",
    "find_outcome",
)

#: ``error.kind`` values of a failed reply, and when each is used
ERROR_KINDS: Final[Mapping[str, str]] = {
    "bad-request": "the request is malformed or names an impossible value",
    "unsupported": "the implementation lacks the capability the request needs",
    "unknown-node": "no node of that name was started (or it was stopped)",
    "failed": "the operation was attempted and did not succeed",
    "timeout": "the operation did not finish within its deadline",
}

#: kad message types as the events name them
KAD_TYPES: Final = ("FIND_NODE", "GET_PROVIDERS", "ADD_PROVIDER", "PING")

CAPABILITIES: Final[Mapping[str, str]] = {
    "auto_mode": "mode 'auto' follows confirmed reachability (else only server/client)",
    "timings": "start takes timing overrides (refresh, request deadline, record TTL ...)",
    "crash_restart": "crash and restart work; a restarted node keeps its identity and records",
    "events": "the adapter emits events (without them only snapshots can be judged)",
}

#: the ops each capability gates: a request needing a missing one gets ``unsupported``
OPS_NEEDING: Final[Mapping[str, str]] = {"crash": "crash_restart", "restart": "crash_restart"}

#: timing overrides ``start`` may carry (milliseconds); adapters ignore names they lack
TIMINGS: Final[Mapping[str, str]] = {
    "refresh_interval": "routing-table refresh period",
    "request_deadline": "deadline of one kad request",
    "record_ttl": "lifetime of a provider record",
    "republish_interval": "period of provider record republication",
    "retry_base": "first provide retry delay (doubles per attempt)",
    "retry_cap": "largest provide retry delay",
    "gc_interval": "period of expired-record collection",
}


class ProtocolError(ValueError):
    """A line from an adapter is not a valid message; the text names the field and the line."""


# --- keys --------------------------------------------------------------------------------------

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data: bytes) -> str:
    """base58btc, as libp2p prints peer IDs."""
    number = int.from_bytes(data, "big")
    text = ""
    while number:
        number, digit = divmod(number, 58)
        text = _B58[digit] + text
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + text


def unbase58(text: str) -> bytes:
    """The bytes of a base58btc text; ValueError names the bad character."""
    number = 0
    for char in text:
        digit = _B58.find(char)
        if digit < 0:
            raise ValueError(f"{char!r} is not a base58btc character in {text!r}")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def key_bytes(key: str) -> bytes:
    """The bytes a node provides and looks up for ``key`` (the key rule).

    A CID string stands for its multihash: CIDv1 in multibase base32 (``bafk...``/``bafy...``)
    or CIDv0 (``Qm...``, 46 characters). Any other text stands for the sha2-256 multihash of
    its UTF-8 bytes (``0x12 0x20`` + digest), which is what ``CID.createV1(raw, sha256(text))``
    provides in js-libp2p. The reference node's :func:`kadspec.impl.node.content_key` agrees.
    """
    if key.startswith("Qm") and len(key) == 46:  # CIDv0: base58btc of a sha2-256 multihash
        try:
            raw = unbase58(key)
        except ValueError:
            raw = b""
        if len(raw) == 34 and raw[:2] == b"\x12\x20":
            return raw
    if key.startswith(("bafk", "bafy")):
        try:
            body = key[1:].upper()
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
            version, at = _varint(raw, 0)
            _codec, at = _varint(raw, at)
            if version == 1 and at < len(raw):
                return raw[at:]
        except ValueError:
            pass  # not a CID after all: an ordinary text key
    return b"\x12\x20" + hashlib.sha256(key.encode("utf-8")).digest()


def wire_key(key: str) -> str:
    """The wire key (base58btc of the bytes on the wire) of a runner-chosen text key."""
    return base58(key_bytes(key))


# --- messages ----------------------------------------------------------------------------------


@attrs.frozen
class Capabilities:
    auto_mode: bool = False
    timings: bool = False
    crash_restart: bool = False
    events: bool = False

    def has(self, name: str) -> bool:
        return bool(getattr(self, name, False))

    def missing_for(self, op: str) -> str | None:
        """The capability ``op`` needs and this adapter lacks, or None."""
        need = OPS_NEEDING.get(op)
        return need if need is not None and not self.has(need) else None


@attrs.frozen
class Hello:
    """The adapter's first line: who it is and what it can do."""

    protocol: str
    implementation: str
    version: str
    capabilities: Capabilities

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "protocol": self.protocol,
            "implementation": self.implementation,
            "version": self.version,
            "capabilities": attrs.asdict(self.capabilities),
        }


@attrs.frozen
class Request:
    id: int
    op: str
    args: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def node(self) -> str:
        return str(self.args.get("node", ""))

    def to_json(self) -> dict[str, Any]:
        return {"type": "request", "id": self.id, "op": self.op, "args": dict(self.args)}


@attrs.frozen
class ErrorInfo:
    kind: str
    message: str


@attrs.frozen
class Reply:
    """Exactly one per request: ``ok`` with a ``result``, or an ``error``."""

    id: int
    ok: bool
    result: Mapping[str, Any] = attrs.field(factory=dict)
    error: ErrorInfo | None = None

    def to_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "reply", "id": self.id, "ok": self.ok}
        if self.ok:
            message["result"] = dict(self.result)
        else:
            assert self.error is not None
            message["error"] = {"kind": self.error.kind, "message": self.error.message}
        return message


@attrs.frozen
class Event:
    """Something a node did, unsolicited: ``event`` names the kind, ``fields`` the rest."""

    node: str
    time_ms: int
    event: str
    fields: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "event",
            "node": self.node,
            "time_ms": self.time_ms,
            "event": self.event,
            **self.fields,
        }


Message = Hello | Reply | Event


def encode(message: Hello | Request | Reply | Event) -> str:
    """One protocol line (without the newline)."""
    return json.dumps(message.to_json(), separators=(",", ":"), ensure_ascii=False)


# --- schemas -----------------------------------------------------------------------------------

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE: Final = "https://kadspec.dev/schemas/adapter/1/"


def _obj(
    properties: Mapping[str, Any], required: Sequence[str] | None = None, *, closed: bool = False
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": dict(properties),
        "required": list(properties if required is None else required),
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


_STR = {"type": "string"}
_NAME = {"type": "string", "minLength": 1, "description": "node name chosen by the runner"}
_MS = {"type": "integer", "minimum": 0, "description": "milliseconds"}
_MULTIADDR = {"type": "string", "pattern": "^/", "description": "a multiaddr in text form"}
_PEER = {"type": "string", "minLength": 1, "description": "a peer ID in base58btc"}
_KEY = {
    "type": "string",
    "description": "a key as the runner gave it: text, or a CID (the key rule)",
}
_WIRE_KEY = {"type": ["string", "null"], "description": "base58btc of the key bytes on the wire"}
_ADDRS = {"type": "array", "items": _MULTIADDR}
_PEER_INFO = _obj({"peer_id": _PEER, "addrs": _ADDRS})
_PEERS = {"type": "array", "items": _PEER_INFO}
_DIRECTION = {"enum": ["inbound", "outbound"]}
_MODE = {"enum": ["server", "client"]}
_EMPTY = _obj({})

#: per op: (args schema, result schema)
_OP_SCHEMAS: Final[Mapping[str, tuple[dict[str, Any], dict[str, Any]]]] = {
    "start": (
        _obj(
            {
                "node": _NAME,
                "mode": {"enum": ["auto", "server", "client"]},
                "listen": _MULTIADDR,
                "bootstrap": {
                    "type": "array",
                    "items": _MULTIADDR,
                    "description": "multiaddrs ending in /p2p/<peer id>",
                },
                "timings": {"type": "object", "additionalProperties": _MS},
                "options": {"type": "object", "description": "implementation-specific"},
            },
            ["node", "mode", "listen", "bootstrap"],
        ),
        _obj({"peer_id": _PEER, "listen_addrs": _ADDRS}),
    ),
    "dial": (_obj({"node": _NAME, "addr": _MULTIADDR}), _EMPTY),
    "provide": (
        _obj({"node": _NAME, "key": _KEY}),
        _obj(
            {
                "outcome": {"enum": ["success", "failure"]},
                "count": {"type": "integer", "minimum": 0},
                "reason": {"type": ["string", "null"]},
            }
        ),
    ),
    "find_providers": (
        _obj({"node": _NAME, "key": _KEY, "deadline_ms": _MS}),
        _obj({"providers": _PEERS}),
    ),
    "snapshot": (_obj({"node": _NAME}), {"$ref": "#/$defs/snapshot"}),
    "stop": (_obj({"node": _NAME}), _EMPTY),
    "crash": (_obj({"node": _NAME}), _EMPTY),
    "restart": (_obj({"node": _NAME}), _EMPTY),
    "set_mode": (_obj({"node": _NAME, "mode": {"enum": ["auto", "server", "client"]}}), _EMPTY),
    "shutdown": (_obj({}), _EMPTY),
}

SNAPSHOT_SCHEMA: Final = _obj(
    {
        "peer_id": _PEER,
        "mode": _MODE,
        "listen_addrs": _ADDRS,
        "external_addrs": {
            **_ADDRS,
            "description": "the node's own dialable addresses: configured to announce, or "
            "confirmed by a dial-back (never a mere observed candidate)",
        },
        "connections": {
            "type": "array",
            "items": _obj({"peer_id": _PEER, "direction": _DIRECTION, "remote_addr": _MULTIADDR}),
        },
        "routing_table": _PEERS,
        "protocols": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": _STR},
            "description": "peer ID -> protocols it announced in identify",
        },
        "provider_records": {
            "type": "array",
            "items": _obj(
                {
                    "key": {**_WIRE_KEY, "type": "string"},
                    "provider": _PEER,
                    "addrs": _ADDRS,
                    "expires_at_ms": {
                        "type": "integer",
                        "description": "on the adapter's clock (as time_ms)",
                    },
                }
            ),
        },
        "time_ms": _MS,
    }
)

_KAD_TYPE = {"enum": list(KAD_TYPES)}

#: per event kind: its fields (all required)
_EVENT_FIELDS: Final[Mapping[str, Mapping[str, Any]]] = {
    "connection_opened": {"peer": _PEER, "direction": _DIRECTION, "remote_addr": _MULTIADDR},
    "connection_closed": {"peer": _PEER, "direction": _DIRECTION, "remote_addr": _MULTIADDR},
    "identify_received": {
        "peer": _PEER,
        "listen_addrs": _ADDRS,
        "observed_addr": {"type": ["string", "null"], "pattern": "^/"},
        "protocols": {"type": "array", "items": _STR},
    },
    "routing_table_added": {"peer": _PEER, "addrs": _ADDRS},
    "routing_table_removed": {"peer": _PEER, "addrs": _ADDRS},
    "mode_changed": {"mode": _MODE},
    "kad_request_sent": {
        "kad_type": _KAD_TYPE,
        "peer": _PEER,
        "key": _WIRE_KEY,
        "providers": _PEERS,
    },
    "kad_request_received": {
        "kad_type": _KAD_TYPE,
        "peer": _PEER,
        "key": _WIRE_KEY,
        "providers": _PEERS,
    },
    "kad_response_sent": {
        "kad_type": _KAD_TYPE,
        "peer": _PEER,
        "key": _WIRE_KEY,
        "closer_peers": _PEERS,
        "provider_peers": _PEERS,
    },
    "kad_response_received": {
        "kad_type": _KAD_TYPE,
        "peer": _PEER,
        "key": _WIRE_KEY,
        "closer_peers": _PEERS,
        "provider_peers": _PEERS,
    },
    "provide_outcome": {
        "key": _KEY,
        "outcome": {"enum": ["success", "failure"]},
        "count": {"type": "integer", "minimum": 0},
        "reason": {"type": ["string", "null"]},
    },
    "find_outcome": {"key": _KEY, "providers": _PEERS},
}

#: per event kind: fields an adapter may add when its implementation says (not required)
_OPTIONAL_EVENT_FIELDS: Final[Mapping[str, Mapping[str, Any]]] = {
    "routing_table_removed": {
        "reason": {
            "type": ["string", "null"],
            "description": "why, when the implementation says (a failed request, a client ...)",
        }
    },
}

_ENVELOPE: Final = {
    "type": {"const": "event"},
    "node": _NAME,
    "time_ms": {**_MS, "description": "the adapter's monotonic ms since it started"},
    "event": {"type": "string", "minLength": 1},
}


def _document(name: str, title: str, body: dict[str, Any], **defs: Any) -> dict[str, Any]:
    document = {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_BASE + name, "title": title, **body}
    if defs:
        document["$defs"] = defs
    return document


def schema_documents() -> dict[str, dict[str, Any]]:
    """Every message schema by file name: ``hello.json``, ``request.<op>.json``,
    ``reply.<op>.json``, ``error.json``, ``event.json`` (the envelope any event satisfies),
    ``event.<kind>.json`` and ``snapshot.json``."""
    docs: dict[str, dict[str, Any]] = {}
    docs["hello.json"] = _document(
        "hello.json",
        "hello: the adapter's first line",
        _obj(
            {
                "type": {"const": "hello"},
                "protocol": {"const": PROTOCOL},
                "implementation": {"type": "string", "minLength": 1},
                "version": _STR,
                "capabilities": _obj(
                    {name: {"type": "boolean", "description": text}
                     for name, text in CAPABILITIES.items()}
                ),
            }
        ),
    )  # fmt: skip
    for op, (args, result) in _OP_SCHEMAS.items():
        docs[f"request.{op}.json"] = _document(
            f"request.{op}.json",
            f"request {op}",
            _obj(
                {
                    "type": {"const": "request"},
                    "id": {"type": "integer", "minimum": 0},
                    "op": {"const": op},
                    "args": args,
                }
            ),
        )
        reply_defs = {"snapshot": SNAPSHOT_SCHEMA} if op == "snapshot" else {}
        docs[f"reply.{op}.json"] = _document(
            f"reply.{op}.json",
            f"reply to {op} (ok)",
            _obj(
                {
                    "type": {"const": "reply"},
                    "id": {"type": "integer", "minimum": 0},
                    "ok": {"const": True},
                    "result": result,
                }
            ),
            **reply_defs,
        )
    docs["error.json"] = _document(
        "error.json",
        "reply to any request (failed)",
        _obj(
            {
                "type": {"const": "reply"},
                "id": {"type": "integer", "minimum": 0},
                "ok": {"const": False},
                "error": _obj({"kind": {"enum": list(ERROR_KINDS)}, "message": _STR}),
            }
        ),
    )
    docs["event.json"] = _document("event.json", "any event (the envelope)", _obj(_ENVELOPE))
    for kind, fields in _EVENT_FIELDS.items():
        optional = _OPTIONAL_EVENT_FIELDS.get(kind, {})
        required = [*_ENVELOPE, *fields]
        body = _obj({**_ENVELOPE, "event": {"const": kind}, **fields, **optional}, required)
        docs[f"event.{kind}.json"] = _document(f"event.{kind}.json", f"event {kind}", body)
    docs["snapshot.json"] = _document("snapshot.json", "snapshot result", SNAPSHOT_SCHEMA)
    return docs


def _type_text(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        return "snapshot (below)"
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array":
        items = schema.get("items", {})
        inner = "object" if items.get("type") == "object" else _type_text(items, defs)
        text = f"array of {inner}"
    if kind == "object" and "additionalProperties" in schema:
        text = f"object of {_type_text(schema['additionalProperties'], defs)}"
    if schema.get("pattern") == "^/":
        text += " (multiaddr)"
    if schema.get("minimum") == 0 and "integer" in str(kind):
        text += " >= 0"
    return text


def _field_rows(
    message: str, schema: Mapping[str, Any], prefix: str, defs: Mapping[str, Any]
) -> list[tuple[str, str, str, str, str]]:
    rows = []
    required = set(schema.get("required", ()))
    for name, field in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        rows.append(
            (
                message,
                path,
                _type_text(field, defs),
                "yes" if name in required else "no",
                str(field.get("description", "")),
            )
        )
        if field.get("type") == "object" and "properties" in field:
            rows += _field_rows(message, field, f"{path}.", defs)
        items = field.get("items", {})
        if field.get("type") == "array" and items.get("type") == "object":
            rows += _field_rows(message, items, f"{path}[].", defs)
    return rows


def field_rows() -> list[tuple[str, str, str, str, str]]:
    """Every field of every message kind as (message, field, type, required, meaning): the
    protocol page's message reference, generated from the same schemas the runner enforces."""
    docs = schema_documents()
    rows: list[tuple[str, str, str, str, str]] = []
    order = ["hello.json"]
    order += [f"{kind}.{op}.json" for op in OPS for kind in ("request", "reply")]
    order += ["error.json", "event.json", *(f"event.{kind}.json" for kind in EVENTS)]
    order += ["snapshot.json"]
    for name in order:
        document = docs[name]
        message = name.removesuffix(".json")
        defs = document.get("$defs", {})
        body = document["properties"]
        if name.startswith("request."):
            found = _field_rows(message, body["args"], "args.", defs)
        elif name.startswith("reply."):
            found = _field_rows(message, body["result"], "result.", defs)
            if "$ref" in body["result"]:
                found = [(message, "result", "snapshot (below)", "yes", "")]
        elif name.startswith("event.") and name != "event.json":
            found = [
                row for row in _field_rows(message, document, "", defs) if row[1] not in _ENVELOPE
            ]
        else:
            found = _field_rows(message, document, "", defs)
        rows += found
    return rows


def field_table_csv() -> str:
    """:func:`field_rows` as the CSV file the protocol page includes."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("message", "field", "type", "required", "meaning"))
    writer.writerows(field_rows())
    return buffer.getvalue()


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in schema_documents().items():
        path = folder / name
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
        written.append(path)
    return written


@cache
def shipped_schema(name: str) -> dict[str, Any]:
    """One schema as shipped in the package (``schemas/NAME``)."""
    text = resources.files("kadspec.conformance").joinpath("schemas", name).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@cache
def _validator(name: str) -> Any:
    import jsonschema  # type: ignore[import-untyped,unused-ignore]

    schema = shipped_schema(name)
    return jsonschema.Draft202012Validator(schema)


def schema_name(message: Mapping[str, Any], op: str | None = None) -> str:
    """The schema file a message must satisfy (``op``: the request a reply answers)."""
    kind = message.get("type")
    if kind == "hello":
        return "hello.json"
    if kind == "request":
        return f"request.{message.get('op')}.json"
    if kind == "reply":
        if message.get("ok") is not True:
            return "error.json"
        return f"reply.{op}.json" if op in OPS else "error.json"
    if kind == "event":
        event = message.get("event")
        return f"event.{event}.json" if event in EVENTS else "event.json"
    raise ProtocolError(f'"type" is {kind!r}: expected "hello", "request", "reply" or "event"')


def problems(message: Mapping[str, Any], op: str | None = None) -> list[str]:
    """Every way ``message`` breaks its schema, one line each naming the field (empty: valid)."""
    try:
        name = schema_name(message, op)
    except ProtocolError as error:
        return [str(error)]
    if name.startswith("request.") and message.get("op") not in OPS:
        return [f'"op" is {message.get("op")!r}: expected one of {", ".join(OPS)}']
    found = []
    for broken in sorted(_validator(name).iter_errors(message), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in broken.absolute_path) or "(message)"
        found.append(f"{where}: {broken.message} ({name})")
    return found


def _capabilities(raw: Mapping[str, Any]) -> Capabilities:
    return Capabilities(**{name: bool(raw.get(name, False)) for name in CAPABILITIES})


def decode(message: Mapping[str, Any], op: str | None = None) -> Message:
    """A validated message from its JSON object; ProtocolError lists what is wrong."""
    kind = message.get("type")
    if kind == "request":
        raise ProtocolError("\"type\" is 'request': an adapter sends hello, reply or event")
    found = problems(message, op)
    if found:
        raise ProtocolError("; ".join(found))
    if kind == "hello":
        return Hello(
            message["protocol"],
            message["implementation"],
            message["version"],
            _capabilities(message["capabilities"]),
        )
    if kind == "reply":
        failure = message.get("error")
        return Reply(
            message["id"],
            message["ok"],
            message.get("result", {}),
            None if failure is None else ErrorInfo(failure["kind"], failure["message"]),
        )
    if kind == "event":
        fields = {k: v for k, v in message.items() if k not in ("type", "node", "time_ms", "event")}
        return Event(message["node"], message["time_ms"], message["event"], fields)
    raise ProtocolError(f'"type" is {kind!r}: an adapter sends hello, reply or event')


def parse_line(line: str | bytes, op_of: Mapping[int, str] | None = None) -> Message:
    """One adapter output line as a message. ``op_of`` maps request ids to ops so that a reply
    is checked against its op's result schema."""
    text = line.decode("utf-8") if isinstance(line, bytes) else line
    try:
        message = json.loads(text)
    except ValueError as error:
        raise ProtocolError(f"not JSON ({error}): {shorten(text)}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"not a JSON object: {shorten(text)}")
    op = None
    if message.get("type") == "reply" and isinstance(message.get("id"), int) and op_of:
        op = op_of.get(message["id"])
    return decode(message, op)


def shorten(text: str, width: int = 160) -> str:
    """A line as a person can read it in one message: stripped, escaped, cut."""
    text = text.rstrip("\n")
    shown = repr(text)[1:-1]
    return shown if len(shown) <= width else shown[: width - 1] + "…"


# --- the record of a run -----------------------------------------------------------------------

EntryKind = Literal["request", "reply", "event", "snapshot"]


@attrs.frozen
class Entry:
    """One thing that happened in a run, in the order the runner saw it.

    ``time_ms`` is the runner's clock (ms since the run began: when a request was sent, when a
    reply, event or snapshot arrived); an event's own ``time_ms`` (the adapter's clock) stays in
    its payload. ``payload`` is the message as it arrived (for a ``snapshot`` entry: the
    snapshot object itself, the ok result of a ``snapshot`` request). ``request`` links a reply
    or snapshot to its request's id.
    """

    seq: int
    time_ms: int
    kind: EntryKind
    node: str
    payload: Mapping[str, Any]
    request: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time_ms": self.time_ms,
            "kind": self.kind,
            "node": self.node,
            "payload": dict(self.payload),
            "request": self.request,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Entry:
        return cls(
            raw["seq"], raw["time_ms"], raw["kind"], raw["node"], raw["payload"], raw.get("request")
        )


@attrs.frozen
class NodeRecord:
    """A node of the run: its name, the args it was (last) started with, its peer ID."""

    name: str
    start: Mapping[str, Any]
    peer_id: str | None = None


@attrs.frozen
class Run:
    """The record of one scenario run against one adapter: what the judge and trace
    validation read. ``aborted`` is the runner's one-line reason when the run ended early
    (the adapter crashed, hung, or broke the protocol); the entries up to then stay."""

    hello: Hello
    scenario: str
    nodes: tuple[NodeRecord, ...]
    entries: tuple[Entry, ...]
    adapter: str = ""
    aborted: str | None = None
    duration_ms: int = 0

    def node(self, name: str) -> NodeRecord | None:
        return next((n for n in self.nodes if n.name == name), None)

    def peer_names(self) -> dict[str, str]:
        """peer ID -> node name, for readable evidence."""
        return {n.peer_id: n.name for n in self.nodes if n.peer_id}

    def events(self, kind: str | None = None, node: str | None = None) -> Iterator[Entry]:
        for entry in self.entries:
            if entry.kind != "event":
                continue
            if kind is not None and entry.payload.get("event") != kind:
                continue
            if node is not None and entry.node != node:
                continue
            yield entry

    def snapshots(self, node: str | None = None) -> Iterator[Entry]:
        return (
            e for e in self.entries if e.kind == "snapshot" and (node is None or e.node == node)
        )

    def reply_to(self, request: int) -> Entry | None:
        return next(
            (e for e in self.entries if e.kind in ("reply", "snapshot") and e.request == request),
            None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "hello": self.hello.to_json(),
            "scenario": self.scenario,
            "adapter": self.adapter,
            "aborted": self.aborted,
            "duration_ms": self.duration_ms,
            "nodes": [
                {"name": n.name, "start": dict(n.start), "peer_id": n.peer_id} for n in self.nodes
            ],
            "entries": [e.to_json() for e in self.entries],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Run:
        hello = decode(raw["hello"])
        assert isinstance(hello, Hello)
        return cls(
            hello=hello,
            scenario=raw["scenario"],
            nodes=tuple(NodeRecord(n["name"], n["start"], n.get("peer_id")) for n in raw["nodes"]),
            entries=tuple(Entry.from_json(e) for e in raw["entries"]),
            adapter=raw.get("adapter", ""),
            aborted=raw.get("aborted"),
            duration_ms=raw.get("duration_ms", 0),
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kadspec.conformance.protocol --write DIR``: regenerate the schema files;
    ``--write-table FILE``: the protocol page's message reference (docs/adapter-messages.csv)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "--write":
        for path in write_schemas(Path(args[1])):
            print(path)
        return 0
    if len(args) == 2 and args[0] == "--write-table":
        Path(args[1]).write_text(field_table_csv(), "utf-8")
        print(args[1])
        return 0
    print(
        "usage: python -m kadspec.conformance.protocol --write DIR | --write-table FILE",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
