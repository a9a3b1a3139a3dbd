"""Deadlines: a point in time by which a call, and every call it makes, must finish.

A deadline only shrinks as it propagates: a server interceptor sets the caller's
deadline with :func:`deadline_scope`, and :meth:`Deadline.effective` gives a nested
call the tighter of its own timeout and the inherited one::

    with deadline_scope(Deadline(0.3)):
        deadline = Deadline.effective(2.0)      # 0.3 s, not 2 s
        order = await deadline.run(fetch_order(), "fetch order")
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from servicewire.resilience.errors import DeadlineExceededError

T = TypeVar("T")

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
        """Await ``awaitable`` within the time left; raise :class:`DeadlineExceededError`.

        Enforced by :func:`asyncio.timeout`, which counts its own cancellation apart
        from anyone else's (``Task.cancelling``): a cancel of the caller that arrives as
        the deadline passes still propagates as :class:`asyncio.CancelledError`, nested
        calls in one task each keep their own deadline, and whichever passes first is
        the one reported.
        """
        left = self.remaining()
        if left <= 0:
            _discard(awaitable)
            raise DeadlineExceededError(operation, self.timeout)
        timer = asyncio.timeout(left)
        try:
            async with timer:
                return await awaitable
        except TimeoutError:
            # A TimeoutError of the work itself (an inner deadline among them) is not ours.
            if timer.expired():
                raise DeadlineExceededError(operation, self.timeout) from None
            raise


def _discard(awaitable: Awaitable[object]) -> None:
    """Release work that will never be awaited (no "coroutine was never awaited")."""
    if isinstance(awaitable, asyncio.Future):  # tasks too
        awaitable.cancel()
    elif hasattr(awaitable, "close"):
        awaitable.close()


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
