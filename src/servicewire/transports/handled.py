"""Publishes that may be forgotten by their sender only once nothing can lose them.

A broker's publish confirm already means that: the broker holds the message for every
group. A brokerless transport (``zmq+…``) has no broker; its confirm only says the
consuming peer received the message, and a peer that dies before handling it loses it.
A caller that deletes its own copy on success (an outbox relay) asks for the stronger
confirm around its publishes, and a brokerless transport then returns only once a
member of every group acked the message (its handler committed), and fails when no
group has a live member::

    with confirm_handled():
        await transport.publish_batch(messages)   # zmq: every group's member acked them
    ...                                           # now the outbox rows may go

Outside the block nothing changes (a handler's own publish must not wait for another
handler, or two handlers waiting on each other would stall).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_WANTED: ContextVar[bool] = ContextVar("servicewire_confirm_handled", default=False)


@contextlib.contextmanager
def confirm_handled() -> Iterator[None]:
    """Publishes in this block (this task and the tasks it starts) confirm on handling."""
    token = _WANTED.set(True)
    try:
        yield
    finally:
        _WANTED.reset(token)


def handled_wanted() -> bool:
    """Whether the current publish must wait until a consumer handled the message."""
    return _WANTED.get()
