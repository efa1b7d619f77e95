"""The kad wire format: round-trips, framing, and a decoder that only ever raises WireError."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kadspec.impl.wire import (
    DEFAULT_MAX_MESSAGE_SIZE,
    ConnectionType,
    FrameDecoder,
    KadMessage,
    MalformedMessage,
    MessageType,
    OversizedMessage,
    PeerInfo,
    ProtoMessage,
    Record,
    TruncatedMessage,
    UnknownMessageType,
    WireError,
    decode_frames,
    decode_message,
    encode_message,
    encode_uvarint,
    frame,
    to_proto,
)

SHA256_PEER = bytes([0x12, 0x20]) + bytes(range(32))


def peer_ids() -> st.SearchStrategy[bytes]:
    """Multihash peer IDs: identity (code 0x00) or sha2-256 (0x12) with the right length."""
    identity = st.binary(min_size=1, max_size=42).map(lambda d: bytes([0x00, len(d)]) + d)
    sha = st.binary(min_size=32, max_size=32).map(lambda d: bytes([0x12, 0x20]) + d)
    return st.one_of(identity, sha)


def peers() -> st.SearchStrategy[PeerInfo]:
    return st.builds(
        PeerInfo,
        id=peer_ids(),
        addrs=st.lists(st.binary(max_size=30), max_size=3).map(tuple),
        connection=st.sampled_from(ConnectionType),
    )


def messages() -> st.SearchStrategy[KadMessage]:
    return st.builds(
        KadMessage,
        type=st.sampled_from(MessageType),
        key=st.binary(max_size=40),
        closer_peers=st.lists(peers(), max_size=4).map(tuple),
        provider_peers=st.lists(peers(), max_size=3).map(tuple),
        record=st.none()
        | st.builds(
            Record,
            key=st.binary(max_size=8),
            value=st.binary(max_size=8),
            time_received=st.text(max_size=8),
        ),
        cluster_level_raw=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    )


@given(messages())
def test_every_message_round_trips_through_protobuf_and_framing(message: KadMessage) -> None:
    assert decode_message(encode_message(message)) == message
    assert decode_frames(frame(message) + frame(message)) == [message, message]


def messages_reusing_peers() -> st.SearchStrategy[KadMessage]:
    """Messages whose peers come from a small pool, as a server's replies reuse its entries."""
    return st.lists(peers(), min_size=1, max_size=3).flatmap(
        lambda pool: st.builds(
            KadMessage,
            type=st.sampled_from(MessageType),
            key=st.binary(max_size=40),
            closer_peers=st.lists(st.sampled_from(pool), max_size=6).map(tuple),
            provider_peers=st.lists(st.sampled_from(pool), max_size=3).map(tuple),
            cluster_level_raw=st.sampled_from([0, 1, -1, 2**31 - 1]),
        )
    )


@given(st.one_of(messages(), messages_reusing_peers()))
@settings(max_examples=300)
def test_the_encoder_writes_the_runtimes_bytes_for_the_whole_message(message: KadMessage) -> None:
    """encode_message joins the runtime's encodings of the fields and of each peer (cached):
    byte for byte what the runtime serializes for the message built in one piece."""
    assert encode_message(message) == to_proto(message).SerializeToString()


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_random_bytes_decode_or_raise_only_wire_errors(data: bytes) -> None:
    for decode in (decode_message, decode_frames):
        with contextlib.suppress(WireError):
            decode(data)


@given(messages(), st.binary(max_size=40), st.integers(min_value=0, max_value=200))
def test_corrupted_frames_decode_or_raise_only_wire_errors(
    message: KadMessage, noise: bytes, cut: int
) -> None:
    data = bytearray(frame(message))
    data[cut % len(data) :] = noise + bytes(data[cut % len(data) :])
    with contextlib.suppress(WireError):
        decode_frames(bytes(data))


@given(messages(), st.integers(min_value=1, max_value=7))
def test_a_stream_fed_in_pieces_yields_the_same_messages(message: KadMessage, step: int) -> None:
    data = frame(message) * 2
    decoder = FrameDecoder()
    out = []
    for start in range(0, len(data), step):
        decoder.feed(data[start : start + step])
        while (got := decoder.next_message()) is not None:
            out.append(got)
    decoder.end_of_stream()
    assert out == [message, message]


def test_the_wire_bytes_are_the_spec_schema() -> None:
    # FIND_NODE (type field 1 = 4), key field 2, one closer peer (field 8) with id and one addr,
    # as go-libp2p-kad-dht's generated dht.pb.go encodes it.
    peer = PeerInfo(id=SHA256_PEER, addrs=(b"\x04\x7f\x00\x00\x01\x06\x0f\xa1",))
    data = encode_message(KadMessage(MessageType.FIND_NODE, key=b"k", closer_peers=(peer,)))
    inner = b"\x0a\x22" + SHA256_PEER + b"\x12\x08\x04\x7f\x00\x00\x01\x06\x0f\xa1"
    assert data == b"\x08\x04\x12\x01k" + b"\x42" + bytes([len(inner)]) + inner
    proto: Any = ProtoMessage()
    proto.ParseFromString(data)
    assert proto.closerPeers[0].id == SHA256_PEER


def test_an_oversized_prefix_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder(max_size=100)
    decoder.feed(encode_uvarint(101))
    with pytest.raises(OversizedMessage, match="101 bytes, more than the 100-byte maximum"):
        decoder.next_message()
    big = KadMessage(MessageType.GET_PROVIDERS, key=b"x" * 200)
    with pytest.raises(OversizedMessage):
        frame(big, max_size=100)
    assert DEFAULT_MAX_MESSAGE_SIZE == 4 * 1024 * 1024


def test_a_stream_ending_mid_message_is_truncated() -> None:
    data = frame(KadMessage(MessageType.PING))
    with pytest.raises(TruncatedMessage, match="unfinished message"):
        decode_frames(data + frame(KadMessage(MessageType.PING, key=b"abc"))[:-1])
    with pytest.raises(TruncatedMessage):
        decode_frames(b"\x80")  # inside the length prefix


def test_an_unknown_type_is_named() -> None:
    with pytest.raises(UnknownMessageType, match="message type 9 is not one of"):
        decode_message(b"\x08\x09")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x0a\xff", "not a kad Message"),  # field 1 with wire type 2 and a bad length
        (b"\x42\x02\x0a\x00", r"closerPeers\[0\].id \(empty\) is not a multihash"),
        (b"\x4a\x04\x0a\x02\x12\x20", r"providerPeers\[0\].id 1220 is not a multihash"),
    ],
)
def test_malformed_messages_are_named(data: bytes, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        decode_message(data)


def test_an_endless_varint_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="longer than 10 bytes"):
        decode_frames(b"\xff" * 11)


def test_an_unknown_connection_type_means_no_information() -> None:
    proto: Any = ProtoMessage()
    proto.type = MessageType.FIND_NODE
    peer = proto.closerPeers.add()
    peer.id = SHA256_PEER
    peer.connection = 7
    decoded = decode_message(proto.SerializeToString())
    assert decoded.closer_peers[0].connection is ConnectionType.NOT_CONNECTED
