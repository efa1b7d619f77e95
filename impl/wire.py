"""The ``/ipfs/kad/1.0.0`` wire format: protobuf messages, varint length-prefixed.

The schema is the libp2p kad-dht spec's (``Message`` with ``type``, ``key``, ``record``,
``closerPeers``, ``providerPeers``, ``clusterLevelRaw``; ``Peer`` with ``id``, ``addrs``,
``connection``), encoded and parsed by the protobuf runtime. This module turns those bytes into
typed, validated, frozen values (:class:`KadMessage`, :class:`PeerInfo`) and back, and frames
them the way every libp2p implementation does: an unsigned varint length, then the message.

Every way a peer's bytes can be wrong ends in one :class:`WireError` subclass that names the
problem: :class:`OversizedMessage`, :class:`TruncatedMessage`, :class:`UnknownMessageType`,
:class:`MalformedMessage`. Nothing else escapes the decoder (fuzzed in tests/impl/test_wire.py),
so a driver can reset the stream, count and log, and carry on.

Pure: no sockets and no clock. :class:`FrameDecoder` is an incremental, sans-IO reader for a
stream: feed it bytes as they arrive and pull whole messages out.
"""

from __future__ import annotations

import enum
import functools
from typing import Any, Final

import attrs
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtobufMessage

PROTOCOL_ID: Final = "/ipfs/kad/1.0.0"

#: go-libp2p's network.MessageSizeMax (4 MiB), which js-libp2p's kad-dht also uses.
DEFAULT_MAX_MESSAGE_SIZE: Final = 4 * 1024 * 1024

#: An unsigned varint of a 64-bit length never needs more than 10 bytes.
_MAX_VARINT_BYTES: Final = 10


class WireError(ValueError):
    """Bytes from a peer are not a valid kad message; the message says what is wrong."""


class OversizedMessage(WireError):
    """A length prefix announces more than the maximum message size."""


class TruncatedMessage(WireError):
    """The stream ended inside a length prefix or a message body."""


class UnknownMessageType(WireError):
    """The message's ``type`` is not one of the schema's MessageType values."""


class MalformedMessage(WireError):
    """The bytes are not a protobuf ``Message``, or a field holds an impossible value."""


class MessageType(enum.IntEnum):
    """``Message.MessageType`` of the spec's schema."""

    PUT_VALUE = 0
    GET_VALUE = 1
    ADD_PROVIDER = 2
    GET_PROVIDERS = 3
    FIND_NODE = 4
    PING = 5


class ConnectionType(enum.IntEnum):
    """``Message.ConnectionType``: what the sender knows of its link to a peer (advisory)."""

    NOT_CONNECTED = 0
    CONNECTED = 1
    CAN_CONNECT = 2
    CANNOT_CONNECT = 3


# --- the schema, built into a private descriptor pool at import time ---------------------------
#
# Why not a generated ``dht_pb2.py`` in git: protobuf >= 5 checks generated code against the
# runtime's version, so a checked-in file pins the runtime and needs protoc to regenerate. Why
# not a maintained package's compiled messages: the only Python ones ship inside py-libp2p, a
# 60-dependency host stack that the pure layers must not need. Building the FileDescriptorProto
# here is the same schema in ~40 lines, read by the same runtime, with no build step. The private
# pool keeps our full names from clashing with py-libp2p's generated module when both are loaded.

_F = descriptor_pb2.FieldDescriptorProto


def _field(
    name: str, number: int, kind: int, *, repeated: bool = False, type_name: str = ""
) -> descriptor_pb2.FieldDescriptorProto:
    field = _F(
        name=name,
        number=number,
        type=kind,  # type: ignore[arg-type]
        label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
    )
    if type_name:
        field.type_name = type_name
    return field


