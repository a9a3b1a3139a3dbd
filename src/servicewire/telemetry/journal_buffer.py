"""A journal that never blocks the event loop: records go to a writer thread.

:class:`~servicewire.telemetry.journal.SqlJournal` inserts each record synchronously through a
blocking engine; called from a handler's commit hook that is a database round trip
on the event loop per message. :class:`BufferedJournal` hands records to a daemon
thread that inserts them in batches, so recording costs a queue put::

    journal = sql_journal("postgresql://postgres@127.0.0.1/ftgo_order")
    service = Service("order-service", db=..., options=ServiceOptions(journal=journal))
    ...
    journal.flush()        # wait until everything recorded so far is in the table
    journal.close()        # flush and stop the thread (also done at exit)

Records are diagnostics: if the journal database is down, a batch is dropped with a
warning instead of piling up in memory (the queue is bounded too).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from servicewire.messaging.message import Message
from servicewire.telemetry.journal import JournalEntry, SqlJournal, chain_of, journal_table

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("servicewire.telemetry.journal")

_FLUSH = object()


class BufferedJournal:
    """A :class:`~servicewire.telemetry.journal.SqlJournal` written by a background thread."""

    def __init__(self, journal: SqlJournal, *, max_pending: int = 100_000, batch: int = 500):
        self.journal = journal
        self.batch = batch
        self.dropped = 0
        """Records lost because the queue was full or the database failed."""
        self._queue: queue.Queue[object] = queue.Queue(max_pending)
        self._closed = False
        self._thread = threading.Thread(target=self._write, name="servicewire-journal", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @property
    def engine(self) -> Engine:
        return self.journal.engine

    def _put(self, entry: JournalEntry) -> None:
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1

    def record_send(self, service: str, message: Message) -> None:
        self._put(JournalEntry.of(service, "send", message, None))

    def record_receive(self, service: str, message: Message, outcome: str) -> None:
        self._put(JournalEntry.of(service, "receive", message, outcome))

    def conversation(self, key: str) -> list[JournalEntry]:
        """The conversation ``key`` names, after writing what is pending."""
        self.flush()
        return self.journal.conversation(key)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until every record made before the call is written (or ``timeout``)."""
        if self._closed or not self._thread.is_alive():
            return
        done = threading.Event()
        self._queue.put((_FLUSH, done))
        done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending and stop the writer thread."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    def _write(self) -> None:
        while True:
            item = self._queue.get()
            pending: list[JournalEntry] = []
            waiters: list[threading.Event] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, JournalEntry):
                    pending.append(item)
                elif isinstance(item, tuple):
                    waiters.append(item[1])
                if stop or len(pending) >= self.batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if pending:
                self._insert(pending)
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _insert(self, entries: list[JournalEntry]) -> None:
        rows = [{n: getattr(e, n) for n in JournalEntry.__slots__} for e in entries]
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(journal_table.insert(), rows)
                return
            except Exception as exc:
                if attempt == 2:
                    self.dropped += len(rows)
                    log.warning("journal: dropped %d records: %s", len(rows), type(exc).__name__)
                    return
                time.sleep(0.2 * (attempt + 1))


def sql_journal(url: str, *, create_table: bool = True) -> BufferedJournal:
    """A buffered SQL journal on the database at ``url`` (async or sync URL)."""
    from sqlalchemy import create_engine

    from servicewire.storage.database import sync_url

    engine = create_engine(sync_url(url), pool_pre_ping=True)
    if create_table:
        journal_table.create(engine, checkfirst=True)
    return BufferedJournal(SqlJournal(engine))


# Reading journals back, across several databases ---------------------------------------


def _entry(row: Mapping[Any, Any]) -> JournalEntry:
    return JournalEntry(**{name: row[name] for name in JournalEntry.__slots__})


async def read_conversation(engines: Sequence[AsyncEngine], key: str) -> list[JournalEntry]:
    """The conversation ``key`` names, gathered from the journals of several databases.

    ``key`` is a correlation id (an FTGO order id), or any message id in the chain:
    the correlation ids of the messages it names are looked up in every database.
    """
    c = journal_table.c
    found: list[JournalEntry] = []
    for engine in engines:
        async with engine.connect() as conn:
            stmt = select(journal_table).where(
                or_(c.correlation_id == key, c.message_id == key, c.causation_id == key)
            )
            found += [_entry(r) for r in (await conn.execute(stmt)).mappings()]
    correlations = {e.correlation_id for e in found if e.correlation_id} - {key}
    if correlations:
        for engine in engines:
            async with engine.connect() as conn:
                stmt = select(journal_table).where(c.correlation_id.in_(correlations))
                found += [_entry(r) for r in (await conn.execute(stmt)).mappings()]
    unique = {(e.service, e.action, e.message_id, e.at): e for e in found}
    return chain_of(unique.values(), key)


@dataclass(frozen=True, slots=True)
class ServiceView:
    """What the journal knows of one service: channels it reads (as its group) and sends to."""

    name: str
    receives: tuple[str, ...]
    sends: tuple[str, ...]
    last_seen: float


async def journal_services(engines: Sequence[AsyncEngine]) -> list[ServiceView]:
    """Services seen in the journals, with their channels (the group is the service name)."""
    c = journal_table.c
    seen: dict[str, dict[str, set[str]]] = {}
    last: dict[str, float] = {}
    for engine in engines:
        async with engine.connect() as conn:
            stmt = select(c.service, c.action, c.channel, func.max(c.at)).group_by(
                c.service, c.action, c.channel
            )
            for service, action, channel, at in await conn.execute(stmt):
                seen.setdefault(service, {"send": set(), "receive": set()})[action].add(channel)
                last[service] = max(last.get(service, 0.0), float(at or 0.0))
    return [
        ServiceView(name, tuple(sorted(v["receive"])), tuple(sorted(v["send"])), last[name])
        for name, v in sorted(seen.items())
    ]


async def recent_conversations(
    engines: Sequence[AsyncEngine], limit: int = 20
) -> list[tuple[str, float, int]]:
    """The latest conversations: (correlation id, last activity, journal records)."""
    c = journal_table.c
    latest: dict[str, tuple[float, int]] = {}
    for engine in engines:
        async with engine.connect() as conn:
            stmt = (
                select(c.correlation_id, func.max(c.at), func.count())
                .where(c.correlation_id.is_not(None))
                .group_by(c.correlation_id)
                .order_by(func.max(c.at).desc())
                .limit(limit)
            )
            for correlation, at, count in await conn.execute(stmt):
                old_at, old_count = latest.get(correlation, (0.0, 0))
                latest[correlation] = (max(old_at, float(at)), old_count + int(count))
    ordered = sorted(latest.items(), key=lambda item: item[1][0], reverse=True)[:limit]
    return [(cid, at, count) for cid, (at, count) in ordered]
