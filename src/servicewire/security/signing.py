"""Message authenticity: a signature header over the headers and the payload.

A producer signs each message with the active key of a key ring; a consumer that
requires signatures verifies them and dead-letters unsigned or tampered messages with
the reason. Keys rotate: the ring holds the current key (used to sign) and older ones
(still accepted to verify) until every message signed with them has been consumed.
Replays of a signed message carry its id, so the inbox recognises them::

    ring = KeyRing({"2026-11": secret_new, "2026-10": secret_old}, active="2026-11")
    signed = ring.sign(message)            # adds the "signature" header
    ring.verify(signed)                    # raises SignatureError when it does not hold

Two algorithms: HMAC-SHA256 with shared secrets (``KeyRing``), and Ed25519 with a
private key to sign and public keys to verify (``Ed25519KeyRing``, needs
``cryptography``). The signature covers every header except ``signature`` itself and
the ones the delivery machinery rewrites on the way (``deliveryattempt`` and the
dead-letter ``dlq*`` headers), each as name and value, and then the payload.

Header format: ``v1;alg=hmac-sha256;kid=2026-11;sig=<base64url>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from servicewire.errors import ServicewireError
from servicewire.messaging import headers as h
from servicewire.messaging.message import Message

SIGNATURE = "signature"
"""The header that carries the signature."""

_UNSIGNED = frozenset({SIGNATURE, h.ATTEMPT}) | {
    h.DLQ_REASON,
    h.DLQ_EXCEPTION,
    h.DLQ_HANDLER,
    h.DLQ_CHANNEL,
    h.DLQ_GROUP,
    h.DLQ_ATTEMPTS,
    h.DLQ_TIME,
    h.DLQ_PAYLOAD,
    h.DLQ_PAYLOAD_SIZE,
    h.DLQ_PAYLOAD_REASON,
}


class SignatureError(ServicewireError):
    """A message's signature is missing, malformed, made with an unknown key, or wrong."""


def signed_bytes(message: Message) -> bytes:
    """The canonical bytes a signature covers: sorted headers, then the payload.

    Every part is length-prefixed, so no choice of header names or values can make two
    different messages produce the same bytes.
    """
    parts: list[bytes] = []
    for name in sorted(message.headers):
        if name in _UNSIGNED:
            continue
        for item in (name.encode(), message.headers[name].encode()):
            parts.append(len(item).to_bytes(4, "big") + item)
    parts.append(len(message.payload).to_bytes(8, "big") + message.payload)
    return b"".join(parts)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_signature(value: str) -> dict[str, str]:
    """``v1;alg=...;kid=...;sig=...`` -> its fields; raises SignatureError if malformed."""
    fields = value.split(";")
    if not fields or fields[0] != "v1":
        raise SignatureError(f"unsupported signature format {value[:40]!r}")
    parsed: dict[str, str] = {}
    for field in fields[1:]:
        key, sep, val = field.partition("=")
        if not sep:
            raise SignatureError(f"malformed signature field {field[:40]!r}")
        parsed[key] = val
    for required in ("alg", "kid", "sig"):
        if required not in parsed:
            raise SignatureError(f"signature without {required}")
    return parsed


class Signer(Protocol):
    def sign(self, message: Message) -> Message: ...


class Verifier(Protocol):
    def verify(self, message: Message) -> None: ...


def check_age(message: Message, max_age: timedelta | None) -> None:
    """Refuse a message whose ``time`` header is older than ``max_age`` (replay window)."""
    if max_age is None:
        return
    sent = message.headers.get(h.TIME)
    if not sent:
        raise SignatureError("message has no time header; cannot check its age")
    try:
        when = datetime.fromisoformat(sent.replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(f"unreadable time header {sent[:40]!r}") from None
    if datetime.now(UTC) - when > max_age:
        raise SignatureError(f"message sent at {sent} is older than {max_age}")


class KeyRing:
    """HMAC-SHA256 keys by key id; ``active`` signs, every key verifies."""

    algorithm = "hmac-sha256"

    def __init__(
        self,
        keys: Mapping[str, bytes],
        *,
        active: str | None = None,
        max_age: timedelta | None = None,
    ) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        for kid, secret in keys.items():
            if len(secret) < 32:
                raise ValueError(f"key {kid!r} is shorter than 32 bytes")
            if ";" in kid or "=" in kid:
                raise ValueError(f"key id {kid!r} may not contain ';' or '='")
        self._keys = dict(keys)
        self.active = active or next(iter(keys))
        if self.active not in self._keys:
            raise ValueError(f"active key {self.active!r} is not in the ring")
        self.max_age = max_age

    def _mac(self, kid: str, message: Message) -> bytes:
        return hmac.new(self._keys[kid], signed_bytes(message), hashlib.sha256).digest()

    def sign(self, message: Message) -> Message:
        sig = _b64(self._mac(self.active, message))
        return message.with_header_map(
            {SIGNATURE: f"v1;alg={self.algorithm};kid={self.active};sig={sig}"}
        )

    def verify(self, message: Message) -> None:
        value = message.headers.get(SIGNATURE)
        if value is None:
            raise SignatureError("message is not signed")
        fields = parse_signature(value)
        if fields["alg"] != self.algorithm:
            raise SignatureError(f"signature algorithm {fields['alg']!r} is not accepted")
        kid = fields["kid"]
        if kid not in self._keys:
            raise SignatureError(f"signed with unknown key {kid!r}")
        try:
            given = _unb64(fields["sig"])
        except (ValueError, TypeError):
            raise SignatureError("signature is not base64url") from None
        if not hmac.compare_digest(given, self._mac(kid, message)):
            raise SignatureError(f"signature does not match (key {kid!r}): message was altered")
        check_age(message, self.max_age)


class Ed25519KeyRing:
    """Ed25519: a private key signs; public keys (by key id) verify.

    Services that only consume need only the public keys, so a compromised consumer
    cannot forge messages.
    """

    algorithm = "ed25519"

    def __init__(
        self,
        public_keys: Mapping[str, bytes],
        *,
        private_key: bytes | None = None,
        active: str | None = None,
        max_age: timedelta | None = None,
    ) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PrivateKey,
            Ed25519PublicKey,
        )

        self._public = {k: Ed25519PublicKey.from_public_bytes(v) for k, v in public_keys.items()}
        self._private = Ed25519PrivateKey.from_private_bytes(private_key) if private_key else None
        self.active = active
        if self._private is not None and (active is None or active not in self._public):
            raise ValueError("a signing ring needs an active key id that has a public key")
        self.max_age = max_age

    def sign(self, message: Message) -> Message:
        if self._private is None or self.active is None:
            raise SignatureError("this key ring has no private key: it can only verify")
        sig = _b64(self._private.sign(signed_bytes(message)))
        return message.with_header_map(
            {SIGNATURE: f"v1;alg={self.algorithm};kid={self.active};sig={sig}"}
        )

    def verify(self, message: Message) -> None:
        from cryptography.exceptions import InvalidSignature

        value = message.headers.get(SIGNATURE)
        if value is None:
            raise SignatureError("message is not signed")
        fields = parse_signature(value)
        if fields["alg"] != self.algorithm:
            raise SignatureError(f"signature algorithm {fields['alg']!r} is not accepted")
        key = self._public.get(fields["kid"])
        if key is None:
            raise SignatureError(f"signed with unknown key {fields['kid']!r}")
        try:
            key.verify(_unb64(fields["sig"]), signed_bytes(message))
        except (InvalidSignature, ValueError):
            raise SignatureError(
                f"signature does not match (key {fields['kid']!r}): message was altered"
            ) from None
        check_age(message, self.max_age)
