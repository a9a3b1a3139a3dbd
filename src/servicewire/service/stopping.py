"""Stopping in steps: every step runs, whatever an earlier one raised.

A service stops what it started in order (consumers, reply router, background tasks,
relay, transport, engine, temporary files); one step failing must not leave the later
ones undone. Each failure is logged; the first is returned for the caller to raise::

    first = await run_steps("order-service", [
        ("consumers", lambda: consumers.stop(30.0)),
        ("transport", transport.close),
    ])
    if first is not None:
        raise first
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

# The name the service module logged under before this code moved here.
log = logging.getLogger("servicewire.service.service")

StopStep = tuple[str, Callable[[], Awaitable[None]]]
"""What is stopped (for the log line), and the call that stops it."""


async def run_steps(owner: str, steps: Sequence[StopStep]) -> Exception | None:
    """Run each step in order; log every failure; return the first (``None`` if none)."""
    first: Exception | None = None
    for what, step in steps:
        try:
            await step()
        except Exception as exc:
            log.exception("%s: stopping the %s failed; stopping the rest", owner, what)
            if first is None:
                first = exc
    return first
