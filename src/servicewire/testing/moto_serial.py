"""``python -m servicewire.testing.moto_serial -H 127.0.0.1 -p PORT``: moto's server with
its SQS calls taken one at a time.

moto serves each request on a thread of its own, and its FIFO receive is not safe
between threads: it copies the set of busy message groups when a receive starts, so
two receives at once can hand out two consecutive messages of one group to two
members, which AWS never does (a group has at most one message in flight). The
contract suite's ten competing members hit that within seconds. Here every SQS backend
call that reads or changes messages holds one lock, and a long poll waits *outside*
it (polling again every 50 ms), so members still wait in parallel. Nothing else of
moto changes. :class:`~servicewire.testing.moto_server.PrivateMoto` starts this.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from moto.server import main
from moto.sqs.models import SQSBackend

_LOCK = threading.RLock()
_POLL = 0.05


def _serialized(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return call(*args, **kwargs)

    return locked


def _receive(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def receive(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        while True:
            with _LOCK:
                found = call(
                    self, queue_name, count, 0, visibility_timeout, message_attribute_names
                )
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(_POLL)

    return receive


def patch() -> None:
    """Serialize the SQS backend's message calls (idempotent)."""
    if getattr(SQSBackend, "_servicewire_serial", False):
        return
    for name in (
        "send_message",
        "send_message_batch",
        "delete_message",
        "delete_message_batch",
        "change_message_visibility",
        "change_message_visibility_batch",
        "purge_queue",
        "delete_queue",
    ):
        setattr(SQSBackend, name, _serialized(getattr(SQSBackend, name)))
    SQSBackend.receive_message = _receive(SQSBackend.receive_message)  # type: ignore[method-assign]
    SQSBackend._servicewire_serial = True  # type: ignore[attr-defined]


if __name__ == "__main__":
    patch()
    main()
