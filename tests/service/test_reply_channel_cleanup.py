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
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from redis.asyncio import Redis

from servicewire import Context, Service
from servicewire.messaging.channels import reply_channel
from servicewire.transports import connect_transport
from servicewire.transports.nats.names import REPLY_STREAM, encode_name
from tests import services
from tests.service.contracts import CreateTicket, TicketCreated
from tests.services import services_required
from tests.transports.test_amqp import SERVER, PrivateRabbit, available

Counter = Callable[[], Awaitable[list[str]]]


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


# Counting broker objects ----------------------------------------------------------------


def _rabbitmqctl(node: PrivateRabbit, *args: str) -> list[str]:
    # Not the /usr/sbin wrapper: it switches to the rabbitmq user and loses HOME, where
    # the private node keeps its Erlang cookie.
    ctl = str(Path(SERVER).with_name("rabbitmqctl"))
    done = subprocess.run(
        [ctl, "-q", "-n", node.node, *args],
        env=node._env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def rabbit_objects(node: PrivateRabbit) -> Callable[[str], Awaitable[list[str]]]:
    async def objects(_service: str) -> list[str]:
        queues = await asyncio.to_thread(_rabbitmqctl, node, "list_queues", "name")
        exchanges = await asyncio.to_thread(_rabbitmqctl, node, "list_exchanges", "name")
        return sorted([f"queue {q}" for q in queues] + [f"exchange {e}" for e in exchanges])

    return objects


async def redis_objects(service: str) -> list[str]:
    client = Redis.from_url(services.URLS["redis"])
    try:
        found = []
        async for key in client.scan_iter(match=f"*{service}*", count=1000):
            found.append(f"key {key.decode()}")
            if await client.type(key) == b"stream":
                for group in await client.xinfo_groups(key):
                    found.append(f"group {key.decode()} {group['name'].decode()}")
        return sorted(found)
    finally:
        await client.aclose()


async def nats_objects(service: str) -> list[str]:
    token = encode_name(service)
    nc = await nats.connect(services.URLS["nats"])
    try:
        js = nc.jetstream()
        found = []
        for stream in await js.streams_info():
            name = stream.config.name
            if token in name:
                found.append(f"stream {name}")
            if token in name or name == REPLY_STREAM:
                for consumer in await js.consumers_info(name):
                    if token in name or token in consumer.name:
                        found.append(f"consumer {name} {consumer.name}")
            if name == REPLY_STREAM:
                info = await js.stream_info(name, subjects_filter="swr.>")
                subjects = info.state.subjects or {}
                found += [f"replies {s}" for s in subjects if s.startswith(f"swr.{token}")]
        return sorted(found)
    finally:
        await nc.close()


# Brokers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_rabbit() -> Iterator[PrivateRabbit]:
    if not available():
        message = "no RabbitMQ server binary to run a private node"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    base = Path(tempfile.mkdtemp(prefix="sw-rabbit-"))
    node = PrivateRabbit(base)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)


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
