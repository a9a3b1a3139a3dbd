"""A circuit breaker: stop calling a failing service, probe it again after a pause.

breaker = CircuitBreaker("order-service", failure_threshold=5, reset_timeout=10.0)
order = await breaker.call(fetch_order)     # CircuitOpenError while open
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from servicewire.resilience.errors import CircuitOpenError

T = TypeVar("T")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateListener = Callable[[str, CircuitState, CircuitState], None]
"""``listener(service, old_state, new_state)``: called on every transition (metrics, logs)."""


class CircuitBreaker:
    """Stop calling a failing service; probe it again after a pause.

    *closed*: calls pass; ``failure_threshold`` consecutive failures open the circuit.
    *open*: calls fail fast with :class:`CircuitOpenError` for ``reset_timeout`` seconds.
    *half-open*: up to ``half_open_max_calls`` trial calls pass; ``success_threshold``
    successes close the circuit, one failure opens it again.

    ``is_failure`` decides which errors count: a 404 or a validation error says the
    service is healthy and the request was wrong, so it must not open the circuit.
    """

    def __init__(
        self,
        service: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        success_threshold: int = 1,
        is_failure: Callable[[BaseException], bool] = lambda exc: True,
        on_state_change: StateListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or success_threshold < 1 or half_open_max_calls < 1:
            raise ValueError("circuit breaker thresholds must be at least 1")
        self.service = service
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self.success_threshold = success_threshold
        self.is_failure = is_failure
        self._listeners: list[StateListener] = [on_state_change] if on_state_change else []
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._successes = 0
        self._trials = 0
        self._opened_at = 0.0

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose pause is over reads as half-open."""
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._transition(CircuitState.HALF_OPEN)
        return self._state

    @property
    def failure_count(self) -> int:
        return self._failures

    def _transition(self, new: CircuitState) -> None:
        old, self._state = self._state, new
        self._failures = 0
        self._successes = 0
        self._trials = 0
        if new is CircuitState.OPEN:
            self._opened_at = self._clock()
        if old is not new:
            for listener in self._listeners:
                listener(self.service, old, new)

    def before_call(self) -> None:
        """Admit a call or raise :class:`CircuitOpenError`."""
        state = self.state
        if state is CircuitState.OPEN:
            left = self.reset_timeout - (self._clock() - self._opened_at)
            raise CircuitOpenError(self.service, max(0.0, left))
        if state is CircuitState.HALF_OPEN:
            if self._trials >= self.half_open_max_calls:
                raise CircuitOpenError(self.service, 0.0)
            self._trials += 1

    def record_success(self) -> None:
        if self._state is CircuitState.HALF_OPEN:
            self._successes += 1
            self._trials = max(0, self._trials - 1)
            if self._successes >= self.success_threshold:
                self._transition(CircuitState.CLOSED)
        else:
            self._failures = 0

    def record_failure(self, exc: BaseException) -> None:
        if not self.is_failure(exc):
            # The service answered; for the breaker that is a success.
            self.record_success()
            return
        if self._state is CircuitState.HALF_OPEN:
            self._transition(CircuitState.OPEN)
            return
        if self._state is CircuitState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._transition(CircuitState.OPEN)

    def release(self) -> None:
        """A call admitted by ``before_call`` ended without a verdict (cancelled, or a
        stream abandoned by its consumer): free its half-open trial slot."""
        if self._state is CircuitState.HALF_OPEN:
            self._trials = max(0, self._trials - 1)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` through the breaker."""
        self.before_call()
        try:
            result = await operation()
        except asyncio.CancelledError:
            # Cancellation is the caller's decision, not the service's fault.
            self.release()
            raise
        except BaseException as exc:
            self.record_failure(exc)
            raise
        self.record_success()
        return result
