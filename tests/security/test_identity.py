"""Service tokens and the authorization policy, without a network."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from servicewire.security.authorization import AccessPolicy, PermissionDeniedError
from servicewire.security.identity import (
    AuthenticationError,
    Identity,
    TokenIssuer,
    TokenVerifier,
    bearer_token,
)

KEYS = {"k1": os.urandom(32)}


def _ed25519() -> tuple[bytes, bytes]:
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return raw, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_hmac_token_round_trip_and_cache() -> None:
    issuer = TokenIssuer("order-service", hmac_keys=KEYS, ttl=30)
    token = issuer.token("kitchen")
    assert issuer.token("kitchen") == token  # cached while fresh
    who = TokenVerifier("kitchen", hmac_keys=KEYS).verify(token)
    assert who.service == "order-service" and who.via == "token"
    assert who.expires_at is not None and who.expires_at <= time.time() + 30


def test_ed25519_token_needs_only_the_public_key() -> None:
    private, public = _ed25519()
    issuer = TokenIssuer("order-service", ed25519_private_key=private, active="e1")
    verifier = TokenVerifier("kitchen", ed25519_public_keys={"e1": public})
    assert verifier.verify(issuer.token("kitchen")).service == "order-service"
    other_private, _ = _ed25519()
    forged = TokenIssuer("order-service", ed25519_private_key=other_private, active="e1")
    with pytest.raises(AuthenticationError, match="does not match"):
        verifier.verify(forged.token("kitchen"))


def test_algorithm_confusion_and_tampering_are_refused() -> None:
    _, public = _ed25519()
    verifier = TokenVerifier("kitchen", hmac_keys=KEYS, ed25519_public_keys={"e1": public})
    token = TokenIssuer("order-service", hmac_keys=KEYS).token("kitchen")
    header, claims, sig = token.split(".")
    # HS256 "signed" with the public key of an Ed25519 kid: refused, the kid fixes the alg.
    confused = _b64(json.dumps({"alg": "HS256", "kid": "e1"}).encode())
    none = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    escalated = json.loads(base64.urlsafe_b64decode(claims + "=="))
    escalated["iss"] = "admin-service"
    for bad in (
        f"{confused}.{claims}.{sig}",
        f"{none}.{claims}.",
        f"{header}.{_b64(json.dumps(escalated).encode())}.{sig}",
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "x" * 5000,
        "",
        "a.b",
        f"{header}.{_b64(b'[' * 100000)}.{sig}",
    ):
        with pytest.raises(AuthenticationError):
            verifier.verify(bad)


def test_expiry_audience_and_lifetime() -> None:
    issuer = TokenIssuer("order-service", hmac_keys=KEYS, ttl=60)
    verifier = TokenVerifier("kitchen", hmac_keys=KEYS, leeway=5, max_ttl=300)
    with pytest.raises(AuthenticationError, match="expired"):
        verifier.verify(issuer.token("kitchen", now=time.time() - 120))
    with pytest.raises(AuthenticationError, match="another service"):
        verifier.verify(issuer.token("billing"))
    long_lived = TokenIssuer("order-service", hmac_keys=KEYS, ttl=86400)
    with pytest.raises(AuthenticationError, match="too long"):
        verifier.verify(long_lived.token("kitchen"))
    with pytest.raises(AuthenticationError, match="future"):
        verifier.verify(issuer.token("kitchen", now=time.time() + 600))


def test_key_rotation() -> None:
    old, new = os.urandom(32), os.urandom(32)
    verifier = TokenVerifier("kitchen", hmac_keys={"2026-10": old, "2026-11": new})
    for kid in ("2026-10", "2026-11"):
        issuer = TokenIssuer("orders", hmac_keys={"2026-10": old, "2026-11": new}, active=kid)
        assert verifier.verify(issuer.token("kitchen")).service == "orders"


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in (None, "", "Basic dXNlcg==", "Bearer", "Bearer   "):
        with pytest.raises(AuthenticationError):
            bearer_token(bad)


def test_policy_first_match_and_default_deny() -> None:
    policy = AccessPolicy(
        [
            ("POST /v1/orders/*/cancel", {"api-gateway"}),
            ("POST /v1/orders*", {"api-gateway", "order-saga"}),
            ("GET /v1/*", {"*"}),
        ]
    )
    gateway, saga = Identity("api-gateway", "token"), Identity("order-saga", "mtls")
    policy.check(gateway, "POST /v1/orders/o-1/cancel")
    with pytest.raises(PermissionDeniedError):
        policy.check(saga, "POST /v1/orders/o-1/cancel")
    policy.check(saga, "POST /v1/orders")
    policy.check(Identity("anyone", "token"), "GET /v1/orders/o-1")
    with pytest.raises(PermissionDeniedError, match="DELETE"):
        policy.check(gateway, "DELETE /v1/orders/o-1")  # no rule: denied


def test_issuer_configuration_errors() -> None:
    with pytest.raises(ValueError):
        TokenIssuer("orders", hmac_keys={"k": b"short"})
    with pytest.raises(ValueError):
        TokenIssuer("orders")
    with pytest.raises(ValueError):
        TokenIssuer("not a name!", hmac_keys=KEYS)
