"""Batched transactions: many deliveries, one commit, a savepoint per handler.

Driven through the pipeline directly (the unit-test harness) for what one batch does,
and through a running service for how a consumer forms batches and keeps per-key order.
Each on SQLite, PostgreSQL and MariaDB (the ``db`` fixture).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import String, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from servicewire import Context, Service, ServiceOptions
from servicewire.codecs import to_message
from servicewire.messaging import headers
from servicewire.pipeline import unit_of_work
from servicewire.pipeline.inbox import inbox
from servicewire.pipeline.retry import RetryPolicy
from servicewire.pipeline.unit_of_work import Outcome, Pipeline
from servicewire.testing import HarnessDelivery, ServiceHarness
from servicewire.timeouts import within
from servicewire.transports.base import Delivery
from tests.service.contracts import CreateTicket
from tests.service.test_pipeline_rules import (
    _count,
    _with_app_tables,
    app_metadata,
    kitchen,
    tickets,
)

RETRY_ONCE = RetryPolicy(immediate=1, delayed=1, backoff=0.01)


def _deliveries(*order_ids: str, fail: str | None = None) -> list[HarnessDelivery]:
    return [
        HarnessDelivery(
            to_message(CreateTicket(order_id=o, fail=o == fail), reply_to="orders.replies")
        )
        for o in order_ids
    ]


def _pipeline(harness: ServiceHarness) -> Pipeline:
    return harness.service.pipelines[("test-kitchen", "kitchen")]


async def test_a_failing_handler_rolls_back_only_its_savepoint(db: str) -> None:
    async with ServiceHarness(kitchen(RETRY_ONCE), db=db) as harness:
        await _with_app_tables(harness)
        first, second, third = _deliveries("o-1", "o-2", "o-3", fail="o-2")

        outcomes = await _pipeline(harness).process_batch([first, second, third])

        assert outcomes == [Outcome.HANDLED, Outcome.RETRYING, Outcome.HANDLED]
        assert first.acked and third.acked
        assert not second.acked and second.nacked_with is not None
        # The others' rows and messages committed; nothing of o-2 did, not even its id.
        assert await _count(harness, tickets) == 2
        sent = await harness.sent()
        assert sorted(m.partition_key or "" for m in sent) == ["o-1", "o-1", "o-3", "o-3"]
        assert await _count(harness, inbox) == 2

        # Redelivered and failing again: out of redeliveries, dead-lettered.
        again = HarnessDelivery(second.message, attempt=2)
        assert await _pipeline(harness).process_batch([again]) == [Outcome.DEAD_LETTERED]
        assert again.acked
        [dead] = await harness.dead_lettered()
        assert dead.id == second.message.id
        assert "on fire" in dead.headers[headers.DLQ_EXCEPTION]
        assert await _count(harness, tickets) == 2


async def test_a_duplicate_in_a_batch_is_skipped_and_the_rest_handled(db: str) -> None:
    async with ServiceHarness(kitchen(RETRY_ONCE), db=db) as harness:
        await _with_app_tables(harness)
        [old] = _deliveries("o-1")
        assert await _pipeline(harness).process(old) is Outcome.HANDLED
        again, new = HarnessDelivery(old.message, attempt=2), *_deliveries("o-2")

        outcomes = await _pipeline(harness).process_batch([again, new])

        assert outcomes == [Outcome.DUPLICATE, Outcome.HANDLED]
        assert again.acked and new.acked
        assert await _count(harness, tickets) == 2


@pytest.fixture
def failing_commits() -> Iterator[dict[str, object]]:
    """Makes the next ``failing_commits["left"]`` commits of any engine raise ``error``."""
    plan: dict[str, object] = {"left": 0, "error": None}
    from sqlalchemy.engine import Engine

    def refuse(conn: object) -> None:
        left = plan["left"]
        assert isinstance(left, int)
        if left > 0:
            plan["left"] = left - 1
            error = plan["error"]
            assert isinstance(error, Exception)
            raise error

    event.listen(Engine, "commit", refuse)
    try:
        yield plan
    finally:
        event.remove(Engine, "commit", refuse)


async def test_a_commit_that_cannot_reach_the_database_acks_nothing(
    db: str, failing_commits: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unit_of_work, "OUTAGE_PATIENCE", 0.3)  # then it gives up: nack
    async with ServiceHarness(kitchen(RETRY_ONCE), db=db) as harness:
        await _with_app_tables(harness)
        batch = _deliveries("o-1", "o-2", "o-3")
        failing_commits["error"] = OperationalError("COMMIT", {}, ConnectionResetError("gone"))
        failing_commits["left"] = 1000

        outcomes = await _pipeline(harness).process_batch(batch)

        assert outcomes == [Outcome.RETRYING] * 3
        assert not any(d.acked for d in batch)
        assert all(d.nacked_with is not None for d in batch)
        failing_commits["left"] = 0
        assert await _count(harness, tickets) == 0
        assert await _count(harness, inbox) == 0
        assert await harness.sent() == []
        # The database's fault, not the messages': even on their last delivery they are
        # redelivered, never dead-lettered.
        failing_commits["left"] = 1000
        last = [HarnessDelivery(d.message, attempt=9) for d in batch]
        assert await _pipeline(harness).process_batch(last) == [Outcome.RETRYING] * 3
        assert await harness.dead_lettered() == []


async def test_a_short_outage_at_commit_is_waited_out(
    db: str, failing_commits: dict[str, object]
) -> None:
    async with ServiceHarness(kitchen(RETRY_ONCE), db=db) as harness:
        await _with_app_tables(harness)
        batch = _deliveries("o-1", "o-2", "o-3")
        failing_commits["error"] = OperationalError("COMMIT", {}, ConnectionResetError("gone"))
        failing_commits["left"] = 2

        outcomes = await _pipeline(harness).process_batch(batch)

        assert outcomes == [Outcome.HANDLED] * 3
        assert all(d.acked and d.nacked_with is None for d in batch)
        assert await _count(harness, tickets) == 3
        assert len(await harness.sent()) == 6


async def test_a_batch_whose_commit_fails_otherwise_runs_one_by_one(
    db: str, failing_commits: dict[str, object]
) -> None:
    runs: list[str] = []
    service = Service("kitchen", options=ServiceOptions(retry=RETRY_ONCE))

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        runs.append(cmd.order_id)
        await ctx.session.execute(tickets.insert().values(order_id=cmd.order_id))

    async with ServiceHarness(service, db=db) as harness:
        await _with_app_tables(harness)
        batch = _deliveries("o-1", "o-2", "o-3")
        failing_commits["error"] = RuntimeError("deferred check failed")
        failing_commits["left"] = 1

        outcomes = await _pipeline(harness).process_batch(batch)

        assert outcomes == [Outcome.HANDLED] * 3
        assert all(d.acked for d in batch)
        assert runs == ["o-1", "o-2", "o-3"] * 2  # the batch, then each on its own
        assert await _count(harness, tickets) == 3
        assert await _count(harness, inbox) == 3


async def test_after_commit_callbacks_run_per_message_only_for_the_handled(db: str) -> None:
    called: list[str] = []
    service = Service("kitchen", options=ServiceOptions(retry=RETRY_ONCE))

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        ctx.after_commit(lambda: called.append(cmd.order_id))
        if cmd.fail:
            raise RuntimeError("no")

    async with ServiceHarness(service, db=db) as harness:
        batch = _deliveries("o-1", "o-2", "o-3", fail="o-2")
        await _pipeline(harness).process_batch(batch)
        assert called == ["o-1", "o-3"]


# Through a running service ----------------------------------------------------------------


def _recording_batches(service: Service, sizes: list[int]) -> None:
    """Record the size of every batch the service's pipelines are handed."""
    for pipeline in service.pipelines.values():
        process_batch = pipeline.process_batch

        async def recorded(deliveries: list[Delivery], inner: Any = process_batch) -> list[Outcome]:
            sizes.append(len(deliveries))
            return list(await inner(deliveries))

        pipeline.process_batch = recorded  # type: ignore[method-assign]


