"""Request/reply survives its failures: a request that cannot be written, a reply channel
that hiccups, and a stop() that meets an error half-way.

Each failure is real: the outbox refuses a partition key longer than its column (SQLite
does not check VARCHAR lengths, so a trigger does it there, as PostgreSQL does by
itself), and the reply channel's acks, reads and close fail through
:class:`~tests.service.hiccups.HiccupTransport` around a real transport.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text

from servicewire import Context, RequestNotSentError, Service, ServiceOptions
from servicewire.errors import ConnectionFailedError
from servicewire.messaging.channels import reply_channel
from servicewire.storage.database import create_engine
from servicewire.transports import transport_from_url
from tests import services
from tests.service.contracts import CreateTicket, TicketCreated
from tests.service.hiccups import HiccupTransport

PG_BASE = services.URLS["postgres"].rsplit("/", 1)[0]
TOO_LONG_KEY = "k" * 300  # the outbox's partition_key column holds 200 characters


@dataclass
class Backend:
    """Where the requester keeps its outbox, and the broker between the two services."""

    db: str
    transport: str
    channel: str  # the responder's private command channel
    reply_channels: list[tuple[str, str]] = field(default_factory=list)
    """The requesters' instance reply channels and groups, to delete after the test."""

    def requester(self) -> Service:
        return self._track(Service("rr-requester", db=self.db, transport=self.transport))

    def hiccuping_requester(self) -> tuple[Service, HiccupTransport]:
        """A requester whose reply channel fails as the returned transport is told to."""
        instance = uuid.uuid4().hex[:12]
        transport = HiccupTransport(
            transport_from_url(self.transport), hiccup_on=reply_channel("rr-requester", instance)
        )
        service = Service(
            "rr-requester",
            db=self.db,
            transport=transport,
            options=ServiceOptions(instance_id=instance),
        )
        return self._track(service), transport

    def _track(self, service: Service) -> Service:
        self.reply_channels.append((service.instance_reply_channel, service.instance_id))
        return service

    def responder(self) -> Service:
        responder = Service("rr-responder", transport=self.transport)

        @responder.handles(CreateTicket, channel=self.channel)
        async def create(cmd: CreateTicket, ctx: Context) -> None:
            await ctx.reply(TicketCreated(order_id=cmd.order_id, ticket_id=f"t-{cmd.order_id}"))

        return responder


@pytest.fixture(params=["sqlite+memory", "postgres+rabbitmq"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    channel = f"test-rr-{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite+memory":
        yield Backend("sqlite://", f"memory://{uuid.uuid4().hex}", channel)
        return
    services.require("postgres")
    services.require("rabbitmq")
    name = f"sw_rr_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        backend = Backend(f"{PG_BASE}/{name}", services.URLS["rabbitmq"], channel)
        yield backend
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
        await _delete_rabbitmq_channels(channel, backend.reply_channels)


async def _delete_rabbitmq_channels(channel: str, replies: list[tuple[str, str]]) -> None:
    """Remove the command channel and every requester's reply channel the test made."""
    tool = transport_from_url(services.URLS["rabbitmq"])
    await tool.connect()
    try:
        await tool.tear_down(channel, ["rr-responder"])
        for replies_to, group in replies:
            await tool.tear_down(replies_to, [group])
    finally:
        await tool.close()


async def _refuse_long_partition_keys(service: Service) -> None:
    """Make SQLite enforce the partition_key column's length, as PostgreSQL does."""
    assert service.engine is not None
    if service.engine.dialect.name != "sqlite":
        return
    async with service.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TRIGGER test_partition_key_length BEFORE INSERT ON servicewire_outbox "
                "WHEN length(NEW.partition_key) > 200 "
                "BEGIN SELECT RAISE(ABORT, 'value too long for partition_key'); END"
            )
        )


# 1. A request whose outbox write fails -------------------------------------------------------


async def test_a_request_that_cannot_be_written_raises_and_leaves_nothing_pending(
    backend: Backend,
) -> None:
    requester = backend.requester()
    async with backend.responder(), requester:
        await _refuse_long_partition_keys(requester)
        for _ in range(5):
            with pytest.raises(RequestNotSentError) as caught:
                await requester.request(
                    CreateTicket(order_id=TOO_LONG_KEY), timeout=5, destination=backend.channel
                )
            assert "test.kitchen.CreateTicket" in str(caught.value)
            assert caught.value.__cause__ is not None  # the database's own error
        assert requester._requests.pending == 0

        reply = await requester.request(
            CreateTicket(order_id="o-1"), timeout=10, destination=backend.channel
        )
        assert reply == TicketCreated(order_id="o-1", ticket_id="t-o-1")
        assert requester._requests.pending == 0


