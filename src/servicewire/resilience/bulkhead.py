"""A bulkhead: a cap on outstanding calls to one remote service.

bulkhead = Bulkhead("order-service", max_concurrent=64, max_wait=0.1)
async with bulkhead:                        # BulkheadFullError when full
    await fetch_order()
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from servicewire.resilience.errors import BulkheadFullError


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
