"""A consumer process killed with SIGKILL mid-handler, 20 times: each message applied once.

Real PostgreSQL (a database of its own) and a real broker. The inbox insert commits
with the handler's work, so a kill before commit leaves nothing and the redelivery
applies it; a kill after commit but before the ack leads to a redelivery the inbox
recognises.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from servicewire.codecs import to_message
from servicewire.storage.database import create_engine
from servicewire.transports import connect_transport
from tests import services
from tests.service.kill_app import Increment, applied

ROOT = Path(__file__).resolve().parents[2]
TRANSPORT = os.environ.get("SERVICEWIRE_KILL_TRANSPORT", "redis")


@pytest.fixture
async def database() -> AsyncIterator[str]:
    services.require("postgres")
    name = f"sw_kill_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        services.URLS["postgres"].rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield services.URLS["postgres"].rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_sigkill_mid_handler_twenty_times_applies_each_message_once(database: str) -> None:
    services.require(TRANSPORT if TRANSPORT != "amqp" else "rabbitmq")
    url = services.URLS["rabbitmq" if TRANSPORT == "amqp" else TRANSPORT]
    channel = f"test-kill-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, SW_DB=database, SW_TRANSPORT=url, SW_CHANNEL=channel)
    sender = await connect_transport(url)
    await sender.declare(channel, "kill-consumer")
    total = 400
    for i in range(total):
        await sender.publish(to_message(Increment(n=i), destination=channel))

    engine = create_engine(database)

    async def counts() -> tuple[int, int]:
        try:
            async with engine.connect() as conn:
                all_rows = (
                    await conn.execute(select(func.count()).select_from(applied))
                ).scalar_one()
                distinct = (
                    await conn.execute(select(func.count(func.distinct(applied.c.message_id))))
                ).scalar_one()
            return int(all_rows), int(distinct)
        except Exception:
            return 0, 0  # tables not created yet

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.service.kill_app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    rng = random.Random(11)
    kills = 0
    try:
        for _run in range(20):
            proc = start()
            await asyncio.sleep(0.8 + rng.random() * 0.6)  # import + start + some work
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
        proc = start()
        deadline = time.monotonic() + 90
        while (await counts())[1] < total:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, f"only {(await counts())[1]} of {total} applied"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # any late redelivery would show as a second row now
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        all_rows, distinct = await counts()
        print(f"[kill] {kills} SIGKILLs, {all_rows} rows for {distinct} messages")
        assert distinct == total, "a message was lost"
        assert all_rows == total, "a message was applied twice"
    finally:
        if proc.poll() is None:
            proc.kill()
        # The shared broker keeps nothing of the test (Redis streams, RabbitMQ queues).
        await sender.tear_down(channel, ["kill-consumer"])
        await sender.close()
        await engine.dispose()