async def test_a_scatter_that_cannot_be_written_raises_and_leaves_nothing_pending(
    backend: Backend,
) -> None:
    requester = backend.requester()
    async with backend.responder(), requester:
        await _refuse_long_partition_keys(requester)
        for _ in range(5):
            with pytest.raises(RequestNotSentError):
                await requester.scatter(
                    CreateTicket(order_id=TOO_LONG_KEY),
                    timeout=5,
                    destinations=[backend.channel],
                )
        assert requester._requests.pending == 0

        replies = await requester.scatter(
            CreateTicket(order_id="o-2"), timeout=10, destinations=[backend.channel], expected=1
        )
        assert replies == [TicketCreated(order_id="o-2", ticket_id="t-o-2")]
        assert requester._requests.pending == 0


# 2. The reply channel hiccups ---------------------------------------------------------------


async def test_a_failed_ack_on_the_reply_channel_is_logged_and_routing_goes_on(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    requester, transport = backend.hiccuping_requester()
    transport.failing_acks = {1}
    async with backend.responder(), requester:
        for i in range(3):
            reply = await requester.request(
                CreateTicket(order_id=f"o-{i}"), timeout=10, destination=backend.channel
            )
            assert reply == TicketCreated(order_id=f"o-{i}", ticket_id=f"t-o-{i}")
    assert transport.acks_seen >= 3
    assert any(
        r.levelno >= logging.WARNING and "ack failed (test)" in r.getMessage() + str(r.exc_info)
        for r in caplog.records
    )


async def test_a_reply_router_whose_subscription_breaks_is_restarted(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    requester, transport = backend.hiccuping_requester()
    transport.break_iteration_after = 1
    async with backend.responder(), requester:
        for i in range(3):
            reply = await requester.request(
                CreateTicket(order_id=f"o-{i}"), timeout=10, destination=backend.channel
            )
            assert reply == TicketCreated(order_id=f"o-{i}", ticket_id=f"t-o-{i}")
    assert any(
        "reading the reply channel failed (test)" in r.getMessage() + str(r.exc_info)
        for r in caplog.records
    )


async def test_a_request_fails_fast_with_the_cause_when_the_reply_channel_cannot_be_read(
    backend: Backend,
) -> None:
    requester = backend.requester()
    async with requester:
        assert requester.transport is not None
        await requester.transport.close()  # the broker connection is gone
        with pytest.raises(RequestNotSentError) as caught:
            await requester.request(
                CreateTicket(order_id="o-1"), timeout=30, destination=backend.channel
            )
        assert caught.value.__cause__ is not None
        assert requester._requests.pending == 0


# 3. stop() stops everything it started -------------------------------------------------------


def _relay_tasks() -> list[asyncio.Task[object]]:
    return [
        t for t in asyncio.all_tasks() if t.get_name().startswith("servicewire-relay-rr-requester")
    ]


async def test_stop_after_the_reply_router_died_stops_everything() -> None:
    backend = Backend("sqlite://", f"memory://{uuid.uuid4().hex}", "test-rr-stop")  # scenario 3
    requester, transport = backend.hiccuping_requester()
    transport.break_iteration_after = 1
    async with backend.responder():
        await requester.start()
        temp_db = requester._temp_db
        assert temp_db is not None and os.path.exists(temp_db)
        await requester.request(
            CreateTicket(order_id="o-1"), timeout=10, destination=backend.channel
        )
        await asyncio.sleep(0.05)  # the router reads on, and its subscription breaks
        await requester.stop()
    assert transport.closed
    assert not os.path.exists(temp_db)
    assert _relay_tasks() == []


async def test_stop_meeting_an_error_stops_everything_else_then_raises_it() -> None:
    backend = Backend("sqlite://", f"memory://{uuid.uuid4().hex}", "test-rr-stop")  # scenario 3
    requester, transport = backend.hiccuping_requester()
    transport.failing_closes = 1
    async with backend.responder():
        await requester.start()
        temp_db = requester._temp_db
        assert temp_db is not None
        await requester.request(
            CreateTicket(order_id="o-1"), timeout=10, destination=backend.channel
        )
        assert _relay_tasks() != []
        with pytest.raises(ConnectionFailedError, match="leaving the reply channel"):
            await requester.stop()
    assert transport.closed
    assert not os.path.exists(temp_db)
    assert _relay_tasks() == []
    # stopped for good: it can start again
    await requester.start()
    await requester.stop()