def _schema() -> descriptor_pb2.FileDescriptorProto:
    schema = descriptor_pb2.FileDescriptorProto(
        name="kadspec/kad.proto", package="kadspec.kad", syntax="proto3"
    )
    record = schema.message_type.add(name="Record")
    record.field.extend(
        [
            _field("key", 1, _F.TYPE_BYTES),
            _field("value", 2, _F.TYPE_BYTES),
            _field("timeReceived", 5, _F.TYPE_STRING),
        ]
    )
    message = schema.message_type.add(name="Message")
    for enum_name, members in (
        ("MessageType", MessageType),
        ("ConnectionType", ConnectionType),
    ):
        enum_type = message.enum_type.add(name=enum_name)
        for member in members:
            enum_type.value.add(name=member.name, number=member.value)
    peer = message.nested_type.add(name="Peer")
    peer.field.extend(
        [
            _field("id", 1, _F.TYPE_BYTES),
            _field("addrs", 2, _F.TYPE_BYTES, repeated=True),
            _field("connection", 3, _F.TYPE_ENUM, type_name=".kadspec.kad.Message.ConnectionType"),
        ]
    )
    message.field.extend(
        [
            _field("type", 1, _F.TYPE_ENUM, type_name=".kadspec.kad.Message.MessageType"),
            _field("clusterLevelRaw", 10, _F.TYPE_INT32),
            _field("key", 2, _F.TYPE_BYTES),
            _field("record", 3, _F.TYPE_MESSAGE, type_name=".kadspec.kad.Record"),
            _field(
                "closerPeers",
                8,
                _F.TYPE_MESSAGE,
                repeated=True,
                type_name=".kadspec.kad.Message.Peer",
            ),
            _field(
                "providerPeers",
                9,
                _F.TYPE_MESSAGE,
                repeated=True,
                type_name=".kadspec.kad.Message.Peer",
            ),
        ]
    )
    return schema


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_schema())

#: The protobuf classes of the schema, for code that needs the raw runtime objects.
ProtoMessage: type[ProtobufMessage] = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("kadspec.kad.Message")
)
ProtoPeer: type[ProtobufMessage] = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("kadspec.kad.Message.Peer")
)
ProtoRecord: type[ProtobufMessage] = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("kadspec.kad.Record")
)


# --- typed values --------------------------------------------------------------------------------


def _read_uvarint(data: bytes, start: int) -> tuple[int, int] | None:
    """(value, index after it), or None when ``data`` ends inside the varint.

    Raises MalformedMessage for a varint longer than 10 bytes.
    """
    value = 0
    for offset in range(_MAX_VARINT_BYTES):
        index = start + offset
        if index >= len(data):
            return None
        byte = data[index]
        value |= (byte & 0x7F) << (7 * offset)
        if not byte & 0x80:
            return value, index + 1
    raise MalformedMessage(f"varint at byte {start} is longer than {_MAX_VARINT_BYTES} bytes")


