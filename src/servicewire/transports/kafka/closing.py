"""Stopping an aiokafka consumer without a stray cancellation escaping.

Use it wherever a consumer is stopped::

    await stop_consumer(consumer)

Why: aiokafka 0.14's ``Fetcher.close`` cancels its pending fetch tasks and then awaits
them. A fetch task that failed against an unreachable broker sleeps off its retry
backoff outside the ``try`` that swallows cancellation, so awaiting it re-raises the
``CancelledError`` *into the caller*, which nobody cancelled. ``consumer.stop()`` then
ends early: its network client is never closed and the caller (a subscription's
``close``, a test's cleanup) dies of a cancellation that was not meant for it. It shows
up as a close that raises ``CancelledError`` right after a broker restart.

Here a cancellation that is really aimed at the caller still propagates; the stray one is
absorbed and the stop is finished by hand: remaining fetch tasks cancelled, the client
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


def _cancelled_from_outside() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_consumer(consumer: Any) -> None:
    """``await consumer.stop()``; a stray cancellation from its fetcher finishes the stop."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        aimed_at_us = _cancelled_from_outside()
        if not aimed_at_us:
            log.debug("aiokafka leaked a fetch task's cancellation on stop; finishing it")
        # Either way the client must not stay open.
        await _finish_stop(consumer)
        if aimed_at_us or _cancelled_from_outside():
            raise


async def _finish_stop(consumer: Any) -> None:
    fetcher = getattr(consumer, "_fetcher", None)
    pending = list(getattr(fetcher, "_pending_tasks", ()))
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    client = getattr(consumer, "_client", None)
    if client is not None:
        with contextlib.suppress(Exception):
            await client.close()
