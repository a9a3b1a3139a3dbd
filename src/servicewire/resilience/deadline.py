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
import weakref
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Final, TypeVar

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
