"""Message signatures: HMAC with rotating keys and Ed25519; tampering is detected."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from servicewire.messaging.message import Message
from servicewire.security.signing import SIGNATURE, Ed25519KeyRing, KeyRing, SignatureError


def message() -> Message:
    return Message.create(
        b'{"order_id": "o-1", "total": "12.00"}',
        destination="orders",
        kind="command",
        type="ftgo.order.Approve",
        version="1.0.0",
        correlation_id="c-1",
    )


def test_hmac_signature_verifies_and_survives_delivery_headers() -> None:
    ring = KeyRing({"k1": os.urandom(32)})
    signed = ring.sign(message())
    assert signed.headers[SIGNATURE].startswith("v1;alg=hmac-sha256;kid=k1;sig=")
    ring.verify(signed)
    # headers the delivery machinery adds are outside the signature
    ring.verify(signed.with_headers(deliveryattempt="3", dlqreason="x"))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: Message(m.id, m.headers, m.payload.replace(b"12.00", b"99.00")),
        lambda m: m.with_headers(destination="other"),
        lambda m: m.with_headers(correlationid="c-2"),
        lambda m: m.with_headers(extra="added"),
        lambda m: m.with_headers(correlationid=None),
        lambda m: Message("another-id", {**m.headers.to_dict(), "id": "another-id"}, m.payload),
    ],
)
def test_any_change_to_headers_or_payload_is_detected(tamper) -> None:  # type: ignore[no-untyped-def]
    ring = KeyRing({"k1": os.urandom(32)})
    with pytest.raises(SignatureError, match="altered"):
        ring.verify(tamper(ring.sign(message())))


def test_unsigned_unknown_key_and_malformed_are_refused() -> None:
    ring = KeyRing({"k1": os.urandom(32)})
    with pytest.raises(SignatureError, match="not signed"):
        ring.verify(message())
    other = KeyRing({"k9": os.urandom(32)})
    with pytest.raises(SignatureError, match="unknown key"):
        ring.verify(other.sign(message()))
    for bad in ("garbage", "v2;alg=x", "v1;alg=hmac-sha256", "v1;alg=hmac-sha256;kid=k1;sig"):
        with pytest.raises(SignatureError):
            ring.verify(message().with_header_map({SIGNATURE: bad}))


def test_rotation_old_key_still_verifies_new_key_signs() -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = KeyRing({"2026-10": old})
    during = KeyRing({"2026-11": new, "2026-10": old}, active="2026-11")
    signed_before = before.sign(message())
    during.verify(signed_before)
    assert "kid=2026-11" in during.sign(message()).headers[SIGNATURE]
    after = KeyRing({"2026-11": new})
    with pytest.raises(SignatureError, match="unknown key"):
        after.verify(signed_before)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeyRing({"k": b"short"})


def test_replay_window_refuses_old_messages() -> None:
    ring = KeyRing({"k1": os.urandom(32)}, max_age=timedelta(minutes=5))
    old = message().with_headers(time="2020-01-01T00:00:00.000000Z")
    with pytest.raises(SignatureError, match="older than"):
        ring.verify(ring.sign(old))
    ring.verify(ring.sign(message()))


def test_ed25519_consumers_verify_with_public_keys_only() -> None:
    private = Ed25519PrivateKey.generate()
    private_bytes = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public_bytes = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    producer = Ed25519KeyRing({"p1": public_bytes}, private_key=private_bytes, active="p1")
    consumer = Ed25519KeyRing({"p1": public_bytes})
    signed = producer.sign(message())
    assert "alg=ed25519" in signed.headers[SIGNATURE]
    consumer.verify(signed)
    with pytest.raises(SignatureError, match="altered"):
        consumer.verify(Message(signed.id, signed.headers, signed.payload + b" "))
    with pytest.raises(SignatureError, match="only verify"):
        consumer.sign(message())
    hmac_ring = KeyRing({"p1": os.urandom(32)})
    with pytest.raises(SignatureError, match="not accepted"):
        consumer.verify(hmac_ring.sign(message()))
