"""`servicewire relay` as its own process: SIGKILL at random moments, takeover, SIGTERM.

Relays publish to a Redis list (tests.relay.sink) so the test can see, across processes,
every message each relay process published.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from servicewire.messaging.message import Message
from servicewire.transports.memory.transport import MemoryTransport
from tests.relay.cases import CASES, Case, RelayEnv, relay_env
from tests.relay.helpers import eventually, make_messages, unique
from tests.relay.processes import RelayProcess
from tests.relay.sink import read_sink
from tests.services import URLS, require


@contextlib.asynccontextmanager
async def sink() -> AsyncIterator[tuple[str, Any, str]]:
    require("redis")
    import redis.asyncio as redis

    key = unique("relay-sink")
    base = URLS["redis"].removeprefix("redis://")
    client = redis.from_url(URLS["redis"])
    try:
        yield f"testsink://{base}?key={key}", client, key
    finally:
        await client.delete(key)
        await client.aclose()


def first_seen_by_key(items: list[dict[str, Any]]) -> dict[str, list[int]]:
    seen: set[str] = set()
    out: dict[str, list[int]] = {}
    for item in items:
        if item["id"] in seen:
            continue
        seen.add(item["id"])
        headers = item["headers"]
        out.setdefault(headers.get("partitionkey", ""), []).append(int(headers["seq"]))
    return out


def expected_by_key(messages: list[Message]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for m in messages:
        out.setdefault(m.partition_key or "", []).append(int(m.headers["seq"]))
    return out


async def write_slowly(env: RelayEnv, messages: list[Message], per_tx: int, pause: float) -> None:
    for i in range(0, len(messages), per_tx):
        await env.write(messages[i : i + per_tx], per_tx=per_tx)
        await asyncio.sleep(pause)


def keep_slot_for_cleanup(env: RelayEnv) -> None:
    # Subprocess WAL relays create the slot; an unstarted relay object in the env makes
    # the env's teardown drop it.
    if env.case.mode == "postgres-wal":
        env.relay(MemoryTransport(f"memory://{unique('x')}"))


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_sigkill_at_random_moments_loses_nothing(case: Case, tmp_path: Path) -> None:
    """Four SIGKILLs per mode (20 over the five modes) while 2,000 messages flow."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    async with relay_env(case, tmp_path) as env, sink() as (sink_url, client, key):
        keep_slot_for_cleanup(env)
        messages = make_messages(unique("flow"), 2001, keys=8)
        # The last message is written only once the final relay runs: should the killed
        # ones have published everything already (a slow machine starts processes
        # slowly), the final relay still has a row to take over for (a relay on SQLite
        # takes its lease only when it finds rows).
        flow, last = messages[:-1], messages[-1:]
        writer = asyncio.create_task(write_slowly(env, flow, per_tx=10, pause=0.01))
        procs: list[RelayProcess] = []
        try:
            for _ in range(4):
                proc = await RelayProcess.start(
                    db=env.url, transport=sink_url, mode=case.mode, name=env.name
                )
                procs.append(proc)
                await asyncio.sleep(rng.uniform(0.3, 2.0))
                await proc.kill()
            await writer
            final = await RelayProcess.start(
                db=env.url, transport=sink_url, mode=case.mode, name=env.name
            )
            procs.append(final)
            await env.write(last, per_tx=1)
            want = {m.id for m in messages}

            async def all_published() -> bool:
                return want <= {i["id"] for i in await read_sink(client, key)}

            try:
                await eventually(all_published, 60, "all 2,001 messages", interval=0.2)
            except AssertionError:
                raise AssertionError(f"seed {seed}; final relay log:\n{final.log}") from None
            await eventually(lambda: final.active_at is not None, 30, "the final relay")
            assert await final.terminate() == 0, final.log  # SIGTERM: a clean stop
        finally:
            writer.cancel()
            for proc in procs:
                await proc.kill()
        items = await read_sink(client, key)
        counts = Counter(i["id"] for i in items)
        duplicates = sum(c - 1 for c in counts.values())
        print(f"\n{case}: 4 SIGKILLs (seed {seed}), 2000 messages, 0 lost, {duplicates} duplicates")
        assert set(counts) == {m.id for m in messages}
        assert first_seen_by_key(items) == expected_by_key(messages)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_owner_killed_other_takes_over(case: Case, tmp_path: Path) -> None:
    async with relay_env(case, tmp_path) as env, sink() as (sink_url, client, key):
        keep_slot_for_cleanup(env)
        start = {"db": env.url, "transport": sink_url, "mode": case.mode, "name": env.name}
        first = await RelayProcess.start(**start)
        second: RelayProcess | None = None
        try:
            await eventually(lambda: first.active_at is not None, 30, "the first relay")
            second = await RelayProcess.start(**start)
            await eventually(lambda: second.started_at is not None, 30, "the second relay")
            await asyncio.sleep(0.5)  # past its first ownership attempt
            channel = unique("takeover")
            messages = make_messages(channel, 400, keys=8)
            await write_slowly(env, messages[:200], per_tx=10, pause=0.01)
            if case.mode != "polling" or case.kind == "sqlite":
                assert second.active_at is None, "two owners at once"
            t = time.monotonic()
            await first.kill()
            killed = time.monotonic()
            if os.environ.get("RELAY_DEBUG"):
                print(f"kill took {killed - t:.2f}s")
            marker = make_messages(channel, 1, keys=8, start=400)
            await env.write(marker)
            if os.environ.get("RELAY_DEBUG"):
                print(f"marker written after {time.monotonic() - killed:.2f}s")

            async def marker_out() -> bool:
                return any(i["id"] == marker[0].id for i in await read_sink(client, key))

            await eventually(marker_out, 10, "the other relay to take over")
            took = time.monotonic() - killed
            print(f"\n{case}: takeover published the next message {took:.2f}s after SIGKILL")
            if os.environ.get("RELAY_DEBUG"):
                print(second.log)
            await write_slowly(env, messages[200:], per_tx=10, pause=0.0)
            want = {m.id for m in messages} | {marker[0].id}

            async def all_published() -> bool:
                return want <= {i["id"] for i in await read_sink(client, key)}

            await eventually(all_published, 30, "everything", interval=0.1)
        finally:
            await first.kill()
            if second is not None:
                assert await second.terminate() == 0, second.log
        items = await read_sink(client, key)
        order = first_seen_by_key(items)
        expected = expected_by_key([*messages, *marker])
        # The marker went out before the rest of the second half; per-key order holds
        # among the messages of the test's single writer.
        for k, seqs in expected.items():
            assert [s for s in order[k] if s != 400] == [s for s in seqs if s != 400]
