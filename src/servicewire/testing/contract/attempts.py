"""Contract cases on attempt counting: a poison message is dead-lettered after N attempts.

The pipeline dead-letters a message when ``Delivery.attempt`` exceeds its
:class:`~servicewire.pipeline.retry.RetryPolicy` (``should_redeliver``). If a transport's
count stalls (RabbitMQ classic queues keep only a "redelivered" flag) or restarts with
the consumer, a poison message is retried forever and its key waits behind it. These
cases settle deliveries the way the pipeline does, with its retry policy and
dead-letter publisher, so they need no database::

    class TestPigeonAttempts(AttemptContract):
        spec = TransportSpec.fixture("pigeon://127.0.0.1:7000/?queue_type=classic")

:class:`~servicewire.testing.contract.suite.TransportContract` includes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import pytest

from servicewire.messaging import headers as h
from servicewire.messaging.channels import dead_letter_channel
from servicewire.pipeline.deadletter import DLQ_GROUP, DeadLetterPublisher, dead_letter_message
from servicewire.pipeline.retry import RetryPolicy
from servicewire.testing.contract.helpers import Member, eventually, make_message, unique
from servicewire.transports.base import Delivery, Subscription, Transport


class TransportSpec(Protocol):
    """What these cases read of :class:`~servicewire.testing.contract.TransportSpec`."""

    make: Callable[[], Awaitable[Transport]]
    settle_time: float
    timeout: float


POLICY = RetryPolicy(immediate=0, delayed=3, backoff=0.05, factor=1.0, jitter=0.0)
"""Three redeliveries, then the dead letter: attempts 1, 2, 3, 4."""
EXPECTED = list(range(1, POLICY.delayed + 2))


async def settle_like_the_pipeline(
    delivery: Delivery, dead_letters: DeadLetterPublisher, channel: str, group: str
) -> None:
    """Fail ``delivery``: nack it for a later attempt, or dead-letter it after the last."""
    if POLICY.should_redeliver(delivery.attempt):
        await delivery.nack(delay=POLICY.redelivery_delay(delivery.attempt))
        return
    dead = dead_letter_message(
        delivery.message,
        channel=channel,
        group=group,
        reason=f"poison after {delivery.attempt} attempts",
        attempts=delivery.attempt,
    )
    await dead_letters.send(dead)
    await delivery.ack()


async def next_delivery(sub: Subscription, timeout: float) -> Delivery:
    """The subscription's next delivery, or an assertion error after ``timeout``."""
    async with asyncio.timeout(timeout):
        async for delivery in sub:
            return delivery
    raise AssertionError("the subscription ended before a delivery came")


async def delete_declared(transport: Transport, channel: str, group: str) -> None:
    """Delete what a case declared, on transports that can (their ``delete_*`` methods)."""
    delete_group = getattr(transport, "delete_group", None)
    delete_channel = getattr(transport, "delete_channel", None)
    with contextlib.suppress(Exception):
        if delete_group is not None:
            await delete_group(channel, group)
            await delete_group(dead_letter_channel(channel), DLQ_GROUP)
        if delete_channel is not None:
            await delete_channel(channel)
            await delete_channel(dead_letter_channel(channel))


class AttemptContract:
    """Poison messages reach the dead-letter channel after the configured attempts.

    A subclass provides the ``spec`` fixture; ``transport`` is a client made from it.
    """

    @pytest.fixture
    async def transport(self, spec: TransportSpec) -> AsyncIterator[Transport]:
        transport = await spec.make()
        try:
            yield transport
        finally:
            await transport.close()

    async def test_poison_message_reaches_the_dead_letter_channel_after_n_attempts(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel, group = unique("poison"), unique("g")
        attempts: list[int] = []
        dead_letters = DeadLetterPublisher(transport)

        async def fail(delivery: Delivery) -> None:
            attempts.append(delivery.attempt)
            await settle_like_the_pipeline(delivery, dead_letters, channel, group)

        member = Member(await transport.subscribe(channel, group), fail)
        dead = Member(await transport.subscribe(dead_letter_channel(channel), DLQ_GROUP))
        try:
            await transport.publish(make_message(channel, 1))
            await eventually(lambda: len(dead.acked) >= 1, spec.timeout, "the dead letter")
            await asyncio.sleep(spec.settle_time)
            assert attempts == EXPECTED, f"attempts {attempts}, expected {EXPECTED}"
            assert [m.headers[h.DLQ_ATTEMPTS] for m in dead.acked] == [str(EXPECTED[-1])]
        finally:
            await member.stop()
            await dead.stop()
            await delete_declared(transport, channel, group)

    async def test_attempts_continue_across_a_consumer_restart(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        # Each attempt is made by a new client (a restarted consumer process): the one
        # before nacked with a delay and closed before the redelivery. The count must
        # come from the broker (or the message), not from the last client's memory.
        # A transport that keeps nothing for a group without a live member (durable=
        # False) gets the next client before the previous one closes (a rolling restart).
        channel, group = unique("restart-attempts"), unique("g")
        rolling = not transport.capabilities.durable
        dead = Member(await transport.subscribe(dead_letter_channel(channel), DLQ_GROUP))
        attempts: list[int] = []
        previous: list[Transport | Subscription] = []
        try:
            for n, _ in enumerate(EXPECTED):
                client = await spec.make()
                sub = await client.subscribe(channel, group)
                if n == 0:
                    await transport.publish(make_message(channel, 1))
                if rolling:
                    await close_all(previous)
                try:
                    delivery = await next_delivery(sub, spec.timeout)
                    attempts.append(delivery.attempt)
                    dead_letters = DeadLetterPublisher(client)
                    await settle_like_the_pipeline(delivery, dead_letters, channel, group)
                finally:
                    previous = [sub, client]
                    if not rolling:
                        await close_all(previous)
                if not POLICY.should_redeliver(attempts[-1]):
                    break  # dead-lettered
            assert attempts == EXPECTED, f"attempts {attempts}, expected {EXPECTED}"
            await eventually(lambda: len(dead.acked) >= 1, spec.timeout, "the dead letter")
            assert dead.acked[0].headers[h.DLQ_ATTEMPTS] == str(EXPECTED[-1])
        finally:
            await close_all(previous)
            await dead.stop()
            await delete_declared(transport, channel, group)


async def close_all(closeable: list[Transport | Subscription]) -> None:
    """Close subscriptions and clients in the order given (once: the list is emptied)."""
    while closeable:
        await closeable.pop(0).close()
