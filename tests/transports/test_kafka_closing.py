"""stop_consumer: a cancellation aimed at the caller still propagates; a stray one does not.

The stray case against a real broker is in test_kafka.py
(test_closing_members_while_the_broker_is_down_is_clean). Here a small stand-in
reproduces aiokafka's exact pattern (await a task it has just cancelled) so that the
other branch, a caller that *is* being cancelled, can be driven deterministically.
"""

from __future__ import annotations

import asyncio

import pytest

from servicewire.transports.kafka.closing import stop_consumer


class _Client:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class _Fetcher:
    def __init__(self) -> None:
        self._pending_tasks: set[asyncio.Task[None]] = set()


class _LeakyConsumer:
    """Stops the way aiokafka 0.14 does after a fetch error: awaits a cancelled task."""

    def __init__(self, stop_delay: float = 0.0) -> None:
        self._client = _Client()
        self._fetcher = _Fetcher()
        self._stop_delay = stop_delay
        self._fetcher._pending_tasks.add(asyncio.create_task(asyncio.sleep(0.1)))

    async def stop(self) -> None:
        await asyncio.sleep(self._stop_delay)
        for task in self._fetcher._pending_tasks:
            task.cancel()
            await task  # re-raises the CancelledError into stop()'s caller
        await self._client.close()


async def test_a_stray_cancellation_is_absorbed_and_the_client_closed() -> None:
    consumer = _LeakyConsumer()
    await stop_consumer(consumer)
    assert consumer._client.closed


async def test_a_cancellation_of_the_caller_still_propagates() -> None:
    consumer = _LeakyConsumer(stop_delay=5.0)
    stopping = asyncio.create_task(stop_consumer(consumer))
    await asyncio.sleep(0.05)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    # Even so, the client is not left open.
    assert consumer._client.closed
