"""Partial failure: deadlines, retries, a circuit breaker and a bulkhead per remote service.

The REST and gRPC clients share this module, so a slow or dead service looks the same
to a caller whichever protocol reaches it::

    resilience = Resilience(timeout=2.0, failure_threshold=5, reset_timeout=10.0,
                            max_concurrent=64)
    order = await resilience.call("order-service", fetch_order, idempotent=True)

``fetch_order`` receives the call's :class:`Deadline`, so a transport can pass the
remaining time on (gRPC ``timeout=``, REST request timeout). Per call the order is:
deadline -> retry (idempotent operations only, exponential backoff with full jitter,
never past the deadline) -> circuit breaker (fail fast while open) -> bulkhead (cap on
outstanding calls) -> the operation.

Retries use tenacity; the breaker and bulkhead are our own (see docs/resilience.md for
why): each is a few dozen lines over asyncio with a readable ``state`` and a
callback for metrics.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, ClassVar, Final, TypeVar

from servicewire.errors import ServicewireError

T = TypeVar("T")

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""HTTP methods RFC 9110 defines as idempotent: the only ones a client retries."""


class DeadlineExceededError(ServicewireError, TimeoutError):
    """A call did not finish before its deadline (on either protocol)."""

    def __init__(self, operation: str, timeout: float) -> None:
        self.operation = operation
        self.timeout = timeout
        super().__init__(f"{operation} did not complete within its deadline of {timeout:.3f} s")


class CircuitOpenError(ServicewireError):
    """The circuit breaker of a remote service is open: the call was not attempted."""

    def __init__(self, service: str, retry_after: float) -> None:
        self.service = service
        self.retry_after = retry_after
        super().__init__(
            f"circuit for {service!r} is open; calls fail fast for another {retry_after:.1f} s"
        )


class BulkheadFullError(ServicewireError):
    """Too many calls to one remote service are outstanding: the call was not attempted."""

    def __init__(self, service: str, limit: int) -> None:
        self.service = service
        self.limit = limit
        super().__init__(f"bulkhead for {service!r} is full: {limit} calls already outstanding")


# --------------------------------------------------------------------------- remote errors
# What a failed remote call looks like to its caller, the same on REST and gRPC: the
# REST client maps problem details to these, the gRPC client maps status codes to
# these, and a gRPC handler may raise them to answer with the matching status code.


