"""The delivery pipeline: decode, inbox, handler, outbox, commit, acknowledge.

The unit of work (:mod:`~.unit_of_work`) runs a batch of deliveries (one at low load,
at most one per shard) inside one database transaction, each handler in its own
savepoint, with the inbox (:mod:`~.inbox`) and the outbox; around it the retry policy
(:mod:`~.retry`) and dead-lettering (:mod:`~.deadletter`, read back and replayed by
:mod:`~.deadletter_replay`). Handlers are registered in :mod:`~.handlers` and receive a
:class:`~.context.Context` (whose ``after_commit`` callbacks run once the transaction
has committed). Middleware (:mod:`~.middleware`) wraps each handler run in one concern
each: log context, tracing, metrics::

    from servicewire.pipeline import Context, RetryPolicy

    policy = RetryPolicy(immediate=2, delayed=3, backoff=0.5)
"""

from servicewire.pipeline.context import Context
from servicewire.pipeline.deadletter import dead_letter_message, replay_message
from servicewire.pipeline.handlers import HandlerKind, HandlerRegistry, HandlerSpec
from servicewire.pipeline.middleware import Middleware, Run, Step, chain
from servicewire.pipeline.outcome import Outcome
from servicewire.pipeline.retry import NO_RETRY, RetryPolicy
from servicewire.pipeline.unit_of_work import Pipeline

__all__ = [
    "NO_RETRY",
    "Context",
    "HandlerKind",
    "HandlerRegistry",
    "HandlerSpec",
    "Middleware",
    "Outcome",
    "Pipeline",
    "RetryPolicy",
    "Run",
    "Step",
    "chain",
    "dead_letter_message",
    "replay_message",
]
