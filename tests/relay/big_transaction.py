"""One transaction of many outbox rows, and a consumer that keeps only what order checks need.

Log-tailing relays must work through such a transaction in batches (bounded memory)
and keep their replication stream alive while doing so::

    await write_big_transaction(engine, channel, 20_000)
    with traced_peak() as peak:
        ...                                   # the relay works through it
    assert peak[0] < 40 * 2**20
"""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Iterator

from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.messaging.message import Message
from servicewire.outbox import write_messages

KEYS = 8


async def write_big_transaction(engine: AsyncEngine, channel: str, count: int) -> None:
    """Commit ``count`` rows (key ``k{n % KEYS}``, header ``seq`` = n) in ONE transaction."""
    async with engine.begin() as conn:
        for start in range(0, count, 5_000):
            batch = [
                Message.create(
                    b"{}",
                    destination=channel,
                    kind="event",
                    type="test.Big",
                    partition_key=f"k{n % KEYS}",
                    extra={"seq": str(n)},
                )
                for n in range(start, min(count, start + 5_000))
            ]
            await write_messages(conn, batch)


@contextlib.contextmanager
def traced_peak() -> Iterator[list[int]]:
    """Peak bytes allocated above the starting point while the block runs (``[peak]``)."""
    out = [0]
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    try:
        yield out
    finally:
        _, peak = tracemalloc.get_traced_memory()
        out[0] = peak - base
        if not was_tracing:
            tracemalloc.stop()
