"""What message signatures and service tokens cost, next to the raw primitives.

    .venv/bin/python benchmarks/security.py [--rounds 20000]

Per message (a FTGO-sized envelope: 12 headers, 300-byte payload), microseconds, best
of five runs, with the ratio to the raw primitive measured in the same run:

- HMAC sign + verify with ``KeyRing`` (canonical length-prefixed bytes, base64 header)
  and through the pipeline hook ``MessageAuthenticity`` (trace headers kept out),
  next to ``hmac.new(key, headers + payload, sha256)`` twice with ``compare_digest``;
- Ed25519 sign + verify with ``Ed25519KeyRing`` next to ``cryptography``'s
  ``Ed25519PrivateKey.sign`` + ``verify`` on the same bytes;
- a service token: ``TokenVerifier.verify`` of an HS256 token (parse, signature,
  claims) next to one ``hmac.new`` over the token's signing input (next to the JOSE
  libraries alone: ``benchmarks/tokens.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
import timeit
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from servicewire.messaging.message import Message
from servicewire.security.identity import MessageAuthenticity, TokenIssuer, TokenVerifier
from servicewire.security.signing import Ed25519KeyRing, KeyRing, signed_bytes


def _message() -> Message:
    return Message.create(
        b'{"order_id":"o-1","consumer_id":"c-1",' + b'"x":' + b"1" * 250 + b"}",
        destination="ftgo-order",
        kind="command",
        type="ftgo.order.CreateOrder",
        version="1.2.0",
        partition_key="o-1",
        correlation_id="corr-1",
        causation_id="cause-1",
        reply_to="ftgo-orders.replies",
        extra={"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
    )


def best(func: Callable[[], object], rounds: int) -> float:
    """Best microseconds per call over five runs of ``rounds`` calls."""
    return min(timeit.repeat(func, number=rounds, repeat=5)) / rounds * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    rounds = args.rounds
    message = _message()
    key = os.urandom(32)
    ring = KeyRing({"k1": key})
    hook = MessageAuthenticity(signer=ring, verifier=ring, required=True)
    raw_bytes = "".join(f"{k}={v}" for k, v in message.headers.items()).encode()
    raw_bytes += message.payload

    def raw_hmac() -> None:
        mac = hmac.new(key, raw_bytes, hashlib.sha256).digest()
        hmac.compare_digest(mac, hmac.new(key, raw_bytes, hashlib.sha256).digest())

    def ours_hmac() -> None:
        ring.verify(ring.sign(message))

    def ours_hook() -> None:
        hook.check(hook.sign(message))

    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    ed_ring = Ed25519KeyRing(
        {"e1": public.public_bytes(Encoding.Raw, PublicFormat.Raw)},
        private_key=private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
        active="e1",
    )
    canonical = signed_bytes(message)

    def raw_ed25519() -> None:
        public.verify(private.sign(canonical), canonical)

    def ours_ed25519() -> None:
        ed_ring.verify(ed_ring.sign(message))

    # A token that outlives the run (a loaded machine takes minutes; the default is 60 s).
    issuer = TokenIssuer("order-service", hmac_keys={"k1": key}, ttl=3000)
    verifier = TokenVerifier("kitchen", hmac_keys={"k1": key})
    token = issuer.token("kitchen")
    signing_input = token.rsplit(".", 1)[0].encode()

    def raw_token() -> None:
        hmac.new(key, signing_input, hashlib.sha256).digest()

    def ours_token() -> None:
        verifier.verify(token)

    cases = [
        ("HMAC sign+verify (KeyRing)", ours_hmac, raw_hmac),
        ("HMAC sign+verify (pipeline hook)", ours_hook, raw_hmac),
        ("Ed25519 sign+verify", ours_ed25519, raw_ed25519),
        ("service token verify (HS256)", ours_token, raw_token),
    ]
    print(f"{'case':36} {'ours us':>9} {'raw us':>9} {'ratio':>7}   ({rounds} rounds, best of 5)")
    for index, (name, ours, raw) in enumerate(cases, 1):
        print(f"[{index}/{len(cases)}] {name}...", file=sys.stderr, flush=True)
        n = rounds if "Ed25519" not in name else max(rounds // 10, 100)
        ours_us, raw_us = best(ours, n), best(raw, n)
        print(f"{name:36} {ours_us:9.2f} {raw_us:9.2f} {ours_us / raw_us:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
