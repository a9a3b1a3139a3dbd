"""PostgreSQL transaction log tailing: publish outbox inserts read from logical replication.

The relay reads the outbox's inserts from a logical replication slot with the built-in
``pgoutput`` plugin, through psycopg2's replication connection (psycopg 3 and asyncpg
do not speak the replication protocol). Changes arrive in commit order, whole
transactions at a time, so there is no commit-order gap to worry about::

    relay = PostgresWalRelay(engine, transport, name="orders")   # slot servicewire_<db>
    await relay.start()

Guarantees and mechanics:

* It creates its publication (``FOR TABLE servicewire_outbox WITH (publish = 'insert')``)
  and slot when missing, and checks both when present.
* Rows are published as soon as they are read: a batch closes when the stream has
  nothing more to give, or at ``batch_size`` rows (even inside a transaction, so a
  huge transaction goes out in bounded batches while standby status keeps the stream
  alive past ``wal_sender_timeout``). Deleting the published rows runs in a task of
  its own, beside the next publish.
* A transaction's flush position is reported to the server only after the broker
  confirmed every message of it and its rows are deleted; a crash before that replays
  the transaction (at least once, in key order). When no outbox rows arrive, the
  position follows the server's keepalives, so an idle relay does not pin WAL.
* The slot is its own lock: PostgreSQL lets one connection stream a slot at a time.
  The slot is named after the database (:func:`~.ownership.wal_slot_name`), not the
  relay, so every relay of the database, whatever its name, competes for it: the others
  retry every ``takeover_interval`` seconds and take over as soon as the owner's
  connection is gone. Its checkpoint row is keyed by the slot name.
* Whenever it streams a slot that was just created (the first start, or a slot dropped
  or invalidated while no relay ran) it first publishes the rows in the table (they are
  in no slot) and deletes them, even with ``delete_published=False``; afterwards the
  slot replays whatever was not confirmed.
* Published rows are deleted by id before the position is confirmed. With
  ``write_messages(..., delete_after_insert=True)`` the table stays empty: pass
  ``delete_published=False`` and a batch costs no database write at all.
* It warns when the slot retains more than ``retained_wal_warning`` bytes of WAL.

The slot and publication themselves are managed in :mod:`~.replication_slot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.outbox.tables import OUTBOX_TABLE, outbox, relay_checkpoint
from servicewire.relay.base import Relay
from servicewire.relay.ownership import wal_slot_name
from servicewire.relay.pgoutput import (
    Begin,
    Commit,
    Insert,
    PgOutputDecoder,
    int_to_lsn,
    lsn_to_int,
)
from servicewire.relay.replication_slot import ReplicationSlot, slot_name_for
from servicewire.relay.rows import OutboxRow, move_aside, publish_rows
from servicewire.storage.database import plain_url
from servicewire.timeouts import within
from servicewire.transports.base import Transport

log = logging.getLogger("servicewire.relay")

__all__ = ["PostgresWalRelay", "row_from_text", "slot_name_for"]

# One array parameter, not an IN list of one parameter per row: a batch of any size is
# then the same prepared statement, planned once (an IN list is a new statement for the
# server to parse and plan at every distinct batch size).
_DELETE_PUBLISHED = delete(outbox).where(
    outbox.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger())))
)


def row_from_text(values: dict[str, str | None]) -> OutboxRow:
    """An outbox row from pgoutput's text values (``bytea`` arrives as ``\\x`` hex)."""
    payload = values.get("payload") or ""
    return OutboxRow(
        id=int(values["id"] or 0),
        message_id=values.get("message_id") or "",
        destination=values.get("destination") or "",
        headers=values.get("headers") or "",
        payload=bytes.fromhex(payload[2:]) if payload.startswith("\\x") else payload.encode(),
        partition_key=values.get("partition_key"),
        shard=int(values.get("shard") or 0),
        created_at=float(values.get("created_at") or 0.0),
    )


@dataclass(slots=True)
class _Settle:
    """A published batch on its way to deletion, and the position it completes."""

    published: list[OutboxRow]
    bad: list[tuple[OutboxRow, str]]
    lsn: int


