"""Service identity: who is calling (signed tokens or a client certificate).

A calling service proves who it is with a short-lived signed bearer token (HMAC-SHA256
with shared keys, or Ed25519 so that receivers hold only public keys), or with its
client certificate under mutual TLS (the certificate's common name is the service).
The token's audience is the service called, so a token stolen from one service cannot
be replayed against another; it expires after ``ttl`` seconds (default 60)::

    issuer = TokenIssuer("order-service", hmac_keys={"k1": secret})
    token = issuer.token("kitchen-service")          # cached until close to expiry

    verifier = TokenVerifier("kitchen-service", hmac_keys={"k1": secret})
    caller = verifier.verify(token)                  # Identity(service="order-service", ...)

Which caller may call which operation is :mod:`servicewire.security.authorization`.
Tokens are compact JWS (``header.claims.signature``, alg HS256 or EdDSA), so other
stacks can issue and read them. Enforcement on servers is in
:mod:`servicewire.rest.auth` and :mod:`servicewire.grpc.auth`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from servicewire.errors import ServicewireError
from servicewire.messaging import headers as h
from servicewire.messaging.channels import validate_name
from servicewire.messaging.message import Message
from servicewire.security.signing import SIGNATURE, SignatureError, Signer, Verifier

DEFAULT_TTL = 60.0
"""Seconds a token lives: short, so a leaked token is soon worthless."""

MAX_TOKEN_BYTES = 4096
"""Longer tokens are refused before any parsing or cryptography."""


class AuthenticationError(ServicewireError):
    """No identity, or one that does not hold (bad signature, expired, wrong audience)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: a service name, and how it was proven."""

    service: str
    via: str  # "token" or "mtls"
    expires_at: float | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AuthenticationError("token is not base64url") from None


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _check_kid(kid: str) -> None:
    if not kid or len(kid) > 64:
        raise ValueError(f"key id {kid!r} must be 1..64 characters")


class TokenIssuer:
    """Signs tokens that say "I am ``service``" to one audience at a time."""

    def __init__(
        self,
        service: str,
        *,
        hmac_keys: Mapping[str, bytes] | None = None,
        ed25519_private_key: bytes | None = None,
        active: str | None = None,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        if (hmac_keys is None) == (ed25519_private_key is None):
            raise ValueError("give hmac_keys or ed25519_private_key (one of them)")
        self.service = validate_name(service, "service")
        self.ttl = ttl
        self._cache: dict[str, tuple[str, float]] = {}
        if hmac_keys is not None:
            if not hmac_keys:
                raise ValueError("hmac_keys is empty")
            for kid, secret in hmac_keys.items():
                _check_kid(kid)
                if len(secret) < 32:
                    raise ValueError(f"key {kid!r} is shorter than 32 bytes")
            self.kid = active or next(iter(hmac_keys))
            if self.kid not in hmac_keys:
                raise ValueError(f"active key {self.kid!r} is not among hmac_keys")
            self._secret: bytes | None = hmac_keys[self.kid]
            self._private: Any = None
            self.alg = "HS256"
        else:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            assert ed25519_private_key is not None
            if active is None:
                raise ValueError("an Ed25519 issuer needs active= (its key id)")
            _check_kid(active)
            self.kid = active
            self._secret = None
            self._private = Ed25519PrivateKey.from_private_bytes(ed25519_private_key)
            self.alg = "EdDSA"

    def token(self, audience: str, *, now: float | None = None) -> str:
        """A token for calls to ``audience``; reused until a quarter of its life is left."""
        at = time.time() if now is None else now
        cached = self._cache.get(audience)
        if cached is not None and now is None and cached[1] - at > self.ttl / 4:
            return cached[0]
        header = {"alg": self.alg, "kid": self.kid, "typ": "JWT"}
        exp = at + self.ttl
        claims: dict[str, str | int] = {"iss": self.service, "sub": self.service}
        claims |= {"aud": audience, "iat": int(at), "exp": int(exp)}
        signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
        if self._secret is not None:
            sig = hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()
        else:
            sig = self._private.sign(signing_input.encode())
        token = f"{signing_input}.{_b64(sig)}"
        if now is None:
            self._cache[audience] = (token, exp)
        return token

    def headers(self, audience: str) -> dict[str, str]:
        """``{"authorization": "Bearer <token>"}`` for a call to ``audience``."""
        return {"authorization": f"Bearer {self.token(audience)}"}


class TokenVerifier:
    """Checks tokens addressed to ``service``: signature, key id, audience, expiry."""

    def __init__(
        self,
        service: str,
        *,
        hmac_keys: Mapping[str, bytes] | None = None,
        ed25519_public_keys: Mapping[str, bytes] | None = None,
        leeway: float = 5.0,
        max_ttl: float = 3600.0,
    ) -> None:
        if not hmac_keys and not ed25519_public_keys:
            raise ValueError("a verifier needs hmac_keys or ed25519_public_keys")
        self.service = service
        self.leeway = leeway
        self.max_ttl = max_ttl
        self._hmac = dict(hmac_keys or {})
        self._ed25519: dict[str, Any] = {}
        if ed25519_public_keys:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            self._ed25519 = {
                kid: Ed25519PublicKey.from_public_bytes(raw)
                for kid, raw in ed25519_public_keys.items()
            }

    def verify(self, token: str, *, now: float | None = None) -> Identity:
        """The identity a token proves; :class:`AuthenticationError` if it proves none."""
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationError("token too long")
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthenticationError("malformed token")
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested absurdly
            raise AuthenticationError("malformed token") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise AuthenticationError("malformed token")
        self._check_signature(header, f"{parts[0]}.{parts[1]}".encode(), _unb64(parts[2]))
        return self._check_claims(claims, time.time() if now is None else now)

    def _check_signature(self, header: dict[str, Any], signed: bytes, sig: bytes) -> None:
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(kid, str):
            raise AuthenticationError("token names no key")
        # The algorithm is fixed by the key, never chosen by the token ("alg": "none"...).
        if alg == "HS256" and kid in self._hmac:
            mac = hmac.new(self._hmac[kid], signed, hashlib.sha256).digest()
            if not hmac.compare_digest(mac, sig):
                raise AuthenticationError("token signature does not match")
            return
        if alg == "EdDSA" and kid in self._ed25519:
            from cryptography.exceptions import InvalidSignature

            try:
                self._ed25519[kid].verify(sig, signed)
            except (InvalidSignature, ValueError):
                raise AuthenticationError("token signature does not match") from None
            return
        raise AuthenticationError(f"token signed with unknown key {kid[:64]!r}")

    def _check_claims(self, claims: dict[str, Any], now: float) -> Identity:
        service, aud = claims.get("iss"), claims.get("aud")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(service, str) or not service:
            raise AuthenticationError("token names no issuer")
        if aud != self.service:
            raise AuthenticationError("token is for another service")
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise AuthenticationError("token without exp/iat")
        if now > exp + self.leeway:
            raise AuthenticationError("token expired")
        if iat > now + self.leeway or exp - iat > self.max_ttl:
            raise AuthenticationError("token issued in the future or lives too long")
        return Identity(service=service, via="token", expires_at=float(exp), claims=claims)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        raise AuthenticationError("no credentials: send Authorization: Bearer <token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("use Authorization: Bearer <token>")
    return token.strip()


def identity_from_common_name(common_name: str | bytes | None) -> Identity:
    """The identity a mutual-TLS client certificate proves (its common name)."""
    if isinstance(common_name, bytes):
        common_name = common_name.decode("utf-8", "replace")
    if not common_name:
        raise AuthenticationError("client certificate has no common name")
    return Identity(service=common_name, via="mtls")


# Message authenticity ---------------------------------------------------------------------

# Rewritten by every hop's tracing (the relay stamps its publish span, baggage is
# re-encoded): a signature over them would break on the way, and they carry no
# authority, so they stay out of it. So do the fields of whatever other propagators
# OTEL_PROPAGATORS configures.
_TRACE_HEADERS = (h.TRACEPARENT, h.TRACESTATE, h.BAGGAGE)


@functools.cache
def _propagate() -> Any:
    """``opentelemetry.propagate``, or ``None`` without the telemetry extra."""
    try:
        from opentelemetry import propagate
    except ImportError:
        return None
    return propagate


def _hop_headers() -> tuple[str, ...]:
    propagate = _propagate()
    if propagate is None:
        return _TRACE_HEADERS
    fields = {h.propagation_header(f) for f in propagate.get_global_textmap().fields}
    return _TRACE_HEADERS + tuple(sorted(fields.difference(_TRACE_HEADERS)))


class MessageAuthenticity:
    """What a service does about message signatures (see :mod:`servicewire.security.signing`).

    ``signer`` signs every outgoing message as it is written to the outbox; ``verifier``
    checks incoming ones before they are decoded. With ``required`` an unsigned message
    is refused too (without it, unsigned messages pass and signed ones must verify)::

        signatures = Signatures(signer=ring, verifier=ring, required=True)
        Service("kitchen", options=ServiceOptions(signatures=signatures))
    """

    def __init__(
        self,
        *,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        required: bool = False,
    ) -> None:
        if required and verifier is None:
            raise ValueError("require_signatures needs a verifier")
        self.signer = signer
        self.verifier = verifier
        self.required = required

    def sign(self, message: Message) -> Message:
        if self.signer is None:
            return message
        hop = {name: message.headers[name] for name in _hop_headers() if name in message.headers}
        signed = self.signer.sign(message.with_header_map(dict.fromkeys(hop)))
        return signed.with_header_map(hop) if hop else signed

    def sign_all(self, messages: Iterable[Message]) -> list[Message]:
        return [self.sign(m) for m in messages]

    def check(self, message: Message) -> None:
        """Raise :class:`~.signing.SignatureError` unless the message may pass."""
        if self.verifier is None:
            return
        if SIGNATURE not in message.headers:
            if self.required:
                raise SignatureError("message is not signed")
            return
        self.verifier.verify(message.with_header_map(dict.fromkeys(_hop_headers())))


__all__ = [
    "AuthenticationError",
    "Identity",
    "MessageAuthenticity",
    "TokenIssuer",
    "TokenVerifier",
    "bearer_token",
    "identity_from_common_name",
]
