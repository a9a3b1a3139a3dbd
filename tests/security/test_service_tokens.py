"""Service tokens on joserfc: one spelling per token, claims, crit, algorithms, rotation.

Interop runs both ways against PyJWT, a second JOSE library: it reads the tokens our
``TokenIssuer`` mints, and ``TokenVerifier`` reads the ones PyJWT mints.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from servicewire.security.identity import AuthenticationError, TokenIssuer, TokenVerifier

SECRET = os.urandom(32)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _lenient(text: str) -> bytes | None:
    """What the hand-rolled verifier's decoder made of a segment (Python's lenient one)."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


def _ed25519() -> tuple[Ed25519PrivateKey, bytes, bytes]:
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return private, raw, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _claims(**override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": "order-service", "aud": "kitchen", "iat": now, "exp": now + 60}
    return {k: v for k, v in (claims | override).items() if v is not None}


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes = SECRET) -> str:
    """A token signed by hand, so that a test can put anything in its header."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _other_spellings(segment: str) -> list[str]:
    """Spellings of ``segment`` that a lenient decoder reads as the same bytes."""
    spellings = [segment + "=" * n for n in (1, 2)]
    spellings += [segment[:5] + junk + segment[5:] for junk in ("!!!!", "    ", "\n\n\n\n", "$$$$")]
    spellings.append(segment.replace("-", "+").replace("_", "/"))
    # Unused low bits of the last character: 4 of them when the bytes leave 2 bits in
    # it (HS256's 32 bytes), 2 of them for 4 bits (Ed25519's 64 bytes).
    unused = {2: 4, 3: 2}.get(len(segment) % 4, 0)
    last = ALPHABET.index(segment[-1])
    spellings += [segment[:-1] + ALPHABET[last | bits] for bits in range(1, 2**unused)]
    return [s for s in spellings if s != segment]


@pytest.mark.parametrize("kind", ["HS256", "EdDSA"])
def test_only_the_canonical_spelling_of_a_token_verifies(kind: str) -> None:
    if kind == "HS256":
        issuer = TokenIssuer("order-service", hmac_keys={"k1": SECRET})
        verifier = TokenVerifier("kitchen", hmac_keys={"k1": SECRET})
    else:
        _, private, public = _ed25519()
        issuer = TokenIssuer("order-service", ed25519_private_key=private, active="e1")
        verifier = TokenVerifier("kitchen", ed25519_public_keys={"e1": public})
    token = issuer.token("kitchen")
    assert verifier.verify(token).service == "order-service"
    header, claims, signature = token.split(".")
    variants = [f"{header}.{claims}.{s}" for s in _other_spellings(signature)]
    variants += [f"{h}.{claims}.{signature}" for h in _other_spellings(header)[:3]]
    variants += [f"{header}.{c}.{signature}" for c in _other_spellings(claims)[:3]]
    variants += [token + "\n", " " + token]
    lenient_same = 0
    for variant in variants:
        parts = variant.split(".")
        if parts[:2] == [header, claims] and _lenient(parts[2]) == _lenient(signature):
            lenient_same += 1  # the old decoder read this one as the very same signature
        with pytest.raises(AuthenticationError):
            verifier.verify(variant)
    assert lenient_same >= 8  # the refusals above are of real alternative spellings


def test_audience_may_be_a_string_or_a_list_that_names_us() -> None:
    verifier = TokenVerifier("kitchen", hmac_keys={"k1": SECRET})
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    for aud in ("kitchen", ["kitchen"], ["billing", "kitchen"]):
        assert verifier.verify(_hs256(header, _claims(aud=aud))).service == "order-service"
    for aud in ("billing", ["billing", "accounting"], [], "", ["kitchen", 7], 7, None):
        with pytest.raises(AuthenticationError, match=r"another service|without aud"):
            verifier.verify(_hs256(header, _claims(aud=aud)))


def test_exp_nbf_and_iat_with_leeway() -> None:
    verifier = TokenVerifier("kitchen", hmac_keys={"k1": SECRET}, leeway=5, max_ttl=300)
    header = {"alg": "HS256", "kid": "k1"}
    now = int(time.time())
    accepted = [
        _claims(exp=now - 3),  # expired, but within the leeway
        _claims(nbf=now + 3),  # not valid yet, within the leeway
        _claims(nbf=now - 10),
        _claims(iat=now + 3, exp=now + 60),  # the issuer's clock is a little ahead
    ]
    for claims in accepted:
        assert verifier.verify(_hs256(header, claims)).service == "order-service"
    refused = {
        "expired": _claims(exp=now - 30),
        "nbf": _claims(nbf=now + 30),
        "future": _claims(iat=now + 30, exp=now + 90),
        "too long": _claims(exp=now + 3600),
        "without exp": _claims(exp=None),
        "without iat": _claims(iat=None),
        "without iss": _claims(iss=None),
        "no issuer": _claims(iss=""),
        "exp refused": _claims(exp="tomorrow"),
        "nbf refused": _claims(nbf=True),
    }
    for reason, claims in refused.items():
        with pytest.raises(AuthenticationError, match=reason):
            verifier.verify(_hs256(header, claims))
    # now= moves the verifier's clock: the same token, seen later, has expired.
    token = _hs256(header, _claims())
    with pytest.raises(AuthenticationError, match="expired"):
        verifier.verify(token, now=now + 120)


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["x-policy"], "x-policy": "require-mfa"},
        {"crit": ["x-policy"]},  # names a header that is not there
        {"crit": ["b64"], "b64": True},
        {"crit": ["b64"], "b64": False},
        {"crit": ["kid"]},
        {"crit": []},
        {"crit": "x-policy"},
        {"b64": False},
    ],
)
def test_critical_extensions_are_refused(extra: dict[str, Any]) -> None:
    verifier = TokenVerifier("kitchen", hmac_keys={"k1": SECRET})
    assert verifier.verify(_hs256({"alg": "HS256", "kid": "k1"}, _claims()))
    with pytest.raises(AuthenticationError, match=r"crit|header refused|malformed"):
        verifier.verify(_hs256({"alg": "HS256", "kid": "k1", **extra}, _claims()))


def test_unknown_headers_that_are_not_critical_are_ignored() -> None:
    # RFC 7515 section 4: other stacks may add headers of their own.
    verifier = TokenVerifier("kitchen", hmac_keys={"k1": SECRET})
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT", "x-trace": "abc"}
    assert verifier.verify(_hs256(header, _claims())).service == "order-service"


def test_algorithm_confusion_is_refused() -> None:
    ed_private, _, ed_public = _ed25519()
    verifier = TokenVerifier(
        "kitchen", hmac_keys={"k1": SECRET}, ed25519_public_keys={"e1": ed_public}
    )
    claims = _claims()
    body = _b64(json.dumps(claims).encode())
    none = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    # An HS256 token "signed" with the Ed25519 public key (which every receiver holds).
    confused = _hs256({"alg": "HS256", "kid": "e1"}, claims, secret=ed_public)
    # An EdDSA header on the HMAC key id, and a real Ed25519 signature on the HMAC kid.
    wrong_kid = f"{_b64(json.dumps({'alg': 'EdDSA', 'kid': 'k1'}).encode())}.{body}"
    wrong_kid += "." + _b64(ed_private.sign(wrong_kid.encode()))
    for bad, reason in [
        (f"{none}.{body}.", "not accepted"),
        (f"{none}.{body}.{_b64(b'x' * 32)}", "not accepted"),
        (confused, "does not fit key 'e1'"),
        (wrong_kid, "does not fit key 'k1'"),
        (_hs256({"alg": "HS384", "kid": "k1"}, claims), "not accepted"),
        (_hs256({"alg": "HS256"}, claims), "names no key"),
        (_hs256({"alg": "HS256", "kid": "k9"}, claims), "unknown key 'k9'"),
    ]:
        with pytest.raises(AuthenticationError, match=reason):
            verifier.verify(bad)


def test_rfc9864_ed25519_algorithm_name_verifies_on_an_ed25519_key() -> None:
    private, _, public = _ed25519()
    verifier = TokenVerifier("kitchen", ed25519_public_keys={"e1": public})
    signing_input = f"{_b64(json.dumps({'alg': 'Ed25519', 'kid': 'e1'}).encode())}"
    signing_input += f".{_b64(json.dumps(_claims()).encode())}"
    token = f"{signing_input}.{_b64(private.sign(signing_input.encode()))}"
    assert verifier.verify(token).service == "order-service"


def test_key_rotation_old_and_new_key_ids() -> None:
    old, new = os.urandom(32), os.urandom(32)
    ring = {"2026-10": old, "2026-11": new}
    both = TokenVerifier("kitchen", hmac_keys=ring)
    new_only = TokenVerifier("kitchen", hmac_keys={"2026-11": new})
    old_token = TokenIssuer("orders", hmac_keys=ring, active="2026-10").token("kitchen")
    new_token = TokenIssuer("orders", hmac_keys=ring, active="2026-11").token("kitchen")
    assert both.verify(old_token).service == both.verify(new_token).service == "orders"
    assert new_only.verify(new_token).service == "orders"
    with pytest.raises(AuthenticationError, match="unknown key '2026-10'"):
        new_only.verify(old_token)  # the old key removed: its tokens are revoked
    # Ed25519 rotates the same way, receivers holding only the public keys.
    _, old_private, old_public = _ed25519()
    _, new_private, new_public = _ed25519()
    verifier = TokenVerifier("kitchen", ed25519_public_keys={"e1": old_public, "e2": new_public})
    for kid, private in (("e1", old_private), ("e2", new_private)):
        issuer = TokenIssuer("orders", ed25519_private_key=private, active=kid)
        assert verifier.verify(issuer.token("kitchen")).service == "orders"
    # A token under e2's id but signed with e1's key fails on the signature.
    swapped = TokenIssuer("orders", ed25519_private_key=old_private, active="e2")
    with pytest.raises(AuthenticationError, match="does not match"):
        verifier.verify(swapped.token("kitchen"))


def test_key_configuration_errors() -> None:
    _, _, public = _ed25519()
    with pytest.raises(ValueError, match="32 bytes"):
        TokenVerifier("kitchen", hmac_keys={"k1": b"short"})
    with pytest.raises(ValueError, match="twice"):
        TokenVerifier("kitchen", hmac_keys={"k1": SECRET}, ed25519_public_keys={"k1": public})
    with pytest.raises(ValueError, match=r"1\.\.64"):
        TokenVerifier("kitchen", ed25519_public_keys={"": public})


def test_pyjwt_reads_the_tokens_we_mint() -> None:
    token = TokenIssuer("order-service", hmac_keys={"k1": SECRET}).token("kitchen")
    required = {"require": ["iss", "aud", "exp", "iat"]}
    claims = pyjwt.decode(token, SECRET, algorithms=["HS256"], audience="kitchen", options=required)
    assert claims["iss"] == "order-service"
    assert pyjwt.get_unverified_header(token)["kid"] == "k1"
    private_key, private, _ = _ed25519()
    token = TokenIssuer("order-service", ed25519_private_key=private, active="e1").token("kitchen")
    public = private_key.public_key()
    claims = pyjwt.decode(token, public, algorithms=["EdDSA"], audience="kitchen", options=required)
    assert claims["sub"] == "order-service"
    with pytest.raises(pyjwt.InvalidAudienceError):
        pyjwt.decode(token, public, algorithms=["EdDSA"], audience="billing")


def test_we_read_the_tokens_pyjwt_mints() -> None:
    now = int(time.time())
    claims = {"iss": "php-gateway", "aud": ["billing", "kitchen"], "iat": now, "nbf": now}
    claims |= {"exp": now + 30, "jti": "t-1", "scope": "orders:read"}
    verifier = TokenVerifier("kitchen", hmac_keys={"k1": SECRET})
    token = pyjwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k1"})
    who = verifier.verify(token)
    assert who.service == "php-gateway" and who.claims["scope"] == "orders:read"
    assert who.expires_at == now + 30
    private, _, public = _ed25519()
    ed_verifier = TokenVerifier("kitchen", ed25519_public_keys={"e1": public})
    token = pyjwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "e1"})
    assert ed_verifier.verify(token).service == "php-gateway"
    # PyJWT's token without a key id, or for another audience, proves nothing here.
    with pytest.raises(AuthenticationError, match="names no key"):
        verifier.verify(pyjwt.encode(claims, SECRET, algorithm="HS256"))
    other = pyjwt.encode(
        claims | {"aud": "billing"}, SECRET, algorithm="HS256", headers={"kid": "k1"}
    )
    with pytest.raises(AuthenticationError, match="another service"):
        verifier.verify(other)


def test_import_servicewire_loads_no_jose_library() -> None:
    code = (
        "import sys, servicewire, servicewire.security\n"
        "loaded = {'joserfc', 'jwt', 'cryptography'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
        "servicewire.security.TokenVerifier('kitchen', hmac_keys={'k': b'k' * 32})\n"
        "assert 'joserfc' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
