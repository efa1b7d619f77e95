"""The reference node's key rule (CONTRACT.md): a text key is the sha2-256 multihash of its
UTF-8 bytes, a CID string is its CID's multihash; logs show the text. No py-libp2p needed."""

from __future__ import annotations

import hashlib

import pytest

from kadspec.impl.node import KeyNames, content_key, key_cid


def test_a_text_key_is_the_sha2_256_multihash_of_its_utf8_bytes() -> None:
    digest = hashlib.sha256("héllo".encode()).digest()
    assert content_key("héllo") == b"\x12\x20" + digest
    # the CIDv1 (raw) of that multihash, as js-libp2p's CID.createV1(raw, sha256(text)) prints it
    hello = content_key("hello")
    assert key_cid(hello) == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    assert content_key(key_cid(hello)) == hello


@pytest.mark.parametrize(
    ("cid", "multihash"),
    [
        (  # CIDv1 dag-pb, base32: the multihash inside, whatever the codec
            "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "1220c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391a",
        ),
        (  # CIDv0: a bare base58btc sha2-256 multihash
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "12209d6c2be50f706953479ab9df2ce3edca90b68053c00b3004b7f0accbe1e8eedf",
        ),
    ],
)
def test_a_cid_string_names_its_multihash(cid: str, multihash: str) -> None:
    assert content_key(cid).hex() == multihash


@pytest.mark.parametrize("text", ["bafk", "bafkfoo", "b", "Qm" + "1" * 44, "BAFY", ""])
def test_text_that_only_looks_like_a_cid_is_text(text: str) -> None:
    assert content_key(text) == b"\x12\x20" + hashlib.sha256(text.encode()).digest()


def test_the_log_shows_the_text_a_key_was_given_as() -> None:
    names = KeyNames()
    key = names.key("my key")
    assert names.text(key) == "my key"
    assert names.text(content_key("from a peer")) == key_cid(content_key("from a peer"))
