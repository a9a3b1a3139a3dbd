"""Message authenticity in the pipeline: signed on the way out, checked before decoding.

Unsigned, tampered and unknown-key messages are dead-lettered at once with the reason
"signature: ..."; a replay of a signed message is a DUPLICATE (the inbox has its id).
"""

from __future__ import annotations

import asyncio
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from servicewire import Context, Service, ServiceOptions
from servicewire.codecs.serialization import to_message
from servicewire.messaging import headers
from servicewire.messaging.message import Message
from servicewire.pipeline.retry import NO_RETRY
from servicewire.pipeline.unit_of_work import Outcome
from servicewire.security.signing import SIGNATURE, Ed25519KeyRing, KeyRing
from servicewire.service import Signatures
from servicewire.testing import ServiceHarness
from tests.service.contracts import CreateTicket, TicketEvent

RING = KeyRing({"k2": os.urandom(32), "k1": os.urandom(32)}, active="k2")
OTHER = KeyRing({"k9": os.urandom(32)})


def kitchen(signatures: Signatures, transport: str = "memory://") -> tuple[Service, list[str]]:
    options = ServiceOptions(retry=NO_RETRY, signatures=signatures)
    service = Service("kitchen", transport=transport, options=options)
    seen: list[str] = []

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        seen.append(cmd.order_id)
        await ctx.publish(TicketEvent(order_id=cmd.order_id, seq=1))

    return service, seen


def command(order_id: str) -> Message:
    return to_message(CreateTicket(order_id=order_id))


async def test_signed_is_handled_and_replay_is_a_duplicate() -> None:
    service, seen = kitchen(Signatures(verifier=RING, required=True))
    async with ServiceHarness(service) as harness:
        signed = RING.sign(command("o-1"))
        assert await harness.deliver(signed) is Outcome.HANDLED
        assert await harness.deliver(signed) is Outcome.DUPLICATE  # replayed as is
        assert seen == ["o-1"]
        assert await harness.dead_lettered() == []


async def test_unsigned_tampered_and_unknown_key_are_dead_lettered() -> None:
    service, seen = kitchen(Signatures(verifier=RING, required=True))
    async with ServiceHarness(service) as harness:
        signed = RING.sign(command("o-2"))
        tampered_payload = Message(
            signed.id, signed.headers, signed.payload.replace(b"o-2", b"o-3")
        )
        tampered_header = signed.with_headers(**{headers.REPLY_TO: "attacker.replies"})
        cases = {
            "not signed": command("o-4"),
            "altered": tampered_payload,
            "altered ": tampered_header,
            "unknown key": OTHER.sign(command("o-5")),
            "unsupported": command("o-6").with_headers(**{SIGNATURE: "v0;junk"}),
        }
        for expected, message in cases.items():
            assert await harness.deliver(message) is Outcome.DEAD_LETTERED, expected
        dead = await harness.dead_lettered()
        assert len(dead) == len(cases)
        for (expected, _m), letter in zip(cases.items(), dead, strict=True):
            reason = letter.headers[headers.DLQ_REASON]
            assert reason.startswith("signature: "), reason
            assert expected.strip() in reason, reason
        assert seen == []  # no handler ran, and nothing was decoded into one


async def test_rotation_old_key_still_verifies() -> None:
    old = KeyRing({"k1": RING._keys["k1"]})
    service, seen = kitchen(Signatures(verifier=RING, required=True))
    async with ServiceHarness(service) as harness:
        assert await harness.deliver(old.sign(command("o-7"))) is Outcome.HANDLED
    assert seen == ["o-7"]


async def test_optional_signatures_pass_unsigned_but_check_signed() -> None:
    service, seen = kitchen(Signatures(verifier=RING))
    async with ServiceHarness(service) as harness:
        assert await harness.deliver(command("o-8")) is Outcome.HANDLED
        forged = OTHER.sign(command("o-9"))
        assert await harness.deliver(forged) is Outcome.DEAD_LETTERED
    assert seen == ["o-8"]


async def test_outgoing_messages_are_signed_in_the_outbox() -> None:
    service, _ = kitchen(Signatures(signer=RING, verifier=RING, required=True))
    async with ServiceHarness(service) as harness:
        assert await harness.deliver(RING.sign(command("o-10"))) is Outcome.HANDLED
        [event] = await harness.sent()
        assert event.headers[SIGNATURE].startswith("v1;alg=hmac-sha256;kid=k2;")
        RING.verify(event)


async def test_ed25519_end_to_end_over_a_transport() -> None:
    """Producer signs with its private key; consumer holds only the public key."""
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    producer_ring = Ed25519KeyRing({"p1": public}, private_key=raw, active="p1")
    consumer_ring = Ed25519KeyRing({"p1": public})
    transport = "memory://sig-e2e"
    producer = Service(
        "orders",
        transport=transport,
        options=ServiceOptions(signatures=Signatures(signer=producer_ring)),
    )
    consumer, seen = kitchen(Signatures(verifier=consumer_ring, required=True), transport)
    async with consumer, producer:
        await producer.send(CreateTicket(order_id="o-11"))
        for _ in range(500):
            if seen:
                break
            await asyncio.sleep(0.01)
    assert seen == ["o-11"]
    assert consumer.stats["handled"] == 1
    assert consumer.stats["dead-lettered"] == 0
