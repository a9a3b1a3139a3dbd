"""In-process notification of order state changes (for gRPC WatchOrder and the demo).

The database is the truth; a notification only says "order X changed, look again",
so a watcher that misses one still sees the latest state on its next read.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable


class OrderWatch:
    """Fan-out of "this order changed" signals to any number of watchers."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[str]]] = defaultdict(set)
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, order_id: str) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues[order_id].add(queue)
        return queue

    def unsubscribe(self, order_id: str, queue: asyncio.Queue[str]) -> None:
        queues = self._queues.get(order_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[order_id]

    def listen(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(order_id)`` on every change of any order."""
        self._listeners.append(callback)

    def changed(self, order_id: str) -> None:
        for queue in self._queues.get(order_id, ()):
            queue.put_nowait(order_id)
        for callback in self._listeners:
            callback(order_id)
