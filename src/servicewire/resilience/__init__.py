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

One module per concern: :mod:`~.errors` (a call not attempted or out of time),
:mod:`~.remote_errors` (what the remote service answered, and the default breaker and
retry rules), :mod:`~.deadline`, :mod:`~.retry`, :mod:`~.breaker`, :mod:`~.bulkhead` and
:mod:`~.facade` (:class:`Resilience`, all of them per remote service). Import from this
package, not from the modules.
"""

from servicewire.resilience.breaker import CircuitBreaker, CircuitState, StateListener
from servicewire.resilience.bulkhead import Bulkhead
from servicewire.resilience.deadline import Deadline, current_deadline, deadline_scope

# The gRPC server interceptor sets the inherited deadline through the context variable.
from servicewire.resilience.deadline import _current_deadline as _current_deadline
from servicewire.resilience.errors import (
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceededError,
)
from servicewire.resilience.facade import Resilience
from servicewire.resilience.remote_errors import (
    BadRequestError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    RemoteError,
    RemoteServerError,
    ServiceUnavailableError,
    counts_as_failure,
    is_transient,
    remote_error_class,
)
from servicewire.resilience.retry import IDEMPOTENT_METHODS, NO_CALL_RETRY, CallRetryPolicy

__all__ = [
    "IDEMPOTENT_METHODS",
    "NO_CALL_RETRY",
    "BadRequestError",
    "Bulkhead",
    "BulkheadFullError",
    "CallRetryPolicy",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "ConflictError",
    "Deadline",
    "DeadlineExceededError",
    "InvalidArgumentError",
    "NotFoundError",
    "RemoteError",
    "RemoteServerError",
    "Resilience",
    "ServiceUnavailableError",
    "StateListener",
    "counts_as_failure",
    "current_deadline",
    "deadline_scope",
    "is_transient",
    "remote_error_class",
]
