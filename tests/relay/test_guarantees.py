"""The relay guarantees of issue 4, for every mode on every database it supports.

Commit-order gap, crash between publish and delete/confirm, broker down, bad rows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from servicewire.messaging.message import Message
from servicewire.outbox import outbox, outbox_dead, write_messages
from servicewire.outbox.writer import outbox_rows
from servicewire.relay import Relay
from servicewire.transports import connect_transport
from tests.relay.cases import CASES, Case, relay_env
from tests.relay.flaky import FlakyTransport
from tests.relay.helpers import Collector, eventually, make_messages, unique
from tests.relay.scenarios import (
    broker_down_then_drains_in_key_order,
    partial_failure_keeps_key_order,
)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_commit_order_gap(case: Case, tmp_path: Path) -> None:
    """Four transactions write one row each and commit in reverse order; one rolls back."""
    async with relay_env(case, tmp_path) as env:
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("gap")
        collector = await Collector.open(transport, channel)
        await env.started(transport)
        msgs = make_messages(channel, 4)
        if case.kind == "sqlite":
            # SQLite runs one writer at a time, so the gap shows as ids that commit out
            # of order: give the later commits the lower ids.
            for msg, row_id, commit in zip(
                msgs, [4, 3, 2, 1], [True, False, True, True], strict=True
            ):
                async with env.engine.connect() as conn:
                    async with conn.begin() as tx:
                        row = outbox_rows([msg])[0] | {"id": row_id}
                        await conn.execute(insert(outbox).values(row))
                        if not commit:
                            await tx.rollback()
                if commit:
                    await eventually(lambda m=msg: m.id in collector.counts, 10, "publish")  # type: ignore[misc]
        else:
            conns: list[AsyncConnection] = []
            try:
                for msg in msgs:  # ids 1..4 in this order, all four open at once
                    conn = await env.engine.connect()
                    conns.append(conn)
                    await conn.begin()
                    await write_messages(conn, [msg])
                for i in (3, 2, 1, 0):
                    if i == 1:
                        await conns[i].rollback()
                        continue
                    await conns[i].commit()
                    await eventually(lambda m=msgs[i]: m.id in collector.counts, 10, f"row {i}")  # type: ignore[misc]
            finally:
                for conn in conns:
                    await conn.close()
        for relay in env.relays:
            await relay.drain(10)
        expected = {msgs[0].id, msgs[2].id, msgs[3].id}
        assert collector.unique_ids == expected
        assert all(collector.counts[i] == 1 for i in expected)
        await collector.close()


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_crash_between_publish_and_delete_republishes(case: Case, tmp_path: Path) -> None:
    async with relay_env(case, tmp_path) as env:
        inner = await connect_transport(f"memory://{unique('b')}")
        transport = FlakyTransport(inner)
        channel = unique("crash")
        collector = await Collector.open(inner, channel)
        relay = await env.started(transport)
        transport.crashes_after_publish = 1
        messages = make_messages(channel, 30)
        await env.write(messages, per_tx=10)
        relay.wake()
        await eventually(lambda: len(collector.unique_ids) == 30, 30, "all 30 after the crash")
        await relay.drain(20)
        assert transport.crashed_batches, "the crash was not triggered"
        crashed = transport.crashed_batches[0]
        # Published, then the relay "died" before deleting/confirming: published again.
        assert all(collector.counts[i] >= 2 for i in crashed)
        assert collector.unique_ids == {m.id for m in messages}
        await collector.close()


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_broker_down_then_drains_in_key_order(case: Case, tmp_path: Path) -> None:
    async def outbox_grew(relay: Relay) -> None:
        if case.mode == "polling":
            assert await relay.backlog() == 200

    async with relay_env(case, tmp_path) as env:
        await broker_down_then_drains_in_key_order(env, outbox_grew)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_partial_batch_failure_keeps_key_order(case: Case, tmp_path: Path) -> None:
    async with relay_env(case, tmp_path) as env:
        await partial_failure_keeps_key_order(env)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_bad_rows_are_moved_aside(case: Case, tmp_path: Path) -> None:
    async with relay_env(case, tmp_path) as env:
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("bad")
        collector = await Collector.open(transport, channel)
        await env.started(transport)
        good = make_messages(channel, 6, keys=1)
        bad_dest = Message.create(b"{}", destination="no such channel!", partition_key="k0")
        corrupt = Message.create(b"{}", destination=channel, partition_key="k0")
        rows = outbox_rows([good[0], good[1], bad_dest, good[2], corrupt, good[3]])
        rows[4]["headers"] = '{"id": 17, "broken'
        async with env.engine.begin() as conn:
            await conn.execute(insert(outbox), rows)
            await write_messages(conn, good[4:])
        await eventually(lambda: len(collector.unique_ids) == 6, 20, "the good rows")
        assert collector.seqs_by_key() == {"k0": [0, 1, 2, 3, 4, 5]}
        dead: list = []  # type: ignore[type-arg]

        async def moved() -> bool:
            nonlocal dead
            async with env.engine.connect() as conn:
                dead = list(await conn.execute(select(outbox_dead).order_by(outbox_dead.c.id)))
            return len(dead) == 2

        await eventually(moved, 10, "two rows moved aside")
        reasons = {row.message_id: row.reason for row in dead}
        assert set(reasons) == {bad_dest.id, corrupt.id}
        assert "destination not accepted" in reasons[bad_dest.id]
        assert "corrupt headers" in reasons[corrupt.id]
        assert json.loads(next(r.headers for r in dead if r.message_id == bad_dest.id))
        assert all(row.moved_at <= time.time() for row in dead)
        await collector.close()