async def test_at_low_load_a_delivery_is_handled_at_once_without_linger(db: str) -> None:
    handled = asyncio.Event()
    service = Service(
        "kitchen",
        db=db,
        transport=f"memory://{uuid.uuid4().hex}",
        options=ServiceOptions(batch_size=16, batch_linger=2.0),
    )

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        ctx.after_commit(handled.set)

    async with service:
        sizes: list[int] = []
        _recording_batches(service, sizes)
        started = time.perf_counter()
        await service.send(CreateTicket(order_id="o-1"))
        await within(handled.wait(), 10)
        # A linger of 2 s would show; the relay's poll and the hop take milliseconds.
        assert time.perf_counter() - started < 1.0
        assert sizes == [1]


async def test_per_key_order_holds_with_batches_and_failures(db: str) -> None:
    keys, per_key = 8, 25
    seen: dict[str, list[int]] = defaultdict(list)
    failed_once: set[str] = set()
    service = Service(
        "kitchen",
        db=db,
        transport=f"memory://{uuid.uuid4().hex}",
        options=ServiceOptions(
            retry=RetryPolicy(immediate=0, delayed=5, backoff=0.01),
            batch_size=8,
            batch_linger=0.005,
            tables=[app_metadata],
        ),
    )
    rng = random.Random(7)

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        key, seq = cmd.order_id, int(cmd.items[0])  # order_id is the partition key
        await ctx.session.execute(tickets.insert().values(order_id=f"{key}:{seq}"))
        await asyncio.sleep(rng.random() * 0.002)
        if seq % 7 == 3 and f"{key}:{seq}" not in failed_once:
            failed_once.add(f"{key}:{seq}")  # each such message fails once, then passes
            raise RuntimeError("transient")
        ctx.after_commit(lambda: seen[key].append(seq))

    async with service:
        sizes: list[int] = []
        _recording_batches(service, sizes)
        async with service.transaction() as ctx:  # all sent at once: the batches fill
            for seq in range(per_key):
                for k in range(keys):
                    await ctx.send(CreateTicket(order_id=f"k{k}", items=[str(seq)]))
        deadline = time.monotonic() + 60
        while sum(map(len, seen.values())) < keys * per_key and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert {k: v for k, v in seen.items()} == {
            f"k{k}": list(range(per_key)) for k in range(keys)
        }
        assert service.stats["dead-lettered"] == 0
        assert max(sizes) > 1  # batches did form
        assert service.engine is not None
        async with service.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(tickets))).scalar_one()
        assert count == keys * per_key  # every failed run rolled back its row


