"""A poison message is dead-lettered after the configured attempts, restarts or not.

Issue 16 reproduced it through the public API on RabbitMQ with ``?queue_type=classic``:
an always-failing handler ran ~290 times in 30 s with ``attempt`` stuck at 2 and was
never dead-lettered. Here every attempt is made by a new service instance (the one
before stopped during the nack delay), so the count must come from the broker or the
message, never from a process's memory. Each broker run uses its own channel and
deletes what the services declared on the shared servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from servicewire import Command, Context, RetryPolicy, Service, ServiceOptions
from servicewire.codecs import to_message
from servicewire.messaging import headers as h
from servicewire.messaging.channels import dead_letter_channel
from servicewire.pipeline.deadletter_replay import list_dead_letters
from servicewire.transports import connect_transport
from tests.redis_prefix import redis_prefix_url
from tests.services import URLS, require

CHANNEL = f"test-poison-{uuid.uuid4().hex[:10]}"
POLICY = RetryPolicy(immediate=0, delayed=2, backoff=0.3, factor=1.0, jitter=0.0)
"""Attempts 1, 2 and 3; the third failure dead-letters."""


class Poison(Command, name="test.poison.Poison", version="1.0.0", channel=CHANNEL, key="order"):
    order: str


Declared = set[tuple[str, str]]


@contextlib.asynccontextmanager
async def broker(kind: str, declared: Declared) -> AsyncIterator[str]:
    """The URL of ``kind``; afterwards, what the services declared there is deleted."""
    if kind == "memory":
        yield f"memory://{uuid.uuid4().hex}"
    elif kind == "redis":
        async with redis_prefix_url("test-poison") as url:
            yield url
    else:
        service_name = "rabbitmq" if kind.startswith("amqp") else kind
        require(service_name)
        url = URLS[service_name] + ("?queue_type=classic" if kind == "amqp-classic" else "")
        try:
            yield url
        finally:
            await delete_declared(url, declared)


async def delete_declared(url: str, declared: Declared) -> None:
    cleaner = await connect_transport(url)
    delete_group = getattr(cleaner, "delete_group", None)
    delete_channel = getattr(cleaner, "delete_channel", None)
    try:
        channels = {channel for channel, _ in declared}
        if delete_group is not None:
            for channel, group in sorted(declared):
                await delete_group(channel, group)
        if delete_channel is not None:
            for channel in sorted(channels):
                await delete_channel(channel)  # with its .dlq channel and dead-letters
    finally:
        await cleaner.close()


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("kind", ["amqp-classic", "amqp-quorum", "redis", "nats", "memory"])
async def test_poison_message_is_dead_lettered_after_its_attempts_across_restarts(
    kind: str,
) -> None:
    declared: Declared = {(dead_letter_channel(CHANNEL), "dead-letters")}
    attempts: list[int] = []
    async with broker(kind, declared) as url:
        tool = await connect_transport(url)
        try:
            for instance in range(POLICY.delayed + 1):
                service = await start_failing_service(url, attempts, declared)
                try:
                    if instance == 0:
                        await tool.publish(to_message(Poison(order="o-1")))
                    await wait_for(lambda n=instance: len(attempts) > n, f"attempt {instance + 1}")
                    if instance == POLICY.delayed:
                        await wait_for(lambda s=service: s.stats["dead-lettered"] >= 1, "the DLQ")
                finally:
                    await service.stop()  # during the nack delay: the next instance goes on
            assert attempts == [1, 2, 3], f"{kind}: attempts {attempts}"
            [dead] = await list_dead_letters(tool, CHANNEL, idle=2.0)
            assert dead.headers[h.DLQ_ATTEMPTS] == "3"
            assert h.ATTEMPT not in dead.headers
        finally:
            await tool.close()


async def start_failing_service(url: str, attempts: list[int], declared: Declared) -> Service:
    service = Service("poisoned", transport=url, options=ServiceOptions(retry=POLICY))

    @service.handles(Poison)
    async def handle(cmd: Poison, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        raise ValueError(f"poison {cmd.order}")

    await service.start()
    declared.update((sub.channel, sub.group) for sub in service._consumers.subscriptions)
    return service
