"""servicewire.timeouts: waits with a limit that never lose a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from servicewire.timeouts import within, woken


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_within_returns_the_result_in_time() -> None:
    assert await within(asyncio.sleep(0, "done"), 1.0) == "done"


async def test_within_raises_timeout_and_cancels_the_awaited_task() -> None:
    task = asyncio.create_task(asyncio.sleep(10))
    with pytest.raises(TimeoutError):
        await within(task, 0.01)
    assert task.cancelled()


async def test_woken_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await woken(event, 5.0) is True


@pytest.mark.parametrize("wait", ["within", "woken"])
async def test_a_cancellation_that_coincides_with_the_result_still_cancels(wait: str) -> None:
    """The Python 3.11 wait_for race: the event is set and the waiter cancelled in one
    loop turn. wait_for returned the result there and the task went on running."""
    event = asyncio.Event()
    after_wait: list[str] = []

    async def waiter() -> None:
        if wait == "within":
            await within(event.wait(), 10)
        else:
            await woken(event, 10)
        after_wait.append("went on")  # must not happen: the task was cancelled
        await asyncio.sleep(10)

    task = asyncio.create_task(waiter())
    await _settle()
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert after_wait == []


async def test_a_task_group_ends_when_a_sibling_fails_during_a_wake_up() -> None:
    """How a polling relay stalled: a worker failed, the group cancelled the watcher at
    the moment a wake-up arrived, and the watcher kept looping (the group waited on it)."""
    wakeup = asyncio.Event()

    async def watcher() -> None:
        while True:
            await woken(wakeup, 10)
            wakeup.clear()

    async def failing_worker() -> None:
        await _settle()
        wakeup.set()  # the wake-up and the failure in one loop turn
        raise RuntimeError("worker crashed")

    with pytest.raises(ExceptionGroup) as raised:
        async with asyncio.timeout(5):
            async with asyncio.TaskGroup() as group:
                group.create_task(watcher())
                group.create_task(failing_worker())
    assert raised.group_contains(RuntimeError)
