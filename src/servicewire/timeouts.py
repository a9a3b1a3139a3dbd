"""Waiting with a time limit, without losing a cancellation.

Use these instead of :func:`asyncio.wait_for` (ruff bans it here, rule TID251)::

    reply = await within(future, 5.0)  # TimeoutError after 5 s
    if await woken(event, 0.5):  # True if set within 0.5 s
        ...

Why: on Python 3.11, ``wait_for`` returns the inner result when its task is cancelled
at the moment the inner awaitable completes, and the cancellation is lost. A loop that a
:class:`asyncio.TaskGroup` cancels after another task failed then keeps running, and the
group waits for it forever. (A polling relay stopped publishing that way after a
simulated crash: its watcher was cancelled just as a wake-up arrived.) Python 3.12
rebuilt ``wait_for`` on :func:`asyncio.timeout`; these helpers do the same on 3.11.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


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
