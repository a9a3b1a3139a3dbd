"""Retries of idempotent calls: exponential backoff with full jitter, never past the deadline.

    policy = CallRetryPolicy(attempts=3, retryable=is_transient)
    order = await policy.run(fetch_order, idempotent=True, deadline=Deadline(2.0))

Retries use tenacity (imported on the first retry, so ``import servicewire`` does not
need it).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from servicewire.resilience.deadline import Deadline
from servicewire.resilience.errors import (
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceededError,
)

T = TypeVar("T")

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""HTTP methods RFC 9110 defines as idempotent: the only ones a client retries."""


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