class PostgresWalRelay(Relay):
    """Publishes outbox inserts streamed from a ``pgoutput`` logical replication slot."""

    mode = "postgres-wal"

    def __init__(
        self,
        engine: AsyncEngine,
        transport: Transport,
        *,
        name: str = "relay",
        slot: str | None = None,
        publication: str | None = None,
        batch_size: int = 500,
        status_interval: float = 1.0,
        takeover_interval: float = 1.0,
        retained_wal_warning: int = 1 << 30,
        delete_published: bool = True,
        record_interval: float = 1.0,
        progress_interval: float = 5.0,
    ) -> None:
        super().__init__(
            engine, transport, name=name, batch_size=batch_size, progress_interval=progress_interval
        )
        self.replication = ReplicationSlot(
            engine, slot or wal_slot_name(engine.url.database), publication
        )
        """The slot this relay streams, and its publication."""
        self.slot = self.replication.slot
        self.publication = self.replication.publication
        self.status_interval = status_interval
        self.takeover_interval = takeover_interval
        self.retained_wal_warning = retained_wal_warning
        self.delete_published = delete_published
        self.record_interval = record_interval
        self.flushed_lsn = 0
        self._unrecorded = 0
        self._recorded_at = 0.0
        self._reply_requested = False
        self._next_wal_check = 0.0

    # Setup -----------------------------------------------------------------------------

    async def ensure_slot(self) -> None:
        """Create the publication and the slot if missing; check them if present.

        A slot created here starts at the server's current position: whatever was
        committed before it (a first start, or a slot dropped or lost while no relay
        ran) is only in the table. So its checkpoint position goes back to NULL, and
        whichever relay streams the slot next sweeps the table first.
        """
        created = await self.replication.ensure(owner=self.name)
        async with self.engine.begin() as conn:
            await conn.execute(
                pg_insert(relay_checkpoint)
                .values(relay=self.slot, published=0, updated_at=time.time())
                .on_conflict_do_nothing()
            )
            if created:
                forgotten = await conn.execute(
                    update(relay_checkpoint)
                    .where(relay_checkpoint.c.relay == self.slot)
                    .where(relay_checkpoint.c.position.is_not(None))
                    .values(position=None, updated_at=time.time())
                )
                if forgotten.rowcount:
                    log.warning(
                        "relay %s: replication slot %s was missing (dropped or lost): "
                        "sweeping the outbox table before streaming",
                        self.name,
                        self.slot,
                    )

    async def drop_slot(self) -> None:
        """Drop the slot and publication (a slot nobody reads retains WAL forever)."""
        await self.replication.drop()

    # The loop ------------------------------------------------------------------------------

    async def _serve(self) -> None:
        import psycopg2
        import psycopg2.errors
        import psycopg2.extras

        await self.ensure_slot()
        dsn = plain_url(self.engine)
        connection = await asyncio.to_thread(
            psycopg2.connect, dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection
        )
        try:
            cursor = connection.cursor()
            try:
                cursor.start_replication(
                    slot_name=self.slot,
                    decode=False,
                    options={"proto_version": "1", "publication_names": self.publication},
                    status_interval=self.status_interval,
                )
            except psycopg2.errors.ObjectInUse:
                # Another relay streams the slot: stand by and try again.
                await self._idle_until_stopping(self.takeover_interval)
                return
            if await self._needs_sweep():
                await self._sweep()
            self._activate(f"streaming slot {self.slot}")
            await self._stream(connection, cursor)
        finally:
            self.active = False
            connection.close()

    async def _idle_until_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await within(self._stopping.wait(), seconds)

    async def _stream(self, connection: Any, cursor: Any) -> None:
        """Read, publish, then hand the published rows to :meth:`_settle_published`.

        Publishing starts as soon as anything was read: a batch closes when the socket
        has nothing more to give or at ``batch_size`` rows, even inside a transaction,
        so a huge transaction goes out in bounded batches. Deleting the published rows
        and confirming the position run in a second task (the *settler*), so the next
        batch is published while the previous one is deleted. The position confirmed
        to the server is the end of the last transaction whose every row is published
        and settled; a crash replays from there (at least once, in key order).
        """
        decoder = PgOutputDecoder()
        in_transaction = False
        rows: list[OutboxRow] = []
        read_lsn = 0  # end of the last transaction read whole
        queued_lsn = self.flushed_lsn  # ...and handed to the settler
        settling: asyncio.Queue[_Settle | None] = asyncio.Queue(maxsize=4)
        settler = asyncio.create_task(self._settle_published(settling, cursor))
        last_feedback = time.monotonic()
        try:
            while not self._stopping.is_set():
                if settler.done():
                    settler.result()  # its failure ends the stream (run() retries)
                    raise RuntimeError("the settler ended early")
                while len(rows) < self.batch_size:
                    message = cursor.read_message()
                    if message is None:
                        break
                    item = decoder.feed(message.payload)
                    if isinstance(item, Insert):
                        if item.relation.name == OUTBOX_TABLE and in_transaction:
                            rows.append(row_from_text(item.values))
                    elif isinstance(item, Begin):
                        in_transaction = True
                    elif isinstance(item, Commit):
                        in_transaction = False
                        read_lsn = max(read_lsn, item.end_lsn)
                now = time.monotonic()
                if now - last_feedback >= self.status_interval:
                    # Standby status while we work through a long stream (a huge
                    # transaction): the server cuts off a silent reader after
                    # wal_sender_timeout.
                    cursor.send_feedback(force=True)
                    last_feedback = now
                if rows or read_lsn > queued_lsn:
                    batch, rows = rows, []
                    outcome = await publish_rows(self.transport, batch) if batch else None
                    if outcome is not None:
                        # After a failure the slot replays the transaction from its start
                        # (what went out goes out twice; key order holds).
                        outcome.raise_failure()
                    await settling.put(
                        _Settle(
                            outcome.published if outcome else [],
                            outcome.bad if outcome else [],
                            read_lsn,
                        )
                    )
                    queued_lsn = max(queued_lsn, read_lsn)
                    continue
                if (
                    not in_transaction
                    and self.flushed_lsn >= queued_lsn
                    and cursor.wal_end > self.flushed_lsn
                ):
                    # Nothing of ours in flight: follow the server's position so the slot
                    # does not retain WAL of other tables and databases.
                    cursor.send_feedback(flush_lsn=cursor.wal_end)
                    self.flushed_lsn = queued_lsn = read_lsn = cursor.wal_end
                if time.monotonic() >= self._next_wal_check:
                    await self._check_retained_wal()
                if self._reply_requested:
                    self._reply_requested = False
                    cursor.send_feedback(reply=True)
                await self._readable(connection.fileno(), self.status_interval)
            # Stopping: let the settler finish what was published, then tell the server.
            await settling.put(None)
            await settler
            cursor.send_feedback(force=True)
        finally:
            if not settler.done():
                settler.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await settler

    async def _settle_published(self, settling: asyncio.Queue[_Settle | None], cursor: Any) -> None:
        """Delete what was published (one transaction for all that waits), then confirm.

        Runs beside :meth:`_stream`; returns at the ``None`` that ends the stream.
        """
        while True:
            first = await settling.get()
            if first is None:
                return
            items = [first]
            ended = False
            while not settling.empty():
                item = settling.get_nowait()
                if item is None:
                    ended = True
                    break
                items.append(item)
            published = [row for item in items for row in item.published]
            bad = [entry for item in items for entry in item.bad]
            lsn = max(item.lsn for item in items)
            await self._record(published, bad, lsn)
            if lsn > self.flushed_lsn:
                # Only now, published and deleted, may the server forget it. Sent at
                # once: drain() and `relay status` read the slot's confirmed position.
                cursor.send_feedback(flush_lsn=lsn, force=True)
                self.flushed_lsn = lsn
            if ended:
                return

    async def _readable(self, fd: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        woken = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({ready, woken}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            loop.remove_reader(fd)
            woken.cancel()
            self._wakeup.clear()

    def wake(self) -> None:
        # Ask the server for a keepalive at once, so the position catches up quickly.
        self._reply_requested = True
        super().wake()

    async def _publish(
        self, rows: list[OutboxRow], lsn: int | None, *, delete_published: bool | None = None
    ) -> None:
        """Publish ``rows``, then settle them at once (the sweep's path)."""
        outcome = await publish_rows(self.transport, rows)
        outcome.raise_failure()
        await self._record(outcome.published, outcome.bad, lsn, delete_published=delete_published)

    async def _record(
        self,
        published: list[OutboxRow],
        bad: list[tuple[OutboxRow, str]],
        lsn: int | None,
        *,
        delete_published: bool | None = None,
    ) -> None:
        """Delete published rows, move bad ones aside, update the checkpoint row."""
        now = time.time()
        self._unrecorded += len(published)
        if delete_published is None:
            delete_published = self.delete_published
        ids = [r.id for r in published] if delete_published else []
        # The slot holds the real position; the checkpoint row only feeds `relay status`,
        # so it is written at most once per `record_interval` unless there is other work.
        record = lsn is None or now - self._recorded_at >= self.record_interval
        if ids or bad or record:
            async with self.engine.begin() as conn:
                if ids:
                    await conn.execute(_DELETE_PUBLISHED, {"ids": ids})
                await move_aside(conn, bad, self.name)
                values: dict[str, Any] = {"updated_at": now}
                if lsn is not None:
                    values["position"] = int_to_lsn(lsn)
                if self._unrecorded:
                    values["last_published_at"] = now
                    values["published"] = relay_checkpoint.c.published + self._unrecorded
                await conn.execute(
                    update(relay_checkpoint)
                    .where(relay_checkpoint.c.relay == self.slot)
                    .values(values)
                )
            self._unrecorded = 0
            self._recorded_at = now
        self._count(len(published), len(bad))

    async def _needs_sweep(self) -> bool:
        # The checkpoint's position stays NULL until the first sweep has finished, so a
        # crash in the middle of it sweeps again on the next start.
        async with self.engine.connect() as conn:
            position = (
                await conn.execute(
                    select(relay_checkpoint.c.position).where(relay_checkpoint.c.relay == self.slot)
                )
            ).scalar()
        return position is None

    async def _sweep(self) -> None:
        """Publish rows written before the slot existed (the slot only sees later ones).

        It walks the table by id, and deletes what it published even when
        ``delete_published`` is off (``--insert-then-delete``): those rows were never
        going to be deleted by their writer, and rereading from the start would find
        them again and again. An id cursor is safe here, unlike in the polling relay:
        every row committed before the slot existed is visible at the first read, and a
        row that commits later (whatever its id) is streamed by the slot.
        """
        after = 0
        while not self._stopping.is_set():
            async with self.engine.connect() as conn:
                result = await conn.execute(
                    select(outbox)
                    .where(outbox.c.id > after)
                    .order_by(outbox.c.id)
                    .limit(self.batch_size)
                )
                rows = [OutboxRow.from_mapping(r) for r in result.mappings()]
            if not rows:
                break
            await self._publish(rows, None, delete_published=True)
            after = rows[-1].id
        if not self._stopping.is_set():
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(relay_checkpoint)
                    .where(relay_checkpoint.c.relay == self.slot)
                    .values(position=int_to_lsn(self.flushed_lsn), updated_at=time.time())
                )

    async def _check_retained_wal(self) -> None:
        self._next_wal_check = time.monotonic() + 30.0
        retained = await self.retained_wal()
        if retained is not None and retained > self.retained_wal_warning:
            log.warning(
                "relay %s: slot %s retains %.1f MiB of WAL (threshold %.1f MiB)",
                self.name,
                self.slot,
                retained / 2**20,
                self.retained_wal_warning / 2**20,
            )

    async def retained_wal(self) -> int | None:
        """Bytes of WAL the slot keeps on the server (``None`` if the slot is missing)."""
        return await self.replication.retained_wal()

    async def backlog(self) -> int:
        """Bytes of WAL between the server's position and the slot's confirmed position."""
        return await self.replication.backlog()

    async def drain(self, timeout: float) -> None:
        async with self.engine.connect() as conn:
            target = (await conn.execute(text("SELECT pg_current_wal_lsn()::text"))).scalar_one()

        async def done() -> bool:
            confirmed = await self.replication.confirmed_flush_lsn()
            return confirmed is not None and lsn_to_int(confirmed) >= lsn_to_int(target)

        await self._wait_for(done, timeout, "drain")
