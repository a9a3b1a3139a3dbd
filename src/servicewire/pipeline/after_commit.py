"""Callbacks a unit of work runs once its transaction has committed.

A handler registers them with :meth:`~.context.Context.after_commit`; the pipeline (or
:meth:`Service.transaction`) runs them after the commit, in registration order. They
are told of what already happened: a failing one is logged and changes nothing else
(the delivery stays handled and is acknowledged once)::

    callbacks: list[AfterCommit] = [lambda: watch.changed("o-1")]
    await run_after_commit(callbacks)
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger("servicewire.pipeline.after_commit")

AfterCommit = Callable[[], Awaitable[object] | object]
"""A callable of no arguments, sync or async, run after a commit."""


async def run_after_commit(callbacks: Iterable[AfterCommit]) -> None:
    """Run each callback in order; one that fails is logged and the next still runs."""
    for callback in callbacks:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:
            # The transaction is committed and cannot be undone: all we can do is say so.
            log.exception("after-commit callback %r failed", callback)
