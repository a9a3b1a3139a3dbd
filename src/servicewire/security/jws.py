"""Compact JWS for service tokens, signed and checked by joserfc.

:mod:`servicewire.security.identity` imports this module only when a ``TokenIssuer`` or a
``TokenVerifier`` is built, so ``import servicewire`` loads neither joserfc nor
cryptography. It raises :class:`TokenRefused`, which the verifier turns into an
``AuthenticationError``::

    token = TokenSigner.hmac("k1", secret).sign(claims)    # or TokenSigner.ed25519(...)

    checker = TokenChecker("kitchen", leeway=5, max_ttl=3600)
    checker.add_hmac("k1", secret)                  # or checker.add_ed25519("e1", public)
    claims = checker.check(token, now=time.time())  # TokenRefused unless it all holds

joserfc does the protocol: strict base64url, so a token has exactly one spelling (no
padding, no characters outside the alphabet, zero trailing bits); the key type checked
against the algorithm; constant-time MAC comparison; the registered claims (``aud`` as
a string or a list, ``exp``, ``nbf`` and ``iat`` with leeway, NaN and booleans refused).
What is ours is policy: which algorithms a key id may use, no ``crit`` extensions at
all, and the lifetime cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExceededSizeError,
    ExpiredTokenError,
    InvalidHeaderValueError,
    JoseError,
    MissingClaimError,
    MissingCritHeaderError,
    UnsupportedAlgorithmError,
    UnsupportedHeaderError,
)
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import GuestProtocol, Key, OctKey, OKPKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

HMAC_ALGORITHMS = ("HS256",)
# "EdDSA" (RFC 8037) is what we sign with: every JOSE library reads it. RFC 9864 names the
# same signature "Ed25519" (a name that fixes the curve); tokens from stacks that follow
# it verify too.
ED25519_ALGORITHMS = ("EdDSA", "Ed25519")
ALGORITHMS = HMAC_ALGORITHMS + ED25519_ALGORITHMS


class TokenRefused(Exception):
    """Why a token proves nothing. The message never repeats the token."""


def _not_accepted(_: object) -> None:
    raise ValueError("is not accepted")


class _ServiceTokens(JWSRegistry):
    """joserfc's JWS registry, narrowed to what a service token may be.

    ``get_alg`` is narrowed too: joserfc warns on every use of "EdDSA" that RFC 9864
    deprecates it, because the name does not say which curve. Here a key id fixes the
    key, and only Ed25519 keys are taken, so the warning says nothing on each call.
    """

    def get_alg(self, name: str) -> JWSAlgModel:
        if name not in ALGORITHMS:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


# crit: an extension we would have to understand; we understand none, so a token that
# names one is refused (RFC 7515 4.1.11), including RFC 7797's unencoded payload ("b64"),
# which joserfc would otherwise honour. Unknown headers that are not critical are
# ignored, as RFC 7515 section 4 asks, so other stacks may add their own.
REGISTRY = _ServiceTokens(
    header_registry={
        "crit": HeaderParameter("Critical", _not_accepted),
        "b64": HeaderParameter("Base64url-encode payload", _not_accepted),
    },
    algorithms=ALGORITHMS,
    strict_check_header=False,
)


class TokenSigner:
    """Signs claims as a compact JWS (``typ: JWT``) with one key under its key id."""

    def __init__(self, kid: str, alg: str, key: Key) -> None:
        self.kid, self.alg, self._key = kid, alg, key

    @classmethod
    def hmac(cls, kid: str, secret: bytes) -> TokenSigner:
        return cls(kid, "HS256", OctKey.import_key(secret))

    @classmethod
    def ed25519(cls, kid: str, private_raw: bytes) -> TokenSigner:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private = Ed25519PrivateKey.from_private_bytes(private_raw)
        return cls(kid, "EdDSA", OKPKey.import_key(private))

    def sign(self, claims: Mapping[str, Any]) -> str:
        header = {"alg": self.alg, "kid": self.kid}
        return jwt.encode(header, dict(claims), self._key, registry=REGISTRY)


class TokenChecker:
    """Opens tokens for ``audience`` with the keys it trusts, by key id.

    Each key id fixes its algorithms: the token's ``alg`` is only checked against the
    key's, never used to pick how to verify, so ``alg: none`` and an HS256 token "signed"
    with an Ed25519 public key fail.
    """

    def __init__(self, audience: str, *, leeway: float, max_ttl: float) -> None:
        self.audience, self.leeway, self.max_ttl = audience, leeway, max_ttl
        self._keys: dict[str, tuple[Key, tuple[str, ...]]] = {}

    def add_hmac(self, kid: str, secret: bytes) -> None:
        self._add(kid, OctKey.import_key(secret), HMAC_ALGORITHMS)

    def add_ed25519(self, kid: str, public_raw: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        public = Ed25519PublicKey.from_public_bytes(public_raw)
        self._add(kid, OKPKey.import_key(public), ED25519_ALGORITHMS)

    def _add(self, kid: str, key: Key, algorithms: tuple[str, ...]) -> None:
        if kid in self._keys:
            raise ValueError(f"key id {kid!r} is given twice (HMAC and Ed25519)")
        self._keys[kid] = (key, algorithms)

    def _key_for(self, token: GuestProtocol) -> Key:
        # joserfc calls this with the parsed header, before it checks the signature.
        header = token.headers()
        kid, alg = header.get("kid"), header.get("alg")
        if not isinstance(kid, str):
            raise TokenRefused("token names no key")
        entry = self._keys.get(kid)
        if entry is None:
            raise TokenRefused(f"token signed with unknown key {kid[:64]!r}")
        key, algorithms = entry
        if alg not in algorithms:
            raise TokenRefused(f"token algorithm does not fit key {kid[:64]!r}")
        return key

    def check(self, token: str, now: float) -> dict[str, Any]:
        """The claims of ``token`` if its header, signature and claims hold at ``now``."""
        claims = self._open(token)
        self._check_claims(claims, now)
        return claims

    def _open(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(token, self._key_for, registry=REGISTRY).claims
        except BadSignatureError:
            raise TokenRefused("token signature does not match") from None
        except UnsupportedAlgorithmError:
            accepted = ", ".join(ALGORITHMS)
            raise TokenRefused(f"token algorithm not accepted (only {accepted})") from None
        except (MissingCritHeaderError, UnsupportedHeaderError):
            raise TokenRefused("token names critical extensions (crit): refused") from None
        except InvalidHeaderValueError as exc:  # the description names the header, not its value
            raise TokenRefused(f"token header refused: {exc.description}") from None
        except ExceededSizeError:
            raise TokenRefused("token too long") from None
        # Not base64url, not JSON, not UTF-8, nested absurdly, a header that is no object...
        except (JoseError, ValueError, TypeError, RecursionError):
            raise TokenRefused("malformed token") from None

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=int(now),
            leeway=math.ceil(self.leeway),  # whole seconds: joserfc's clock ticks in them
            iss={"essential": True},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise TokenRefused("token expired") from None
        except MissingClaimError as exc:
            raise TokenRefused(f"token without {exc.claim}") from None
        except ClaimError as exc:  # joserfc's description names the rule, not the value
            message = _CLAIMS.get(exc.claim) or f"token {exc.claim} refused: {exc.description}"
            raise TokenRefused(message) from None
        if claims["exp"] - claims["iat"] > self.max_ttl:
            raise TokenRefused("token lives too long (exp - iat over max_ttl)")


_CLAIMS = {"iss": "token names no issuer", "aud": "token is for another service"}
