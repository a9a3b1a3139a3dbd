"""A service instance leaves nothing behind on its broker: its reply channel goes with it.

Three ``start() → request() → stop()`` cycles of a requester must leave the broker with
the objects it had before (issue 16 found 17 queues and 4 exchanges per start on
RabbitMQ, 16 streams and groups on Redis, a stream and 16 consumers on NATS). And when
an instance dies without stopping, the broker removes its reply objects by itself
once their time is up (RabbitMQ ``x-expires``, Redis key expiry, NATS inactive
threshold).

RabbitMQ runs on a private node (its whole queue and exchange list is counted with
``rabbitmqctl``); Redis and NATS are the shared servers, where only the names that
carry the test's unique service name are counted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from servicewire import Context, Service
from servicewire.messaging.channels import reply_channel
from servicewire.transports import connect_transport
from tests import services
from tests.broker_objects import nats_objects, rabbit_objects, redis_objects
from tests.service.contracts import CreateTicket, TicketCreated
from tests.transports.test_amqp import PrivateRabbit
from tests.transports.test_amqp import private_rabbit as private_rabbit  # the module fixture

# Brokers --------------------------------------------------------------------------------


@dataclass
class Broker:
    """A broker, its URL for a service, and what of a service's it holds now."""

    name: str
    url: str
    objects: Callable[[str], Awaitable[list[str]]]
    """Names of the broker objects that belong to service ``name`` (or, on the private
    RabbitMQ node, of every object there)."""
    crash_url: str
    """The URL with a 2-second lifetime for an abandoned reply channel."""


@pytest.fixture(params=["amqp", "redis", "nats"])
def broker(request: pytest.FixtureRequest) -> Broker:
    if request.param == "amqp":
        node: PrivateRabbit = request.getfixturevalue("private_rabbit")
        url = node.url + "?member_interval=0.5&member_timeout=2"
        return Broker("amqp", url, rabbit_objects(node), url + "&reply_expires=2")
    if request.param == "redis":
        services.require("redis")
        url = services.URLS["redis"]
        return Broker("redis", url, redis_objects, url + "?reply_ttl=2")
    services.require("nats")
    url = services.URLS["nats"]
    return Broker("nats", url, nats_objects, url + "?reply_ttl=2")


async def _settled(
    broker: Broker, service: str, expected: list[str], timeout: float = 15.0
) -> list[str]:
    """What the broker holds of ``service`` once it matches ``expected`` or time is up
    (auto-delete and exclusive queues go a moment after their connection closes)."""
    deadline = time.monotonic() + timeout
    while True:
        now = await broker.objects(service)
        if now == expected or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.5)


@pytest.fixture
async def responder(broker: Broker) -> AsyncIterator[tuple[Service, str]]:
    """A service answering CreateTicket on a channel of its own, removed afterwards."""
    service_name = f"leak-{uuid.uuid4().hex[:10]}"
    channel = f"{service_name}-cmd"
    responder = Service(f"{service_name}-responder", transport=broker.url)

    @responder.handles(CreateTicket, channel=channel)
    async def create(cmd: CreateTicket, ctx: Context) -> None:
        await ctx.reply(TicketCreated(order_id=cmd.order_id, ticket_id=f"t-{cmd.order_id}"))

    await responder.start()
    try:
        yield responder, channel
    finally:
        await responder.stop()
        cleaner = await connect_transport(broker.url)
        try:
            await cleaner.tear_down(channel, [responder.name])
        finally:
            await cleaner.close()


async def test_three_start_request_stop_cycles_leave_no_broker_objects(
    broker: Broker, responder: tuple[Service, str]
) -> None:
    answering, channel = responder
    service = answering.name.removesuffix("-responder")
    before = await broker.objects(service)
    for cycle in range(3):
        requester = Service(service, transport=broker.url)
        async with requester:
            reply = await requester.request(
                CreateTicket(order_id=f"o-{cycle}"), timeout=20, destination=channel
            )
            assert isinstance(reply, TicketCreated)
    after = await _settled(broker, service, before)
    assert after == before, f"left behind on {broker.name}: {sorted(set(after) - set(before))}"


async def test_a_crashed_instance_reply_channel_goes_by_itself(broker: Broker) -> None:
    """An instance that never stops (its process died) loses its reply objects once their
    2-second lifetime passes: nobody deletes them but the broker."""
    service = f"crash-{uuid.uuid4().hex[:10]}"
    instance = uuid.uuid4().hex[:12]
    channel = reply_channel(service, instance)
    before = await broker.objects(service)
    transport = await connect_transport(broker.crash_url)
    try:
        sub = await transport.subscribe(channel, instance)
        await asyncio.sleep(0.5)
        held = await broker.objects(service)
        assert held != before, "the reply channel was never declared"
        await sub.close()
    finally:
        await transport.close()  # a dead process deletes nothing
    after = await _settled(broker, service, before, timeout=20.0)
    assert after == before, f"still on {broker.name}: {sorted(set(after) - set(before))}"
