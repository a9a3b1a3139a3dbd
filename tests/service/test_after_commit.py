"""Context.after_commit: callbacks run once the handler's transaction has committed."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from servicewire import Context, Service, ServiceOptions
from servicewire.codecs import to_message
from servicewire.messaging.message import Message
from servicewire.pipeline.outcome import Outcome
from servicewire.pipeline.retry import NO_RETRY, RetryPolicy
from servicewire.testing import ServiceHarness
from servicewire.testing.harness import HarnessDelivery
from tests.service.contracts import CreateTicket

app_metadata = MetaData()
tickets = Table(
    "test_after_commit_tickets",
    app_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(50), nullable=False),
)


class CountingDelivery(HarnessDelivery):
    """Counts acknowledgements, to tell "acknowledged once" from "acknowledged"."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.acks = 0

    async def ack(self) -> None:
        self.acks += 1
        await super().ack()


async def _tickets(harness: ServiceHarness) -> int:
    async with harness.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(tickets))).scalar_one())


async def test_callbacks_run_after_the_commit_in_order(db: str) -> None:
    seen: list[tuple[str, int]] = []
    service = Service("kitchen", options=ServiceOptions(retry=NO_RETRY, tables=[app_metadata]))
    harness = ServiceHarness(service, db=db)

    @service.handles(CreateTicket)
    async def create(cmd: CreateTicket, ctx: Context) -> None:
        await ctx.session.execute(tickets.insert().values(order_id=cmd.order_id))

        async def count_from_elsewhere() -> None:
            # Another connection sees the row only if the transaction has committed.
            seen.append(("async", await _tickets(harness)))

        ctx.after_commit(count_from_elsewhere)
        ctx.after_commit(lambda: seen.append(("sync", len(seen))))

    async with harness:
        assert await harness.deliver(CreateTicket(order_id="o-1")) is Outcome.HANDLED
    assert seen == [("async", 1), ("sync", 1)]


async def test_a_handler_that_raises_after_registering_runs_none() -> None:
    ran: list[str] = []
    service = Service("kitchen", options=ServiceOptions(retry=NO_RETRY))

    @service.handles(CreateTicket)
    async def create(cmd: CreateTicket, ctx: Context) -> None:
        ctx.after_commit(lambda: ran.append(cmd.order_id))
        raise RuntimeError("rolled back")

    async with ServiceHarness(service) as harness:
        assert await harness.deliver(CreateTicket(order_id="o-2")) is Outcome.DEAD_LETTERED
    assert ran == []


async def test_a_retried_delivery_runs_the_callback_once() -> None:
    ran: list[int] = []
    runs = 0
    service = Service(
        "kitchen", options=ServiceOptions(retry=RetryPolicy(immediate=1, delayed=2, backoff=0.01))
    )

    @service.handles(CreateTicket)
    async def flaky(cmd: CreateTicket, ctx: Context) -> None:
        nonlocal runs
        runs += 1
        this_run = runs
        ctx.after_commit(lambda: ran.append(this_run))
        if runs < 4:  # both runs of attempt 1 and the first of attempt 2 fail
            raise ConnectionError("transient")

    message = to_message(CreateTicket(order_id="o-3"))
    async with ServiceHarness(service) as harness:
        assert await harness.deliver(message, attempt=1) is Outcome.RETRYING
        assert ran == []
        assert await harness.deliver(message, attempt=2) is Outcome.HANDLED
        assert ran == [4]  # only the run that committed
        assert await harness.deliver(message, attempt=3) is Outcome.DUPLICATE
    assert ran == [4]


async def test_a_failing_callback_is_logged_and_the_message_acked_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []
    service = Service(
        "kitchen", options=ServiceOptions(retry=RetryPolicy(immediate=2, delayed=2, backoff=0.01))
    )

    def broken() -> None:
        raise ValueError("watcher is gone")

    @service.handles(CreateTicket)
    async def create(cmd: CreateTicket, ctx: Context) -> None:
        ran.append("handler")
        ctx.after_commit(broken)
        ctx.after_commit(lambda: ran.append("next callback"))

    async with ServiceHarness(service) as harness:
        pipeline = harness.service.pipelines[("test-kitchen", "kitchen")]
        delivery = CountingDelivery(to_message(CreateTicket(order_id="o-4")))
        with caplog.at_level(logging.ERROR, logger="servicewire.pipeline.after_commit"):
            assert await pipeline.process(delivery) is Outcome.HANDLED
    assert delivery.acks == 1 and delivery.nacked_with is None
    assert ran == ["handler", "next callback"]  # not re-run, and the rest still ran
    [record] = [r for r in caplog.records if r.name == "servicewire.pipeline.after_commit"]
    assert "watcher is gone" in str(record.exc_info[1] if record.exc_info else "")


async def test_a_service_transaction_runs_callbacks_only_when_it_commits() -> None:
    ran: list[str] = []
    async with ServiceHarness(Service("kitchen")) as harness:
        async with harness.service.transaction() as ctx:
            ctx.after_commit(lambda: ran.append("committed"))
            assert ran == []
        with pytest.raises(RuntimeError):
            async with harness.service.transaction() as ctx:
                ctx.after_commit(lambda: ran.append("rolled back"))
                raise RuntimeError("abort")
    assert ran == ["committed"]
