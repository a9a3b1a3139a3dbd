"""Single ownership survives a paused owner: SIGSTOP mid-batch, takeover, SIGCONT, silence.

A stopped process keeps its sockets: its database session, its row locks, its
``GET_LOCK`` and (on SQLite) its lease row stay as they were. The server must end the
session (idle timeouts set by the relay), a standby must take over within the lease,
and the paused relay, once resumed in the middle of its batch, must publish nothing
more (it checks its ownership before each wave).

Each relay process publishes to a Redis list through ``tests.relay.sink``, every entry
tagged with the process (``by``). The first one's broker confirms slowly (``delay``), so
its batch of 30 waves (15 s) is still in flight when the test stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.relay.cases import CASES, Case, RelayEnv, relay_env
from tests.relay.helpers import eventually, make_messages, unique
from tests.relay.processes import RelayProcess
from tests.relay.sink import read_sink
from tests.relay.test_processes import expected_by_key, first_seen_by_key, sink, write_slowly

LEASE = 2.0
"""``--lease-ttl`` of both relay processes (RelayProcess's default)."""

TAKEOVER_WITHIN = 10.0
"""Seconds from the owner's stop until everything committed before it is published."""

FENCED = [case for case in CASES if case.mode in ("polling", "mysql-binlog")]


@pytest.mark.parametrize("case", FENCED, ids=str)
async def test_owner_stopped_mid_batch_is_fenced(case: Case, tmp_path: Path) -> None:
    async with relay_env(case, tmp_path) as env, sink() as (sink_url, client, key):
        start = {"db": env.url, "mode": case.mode, "name": env.name}
        messages = make_messages(unique("paused"), 480, keys=8)
        backlog, later = messages[:240], messages[240:]
        first = await RelayProcess.start(transport=f"{sink_url}&by=A&delay=0.5", **start)
        second: RelayProcess | None = None
        try:
            try:
                await eventually(lambda: first.active_at is not None, 30, "the first relay")
            except AssertionError:
                raise AssertionError(f"first relay's log:\n{first.log}") from None
            # One transaction: the first relay claims (or streams) it as one batch of
            # 30 waves (8 keys), 0.5 s each.
            await env.write(backlog, per_tx=len(backlog))

            async def published() -> int:
                return len(await read_sink(client, key))

            async def first_wave_out() -> bool:
                return await published() > 0

            await eventually(first_wave_out, 30, "the first relay's first wave")
            # The standby starts while the owner is mid-batch (and is ready before the
            # stop, so the takeover time is the lease's, not Python's start-up).
            second = await RelayProcess.start(transport=f"{sink_url}&by=B", **start)
            await eventually(lambda: second.started_at is not None, 30, "the standby")
            await asyncio.sleep(0.5)
            first.pause()
            await eventually(lambda: first.stopped, 10, "the first relay to stop")
            stopped_at = time.monotonic()
            await asyncio.sleep(0.2)  # what it wrote to its sockets before the stop lands
            before_stop = await published()
            assert 0 < before_stop < len(backlog), f"not mid-batch: {before_stop} published"
            writer = asyncio.create_task(write_slowly(env, later, per_tx=10, pause=0.02))
            backlog_ids = {m.id for m in backlog}

            async def backlog_out() -> bool:
                return backlog_ids <= {i["id"] for i in await read_sink(client, key)}

            try:
                await eventually(backlog_out, TAKEOVER_WITHIN, "the standby to take over")
            except AssertionError:
                raise AssertionError(f"standby log:\n{second.log}") from None
            took = time.monotonic() - stopped_at
            await writer
            want = {m.id for m in messages}

            async def all_out() -> bool:
                return want <= {i["id"] for i in await read_sink(client, key)}

            await eventually(all_out, 30, "every message", interval=0.1)
            assert first.stopped, "the first relay ran again before SIGCONT"

            first.resume()
            # It wakes up inside its batch; its next ownership check must fail.
            noticed = ("OwnershipLostError", "LockLostError")

            async def woke() -> bool:
                if first.logged(*noticed):
                    return True
                return any(i.get("by") == "A" for i in (await read_sink(client, key))[before_stop:])

            with contextlib.suppress(AssertionError):
                await eventually(woke, 15, "the resumed relay to act", interval=0.1)
            await asyncio.sleep(1.0)  # room for anything it would still send
            items = await read_sink(client, key)
        finally:
            first.resume()
            await first.kill()
            if second is not None:
                assert await second.terminate() == 0, second.log
        late = [i for i in items[before_stop:] if i.get("by") == "A"]
        counts = Counter(i["id"] for i in items)
        print(
            f"\n{case}: owner stopped after {before_stop} of {len(backlog)}; standby published "
            f"the backlog {took:.2f}s after the stop; {sum(c - 1 for c in counts.values())} "
            "duplicates"
        )
        if case.kind == "postgres":
            # Two batch loops: the one not at the stopping point may have been between
            # its ownership check and the transport's write (e.g. waiting for a Redis
            # connection), the documented window: at most that one wave (one message
            # per key), each a row the standby had already published.
            keys = Counter(i["headers"]["partitionkey"] for i in late)
            assert max(keys.values(), default=0) <= 1, f"more than one wave late: {keys}"
            earlier = {i["id"] for i in items[: items.index(late[0])]} if late else set()
            assert all(i["id"] in earlier for i in late), "a late message was new"
        else:
            assert not late, f"the resumed owner published {len(late)} messages:\n{first.log}"
        assert first.logged(*noticed), f"the resumed owner did not notice:\n{first.log}"
        assert set(counts) == {m.id for m in messages}
        assert first_seen_by_key(items) == expected_by_key(messages)


# Not SQLite: a process stopped inside a write transaction (its lease renewal, its
# delete) holds the database's only write lock, and no server can end it: every writer
# waits until it runs again (docs/relays.md, "Fencing").
@pytest.mark.parametrize("case", [c for c in FENCED if c.kind != "sqlite"], ids=str)
async def test_owner_stopped_at_a_random_moment_is_fenced(case: Case, tmp_path: Path) -> None:
    """SIGSTOP from outside at a random moment while writers commit: the standby takes
    over, nothing is lost, per-key order holds, and after SIGCONT the old owner sends at
    most the one wave each of its batches had already checked (rows already published)."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    async with relay_env(case, tmp_path) as env, sink() as (sink_url, client, key):
        start = {"db": env.url, "mode": case.mode, "name": env.name}
        messages = make_messages(unique("random"), 600, keys=8)
        first = await RelayProcess.start(transport=f"{sink_url}&by=A", **start)
        second: RelayProcess | None = None
        writer: asyncio.Task[None] | None = None
        try:
            await eventually(lambda: first.active_at is not None, 30, "the first relay")
            second = await RelayProcess.start(transport=f"{sink_url}&by=B", **start)
            await eventually(lambda: second.started_at is not None, 30, "the second relay")
            # About 3 s of writing; the stop falls inside it.
            writer = asyncio.create_task(write_slowly(env, messages, per_tx=10, pause=0.05))
            await asyncio.sleep(rng.uniform(0.2, 2.0))
            first.pause()
            await eventually(lambda: first.stopped, 10, "the first relay to stop")
            await asyncio.sleep(0.3)  # what it wrote to its sockets before the stop lands
            before_stop = len(await read_sink(client, key))
            await writer
            want = {m.id for m in messages}

            async def all_out() -> bool:
                return want <= {i["id"] for i in await read_sink(client, key)}

            try:
                await eventually(all_out, 30, "the standby to publish everything", interval=0.1)
            except AssertionError:
                sessions = await sessions_of(env)
                raise AssertionError(
                    f"seed {seed}; sessions:\n{sessions}\nstandby log:\n{second.log}"
                ) from None
            first.resume()
            await asyncio.sleep(3.0)  # it runs again; nothing is left to publish
            items = await read_sink(client, key)
        finally:
            if writer is not None:
                writer.cancel()
            first.resume()
            await first.kill()
            if second is not None:
                assert await second.terminate() == 0, second.log
        late = [i for i in items[before_stop:] if i.get("by") == "A"]
        print(f"\n{case}: stopped at {before_stop} published (seed {seed}); {len(late)} late")
        assert before_stop < len(messages), "stopped after the writers were done"
        batches = 2 if case.kind == "postgres" else 1  # batch loops that can be in flight
        keys = Counter(i["headers"]["partitionkey"] for i in late)
        assert max(keys.values(), default=0) <= batches, f"seed {seed}: late waves {keys}"
        for item in late:
            assert item["id"] in {i["id"] for i in items[: items.index(item)]}, (
                f"seed {seed}: the resumed owner published a message first:\n{first.log}"
            )
        assert {i["id"] for i in items} == {m.id for m in messages}
        assert first_seen_by_key(items) == expected_by_key(messages), f"seed {seed}"


async def sessions_of(env: RelayEnv) -> str:
    """PostgreSQL: the sessions on the test database (why a standby could be blocked)."""
    if env.case.kind != "postgres":
        return "(not PostgreSQL)"
    async with env.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT pid, state, wait_event_type, wait_event, now() - state_change, "
                "left(query, 80) FROM pg_stat_activity WHERE datname = current_database()"
            )
        )
        return "\n".join(str(tuple(r)) for r in rows)
