"""Circuit breaker, bulkhead, deadlines and retries, without any network."""

from __future__ import annotations

import asyncio

import pytest

from servicewire.resilience import (
    Bulkhead,
    BulkheadFullError,
    CallRetryPolicy,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Deadline,
    DeadlineExceededError,
    Resilience,
    deadline_scope,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _fail() -> None:
    raise ConnectionError("refused")


async def _ok() -> str:
    return "ok"


async def test_circuit_opens_fails_fast_half_opens_and_closes() -> None:
    clock = Clock()
    seen: list[tuple[CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(
        "orders",
        failure_threshold=3,
        reset_timeout=10.0,
        clock=clock,
        on_state_change=lambda svc, old, new: seen.append((old, new)),
    )
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await breaker.call(_fail)
    assert breaker.state is CircuitState.OPEN

    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with pytest.raises(CircuitOpenError, match="orders"):
        await breaker.call(counted)
    assert calls == 0, "an open circuit must not call the service"

    clock.now += 10.0
    assert breaker.state is CircuitState.HALF_OPEN
    # A failed trial opens the circuit again.
    with pytest.raises(ConnectionError):
        await breaker.call(_fail)
    assert breaker.state is CircuitState.OPEN
    clock.now += 10.0
    assert await breaker.call(counted) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert seen == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]


async def test_half_open_admits_only_the_trial_calls() -> None:
    clock = Clock()
    breaker = CircuitBreaker("svc", failure_threshold=1, reset_timeout=1.0, clock=clock)
    with pytest.raises(ConnectionError):
        await breaker.call(_fail)
    clock.now += 1.0
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "ok"

    trial = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await breaker.call(_ok)
    release.set()
    assert await trial == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_errors_that_are_not_failures_keep_the_circuit_closed() -> None:
    breaker = CircuitBreaker(
        "svc", failure_threshold=1, is_failure=lambda exc: not isinstance(exc, KeyError)
    )

    async def not_found() -> None:
        raise KeyError("order 7")

    for _ in range(3):
        with pytest.raises(KeyError):
            await breaker.call(not_found)
    assert breaker.state is CircuitState.CLOSED


async def test_success_resets_the_consecutive_failure_count() -> None:
    breaker = CircuitBreaker("svc", failure_threshold=2)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await breaker.call(_fail)
        await breaker.call(_ok)
    assert breaker.state is CircuitState.CLOSED


async def test_bulkhead_rejects_beyond_its_cap() -> None:
    bulkhead = Bulkhead("orders", 2)
    release = asyncio.Event()

    async def hold() -> None:
        async with bulkhead:
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.sleep(0)
    assert bulkhead.in_flight == 2
    with pytest.raises(BulkheadFullError, match="2 calls already outstanding"):
        async with bulkhead:
            pass
    release.set()
    await asyncio.gather(*holders)
    assert bulkhead.in_flight == 0
    async with bulkhead:
        assert bulkhead.in_flight == 1


async def test_bulkhead_waits_up_to_max_wait() -> None:
    bulkhead = Bulkhead("orders", 1, max_wait=1.0)

    async def hold() -> None:
        async with bulkhead:
            await asyncio.sleep(0.05)

    task = asyncio.create_task(hold())
    await asyncio.sleep(0)
    async with bulkhead:  # waits for the slot instead of failing
        pass
    await task


async def test_expired_deadline_is_a_clear_timeout() -> None:
    deadline = Deadline(0.05)
    with pytest.raises(DeadlineExceededError, match="fetch order did not complete") as info:
        await deadline.run(asyncio.sleep(5), "fetch order")
    assert isinstance(info.value, TimeoutError)


async def test_inherited_deadline_only_shrinks() -> None:
    outer = Deadline(0.2)
    with deadline_scope(outer):
        assert Deadline.effective(10.0) is outer
        inner = Deadline.effective(0.05)
        assert inner is not outer and inner.expires_at < outer.expires_at


async def test_retries_only_idempotent_operations() -> None:
    policy = CallRetryPolicy(
        attempts=3, initial_backoff=0.001, retryable=lambda e: isinstance(e, ConnectionError)
    )
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("refused")
        return "ok"

    assert await policy.run(flaky, idempotent=True) == "ok"
    assert attempts == 3
    attempts = 0
    with pytest.raises(ConnectionError):
        await policy.run(flaky, idempotent=False)
    assert attempts == 1


async def test_retries_stop_at_the_deadline() -> None:
    res = Resilience(
        timeout=0.3,
        retry=CallRetryPolicy(
            attempts=1000, initial_backoff=0.05, max_backoff=0.05, retryable=lambda e: True
        ),
        failure_threshold=10_000,
    )
    attempts = 0

    async def failing(deadline: Deadline) -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("refused")

    loop = asyncio.get_running_loop()
    started = loop.time()
    # Either the last failure or, when time ran out just before an attempt, the deadline.
    with pytest.raises((ConnectionError, DeadlineExceededError)):
        await res.call("svc", failing, idempotent=True)
    assert loop.time() - started < 0.5
    assert 1 < attempts < 100


async def test_resilience_opens_the_circuit_per_service() -> None:
    res = Resilience(timeout=1.0, failure_threshold=2, reset_timeout=60.0)

    async def failing(deadline: Deadline) -> None:
        raise ConnectionError("refused")

    async def fine(deadline: Deadline) -> str:
        return "ok"

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await res.call("down", failing, idempotent=False)
    with pytest.raises(CircuitOpenError):
        await res.call("down", fine, idempotent=False)
    assert await res.call("up", fine, idempotent=False) == "ok"
    assert res.breaker("down").state is CircuitState.OPEN
    assert res.snapshot() == {
        "down": {"circuit": "open", "failures": 0, "in_flight": 0},
        "up": {"circuit": "closed", "failures": 0, "in_flight": 0},
    }


async def test_bulkhead_hands_slots_to_waiters_in_order() -> None:
    bulkhead = Bulkhead("orders", 1, max_wait=2.0)
    order: list[int] = []
    await bulkhead.acquire()

    async def waiter(n: int) -> None:
        async with bulkhead:
            order.append(n)
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    assert bulkhead.in_flight == 1
    bulkhead.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2] and bulkhead.in_flight == 0


async def test_bulkhead_waiter_gives_up_after_max_wait() -> None:
    bulkhead = Bulkhead("orders", 1, max_wait=0.05)
    await bulkhead.acquire()
    with pytest.raises(BulkheadFullError):
        await bulkhead.acquire()
    bulkhead.release()
    assert bulkhead.in_flight == 0 and bulkhead.try_acquire()


async def test_deadlines_of_nested_calls_in_one_task() -> None:
    outer, inner = Deadline(0.3), Deadline(0.05)

    async def nested() -> None:
        await inner.run(asyncio.sleep(5), "inner call")

    started = asyncio.get_running_loop().time()
    with pytest.raises(DeadlineExceededError, match="inner call"):
        await outer.run(nested(), "outer call")
    assert asyncio.get_running_loop().time() - started < 0.2
    # The outer deadline still holds after an inner call finished in time.
    with pytest.raises(DeadlineExceededError, match="outer call"):
        await outer.run(_sleep_after(Deadline(1.0)), "outer call")


async def _sleep_after(inner: Deadline) -> None:
    await inner.run(asyncio.sleep(0.01), "quick inner call")
    await asyncio.sleep(5)


async def test_a_callers_own_cancellation_is_not_a_deadline() -> None:
    task = asyncio.create_task(Deadline(5.0).run(asyncio.sleep(5), "call"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
