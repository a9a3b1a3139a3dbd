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
stacks can issue and read them; joserfc signs and checks them
(:mod:`servicewire.security.jws`, imported on first use: ``servicewire[security]``, which
the ``rest`` and ``grpc`` extras include). Enforcement on servers is in
:mod:`servicewire.rest.auth` and :mod:`servicewire.grpc.auth`.
"""

from __future__ import annotations

import functools
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


def _check_kid(kid: str) -> None:
    if not kid or len(kid) > 64:
        raise ValueError(f"key id {kid!r} must be 1..64 characters")


def _check_hmac_keys(hmac_keys: Mapping[str, bytes]) -> None:
    for kid, secret in hmac_keys.items():
        _check_kid(kid)
        # RFC 7518 3.2: an HS256 key at least as long as the hash (256 bits).
        if len(secret) < 32:
            raise ValueError(f"key {kid!r} is shorter than 32 bytes")


def _import_jws() -> None:
    """Import :mod:`servicewire.security.jws` (joserfc) when tokens are first used."""
    try:
        import servicewire.security.jws  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"service tokens need joserfc ({exc.name} is missing): "
            "pip install 'servicewire[security]' (the rest and grpc extras include it)",
            name=exc.name,
        ) from exc


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
        _import_jws()
        from servicewire.security.jws import TokenSigner

        if hmac_keys is not None:
            if not hmac_keys:
                raise ValueError("hmac_keys is empty")
            _check_hmac_keys(hmac_keys)
            kid = active or next(iter(hmac_keys))
            if kid not in hmac_keys:
                raise ValueError(f"active key {kid!r} is not among hmac_keys")
            self._signer = TokenSigner.hmac(kid, hmac_keys[kid])
        else:
            assert ed25519_private_key is not None
            if active is None:
                raise ValueError("an Ed25519 issuer needs active= (its key id)")
            _check_kid(active)
            self._signer = TokenSigner.ed25519(active, ed25519_private_key)
        self.kid, self.alg = self._signer.kid, self._signer.alg

    def token(self, audience: str, *, now: float | None = None) -> str:
        """A token for calls to ``audience``; reused until a quarter of its life is left."""
        at = time.time() if now is None else now
        cached = self._cache.get(audience)
        if cached is not None and now is None and cached[1] - at > self.ttl / 4:
            return cached[0]
        exp = at + self.ttl
        claims = {"iss": self.service, "sub": self.service, "aud": audience}
        token = self._signer.sign(claims | {"iat": int(at), "exp": int(exp)})
        if now is None:
            self._cache[audience] = (token, exp)
        return token

    def headers(self, audience: str) -> dict[str, str]:
        """``{"authorization": "Bearer <token>"}`` for a call to ``audience``."""
        return {"authorization": f"Bearer {self.token(audience)}"}


class TokenVerifier:
    """Checks tokens addressed to ``service``: signature, key id, audience, lifetime.

    ``aud`` may be a string or a list that holds ``service``; ``exp``, ``nbf`` and
    ``iat`` are checked with ``leeway`` seconds of clock skew; a token may live at most
    ``max_ttl`` seconds (``exp - iat``). Give several keys to rotate: tokens under the
    old and the new key id both verify until the old one is removed.
    """

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
        _import_jws()
        from servicewire.security.jws import TokenChecker

        self._checker = TokenChecker(service, leeway=leeway, max_ttl=max_ttl)
        _check_hmac_keys(hmac_keys or {})
        for kid, secret in (hmac_keys or {}).items():
            self._checker.add_hmac(kid, secret)
        for kid, raw in (ed25519_public_keys or {}).items():
            _check_kid(kid)
            self._checker.add_ed25519(kid, raw)

    def verify(self, token: str, *, now: float | None = None) -> Identity:
        """The identity a token proves; :class:`AuthenticationError` if it proves none."""
        from servicewire.security.jws import TokenRefused

        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationError("token too long")
        try:
            claims = self._checker.check(token, time.time() if now is None else now)
        except TokenRefused as exc:
            raise AuthenticationError(str(exc)) from None
        expires_at = float(claims["exp"])
        return Identity(service=claims["iss"], via="token", expires_at=expires_at, claims=claims)


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
