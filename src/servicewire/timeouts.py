"""Waiting with a time limit, without losing a cancellation.

Use these instead of :func:`asyncio.wait_for` (ruff bans it here, rule TID251)::

    reply = await within(future, 5.0)  # TimeoutError after 5 s
    if await woken(event, 0.5):  # True if set within 0.5 s
        ...
    await stop_task(reader)  # cancelled, and cancelled again if a cancel got lost

Why: on Python 3.11, ``wait_for`` returns the inner result when its task is cancelled
at the moment the inner awaitable completes, and the cancellation is lost. A loop that a
:class:`asyncio.TaskGroup` cancels after another task failed then keeps running, and the
group waits for it forever. (A polling relay stopped publishing that way after a
simulated crash: its watcher was cancelled just as a wake-up arrived.) Python 3.12
rebuilt ``wait_for`` on :func:`asyncio.timeout`; these helpers do the same on 3.11.

Our code no longer calls ``wait_for``, but client libraries do (redis-py and nats-py
while they send a command), so a task of ours can still lose a cancel inside them:
:func:`stop_task` is how a transport stops its own tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("servicewire.timeouts")


async def within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``await awaitable``, raising :class:`TimeoutError` after ``timeout`` seconds.

    On timeout the awaited coroutine (or task, or future) is cancelled, as with
    ``wait_for``. ``None`` waits without limit. A cancellation of the caller always
    propagates, even when it coincides with the awaitable's completion.
    """
    async with asyncio.timeout(timeout):
        return await awaitable


async def woken(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; whether it is set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass
    return event.is_set()


STOP_PATIENCE = 0.05
"""Seconds :func:`stop_task` waits for a cancelled task before cancelling it again."""


STOP_LIMIT = 10.0
"""Seconds :func:`stop_task` keeps cancelling before it gives up on a task."""


async def stop_task(
    task: asyncio.Task[Any], *, patience: float = STOP_PATIENCE, limit: float = STOP_LIMIT
) -> bool:
    """Cancel ``task`` and wait until it has ended, cancelling again while it runs on.

    A cancel that lands while the task waits in a library's ``wait_for`` (Python 3.11)
    can be swallowed: the task then goes on to its next await, such as a blocking read
    that returns only when the server's block time is up. Cancelling again every
    ``patience`` seconds ends it at that next await instead. The task's own outcome
    (cancelled, an error, a result) is consumed, not raised; a cancel of the caller
    still propagates. Returns whether the task ended; one that refuses every cancel
    for ``limit`` seconds is left running (and logged) rather than holding its owner's
    shutdown forever::

        reader.cancel()                  # not enough: it may read on for 2 s
        await stop_task(reader)          # ends within a few ``patience`` periods
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not task.done():
        if loop.time() >= deadline:
            log.warning("task %s ignored cancellation for %.0f s; left running", task, limit)
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=patience)
    if not task.cancelled():
        task.exception()  # retrieved: an error at shutdown is not the caller's
    return True
