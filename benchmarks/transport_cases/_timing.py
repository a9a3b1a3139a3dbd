"""The clock and the pipelined publisher the transport cases share.

::

    publish_rate = await pipelined(lambda i: transport.publish(messages[i]), n, window=1000)
    clock = Clock(n)
    ...                      # in the consumer, after each ack:
    if clock.tick():         # True (and clock.done set) once n are counted
        ...
    consume_rate = clock.rate()

The leading underscore keeps benchmarks/transports.py from taking it for a case.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def pipelined(publish: Callable[[int], Awaitable[object]], n: int, window: int) -> float:
    """Run ``publish(i)`` for i < n with ``window`` in flight; return msg/s."""
    start = time.perf_counter()
    for base in range(0, n, window):
        await asyncio.gather(*(publish(i) for i in range(base, min(n, base + window))))
    return n / (time.perf_counter() - start)


class Clock:
    """First delivery to last ack of ``n`` messages."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.done = asyncio.Event()

    def tick(self, count: int = 1) -> bool:
        """Count ``count`` more; whether all ``n`` are in (then ``done`` is set)."""
        if self.count == 0:
            self.first = time.perf_counter()
        self.count += count
        if self.count >= self.n and not self.done.is_set():
            self.last = time.perf_counter()
            self.done.set()
        return self.count >= self.n

    def rate(self) -> float:
        return self.n / max(1e-9, self.last - self.first)