class _Base(DeclarativeBase):
    pass


class _Note(_Base):
    __tablename__ = "test_batch_notes"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(50))


async def test_orm_work_of_a_failing_run_is_dropped_and_the_others_kept(db: str) -> None:
    service = Service("kitchen", options=ServiceOptions(retry=RETRY_ONCE, tables=[_Base.metadata]))

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        ctx.session.add(_Note(order_id=cmd.order_id))
        if cmd.fail:
            await ctx.session.flush()  # its row reaches the database, then is rolled back
            raise RuntimeError("no")

    async with ServiceHarness(service, db=db) as harness:
        batch = _deliveries("o-1", "o-2", "o-3", fail="o-2")
        outcomes = await _pipeline(harness).process_batch(batch)
        assert outcomes == [Outcome.HANDLED, Outcome.RETRYING, Outcome.HANDLED]
        async with harness.engine.connect() as conn:
            rows = (await conn.execute(select(_Note.order_id).order_by(_Note.id))).scalars()
            assert list(rows) == ["o-1", "o-3"]


async def test_core_statements_on_ctx_connection_share_the_runs_savepoint(db: str) -> None:
    """``ctx.connection`` is the batch's transaction: its writes commit with the run's
    messages, and a failing run's writes roll back with its savepoint."""
    service = Service("kitchen", options=ServiceOptions(retry=RETRY_ONCE))

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        await ctx.connection.execute(tickets.insert().values(order_id=cmd.order_id))
        await ctx.reply(CreateTicket(order_id=cmd.order_id))
        if cmd.fail:
            raise RuntimeError("the kitchen is on fire")

    async with ServiceHarness(service, db=db) as harness:
        await _with_app_tables(harness)
        first, second, third = _deliveries("o-1", "o-2", "o-3", fail="o-2")

        outcomes = await _pipeline(harness).process_batch([first, second, third])

        assert outcomes == [Outcome.HANDLED, Outcome.RETRYING, Outcome.HANDLED]
        assert await _count(harness, tickets) == 2
        assert sorted(m.partition_key or "" for m in await harness.sent()) == ["o-1", "o-3"]

        # Outside a handler too: the unit of work's connection is its session's.
        async with harness.service.transaction() as ctx:
            await ctx.connection.execute(tickets.insert().values(order_id="o-9"))
            assert await ctx.session.scalar(select(func.count()).select_from(tickets)) == 3
        assert await _count(harness, tickets) == 3


