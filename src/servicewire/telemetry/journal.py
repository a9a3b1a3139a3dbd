"""The message journal: who sent and received which message, when.

Optional. A service given a journal records each message it sends (when the
transaction that wrote it to the outbox commits) and each message it receives (with
what became of it). The records answer "where is my order?": every message of one
conversation shares a correlation id, and causation ids link each message to the one
that caused it. Payloads are not recorded::

    journal = MemoryJournal()
    service = Service("order-service", options=ServiceOptions(journal=journal))
    ...
    for entry in journal.conversation(order_id):
        print(entry.service, entry.action, entry.type)

:class:`SqlJournal` keeps the records in a table (``servicewire_journal``), in the
service's database or a shared one, for ``servicewire trace``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy import Column, Float, Index, Integer, String, Table, or_, select
from sqlalchemy.engine import Engine

from servicewire.messaging.message import Message
from servicewire.storage.schema import metadata

Action = Literal["send", "receive"]

journal_table = Table(
    "servicewire_journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("service", String(200), nullable=False),
    Column("action", String(8), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("type", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("channel", String(200), nullable=False),
    Column("source", String(200), nullable=False),
    Column("correlation_id", String(64)),
    Column("causation_id", String(64)),
    Column("outcome", String(32)),
    Index("ix_servicewire_journal_correlation", "correlation_id"),
    Index("ix_servicewire_journal_message", "message_id"),
)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    at: float
    service: str
    action: Action
    message_id: str
    type: str
    kind: str
    channel: str
    source: str
    correlation_id: str | None
    causation_id: str | None
    outcome: str | None = None

    @classmethod
    def of(
        cls, service: str, action: Action, message: Message, outcome: str | None
    ) -> JournalEntry:
        return cls(
            at=time.time(),
            service=service,
            action=action,
            message_id=message.id,
            type=message.type,
            kind=message.kind,
            channel=message.destination,
            source=message.headers.get("source", ""),
            correlation_id=message.correlation_id,
            causation_id=message.causation_id,
            outcome=outcome,
        )


class Journal(Protocol):
    """Where a service records its sends and receives."""

    def record_send(self, service: str, message: Message) -> None: ...

    def record_receive(self, service: str, message: Message, outcome: str) -> None: ...


class MemoryJournal:
    """Records in a list, shared by every service of one process (the embedded demo)."""

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []
        self._lock = threading.Lock()

    def record_send(self, service: str, message: Message) -> None:
        with self._lock:
            self.entries.append(JournalEntry.of(service, "send", message, None))

    def record_receive(self, service: str, message: Message, outcome: str) -> None:
        with self._lock:
            self.entries.append(JournalEntry.of(service, "receive", message, outcome))

    def conversation(self, key: str) -> list[JournalEntry]:
        """Entries whose correlation id, message id or causation id is ``key``, in time order."""
        return chain_of(self.entries, key)


class SqlJournal:
    """Records in the ``servicewire_journal`` table through a blocking engine.

    Writes are small and synchronous on purpose: the journal is a diagnostic and must
    not hold a transaction of the service open. Create the table with
    ``servicewire db init``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _insert(self, entry: JournalEntry) -> None:
        with self.engine.begin() as conn:
            conn.execute(journal_table.insert().values(**_as_dict(entry)))

    def record_send(self, service: str, message: Message) -> None:
        self._insert(JournalEntry.of(service, "send", message, None))

    def record_receive(self, service: str, message: Message, outcome: str) -> None:
        self._insert(JournalEntry.of(service, "receive", message, outcome))

    def conversation(self, key: str) -> list[JournalEntry]:
        c = journal_table.c
        stmt = select(journal_table).where(
            or_(c.correlation_id == key, c.message_id == key, c.causation_id == key)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        entries = [JournalEntry(**{k: row[k] for k in JournalEntry.__slots__}) for row in rows]
        return chain_of(entries, key)


def _as_dict(entry: JournalEntry) -> dict[str, object]:
    return {name: getattr(entry, name) for name in JournalEntry.__slots__}


def chain_of(entries: Iterable[JournalEntry], key: str) -> list[JournalEntry]:
    """The entries of the conversation ``key`` names, in time order.

    ``key`` may be a correlation id, or any message id in the conversation: the
    correlation ids of matching messages are followed, so one id finds the whole chain.
    """
    entries = list(entries)
    correlations = {key}
    for entry in entries:
        if entry.message_id == key and entry.correlation_id:
            correlations.add(entry.correlation_id)
    chosen = [
        e
        for e in entries
        if e.correlation_id in correlations or e.message_id == key or e.causation_id == key
    ]
    return sorted(chosen, key=lambda e: e.at)
