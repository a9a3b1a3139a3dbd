"""Deadline enforcement: nested deadlines, cancels from outside, and work finishing late.

Several tests block the event loop with ``time.sleep`` so that two timers fall due
while it is blocked: the loop then runs both callbacks in one turn, in the order of
their due times. That is how "a cancel arrives in the same turn as the deadline
passes" is made to happen every time rather than by luck.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from servicewire.resilience import Deadline, DeadlineExceededError, Resilience, deadline_scope


def _cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


def _block_loop(seconds: float) -> None:
    """Hold the event loop so that every timer due meanwhile runs in its next turn."""
    time.sleep(seconds)


async def test_an_inner_deadline_that_fires_leaves_the_outer_one_enforced() -> None:
    async def body() -> None:
        with pytest.raises(DeadlineExceededError, match="inner call"):
            await Deadline(0.02).run(asyncio.sleep(5), "inner call")
        await asyncio.sleep(2)  # handled the inner timeout; the outer must still cut in

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeadlineExceededError, match="outer call") as info:
        await Deadline(0.15).run(body(), "outer call")
    assert info.value.operation == "outer call" and info.value.timeout == 0.15
    assert loop.time() - started < 1.0
    assert _cancelling() == 0


async def test_an_outer_deadline_shorter_than_the_inner_fires_as_the_outer() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeadlineExceededError) as info:
        await Deadline(0.05).run(Deadline(1.0).run(asyncio.sleep(5), "inner call"), "outer call")
    assert info.value.operation == "outer call" and info.value.timeout == 0.05
    assert loop.time() - started < 0.5
    assert _cancelling() == 0


async def test_nested_deadlines_passing_in_one_turn_report_the_outer() -> None:
    async def call() -> None:
        outer = Deadline(0.05)
        await outer.run(Deadline(0.05).run(asyncio.sleep(5), "inner call"), "outer call")

    task = asyncio.create_task(call())
    await asyncio.sleep(0)  # both timers armed
    _block_loop(0.12)
    with pytest.raises(DeadlineExceededError, match="outer call"):
        await task


@pytest.mark.parametrize("cancel_after", [0.03, 0.07], ids=["cancel-first", "deadline-first"])
async def test_an_outside_cancel_in_the_turn_the_deadline_passes_stays_a_cancel(
    cancel_after: float,
) -> None:
    loop = asyncio.get_running_loop()
    pending_cancels: list[int] = []

    async def call() -> None:
        try:
            await Deadline(0.05).run(asyncio.sleep(5), "call")
        except asyncio.CancelledError:
            pending_cancels.append(_cancelling())
            raise

    task = asyncio.create_task(call())
    await asyncio.sleep(0)  # the call started: its deadline is 50 ms away
    loop.call_later(cancel_after, task.cancel)
    _block_loop(0.12)  # deadline and cancel both fall due: one turn runs both
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pending_cancels == [1]  # the caller's cancel, still counted for its owner


@pytest.mark.parametrize("work_takes", [0.03, 0.07], ids=["work-first", "deadline-first"])
async def test_the_deadline_passing_as_the_work_finishes_leaves_nothing_pending(
    work_takes: float,
) -> None:
    async def call() -> tuple[str, int]:
        try:
            outcome = await Deadline(0.05).run(asyncio.sleep(work_takes, result="done"), "call")
        except DeadlineExceededError as exc:
            outcome = f"deadline of {exc.operation}"
        await asyncio.sleep(0.01)  # would raise if a cancel were still pending
        return outcome, _cancelling()

    task = asyncio.create_task(call())
    await asyncio.sleep(0)
    _block_loop(0.12)  # the work's timer and the deadline's fall due in one turn
    outcome, cancelling = await task
    # The deadline passed before the task saw the result: asyncio reports the timeout.
    assert outcome == "deadline of call"
    assert cancelling == 0


async def test_work_that_absorbs_the_deadline_cancel_leaks_no_cancel_count() -> None:
    async def finishes_anyway() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "finished anyway"  # e.g. a driver that completes its round trip
        return "finished"

    assert await Deadline(0.02).run(finishes_anyway(), "call") == "finished anyway"
    assert _cancelling() == 0
    await asyncio.sleep(0.01)  # and no cancel is left pending


async def test_a_timeout_of_the_work_itself_is_not_the_deadline() -> None:
    async def read() -> None:
        raise TimeoutError("socket read timed out")

    with pytest.raises(TimeoutError, match="socket read") as info:
        await Deadline(1.0).run(read(), "call")
    assert not isinstance(info.value, DeadlineExceededError)


async def test_an_expired_deadline_does_not_start_the_work() -> None:
    deadline = Deadline(0.001)
    _block_loop(0.002)
    work = asyncio.sleep(1)
    with pytest.raises(DeadlineExceededError, match="call did not complete"):
        await deadline.run(work, "call")
    assert work.cr_frame is None  # closed, so no "never awaited" warning


async def test_the_inherited_deadline_bounds_a_call_with_a_longer_timeout() -> None:
    resilience = Resilience(timeout=5.0)
    given: list[float] = []

    async def slow(deadline: Deadline) -> None:
        given.append(deadline.remaining())  # what a transport sends as the remote timeout
        await asyncio.sleep(5)

    started = asyncio.get_running_loop().time()
    with deadline_scope(Deadline(0.05)), pytest.raises(DeadlineExceededError):
        await resilience.call("svc", slow, idempotent=False, timeout=2.0)
    assert given and 0 < given[0] <= 0.05
    assert asyncio.get_running_loop().time() - started < 0.5
