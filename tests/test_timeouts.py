"""servicewire.timeouts: waits with a limit that never lose a cancellation."""

from __future__ import annotations

import asyncio
import sys

import pytest

from servicewire.timeouts import stop_task, within, woken


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


async def test_stop_task_ends_a_task_whose_cancel_a_library_wait_for_lost() -> None:
    """How closing a Redis member took up to 32 s: redis-py sends a command inside
    asyncio.wait_for; a cancel landing as that completes is lost on Python 3.11, and
    the task goes on to a read that blocks until the server's block time is up."""
    loop = asyncio.get_running_loop()
    sent: asyncio.Future[None] = loop.create_future()
    went_on: list[str] = []

    async def reader() -> None:
        await asyncio.wait_for(sent, 10)  # noqa: TID251 (the library's wait, on purpose)
        went_on.append("reading")
        await asyncio.sleep(3600)  # the blocking read a lost cancel leads to

    task = asyncio.create_task(reader())
    await _settle()
    sent.set_result(None)  # the send completes ...
    started = loop.time()
    async with asyncio.timeout(5):  # a single cancel would wait out the hour: fail instead
        await stop_task(task)  # ... in the turn the first cancel lands
    assert task.cancelled()
    assert loop.time() - started < 1.0
    if sys.version_info < (3, 12):  # the race this guards against: the first cancel was lost
        assert went_on == ["reading"]


async def test_stop_task_consumes_the_outcome_of_a_task_that_failed() -> None:
    async def failing() -> None:
        raise RuntimeError("at shutdown")

    task = asyncio.create_task(failing())
    await _settle()
    assert await stop_task(task) is True  # no raise, and nothing left unretrieved


async def test_stop_task_gives_up_on_a_task_that_refuses_every_cancel() -> None:
    stop = asyncio.Event()

    async def stubborn() -> None:
        while not stop.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # refuses: stop_task must not wait for it forever

    task = asyncio.create_task(stubborn())
    await _settle()
    assert await stop_task(task, patience=0.01, limit=0.1) is False
    assert not task.done()
    stop.set()
    task.cancel()  # lands in its sleep: it sees the flag and ends
    await asyncio.wait({task}, timeout=5)
    assert task.done()