async def test_a_handler_that_never_asks_for_the_session_opens_none(db: str) -> None:
    """The ORM session costs CPU on every transaction: only ``ctx.session`` opens one,
    and then one per batch, shared by the batch's runs."""
    service = Service("kitchen", options=ServiceOptions(retry=RETRY_ONCE, tables=[_Base.metadata]))
    opened: list[object] = []

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        if cmd.order_id.startswith("orm"):
            ctx.session.add(_Note(order_id=cmd.order_id))
        else:
            await ctx.connection.execute(tickets.insert().values(order_id=cmd.order_id))

    def on_begin(session: object, transaction: object, connection: object) -> None:
        opened.append(session)

    async with ServiceHarness(service, db=db) as harness:
        await _with_app_tables(harness)
        event.listen(Session, "after_begin", on_begin)
        try:
            core = await _pipeline(harness).process_batch(_deliveries("c-1", "c-2", "c-3"))
            assert core == [Outcome.HANDLED] * 3
            assert opened == []
            orm = await _pipeline(harness).process_batch(_deliveries("orm-1", "c-4", "orm-2"))
            assert orm == [Outcome.HANDLED] * 3
            assert len(opened) == 1  # one session for the batch, not one per run
        finally:
            event.remove(Session, "after_begin", on_begin)
        async with harness.engine.connect() as conn:
            notes = (await conn.execute(select(_Note.order_id).order_by(_Note.id))).scalars()
            assert list(notes) == ["orm-1", "orm-2"]
        assert await _count(harness, tickets) == 4


async def test_a_handlers_session_commit_does_not_end_the_batch(db: str) -> None:
    """``ctx.session.commit()`` inside a handler cannot commit the delivery early: a run
    that fails afterwards still rolls back to its savepoint, and nothing of it stays."""
    service = Service("kitchen", options=ServiceOptions(retry=RETRY_ONCE, tables=[_Base.metadata]))

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        ctx.session.add(_Note(order_id=cmd.order_id))
        await ctx.session.commit()
        if cmd.fail:
            raise RuntimeError("after my commit")

    async with ServiceHarness(service, db=db) as harness:
        outcomes = await _pipeline(harness).process_batch(
            _deliveries("o-1", "o-2", "o-3", fail="o-2")
        )
        assert outcomes == [Outcome.HANDLED, Outcome.RETRYING, Outcome.HANDLED]
        async with harness.engine.connect() as conn:
            rows = (await conn.execute(select(_Note.order_id).order_by(_Note.id))).scalars()
            assert list(rows) == ["o-1", "o-3"]
        assert await _count(harness, inbox) == 2
