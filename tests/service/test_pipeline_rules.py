"""The delivery pipeline's rules (DESIGN section 5), through the unit-test harness."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from servicewire import Context, Service, ServiceOptions
from servicewire.messaging import headers
from servicewire.messaging.message import Message
from servicewire.pipeline.inbox import inbox
from servicewire.pipeline.retry import NO_RETRY, RetryPolicy
from servicewire.pipeline.unit_of_work import Outcome
from servicewire.testing import ServiceHarness
from tests.service.contracts import CreateTicket, OtherEvent, TicketCreated, TicketEvent

app_metadata = MetaData()
tickets = Table(
    "test_tickets",
    app_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(50), nullable=False),
)


def kitchen(retry: RetryPolicy = NO_RETRY) -> Service:
    service = Service("kitchen", options=ServiceOptions(retry=retry))

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        await ctx.session.execute(tickets.insert().values(order_id=cmd.order_id))
        await ctx.reply(TicketCreated(order_id=cmd.order_id, ticket_id=f"t-{cmd.order_id}"))
        await ctx.publish(TicketEvent(order_id=cmd.order_id, seq=1))
        if cmd.fail:
            raise RuntimeError("the kitchen is on fire")

    return service


async def _count(harness: ServiceHarness, table: Table) -> int:
    async with harness.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _with_app_tables(harness: ServiceHarness) -> None:
    async with harness.engine.begin() as conn:
        await conn.run_sync(app_metadata.create_all)


async def test_handler_work_reply_and_event_commit_together(db: str) -> None:
    async with ServiceHarness(kitchen(), db=db) as harness:
        await _with_app_tables(harness)
        outcome = await harness.deliver(
            CreateTicket(order_id="o-1"), reply_to="orders.replies", correlation_id="corr-9"
        )
        assert outcome is Outcome.HANDLED
        assert await _count(harness, tickets) == 1
        reply, event = await harness.sent()
        assert reply.destination == "orders.replies"
        assert reply.correlation_id == "corr-9"
        assert reply.headers[headers.REPLY_OUTCOME] == "success"
        assert reply.partition_key == "o-1"
        assert event.destination == "test-kitchen.events"
        assert event.causation_id == reply.causation_id
        contracts = await harness.sent_contracts()
        assert contracts[0] == TicketCreated(order_id="o-1", ticket_id="t-o-1")


async def test_a_handler_that_sends_then_raises_leaves_nothing_behind(db: str) -> None:
    async with ServiceHarness(kitchen(), db=db) as harness:
        await _with_app_tables(harness)
        outcome = await harness.deliver(CreateTicket(order_id="o-2", fail=True), reply_to="r")
        assert outcome is Outcome.DEAD_LETTERED
        assert await harness.sent() == []
        assert await _count(harness, tickets) == 0
        assert await _count(harness, inbox) == 0
        [dead] = await harness.dead_lettered()
        assert dead.destination == "test-kitchen.dlq"
        assert "on fire" in dead.headers[headers.DLQ_EXCEPTION]
        assert dead.headers[headers.DLQ_CHANNEL] == "test-kitchen"
        assert dead.headers[headers.DLQ_HANDLER].endswith("create_ticket")
        assert dead.headers[headers.DLQ_ATTEMPTS] == "1"
        assert dead.headers[headers.DLQ_REASON]


async def test_a_duplicate_is_acknowledged_and_skipped(db: str) -> None:
    async with ServiceHarness(kitchen(), db=db) as harness:
        await _with_app_tables(harness)
        message = harness.service.codecs  # noqa: F841 - keep the harness codecs warm
        cmd = CreateTicket(order_id="o-3")
        from servicewire.codecs import to_message

        msg = to_message(cmd, reply_to="r")
        assert await harness.deliver(msg) is Outcome.HANDLED
        assert await harness.deliver(msg) is Outcome.DUPLICATE
        assert await _count(harness, tickets) == 1
        assert len(await harness.sent()) == 2


async def test_retries_then_redelivery_then_dead_letter(db: str) -> None:
    calls: list[int] = []
    service = Service(
        "kitchen", options=ServiceOptions(retry=RetryPolicy(immediate=2, delayed=2, backoff=0.01))
    )

    @service.handles(CreateTicket)
    async def always_fails(cmd: CreateTicket, ctx: Context) -> None:
        calls.append(ctx.attempt)
        await ctx.publish(TicketEvent(order_id=cmd.order_id, seq=len(calls)))
        raise ValueError("nope")

    async with ServiceHarness(service, db=db) as harness:
        from servicewire.codecs import to_message

        msg = to_message(CreateTicket(order_id="o-4"))
        assert await harness.deliver(msg, attempt=1) is Outcome.RETRYING
        assert calls == [1, 1, 1]  # one run plus two immediate re-runs
        assert await harness.deliver(msg, attempt=2) is Outcome.RETRYING
        assert await harness.deliver(msg, attempt=3) is Outcome.DEAD_LETTERED
        assert len(calls) == 9
        assert await harness.sent() == []  # nothing from any failed run escaped
        [dead] = await harness.dead_lettered()
        assert dead.headers[headers.DLQ_ATTEMPTS] == "3"


async def test_transient_failure_succeeds_on_an_immediate_rerun(db: str) -> None:
    calls: list[int] = []
    service = Service("kitchen", options=ServiceOptions(retry=RetryPolicy(immediate=2, delayed=0)))

    @service.handles(CreateTicket)
    async def flaky(cmd: CreateTicket, ctx: Context) -> None:
        calls.append(1)
        await ctx.publish(TicketEvent(order_id=cmd.order_id, seq=len(calls)))
        if len(calls) < 3:
            raise ConnectionError("deadlock, try again")

    async with ServiceHarness(service, db=db) as harness:
        assert await harness.deliver(CreateTicket(order_id="o-5")) is Outcome.HANDLED
        [event] = await harness.sent_contracts()
        assert event == TicketEvent(order_id="o-5", seq=3)  # only the successful run's send


async def test_undecodable_unknown_and_unsupported_major_are_dead_lettered_at_once(db: str) -> None:
    async with ServiceHarness(kitchen(), db=db) as harness:
        good = Message.create(
            b'{"order_id": 5',
            destination="test-kitchen",
            kind="command",
            type="test.kitchen.CreateTicket",
            version="1.0.0",
        )
        assert await harness.deliver(good) is Outcome.DEAD_LETTERED
        unknown = good.with_headers(type="test.kitchen.Nope")
        assert await harness.deliver(unknown) is Outcome.DEAD_LETTERED
        future = Message.create(
            b'{"order_id": "x"}',
            destination="test-kitchen",
            kind="command",
            type="test.kitchen.CreateTicket",
            version="2.0.0",
        )
        assert await harness.deliver(future) is Outcome.DEAD_LETTERED
        wrong_format = Message.create(
            b"\x00\x01",
            destination="test-kitchen",
            kind="command",
            type="test.kitchen.CreateTicket",
            version="1.0.0",
            content_type="application/x-nope",
        )
        assert await harness.deliver(wrong_format) is Outcome.DEAD_LETTERED
        reasons = [d.headers[headers.DLQ_REASON] for d in await harness.dead_lettered()]
        assert reasons[0].startswith("undecodable")
        assert reasons[1].startswith("unknown contract type")
        assert "2.0.0" in reasons[2] and "1.0.0" in reasons[2]
        assert "application/x-nope" in reasons[3]


async def test_event_channels_ignore_types_the_service_does_not_handle(db: str) -> None:
    seen: list[int] = []
    service = Service("audit")

    @service.subscribes(TicketEvent)
    async def on_ticket(evt: TicketEvent, ctx: Context) -> None:
        seen.append(evt.seq)

    async with ServiceHarness(service, db=db) as harness:
        assert await harness.deliver(OtherEvent(note="x")) is Outcome.IGNORED
        assert await harness.deliver(TicketEvent(order_id="o", seq=4)) is Outcome.HANDLED
        assert seen == [4]
        assert await harness.dead_lettered() == []


async def test_tolerant_reader_takes_a_newer_minor_with_unknown_fields(db: str) -> None:
    async with ServiceHarness(kitchen(), db=db) as harness:
        await _with_app_tables(harness)
        newer = Message.create(
            b'{"order_id": "o-6", "items": ["x"], "priority": "high"}',
            destination="test-kitchen",
            kind="command",
            type="test.kitchen.CreateTicket",
            version="1.3.0",
            reply_to="r",
        )
        assert await harness.deliver(newer) is Outcome.HANDLED