class RemoteError(ServicewireError):
    """A remote service answered a call with an error.

    ``status`` is the HTTP status (the gRPC client uses the equivalent one); ``title``,
    ``detail``, ``type`` and ``errors`` come from the problem details when there are any.
    """

    default_status: int = 500

    def __init__(
        self,
        service: str,
        detail: str,
        *,
        status: int | None = None,
        title: str = "",
        type: str = "about:blank",
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        self.service = service
        self.detail = detail
        self.status = status if status is not None else self.default_status
        self.title = title
        self.type = type
        self.errors = errors or []
        super().__init__(f"{service}: {self.status} {title + ': ' if title else ''}{detail}")


class BadRequestError(RemoteError):
    default_status = 400


class InvalidArgumentError(BadRequestError):
    """The request failed validation (HTTP 422, gRPC INVALID_ARGUMENT); see ``errors``."""

    default_status = 422


class NotFoundError(RemoteError):
    default_status = 404


class ConflictError(RemoteError):
    """The request conflicts with the resource's state (HTTP 409, gRPC FAILED_PRECONDITION)."""

    default_status = 409


class RemoteServerError(RemoteError):
    """The remote service failed (HTTP 500, gRPC INTERNAL/UNKNOWN)."""

    default_status = 500


class ServiceUnavailableError(RemoteError):
    """The service could not be reached or is overloaded (connection refused, 502/503/504,
    gRPC UNAVAILABLE). Safe to retry for idempotent operations."""

    default_status = 503


_BY_STATUS: dict[int, type[RemoteError]] = {
    400: BadRequestError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidArgumentError,
    500: RemoteServerError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: ServiceUnavailableError,
}


def remote_error_class(status: int) -> type[RemoteError]:
    """The most specific :class:`RemoteError` class for an HTTP status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return RemoteServerError if status >= 500 else BadRequestError if status >= 400 else RemoteError


def counts_as_failure(exc: BaseException) -> bool:
    """Breaker rule: a remote 4xx means the service is up and the request was wrong."""
    return not (isinstance(exc, RemoteError) and exc.status < 500)


def is_transient(exc: BaseException) -> bool:
    """Retry rule: only an unreachable or overloaded service is worth another attempt."""
    return isinstance(exc, ServiceUnavailableError)


# ---------------------------------------------------------------------------- deadlines

_current_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "servicewire_deadline", default=None
)


class Deadline:
    """A point in time by which a call (and everything it calls) must finish.

    >>> d = Deadline(0.5)
    >>> 0 < d.remaining() <= 0.5
    True
    """

    __slots__ = ("expires_at", "timeout")

    def __init__(self, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("a deadline needs a positive timeout")
        self.timeout = timeout
        self.expires_at = time.monotonic() + timeout

    @classmethod
    def effective(cls, timeout: float | None) -> Deadline:
        """The tighter of ``timeout`` from now and the deadline inherited from the caller.

        A server handler that was called with 300 ms left and calls another service with a
        2 s timeout gets 300 ms: deadlines only shrink as they propagate.
        """
        inherited = _current_deadline.get()
        if timeout is None:
            if inherited is None:
                raise ValueError("no timeout given and no deadline inherited")
            return inherited
        mine = cls(timeout)
        if inherited is not None and inherited.expires_at < mine.expires_at:
            return inherited
        return mine

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at

    async def run(self, awaitable: Awaitable[T], operation: str) -> T:
        """Await ``awaitable`` within the time left; raise :class:`DeadlineExceededError`."""
        left = self.remaining()
        if left <= 0:
            if isinstance(awaitable, asyncio.Future | asyncio.Task):
                awaitable.cancel()
            elif hasattr(awaitable, "close"):
                awaitable.close()
            raise DeadlineExceededError(operation, self.timeout)
        task = asyncio.current_task()
        if task is None:  # not inside a task: fall back to the standard timer
            try:
                async with asyncio.timeout(left):
                    return await awaitable
            except TimeoutError:
                raise DeadlineExceededError(operation, self.timeout) from None
        watchdog = _Watchdog.of(asyncio.get_running_loop())
        watchdog.watch(task, self.expires_at)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if watchdog.fired(task):
                # Our cancellation, not the caller's: undo it and say what happened.
                task.uncancel()
                raise DeadlineExceededError(operation, self.timeout) from None
            raise
        finally:
            watchdog.unwatch(task)


class _Watchdog:
    """Cancels tasks whose deadline has passed, with one timer for all of them.

    A timer per call (``asyncio.timeout``) costs about as much CPU as a whole keep-alive
    HTTP exchange on the client side; a sweep every ``RESOLUTION`` seconds over the
    calls in flight costs almost nothing per call. A deadline fires at most
    ``RESOLUTION`` late.
    """

    RESOLUTION: Final = 0.005
    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # Per task, the deadlines of its nested calls (a call inside a call), innermost
        # last; the task is cancelled when the earliest passes.
        self._deadlines: dict[asyncio.Task[Any], list[float]] = {}
        self._fired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Watchdog:
        watchdog = cls._by_loop.get(loop)
        if watchdog is None:
            watchdog = cls._by_loop[loop] = cls(loop)
        return watchdog

    def watch(self, task: asyncio.Task[Any], expires_at: float) -> None:
        self._deadlines.setdefault(task, []).append(expires_at)
        if self._timer is None:
            self._timer = self._loop.call_later(self.RESOLUTION, self._sweep)

    def unwatch(self, task: asyncio.Task[Any]) -> None:
        self._fired.discard(task)
        stack = self._deadlines.get(task)
        if stack:
            stack.pop()
            if not stack:
                del self._deadlines[task]

    def fired(self, task: asyncio.Task[Any]) -> bool:
        return task in self._fired

    def _sweep(self) -> None:
        self._timer = None
        now = time.monotonic()
        expired = [task for task, stack in self._deadlines.items() if min(stack) <= now]
        for task in expired:
            del self._deadlines[task]
            self._fired.add(task)
            task.cancel()
        if self._deadlines:
            self._timer = self._loop.call_later(self.RESOLUTION, self._sweep)


def current_deadline() -> Deadline | None:
    """The deadline of the request being handled, if a server interceptor set one."""
    return _current_deadline.get()


@contextmanager
def deadline_scope(deadline: Deadline | None) -> Iterator[None]:
    """Make ``deadline`` the inherited deadline of every call made inside the block."""
    token = _current_deadline.set(deadline)
    try:
        yield
    finally:
        _current_deadline.reset(token)


# ------------------------------------------------------------------------------- retries


@dataclass(frozen=True, slots=True)
class CallRetryPolicy:
    """How often and how patiently to retry an idempotent operation.

    ``retryable`` says which errors are worth another attempt (connection refused, 503,
    gRPC UNAVAILABLE); anything else is raised at once. A non-idempotent operation is
    attempted exactly once whatever the policy says, because a retry could do it twice.
    """

    attempts: int = 3
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    retryable: Callable[[BaseException], bool] = field(default=lambda exc: False)

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        idempotent: bool,
        deadline: Deadline | None = None,
    ) -> T:
        if not idempotent or self.attempts <= 1:
            return await operation()
        # Fast path: the first attempt runs without the retry machinery, which only a
        # failure needs; a call that succeeds pays nothing for being retryable.
        try:
            return await operation()
        except Exception as exc:
            if not self._should_retry(exc) or (deadline is not None and deadline.expired):
                raise
        await asyncio.sleep(random.uniform(0.0, self.initial_backoff))
        return await self._retry(operation, deadline)

    def _should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, CircuitOpenError | BulkheadFullError | DeadlineExceededError):
            return False
        return self.retryable(exc)

    async def _retry(self, operation: Callable[[], Awaitable[T]], deadline: Deadline | None) -> T:
        """Attempts 2..N, with tenacity's exponential backoff and full jitter."""
        # tenacity is imported here so `import servicewire` does not need it.
        from tenacity import (
            AsyncRetrying,
            RetryCallState,
            retry_if_exception,
            stop_after_attempt,
            stop_any,
            wait_random_exponential,
        )
        from tenacity.stop import stop_base

        class OutOfTime(stop_base):
            # Stop when the next sleep would cross the deadline: a retry that cannot
            # finish in time only adds load to a struggling service.
            def __call__(self, state: RetryCallState) -> bool:
                if deadline is None:
                    return False
                return deadline.remaining() <= (state.upcoming_sleep or 0.0)

        retrying = AsyncRetrying(
            stop=stop_any(stop_after_attempt(self.attempts - 1), OutOfTime()),
            wait=wait_random_exponential(multiplier=self.initial_backoff, max=self.max_backoff),
            retry=retry_if_exception(self._should_retry),
            reraise=True,
        )
        result: T = await retrying(operation)
        return result


NO_CALL_RETRY: Final = CallRetryPolicy(attempts=1)


# ------------------------------------------------------------------------ circuit breaker


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


# ------------------------------------------------------------------------------- bulkhead


class Bulkhead:
    """A cap on outstanding calls to one remote service.

    A call beyond the cap waits at most ``max_wait`` seconds for a slot (0: not at all)
    and then raises :class:`BulkheadFullError`, so a slow service ties up a bounded
    number of the caller's tasks and sockets instead of all of them::

        async with bulkhead:
            await call_the_service()
    """

    def __init__(self, service: str, max_concurrent: int, *, max_wait: float = 0.0) -> None:
        if max_concurrent < 1:
            raise ValueError("a bulkhead needs room for at least one call")
        self.service = service
        self.max_concurrent = max_concurrent
        self.max_wait = max_wait
        self._in_flight = 0
        # Callers waiting for a slot (only with max_wait > 0), first come first served.
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Calls currently holding a slot (a gauge for metrics)."""
        return self._in_flight

    def try_acquire(self) -> bool:
        """Take a slot if one is free, without waiting (the per-call fast path)."""
        if self._in_flight < self.max_concurrent and not self._waiters:
            self._in_flight += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting up to ``max_wait``; raise :class:`BulkheadFullError`."""
        if self.try_acquire():
            return
        if self.max_wait <= 0:
            raise BulkheadFullError(self.service, self.max_concurrent)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.max_wait):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Granted a slot at the moment we gave up: pass it on.
                self.release()
            else:
                self._remove(waiter)
            if isinstance(exc, TimeoutError):
                raise BulkheadFullError(self.service, self.max_concurrent) from None
            raise

    def _remove(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def release(self) -> None:
        """Give a slot back; hand it straight to the longest waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to the waiter: in_flight unchanged
                return
        self._in_flight -= 1

    async def __aenter__(self) -> Bulkhead:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


# --------------------------------------------------------------------- per-service policy


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
