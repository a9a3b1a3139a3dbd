"""What verifying a service token costs: ours next to joserfc alone and PyJWT.

    .venv/bin/python benchmarks/tokens.py [--calls 500] [--windows 60]

One token per algorithm (HS256, and EdDSA on Ed25519 keys), minted by ``TokenIssuer``,
verified in the same run by:

- ours: ``TokenVerifier.verify`` (joserfc underneath, plus the key id lookup, the
  narrowed header registry, the lifetime cap and our errors);
- joserfc alone: ``jwt.decode`` + ``JWTClaimsRegistry`` with the same required claims,
  audience and leeway (what we wrap);
- PyJWT: ``jwt.decode`` with the same (the library we did not choose).

Microseconds per verify, the best of ``--windows`` short windows of ``--calls`` calls,
the three taking turns window by window: on a shared machine a long run rarely gets a
quiet stretch, a short window often does, and taking turns gives each the same chances.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from joserfc import jwt as joserfc_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import Key, OctKey, OKPKey
from joserfc.jws import JWSRegistry

from servicewire.security.identity import TokenIssuer, TokenVerifier

TTL = 3000.0  # outlives the run: a loaded machine takes minutes
REQUIRED = ("iss", "aud", "exp", "iat")


def joserfc_alone(token: str, key: Key, alg: str) -> Callable[[], object]:
    registry = JWSRegistry(algorithms=[alg])
    required = {claim: {"essential": True} for claim in REQUIRED}

    def verify() -> None:
        claims = joserfc_jwt.decode(token, key, registry=registry).claims
        joserfc_jwt.JWTClaimsRegistry(
            leeway=5, **required | {"aud": {"essential": True, "value": "kitchen"}}
        ).validate(claims)

    return verify


def pyjwt_alone(token: str, key: object, alg: str) -> Callable[[], object]:
    options = {"require": list(REQUIRED)}

    def verify() -> None:
        pyjwt.decode(token, key, algorithms=[alg], audience="kitchen", leeway=5, options=options)

    return verify


def best_in_turns(funcs: list[Callable[[], object]], calls: int, windows: int) -> list[float]:
    """Best microseconds per call of each function, windows taken in turns."""
    best = [float("inf")] * len(funcs)
    for _ in range(windows):
        for index, func in enumerate(funcs):
            start = time.perf_counter()
            for _ in range(calls):
                func()
            best[index] = min(best[index], (time.perf_counter() - start) / calls * 1e6)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--windows", type=int, default=60)
    args = parser.parse_args()
    # joserfc alone warns on each "EdDSA" (RFC 9864 deprecates the name); ours never
    # calls the warning (security/jws.py), so it is silenced for joserfc alone too.
    warnings.simplefilter("ignore", SecurityWarning)

    secret = os.urandom(32)
    hs_token = TokenIssuer("order-service", hmac_keys={"k1": secret}, ttl=TTL).token("kitchen")
    hs_ours = TokenVerifier("kitchen", hmac_keys={"k1": secret}).verify
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    ed_issuer = TokenIssuer("order-service", ed25519_private_key=raw, active="e1", ttl=TTL)
    ed_token = ed_issuer.token("kitchen")
    public_raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    ed_ours = TokenVerifier("kitchen", ed25519_public_keys={"e1": public_raw}).verify

    cases = [
        (
            "HS256",
            [
                lambda: hs_ours(hs_token),
                joserfc_alone(hs_token, OctKey.import_key(secret), "HS256"),
                pyjwt_alone(hs_token, secret, "HS256"),
            ],
        ),
        (
            "EdDSA (Ed25519)",
            [
                lambda: ed_ours(ed_token),
                joserfc_alone(ed_token, OKPKey.import_key(public), "EdDSA"),
                pyjwt_alone(ed_token, public, "EdDSA"),
            ],
        ),
    ]
    print(
        f"{'verify':16} {'ours us':>9} {'joserfc us':>11} {'PyJWT us':>9} "
        f"{'ours/joserfc':>13} {'PyJWT/joserfc':>14}   "
        f"(best of {args.windows} windows of {args.calls} calls)"
    )
    for name, funcs in cases:
        print(f"{name}...", file=sys.stderr, flush=True)
        ours, joserfc, pyjwt_us = best_in_turns(funcs, args.calls, args.windows)
        print(
            f"{name:16} {ours:9.1f} {joserfc:11.1f} {pyjwt_us:9.1f} "
            f"{ours / joserfc:13.2f} {pyjwt_us / joserfc:14.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