def encode_uvarint(value: int) -> bytes:
    """The unsigned LEB128 varint of a non-negative integer (multiformats unsigned-varint)."""
    if value < 0:
        raise ValueError(f"an unsigned varint cannot hold {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def check_peer_id(peer_id: bytes, where: str = "peer id") -> None:
    """Raise MalformedMessage unless ``peer_id`` is a multihash whose digest length is right.

    A libp2p peer ID is a multihash (identity for small keys, sha2-256 otherwise): a varint
    code, a varint digest length, then exactly that many bytes.
    """
    code = _read_uvarint(peer_id, 0)
    if not peer_id or code is None:
        raise MalformedMessage(f"{where} {peer_id.hex() or '(empty)'} is not a multihash")
    length = _read_uvarint(peer_id, code[1])
    if length is None or len(peer_id) - length[1] != length[0]:
        raise MalformedMessage(
            f"{where} {peer_id.hex()} is not a multihash: digest length does not match"
        )


@attrs.frozen
class PeerInfo:
    """``Message.Peer``: a peer ID (a multihash) and its binary multiaddrs."""

    id: bytes
    addrs: tuple[bytes, ...] = ()
    connection: ConnectionType = ConnectionType.NOT_CONNECTED


@attrs.frozen
class Record:
    """``Record``: carried by PUT_VALUE / GET_VALUE, which this node does not serve."""

    key: bytes = b""
    value: bytes = b""
    time_received: str = ""


@attrs.frozen
class KadMessage:
    """One ``/ipfs/kad/1.0.0`` message; a reply has the type of its request."""

    type: MessageType
    key: bytes = b""
    closer_peers: tuple[PeerInfo, ...] = ()
    provider_peers: tuple[PeerInfo, ...] = ()
    record: Record | None = None
    cluster_level_raw: int = 0


def to_proto(message: KadMessage) -> ProtobufMessage:
    """The protobuf runtime object for a typed message."""
    proto: Any = ProtoMessage()
    proto.type = int(message.type)
    proto.key = message.key
    proto.clusterLevelRaw = message.cluster_level_raw
    if message.record is not None:
        proto.record.key = message.record.key
        proto.record.value = message.record.value
        proto.record.timeReceived = message.record.time_received
    # one add() with the fields is much cheaper than three attribute writes per peer
    add = proto.closerPeers.add
    for peer in message.closer_peers:
        add(id=peer.id, addrs=peer.addrs, connection=peer.connection)
    add = proto.providerPeers.add
    for peer in message.provider_peers:
        add(id=peer.id, addrs=peer.addrs, connection=peer.connection)
    result: ProtobufMessage = proto
    return result


#: field number -> ((peer ID, addrs) of a peer without connection information -> the runtime's
#: encoding of a Message holding just that peer in that field); bounded, cleared when full. The
#: key is a plain tuple: equal PeerInfo objects built apart would be compared field by field in
#: Python on every hit (a million times in a 300-node sim).
_ENCODED_PEERS: Final[dict[int, dict[tuple[bytes, tuple[bytes, ...]], bytes]]] = {8: {}, 9: {}}
_ENCODED_PEERS_MAX: Final = 65536


def _encoded_peers(field: int, peers: tuple[PeerInfo, ...]) -> bytes:
    cache = _ENCODED_PEERS[field]
    parts = []
    for peer in peers:
        plain = peer.connection is ConnectionType.NOT_CONNECTED
        part = cache.get((peer.id, peer.addrs)) if plain else None
        if part is None:
            proto: Any = ProtoMessage()
            entries = proto.closerPeers if field == 8 else proto.providerPeers
            entries.add(id=peer.id, addrs=peer.addrs, connection=peer.connection)
            part = proto.SerializeToString()
            if plain:
                if len(cache) >= _ENCODED_PEERS_MAX:
                    cache.clear()
                cache[peer.id, peer.addrs] = part
        parts.append(part)
    return b"".join(parts)


def encode_message(message: KadMessage) -> bytes:
    """The protobuf encoding of a message, without framing.

    The runtime writes a message's fields in field-number order, and a repeated field as its
    entries one after another; protobuf defines the encoding of a message as the concatenation
    of its fields' encodings (parsing two concatenated messages merges them). So the bytes are
    the runtime's own encoding of the scalar fields (1-3), then of each closerPeers (8) and
    providerPeers (9) entry, then clusterLevelRaw (10), joined: what ``to_proto(message)``
    serializes to, byte for byte (a property test holds them equal). A server hands the same
    table entries out in reply after reply, so each peer's encoding is made once and reused.
    """
    if not message.closer_peers and not message.provider_peers:
        return to_proto(message).SerializeToString()
    head: Any = ProtoMessage()
    head.type = int(message.type)
    head.key = message.key
    if message.record is not None:
        head.record.key = message.record.key
        head.record.value = message.record.value
        head.record.timeReceived = message.record.time_received
    parts = [head.SerializeToString()]
    if message.closer_peers:
        parts.append(_encoded_peers(8, message.closer_peers))
    if message.provider_peers:
        parts.append(_encoded_peers(9, message.provider_peers))
    if message.cluster_level_raw:
        tail: Any = ProtoMessage()
        tail.clusterLevelRaw = message.cluster_level_raw
        parts.append(tail.SerializeToString())
    return b"".join(parts)


_CONNECTION_TYPES: Final = {t.value: t for t in ConnectionType}


@functools.lru_cache(maxsize=65536)
def _peer_info(peer_id: bytes, addrs: tuple[bytes, ...], connection: int) -> PeerInfo:
    """The (frozen, so shareable) PeerInfo of a valid peer entry; MalformedMessage for an
    invalid ID (not cached: only valid entries recur).

    The same peers recur in every reply: building each once keeps big simulations fast."""
    check_peer_id(peer_id)
    # ConnectionType is advisory and proto3 enums are open: a value from a newer schema means
    # "no information", which is what NOT_CONNECTED says.
    kind = _CONNECTION_TYPES.get(connection, ConnectionType.NOT_CONNECTED)
    return PeerInfo(id=peer_id, addrs=addrs, connection=kind)


def _peers_from_proto(entries: Any, field: str) -> tuple[PeerInfo, ...]:
    try:
        return tuple([_peer_info(p.id, tuple(p.addrs), p.connection) for p in entries])
    except MalformedMessage:
        for index, entry in enumerate(entries):
            check_peer_id(bytes(entry.id), f"{field}[{index}].id")  # raises, naming the entry
        raise


def decode_message(data: bytes) -> KadMessage:
    """Parse and validate one unframed message.

    Raises UnknownMessageType for a ``type`` outside the schema and MalformedMessage for bytes
    that are not a ``Message`` or carry an invalid peer ID.
    """
    proto: Any = ProtoMessage()
    try:
        proto.ParseFromString(data)
    except DecodeError as error:
        raise MalformedMessage(f"not a kad Message ({len(data)} bytes): {error}") from None
    raw_type = int(proto.type)
    if raw_type not in MessageType._value2member_map_:
        raise UnknownMessageType(
            f"message type {raw_type} is not one of "
            f"{', '.join(f'{t.name}={t.value}' for t in MessageType)}"
        )
    record = None
    if proto.HasField("record"):
        record = Record(
            key=bytes(proto.record.key),
            value=bytes(proto.record.value),
            time_received=str(proto.record.timeReceived),
        )
    return KadMessage(
        type=MessageType(raw_type),
        key=bytes(proto.key),
        closer_peers=_peers_from_proto(proto.closerPeers, "closerPeers"),
        provider_peers=_peers_from_proto(proto.providerPeers, "providerPeers"),
        record=record,
        cluster_level_raw=int(proto.clusterLevelRaw),
    )


# --- framing ------------------------------------------------------------------------------


def frame(message: KadMessage, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> bytes:
    """A message as it goes on a stream: unsigned varint length, then the protobuf bytes.

    Raises OversizedMessage rather than send what a peer would refuse.
    """
    body = encode_message(message)
    if len(body) > max_size:
        raise OversizedMessage(f"message of {len(body)} bytes exceeds the {max_size}-byte maximum")
    return encode_uvarint(len(body)) + body


class FrameDecoder:
    """Incremental reader of length-prefixed kad messages from one stream (sans-IO).

    ``feed`` what arrives; ``next_message`` returns a whole message or None when more bytes are
    needed; ``end_of_stream`` raises TruncatedMessage when the stream stopped mid-message. An
    oversized length is refused as soon as its prefix is read, before the body is buffered.
    After a WireError the stream is unusable: the caller resets it.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_size <= 0:
            raise ValueError(f"max_size must be positive, got {max_size}")
        self.max_size = max_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """How many bytes of an unfinished message are waiting for the rest."""
        return len(self._buffer)

    def next_message(self) -> KadMessage | None:
        prefix = _read_uvarint(bytes(self._buffer[:_MAX_VARINT_BYTES]), 0)
        if prefix is None:
            return None
        length, start = prefix
        if length > self.max_size:
            raise OversizedMessage(
                f"length prefix announces {length} bytes, more than the {self.max_size}-byte "
                "maximum"
            )
        if len(self._buffer) - start < length:
            return None
        body = bytes(self._buffer[start : start + length])
        del self._buffer[: start + length]
        return decode_message(body)

    def end_of_stream(self) -> None:
        """The remote closed its side: anything buffered is an unfinished message."""
        if self._buffer:
            raise TruncatedMessage(
                f"stream ended with {len(self._buffer)} bytes of an unfinished message"
            )


def decode_frames(data: bytes, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> list[KadMessage]:
    """Every message of a complete stream's bytes; raises a WireError for any bad one."""
    decoder = FrameDecoder(max_size)
    decoder.feed(data)
    messages = []
    while (message := decoder.next_message()) is not None:
        messages.append(message)
    decoder.end_of_stream()
    return messages
