"""CPU of one unit of work at low load, next to raw asyncpg doing the same statements.

At a few hundred messages per second a service runs one transaction per request and
per delivery (batches of one), so the fixed cost of a transaction decides its CPU. Two
units, each on PostgreSQL with asyncpg, each next to raw asyncpg sending the same
statements on one connection (``BEGIN`` … ``COMMIT``):

* **request**: ``Service.transaction()`` as FTGO's ``POST /orders`` uses it: read a row,
  insert two rows (Core statements on ``ctx.connection``), send three messages;
* **delivery**: the pipeline handling one command alone, as FTGO's Consumer Service
  does: inbox claim, the handler's read, one reply into the outbox.

Both sides run in this process, alternating rounds; the figure is client CPU per unit
(``time.process_time``), best round::

    .venv/bin/python benchmarks/unit_of_work.py --n 2000 --rounds 3

For an A/B against another checkout run it with ``PYTHONPATH=<that checkout>/src``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import Column, MetaData, Numeric, String, Table, bindparam, select

from servicewire import Context, Service, ServiceOptions
from servicewire.codecs import to_message
from servicewire.messaging.contracts import Command, Reply
from servicewire.outbox.writer import INSERT_ROWS_SQL, insert_rows_args, outbox_rows
from servicewire.testing import HarnessDelivery, ServiceHarness

SERVER = "postgresql://postgres@127.0.0.1:5432"

metadata = MetaData()
accounts = Table(
    "bench_uow_accounts",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("credit", Numeric(12, 2), nullable=False),
)
entries = Table(
    "bench_uow_entries",
    metadata,
    Column("entry_id", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
)
_READ = select(accounts).where(accounts.c.account_id == bindparam("key"))
_WRITE = entries.insert()


class Charge(Command, name="bench.uow.Charge", version="1.0.0", channel="bench-uow", key="id"):
    id: str
    account_id: str
    amount: Decimal


class Charged(Reply, name="bench.uow.Charged", version="1.0.0"):
    id: str
    ok: bool


def _service() -> Service:
    service = Service("bench-uow", options=ServiceOptions(relay=False, tables=[metadata]))
    service.sends(Charge)

    @service.handles(Charge)
    async def charge(cmd: Charge, ctx: Context) -> None:
        row = (await ctx.connection.execute(_READ, {"key": cmd.account_id})).first()
        await ctx.reply(Charged(id=cmd.id, ok=row is not None))

    return service


async def _cpu(unit: Callable[[], Awaitable[Any]], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        await unit()
    return (time.process_time() - started) / n * 1e6


async def run(url: str, n: int, rounds: int) -> None:
    harness = ServiceHarness(_service(), db=url.replace("postgresql://", "postgresql+asyncpg://"))
    async with harness:
        service = harness.service
        async with service.transaction() as ctx:
            await ctx.connection.execute(
                accounts.insert().values(account_id="a-1", name="A", credit=Decimal(100))
            )
        pipeline = service.pipelines[("bench-uow", "bench-uow")]
        charge = Charge(id="c", account_id="a-1", amount=Decimal("2.50"))

        async def request() -> None:
            async with service.transaction() as ctx:
                (await ctx.connection.execute(_READ, {"key": "a-1"})).first()
                key = uuid.uuid4().hex
                await ctx.connection.execute(
                    _WRITE,
                    [
                        {"entry_id": key, "account_id": "a-1", "amount": Decimal("2.50")},
                        {"entry_id": key + "b", "account_id": "a-1", "amount": Decimal("1")},
                    ],
                )
                for _ in range(3):
                    await ctx.send(charge, destination="bench-uow")

        # Each delivery a new message id (the inbox would skip a repeat), made up front:
        # building the incoming message is the transport's work, not the unit's.
        incoming = iter(
            [
                to_message(charge, reply_to="bench-uow.replies")
                for _ in range(max(1, n // 10) + n * rounds)
            ]
        )

        async def delivery() -> None:
            await pipeline.process_batch([HarnessDelivery(next(incoming))])

        raw = await asyncpg.connect(url)
        template = [to_message(charge, reply_to="x") for _ in range(3)]
        rows3 = insert_rows_args(outbox_rows(template))
        rows1 = insert_rows_args(outbox_rows(template[:1]))
        read = "SELECT account_id, name, credit FROM bench_uow_accounts WHERE account_id = $1"
        write = "INSERT INTO bench_uow_entries (entry_id, account_id, amount) VALUES ($1, $2, $3)"
        claim = (
            "INSERT INTO servicewire_inbox (consumer_group, message_id, processed_at) "
            "VALUES ($1, $2, now()) ON CONFLICT DO NOTHING"
        )

        async def raw_request() -> None:
            async with raw.transaction():
                await raw.fetchrow(read, "a-1")
                key = uuid.uuid4().hex
                await raw.executemany(
                    write, [(key, "a-1", Decimal("2.50")), (key + "b", "a-1", Decimal(1))]
                )
                await raw.execute(INSERT_ROWS_SQL, *rows3)

        async def raw_delivery() -> None:
            async with raw.transaction():
                await raw.execute(claim, "raw", uuid.uuid4().hex)
                await raw.fetchrow(read, "a-1")
                await raw.execute(INSERT_ROWS_SQL, *rows1)

        try:
            for unit in (request, delivery, raw_request, raw_delivery):
                await _cpu(unit, max(1, n // 10))  # warm: prepared statements, caches
            best: dict[str, float] = {}
            for r in range(rounds):
                for name, unit in (
                    ("request", request),
                    ("raw request", raw_request),
                    ("delivery", delivery),
                    ("raw delivery", raw_delivery),
                ):
                    cpu = await _cpu(unit, n)
                    best[name] = min(best.get(name, cpu), cpu)
                print(
                    f"  round {r + 1}/{rounds}: "
                    + ", ".join(f"{k} {v:,.0f}" for k, v in best.items())
                    + " µs (best so far)",
                    flush=True,
                )
        finally:
            await raw.close()
    print(f"\nCPU per unit of work, best of {rounds} x {n} (PostgreSQL, asyncpg):")
    print(f"{'unit':<10} {'servicewire':>12} {'raw asyncpg':>12} {'ours / raw':>11}")
    for unit in ("request", "delivery"):
        ours, theirs = best[unit], best[f"raw {unit}"]
        print(f"{unit:<10} {ours:>9,.0f} µs {theirs:>9,.0f} µs {ours / theirs:>10.2f}x")


async def main(n: int, rounds: int) -> None:
    name = f"sw_uow_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(f"{SERVER}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await run(f"{SERVER}/{name}", n, rounds)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="units per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
