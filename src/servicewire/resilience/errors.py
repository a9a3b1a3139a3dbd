"""Why a call to a remote service was not attempted or did not finish in time.

These are raised on the caller's side before or around a call, whichever protocol
carries it::

    try:
        await resilience.call("order-service", fetch_order, idempotent=True)
    except CircuitOpenError as exc:
        log.warning("order-service is down; retry in %.1f s", exc.retry_after)

What the remote service itself answered is in :mod:`~.remote_errors`.
"""

from __future__ import annotations

from servicewire.errors import ServicewireError


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
