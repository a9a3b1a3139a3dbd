"""Pipelined JetStream publishing: many PUBs in flight, each awaiting its PubAck.

JetStream confirms each stored message with a reply (a PubAck) on the publish's reply
subject. Instead of one request (and one timer) per message, all replies of a client
come to one wildcard inbox and resolve a future per message, and one sweeper fails the
futures whose reply did not come in time (lost in a server restart, for example)::

    acks = AckInbox(nc, timeout=10.0)
    await acks.start()
    future = await acks.send("sw.orders.3", payload, header_block(message))
    await future            # None once stored; PublishError otherwise
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from servicewire.errors import PublishError


def _parse_block(header: bytes) -> dict[str, str]:
    lines = header.decode().split("\r\n")[1:]
    return dict(line.split(": ", 1) for line in lines if line)


class AckInbox:
    """Sends JetStream publishes and matches their PubAcks."""

    def __init__(
        self,
        nc: Any,
        *,
        timeout: float,
        on_no_stream: Callable[[str], None],
    ) -> None:
        self._nc = nc
        self._timeout = timeout
        self._on_no_stream = on_no_stream
        self._prefix = ""
        self._next = 0
        # token -> (future, subject, sent-at); insertion order is send order, which lets
        # the sweeper stop at the first future that is still in time.
        self._pending: dict[str, tuple[asyncio.Future[None], str, float]] = {}
        self._sub: Any = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)
        self._sweeper = asyncio.create_task(self._sweep())

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def send(self, subject: str, payload: bytes, header: bytes) -> asyncio.Future[None]:
        """HPUB the message (``header``: a ready NATS header block); the returned future
        resolves when JetStream stored it."""
        self._next += 1
        token = str(self._next)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending[token] = (future, subject, loop.time())
        try:
            await self._hpub(subject, self._prefix + token, header, payload)
        except BaseException:
            self._pending.pop(token, None)
            raise
        return future

    async def _hpub(self, subject: str, reply: str, header: bytes, payload: bytes) -> None:
        nc = self._nc
        if nc.is_closed or nc.is_draining_pubs or not hasattr(nc, "_send_command"):
            # The public path raises nats-py's own errors for a closed connection.
            await nc.publish(subject, payload, reply=reply, headers=_parse_block(header))
            return
        # What nats-py's publish does after validating, minus re-encoding the headers:
        # queue the command (buffered while reconnecting) and kick the flusher.
        total = len(header) + len(payload)
        await nc._send_command(
            b"HPUB %s %s %d %d\r\n%s%s\r\n"
            % (subject.encode(), reply.encode(), len(header), total, header, payload)
        )
        if nc._flush_queue is not None and nc._flush_queue.empty():
            await nc._flush_pending()

    async def _on_reply(self, msg: Any) -> None:
        entry = self._pending.pop(msg.subject[len(self._prefix) :], None)
        if entry is None:
            return  # already timed out
        future, subject, _ = entry
        if future.done():
            return
        data: bytes = msg.data
        if not data:
            status = (msg.headers or {}).get("Status", "")
            if status == "503":
                self._on_no_stream(subject)
                future.set_exception(
                    PublishError(f"no JetStream stream answered for {subject!r} (503)")
                )
            else:
                future.set_exception(PublishError(f"JetStream refused {subject!r}: {status}"))
        elif b'"error"' in data:
            error = json.loads(data).get("error", {})
            future.set_exception(
                PublishError(f"JetStream refused {subject!r}: {error.get('description', error)}")
            )
        else:
            future.set_result(None)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self._timeout / 4))
            limit = loop.time() - self._timeout
            expired = []
            for token, (_, _, sent) in self._pending.items():
                if sent > limit:
                    break
                expired.append(token)
            for token in expired:
                future, subject, _ = self._pending.pop(token)
                if not future.done():
                    future.set_exception(
                        PublishError(f"no PubAck for {subject!r} within {self._timeout:g}s")
                    )

    async def wait_idle(self, timeout: float) -> None:
        """Wait until every publish sent so far is confirmed or failed."""
        futures = [f for f, _, _ in self._pending.values()]
        if futures:
            await asyncio.wait(futures, timeout=timeout)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper  # plain sleeps only: a cancel cannot get lost here
        for future, subject, _ in self._pending.values():
            if not future.done():
                future.set_exception(
                    PublishError(f"transport closed before PubAck for {subject!r}")
                )
        self._pending.clear()
