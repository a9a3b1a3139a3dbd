"""The :class:`Resilience` facade: deadline, retry, circuit breaker and bulkhead per service.

resilience = Resilience(timeout=2.0, failure_threshold=5, max_concurrent=64)
order = await resilience.call("order-service", fetch_order, idempotent=True)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from servicewire.resilience.breaker import CircuitBreaker, StateListener
from servicewire.resilience.bulkhead import Bulkhead
from servicewire.resilience.deadline import Deadline
from servicewire.resilience.remote_errors import counts_as_failure
from servicewire.resilience.retry import NO_CALL_RETRY, CallRetryPolicy

T = TypeVar("T")


class Resilience:
    """Deadline, retry policy, and one breaker and one bulkhead per remote service.

    One instance is shared by a client for all the services it calls; the breakers and
    bulkheads are created on first use of a service name. ``on_state_change`` receives
    every breaker transition, for metrics. By default a remote 4xx answer does not count
    as a failure of the service (``counts_as_failure``).
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        retry: CallRetryPolicy = NO_CALL_RETRY,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        max_concurrent: int = 100,
        max_wait: float = 0.0,
        is_failure: Callable[[BaseException], bool] = counts_as_failure,
        on_state_change: StateListener | None = None,
    ) -> None:
        self.timeout = timeout
        self.retry = retry
        self._failure_threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._half_open_max_calls = half_open_max_calls
        self._max_concurrent = max_concurrent
        self._max_wait = max_wait
        self._is_failure = is_failure
        self._on_state_change = on_state_change
        self._breakers: dict[str, CircuitBreaker] = {}
        self._bulkheads: dict[str, Bulkhead] = {}

    def breaker(self, service: str) -> CircuitBreaker:
        breaker = self._breakers.get(service)
        if breaker is None:
            breaker = CircuitBreaker(
                service,
                failure_threshold=self._failure_threshold,
                reset_timeout=self._reset_timeout,
                half_open_max_calls=self._half_open_max_calls,
                is_failure=self._is_failure,
                on_state_change=self._on_state_change,
            )
            self._breakers[service] = breaker
        return breaker

    def bulkhead(self, service: str) -> Bulkhead:
        bulkhead = self._bulkheads.get(service)
        if bulkhead is None:
            bulkhead = Bulkhead(service, self._max_concurrent, max_wait=self._max_wait)
            self._bulkheads[service] = bulkhead
        return bulkhead

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Per remote service: breaker state, consecutive failures, calls in flight
        (for a metrics endpoint or a health page)."""
        services = sorted(set(self._breakers) | set(self._bulkheads))
        return {
            service: {
                "circuit": self.breaker(service).state.value,
                "failures": self.breaker(service).failure_count,
                "in_flight": self.bulkhead(service).in_flight,
            }
            for service in services
        }

    async def call(
        self,
        service: str,
        operation: Callable[[Deadline], Awaitable[T]],
        *,
        idempotent: bool,
        timeout: float | None = None,
        name: str | None = None,
        self_timed: bool = False,
    ) -> T:
        """Run ``operation(deadline)`` against ``service`` with every protection.

        ``self_timed=True`` says the operation enforces the deadline itself (gRPC sends
        it as the call's timeout and fails with DEADLINE_EXCEEDED), which saves an
        asyncio timer per call.
        """
        deadline = Deadline.effective(timeout if timeout is not None else self.timeout)
        breaker = self.breaker(service)
        bulkhead = self.bulkhead(service)
        label = name or f"call to {service}"

        # One flat coroutine per attempt (not nested context managers and lambdas):
        # every await level costs on each resumption, and this path runs per call.
        async def attempt() -> T:
            if not bulkhead.try_acquire():
                await bulkhead.acquire()
            try:
                breaker.before_call()
                try:
                    if self_timed:
                        result = await operation(deadline)
                    else:
                        result = await deadline.run(operation(deadline), label)
                except asyncio.CancelledError:
                    breaker.release()
                    raise
                except BaseException as exc:
                    breaker.record_failure(exc)
                    raise
                breaker.record_success()
                return result
            finally:
                bulkhead.release()

        if not idempotent:
            return await attempt()
        return await self.retry.run(attempt, idempotent=True, deadline=deadline)
