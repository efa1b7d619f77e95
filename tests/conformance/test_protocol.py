"""The adapter protocol: schemas shipped equal to the code's, messages checked by field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kadspec.conformance import protocol as p

SCHEMAS = Path(p.__file__).parent / "schemas"

HELLO: dict[str, Any] = {
    "type": "hello",
    "protocol": "kadspec-adapter/1",
    "implementation": "kadspec-reference",
    "version": "0.1.0",
    "capabilities": {"auto_mode": True, "timings": True, "crash_restart": True, "events": True},
}
PEER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
SNAPSHOT: dict[str, Any] = {
    "peer_id": PEER,
    "mode": "server",
    "listen_addrs": ["/ip4/127.0.0.1/tcp/4001"],
    "external_addrs": [],
    "connections": [
        {"peer_id": PEER, "direction": "inbound", "remote_addr": "/ip4/127.0.0.1/tcp/5"}
    ],
    "routing_table": [{"peer_id": PEER, "addrs": ["/ip4/127.0.0.1/tcp/4002"]}],
    "protocols": {PEER: ["/ipfs/kad/1.0.0"]},
    "provider_records": [
        {"key": p.wire_key("a"), "provider": PEER, "addrs": [], "expires_at_ms": 172800000}
    ],
    "time_ms": 12,
}


def test_shipped_schema_files_are_the_ones_the_code_writes() -> None:
    documents = p.schema_documents()
    shipped = {path.name for path in SCHEMAS.glob("*.json")}
    assert shipped == set(documents), "regenerate: python -m kadspec.conformance.protocol --write"
    for name, document in documents.items():
        assert json.loads((SCHEMAS / name).read_text("utf-8")) == document, name


def test_every_schema_is_a_valid_draft_2020_12_schema_with_one_per_message_kind() -> None:
    documents = p.schema_documents()
    for document in documents.values():
        jsonschema.Draft202012Validator.check_schema(document)
    expected = {"hello.json", "error.json", "event.json", "snapshot.json"}
    expected |= {f"request.{op}.json" for op in p.OPS} | {f"reply.{op}.json" for op in p.OPS}
    expected |= {f"event.{kind}.json" for kind in p.EVENTS}
    assert set(documents) == expected


def test_a_valid_hello_reply_and_event_parse_into_typed_messages() -> None:
    hello = p.parse_line(json.dumps(HELLO))
    assert isinstance(hello, p.Hello) and hello.capabilities.crash_restart
    reply = p.parse_line(
        json.dumps({"type": "reply", "id": 3, "ok": True, "result": SNAPSHOT}), {3: "snapshot"}
    )
    assert isinstance(reply, p.Reply) and reply.result["mode"] == "server"
    line = {"type": "event", "node": "a", "time_ms": 5, "event": "mode_changed", "mode": "client"}
    event = p.parse_line(json.dumps(line))
    assert event == p.Event("a", 5, "mode_changed", {"mode": "client"})
    assert json.loads(p.encode(event)) == line


def test_errors_name_the_field_and_the_schema() -> None:
    bad = {"type": "reply", "id": 1, "ok": True, "result": {"peer_id": 3, "listen_addrs": []}}
    with pytest.raises(p.ProtocolError, match=r"result/peer_id: 3 is not of type 'string'"):
        p.parse_line(json.dumps(bad), {1: "start"})
    with pytest.raises(p.ProtocolError, match=r"reply\.start\.json"):
        p.parse_line(json.dumps(bad), {1: "start"})
    wrong_kind = {"type": "reply", "id": 1, "ok": False, "error": {"kind": "oops", "message": ""}}
    with pytest.raises(p.ProtocolError, match="error/kind"):
        p.parse_line(json.dumps(wrong_kind))
    with pytest.raises(p.ProtocolError, match="not JSON"):
        p.parse_line("Traceback (most recent call last):")
    with pytest.raises(p.ProtocolError, match="not a JSON object"):
        p.parse_line("[1, 2]")
    with pytest.raises(p.ProtocolError, match="\"type\" is 'request'"):
        p.parse_line(json.dumps({"type": "request", "id": 1, "op": "dial", "args": {}}))
    event = {"type": "event", "node": "a", "time_ms": 1, "event": "connection_opened"}
    with pytest.raises(p.ProtocolError, match="'peer' is a required property"):
        p.parse_line(json.dumps(event))


def test_an_unknown_event_kind_passes_with_a_valid_envelope_only() -> None:
    custom = {"type": "event", "node": "a", "time_ms": 1, "event": "x-gossip", "n": 1}
    assert p.parse_line(json.dumps(custom)) == p.Event("a", 1, "x-gossip", {"n": 1})
    with pytest.raises(p.ProtocolError, match="time_ms"):
        p.parse_line(json.dumps({**custom, "time_ms": -1}))


def test_requests_the_runner_sends_satisfy_their_schemas() -> None:
    start = p.Request(
        1,
        "start",
        {"node": "a", "mode": "auto", "listen": "/ip4/127.0.0.1/tcp/0", "bootstrap": []},
    )
    assert p.problems(start.to_json()) == []
    assert p.problems(p.Request(2, "shutdown").to_json()) == []
    assert p.problems(p.Request(3, "provide", {"node": "a"}).to_json()) == [
        "args: 'key' is a required property (request.provide.json)"
    ]
    assert p.problems(p.Request(4, "jump", {}).to_json())[0].startswith("\"op\" is 'jump'")


def test_key_rule_text_is_its_sha256_multihash_and_a_cid_is_its_multihash() -> None:
    empty = b"\x12\x20" + hashlib.sha256(b"").digest()
    assert p.key_bytes("") == empty
    # the well-known CIDv1 (raw) of the empty block
    assert p.key_bytes("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku") == empty
    assert p.wire_key("") == "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"
    assert p.key_bytes("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n") == empty  # CIDv0
    assert (
        p.key_bytes("bafy-not-base32!")
        == b"\x12\x20" + hashlib.sha256(b"bafy-not-base32!").digest()
    )


@pytest.mark.parametrize("data", [b"", b"\0\0\1", bytes(range(40)), b"\xff" * 34])
def test_base58_round_trips(data: bytes) -> None:
    assert p.unbase58(p.base58(data)) == data


def test_a_run_round_trips_through_json() -> None:
    hello = p.decode(HELLO)
    assert isinstance(hello, p.Hello)
    run = p.Run(
        hello=hello,
        scenario="startup-provide",
        nodes=(p.NodeRecord("a", {"node": "a", "mode": "server"}, PEER),),
        entries=(
            p.Entry(0, 0, "request", "a", p.Request(1, "snapshot", {"node": "a"}).to_json()),
            p.Entry(1, 3, "snapshot", "a", SNAPSHOT, request=1),
        ),
        adapter="python -m kadspec.conformance.adapters.reference",
    )
    again = p.Run.from_json(json.loads(json.dumps(run.to_json())))
    assert again == run
    assert [e.seq for e in again.snapshots("a")] == [1]
    assert again.reply_to(1) == run.entries[1]
    assert run.peer_names() == {PEER: "a"}


def test_no_event_field_shadows_an_envelope_field() -> None:
    envelope = set(p.schema_documents()["event.json"]["properties"])
    for kind in p.EVENTS:
        fields = set(p.schema_documents()[f"event.{kind}.json"]["properties"]) - envelope
        assert fields, kind
        assert p._EVENT_FIELDS[kind].keys().isdisjoint(envelope), kind


@pytest.mark.parametrize(
    "key",
    [
        "",
        "hello",
        "ünïcode key",
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        "Qm" + "1" * 44,
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        "bafy-not-a-cid",
    ],
)
def test_the_protocol_key_rule_agrees_with_the_reference_node(key: str) -> None:
    from kadspec.impl.node import content_key

    assert p.key_bytes(key) == content_key(key)


def test_the_protocol_pages_message_table_is_generated_from_the_schemas() -> None:
    table = Path(__file__).parents[2] / "docs" / "adapter-messages.csv"
    assert table.read_text("utf-8") == p.field_table_csv(), (
        "regenerate: python -m kadspec.conformance.protocol --write-table docs/adapter-messages.csv"
    )
    fields = {(row[0], row[1]) for row in p.field_rows()}
    assert ("request.start", "args.bootstrap") in fields
    assert ("snapshot", "provider_records[].expires_at_ms") in fields
    assert ("event.kad_request_sent", "kad_type") in fields
    assert ("event.kad_request_sent", "node") not in fields  # the envelope is described once
