"""What the console shows, gathered from journals, outbox tables and dead-letter channels.

    state = ConsoleState(["postgresql://.../ftgo_order", ...], "amqp://...")
    await state.start()
    overview = await state.overview()           # JSON-ready dict
    svg = await state.sequence_svg(order_id)
    replayed = await state.replay(channel, message_id)
    await state.stop()

Everything is read-only except :meth:`ConsoleState.replay`. Dead letters are read by
rotating their channel
(:func:`servicewire.pipeline.deadletter_replay.list_dead_letters`), which takes a
moment per channel, so a background task refreshes them every few seconds and the
page reads the cached list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from servicewire.messaging import headers as h
from servicewire.messaging.message import Message
from servicewire.pipeline.deadletter_replay import (
    dlq_channel_for,
    list_dead_letters,
    replay_dead_letters,
)
from servicewire.relay.status import relay_status
from servicewire.storage.database import create_engine, display_url, missing_tables
from servicewire.telemetry.journal import journal_table
from servicewire.telemetry.journal_buffer import (
    journal_services,
    read_conversation,
    recent_conversations,
)
from servicewire.telemetry.sequence import render_svg, render_text, sequence
from servicewire.transports import Transport, connect_transport
from servicewire.urls import redact, redact_text

log = logging.getLogger("servicewire.console")


def _error(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}")


def dead_letter_view(channel: str, message: Message) -> dict[str, Any]:
    get = message.headers.get
    return {
        "id": message.id,
        "channel": channel,
        "type": message.type or "(untyped)",
        "reason": get(h.DLQ_REASON, ""),
        "exception": get(h.DLQ_EXCEPTION, ""),
        "handler": get(h.DLQ_HANDLER, ""),
        "group": get(h.DLQ_GROUP, ""),
        "attempts": get(h.DLQ_ATTEMPTS, ""),
        "at": get(h.DLQ_TIME, ""),
        "correlation_id": message.correlation_id,
    }


class ConsoleState:
    """Connections to the databases and the transport, and the cached dead letters."""

    def __init__(
        self,
        databases: Sequence[str],
        transport: str | Transport,
        *,
        channels: Sequence[str] = (),
        dead_letter_interval: float = 3.0,
        dead_letter_idle: float = 0.3,
    ) -> None:
        self.urls = list(databases)
        self.engines = [create_engine(url) for url in self.urls]
        self._transport_spec = transport
        self.transport: Transport | None = None
        self.extra_channels = list(channels)
        self.dead_letter_interval = dead_letter_interval
        self.dead_letter_idle = dead_letter_idle
        self.dead_letters: list[dict[str, Any]] = []
        self.dead_letters_at: float | None = None
        self.dead_letter_error: str | None = None
        self._dlq_lock = asyncio.Lock()  # listing and replaying both rotate the channel
        self._refreshed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        spec = self._transport_spec
        self.transport = await connect_transport(spec) if isinstance(spec, str) else spec
        self._task = asyncio.create_task(self._refresh_dead_letters_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.transport is not None and isinstance(self._transport_spec, str):
            await self.transport.close()
        for engine in self.engines:
            await engine.dispose()

    # Journals ---------------------------------------------------------------------------

    async def _journal_engines(self) -> list[Any]:
        found = []
        for engine in self.engines:
            with contextlib.suppress(Exception):
                if not await missing_tables(engine, [journal_table.name]):
                    found.append(engine)
        return found

    async def channels(self) -> list[str]:
        """Channels services read (from the journals), plus those named on the command line."""
        names = set(self.extra_channels)
        for service in await journal_services(await self._journal_engines()):
            names.update(c for c in service.receives if not c.endswith(".dlq"))
        return sorted(names)

    # Dead letters -------------------------------------------------------------------------

    async def refresh_dead_letters(self) -> None:
        assert self.transport is not None
        found: list[dict[str, Any]] = []
        async with self._dlq_lock:
            for channel in await self.channels():
                messages = await list_dead_letters(
                    self.transport, channel, idle=self.dead_letter_idle, limit=500
                )
                found += [dead_letter_view(channel, m) for m in messages]
        self.dead_letters = found
        self.dead_letters_at = time.time()
        self.dead_letter_error = None
        self._refreshed.set()

    async def _refresh_dead_letters_forever(self) -> None:
        while True:
            try:
                await self.refresh_dead_letters()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.dead_letter_error = _error(exc)
                log.warning("console: dead letters unavailable: %s", self.dead_letter_error)
            await asyncio.sleep(self.dead_letter_interval)

    async def replay(self, channel: str, message_id: str) -> int:
        """Send one dead letter back to ``channel``; returns how many were replayed (0 or 1)."""
        assert self.transport is not None
        async with self._dlq_lock:
            replayed = await replay_dead_letters(
                self.transport, channel, ids={message_id}, idle=self.dead_letter_idle
            )
        log.info("console: replayed %d dead letter(s) %s to %s", len(replayed), message_id, channel)
        self.dead_letters = [d for d in self.dead_letters if d["id"] != message_id]
        return len(replayed)

    # The page's data --------------------------------------------------------------------------

    async def databases(self) -> list[dict[str, Any]]:
        now = time.time()
        views: list[dict[str, Any]] = []
        for engine in self.engines:
            view: dict[str, Any] = {"database": display_url(engine)}
            try:
                status = await relay_status(engine)
            except Exception as exc:
                view["error"] = _error(exc)
            else:
                view.update(
                    backlog=status.backlog,
                    oldest_age=status.oldest_unpublished_age,
                    last_published_ago=(
                        now - status.last_published_at if status.last_published_at else None
                    ),
                    moved_aside=status.moved_aside,
                    relays=status.relays,
                    slots=status.slots,
                )
            views.append(view)
        return views

    async def overview(self) -> dict[str, Any]:
        engines = await self._journal_engines()
        services = await journal_services(engines)
        return {
            "at": time.time(),
            "transport": redact(self.transport.url) if self.transport else "",
            "services": [
                {
                    "name": s.name,
                    "group": s.name,
                    "receives": list(s.receives),
                    "sends": list(s.sends),
                    "last_seen": s.last_seen,
                }
                for s in services
            ],
            "databases": await self.databases(),
            "dead_letters": self.dead_letters,
            "dead_letters_at": self.dead_letters_at,
            "dead_letter_error": self.dead_letter_error,
            "conversations": [
                {"id": cid, "at": at, "records": count}
                for cid, at, count in await recent_conversations(engines)
            ],
        }

    async def sequence(self, key: str) -> tuple[str, str, int]:
        """(SVG, text, number of steps) of the conversation ``key`` names."""
        steps = sequence(await read_conversation(await self._journal_engines(), key))
        return render_svg(steps, title=f"conversation {key}"), render_text(steps), len(steps)

    def dlq_channel(self, channel: str) -> str:
        return dlq_channel_for(channel)
