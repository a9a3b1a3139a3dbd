"""MariaDB/MySQL binlog tailing: publish outbox inserts read from the ROW-format binlog.

The relay registers as a replica with the ``mysql-replication`` package, reads the
outbox's row inserts in commit order, publishes them in batches of at most
``batch_size`` rows with broker confirmation (a huge transaction in several batches),
and only then checkpoints the binlog position (the end of the last transaction read
whole) in ``servicewire_relay_checkpoint``. A restart resumes from there; what
was published after the last checkpoint is published again (at least once)::

    relay = MysqlBinlogRelay(engine, transport, name="orders")
    await relay.start()

Mechanics:

* The server must log ``binlog_format=ROW`` with ``binlog_row_metadata=FULL`` (column
  names in the log), checked at start.
* One owner per outbox: the relay holds ``GET_LOCK('servicewire:<db>')`` (whatever its
  name; the checkpoint row is per outbox too) on
  a connection of its own. The server frees the lock when that connection dies, and a
  standby relay (retrying every ``takeover_interval`` seconds) takes over. So the owner
  asks, on that connection, whether it still holds the lock before each publish, and
  deletes and checkpoints on that same connection in a transaction that asks again: a
  relay whose lock connection died stops at once (it raises :class:`LockLostError`,
  drops ownership and stands by) instead of publishing beside the new owner. The lock
  connection runs with ``wait_timeout = lease_ttl`` and is asked every ``lease_ttl / 4``,
  so a stopped owner loses it after ``lease_ttl`` seconds, and a resumed one finds its
  last proof older than ``lease_ttl / 2`` before its next wave (:mod:`~.fencing`).
* It streams from the checkpoint. On its very first start (no checkpoint) it takes the
  current end of the binlog, publishes the rows already in the table, and only then
  stores that position.
* A watchdog asks the server for heartbeats every ``heartbeat`` seconds and reconnects
  the stream when nothing at all arrived for ``stall_timeout`` seconds.
* Published rows are deleted by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import threading
import time
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from servicewire.outbox.tables import OUTBOX_TABLE, outbox, relay_checkpoint
from servicewire.relay.base import Relay
from servicewire.relay.fencing import OwnershipLostError, Tenure
from servicewire.relay.ownership import OWNER_KEY, binlog_lock_name
from servicewire.relay.rows import OutboxRow, move_aside, publish_rows
from servicewire.storage.database import DatabaseError
from servicewire.timeouts import within
from servicewire.transports.base import Transport

log = logging.getLogger("servicewire.relay")

Position = tuple[str, int]

READ_AHEAD = 64
"""Binlog events the reader thread may hold before the relay takes them."""


class StreamStalledError(Exception):
    """The binlog stream delivered nothing, not even a heartbeat, for too long."""


class LockLostError(OwnershipLostError):
    """The relay's ``GET_LOCK`` is no longer held by its lock connection (or that died)."""


def parse_position(text_value: str) -> Position:
    """``"mariadb-bin.000007:1234"`` -> ``("mariadb-bin.000007", 1234)``."""
    file, _, pos = text_value.rpartition(":")
    return file, int(pos)


def position_key(position: Position) -> tuple[int, int]:
    """Sortable form: (file sequence number, offset)."""
    file, pos = position
    suffix = file.rpartition(".")[2]
    return (int(suffix) if suffix.isdigit() else 0, pos)


class _Reader:
    """Reads the binlog in a thread (mysql-replication is blocking) into an asyncio queue."""

    def __init__(
        self,
        settings: dict[str, Any],
        schema: str,
        position: Position,
        heartbeat: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.position = position
        self.heartbeat = heartbeat
        self.loop = loop
        # Bounded in events (a rows event holds at most ~8 KiB of rows), not in rows:
        # the thread reads ahead a little, never a whole huge transaction.
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=READ_AHEAD)
        self.stop = threading.Event()
        self.stream: Any = None
        self.future: asyncio.Future[None] | None = None

    def start(self) -> None:
        # A daemon thread of its own, not the loop's executor: a read that hangs must
        # never keep the event loop (or the process) from shutting down.
        self.future = self.loop.create_future()
        threading.Thread(target=self._thread, name="servicewire-binlog", daemon=True).start()

    def _thread(self) -> None:
        try:
            self._run()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self.loop.call_soon_threadsafe(self._finished)

    def _finished(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(None)

    def _put(self, item: tuple[str, Any]) -> None:
        # Blocks the thread while the queue is full: back-pressure when the broker is slow.
        while not self.stop.is_set():
            future = asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop)
            try:
                future.result(timeout=0.5)
                return
            except TimeoutError:
                future.cancel()

    def _run(self) -> None:
        from pymysqlreplication import BinLogStreamReader
        from pymysqlreplication.event import HeartbeatLogEvent, RotateEvent, XidEvent
        from pymysqlreplication.row_event import WriteRowsEvent

        try:
            self.stream = stream = BinLogStreamReader(
                connection_settings=self.settings,
                server_id=1_000_000 + int.from_bytes(os.urandom(3), "big"),
                resume_stream=True,
                blocking=True,
                log_file=self.position[0],
                log_pos=self.position[1],
                only_events=[WriteRowsEvent, XidEvent, RotateEvent, HeartbeatLogEvent],
                only_schemas=[self.schema],
                only_tables=[OUTBOX_TABLE],
                slave_heartbeat=self.heartbeat,
                enable_logging=False,
            )
            for event in stream:
                if self.stop.is_set():
                    break
                if isinstance(event, WriteRowsEvent):
                    if event.schema == self.schema and event.table == OUTBOX_TABLE:
                        self._put(("rows", [row["values"] for row in event.rows]))
                elif isinstance(event, XidEvent):
                    self._put(("commit", (stream.log_file, stream.log_pos)))
                else:
                    self._put(("alive", None))
        except Exception as exc:
            if not self.stop.is_set():
                self._put(("error", exc))
        finally:
            with contextlib.suppress(Exception):
                if self.stream is not None:
                    self.stream.close()

    async def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(Exception):
            if self.stream is not None:
                # The reader's loop returns, instead of reconnecting, once it is "past
                # the end position"; shutting the socket down from here then ends the
                # read blocked in the thread (a plain close() would not wake it).
                self.stream.end_log_pos = 1
                self.stream.is_past_end_log_pos = True
                self.stream._stream_connection._sock.shutdown(socket.SHUT_RDWR)
        if self.future is not None:
            with contextlib.suppress(Exception):
                await within(asyncio.shield(self.future), 5.0)


class MysqlBinlogRelay(Relay):
    """Publishes outbox inserts streamed from the MariaDB/MySQL binlog."""

    mode = "mysql-binlog"

    def __init__(
        self,
        engine: AsyncEngine,
        transport: Transport,
        *,
        name: str = "relay",
        batch_size: int = 500,
        heartbeat: float = 1.0,
        stall_timeout: float = 10.0,
        takeover_interval: float = 1.0,
        idle_checkpoint_interval: float = 5.0,
        progress_interval: float = 5.0,
        lease_ttl: float = 5.0,
    ) -> None:
        super().__init__(
            engine, transport, name=name, batch_size=batch_size, progress_interval=progress_interval
        )
        self.heartbeat = heartbeat
        self.stall_timeout = stall_timeout
        self.takeover_interval = takeover_interval
        self.idle_checkpoint_interval = idle_checkpoint_interval
        self.lease_ttl = lease_ttl
        """Idle seconds after which the server ends the lock connection (``wait_timeout``),
        freeing the lock for a standby; the owner proves it every ``lease_ttl / 4``."""
        self._tenure = Tenure(lease_ttl)
        self.position: Position | None = None
        self.reconnects = 0
        self._lock_conn: AsyncConnection | None = None
        """The connection that holds the lock; deletes and checkpoints run on it."""

    # Setup -------------------------------------------------------------------------------

    @property
    def lock_name(self) -> str:
        # Per database, not per relay name: differently named relays must share it.
        return binlog_lock_name(self.engine.url.database)

    def _settings(self) -> dict[str, Any]:
        url = self.engine.url
        return {
            "host": url.host or "127.0.0.1",
            "port": url.port or 3306,
            "user": url.username or "root",
            "passwd": url.password or "",
        }

    async def _check_server(self, conn: AsyncConnection) -> None:
        row = (
            await conn.execute(text("SELECT @@log_bin, @@binlog_format, @@binlog_row_metadata"))
        ).one()
        if str(row[0]) not in ("1", "ON") or row[1] != "ROW" or row[2] != "FULL":
            raise DatabaseError(
                "the mysql-binlog relay needs log_bin=ON, binlog_format=ROW and "
                f"binlog_row_metadata=FULL (server has {row[0]}, {row[1]}, {row[2]})"
            )

    async def _check_lock(self, conn: AsyncConnection) -> None:
        """Raise :class:`LockLostError` unless ``conn``'s session holds the lock.

        Run on the lock connection itself: if it died, the query fails too.
        """
        asked_at = time.monotonic()
        try:
            held = (
                await conn.execute(
                    text("SELECT IS_USED_LOCK(:n) = CONNECTION_ID()"), {"n": self.lock_name}
                )
            ).scalar()
        except Exception as exc:
            self._tenure.lose(f"the lock connection failed: {type(exc).__name__}")
            raise LockLostError(f"{self.lock_name}: the lock connection failed ({exc})") from exc
        if held != 1:
            self._tenure.lose("the lock is held by another session")
            raise LockLostError(f"{self.lock_name} is no longer held by this relay")
        self._tenure.proven(asked_at)

    async def _prove_lock(self, conn: AsyncConnection) -> None:
        """Ask on the lock connection whether it still holds the lock, outside a transaction.

        Also what keeps that connection from reaching ``wait_timeout`` while this relay
        runs: only a stopped or cut-off owner lets the server end it.
        """
        await self._check_lock(conn)
        await conn.commit()

    def _owned(self) -> AsyncConnection:
        if self._lock_conn is None:
            raise LockLostError(f"{self.lock_name} is not held by this relay")
        return self._lock_conn

    async def current_position(self, conn: AsyncConnection) -> Position:
        row = (await conn.execute(text("SHOW MASTER STATUS"))).first()
        if row is None:
            raise DatabaseError("SHOW MASTER STATUS returned nothing: is the binlog enabled?")
        return str(row[0]), int(row[1])

    async def _stored_position(self, conn: AsyncConnection) -> Position | None:
        stored = (
            await conn.execute(
                select(relay_checkpoint.c.position).where(relay_checkpoint.c.relay == OWNER_KEY)
            )
        ).scalar()
        return parse_position(stored) if stored else None

    async def _first_position(self) -> Position:
        """First start: the current end of the binlog, stored only after the sweep.

        Rows committed before it are in the table: publish them, then checkpoint. A
        crash before the checkpoint simply sweeps again next time.
        """
        async with self.engine.connect() as conn:
            position = await self.current_position(conn)
        self.position = position
        await self._sweep()
        if self._stopping.is_set():
            return position  # swept only part: do not checkpoint, sweep again next start
        conn = self._owned()
        async with conn.begin():
            await self._check_lock(conn)
            await conn.execute(
                mysql_insert(relay_checkpoint)
                .values(
                    relay=OWNER_KEY,
                    position=f"{position[0]}:{position[1]}",
                    published=0,
                    updated_at=time.time(),
                )
                .prefix_with("IGNORE")
            )
        return position

    # The loop ------------------------------------------------------------------------------

    async def _serve(self) -> None:
        async with self.engine.connect() as lock_conn:
            await self._check_server(lock_conn)
            got = (
                await lock_conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": self.lock_name})
            ).scalar()
            await lock_conn.commit()
            if got != 1:
                with contextlib.suppress(TimeoutError):
                    await within(self._stopping.wait(), self.takeover_interval)
                return
            self._lock_conn = lock_conn
            self._tenure = Tenure(self.lease_ttl, f"relay {self.name}: {self.lock_name}")
            try:
                # Fencing: a stopped or cut-off owner stops answering; the server then
                # ends its lock connection after lease_ttl idle seconds and a standby
                # takes the lock. Meanwhile this relay proves the lock every lease_ttl/4
                # and publishes only while the last proof is under lease_ttl/2 old.
                await lock_conn.execute(
                    text("SET SESSION wait_timeout = :seconds"),
                    {"seconds": max(1, math.ceil(self.lease_ttl))},
                )
                await self._prove_lock(lock_conn)
                async with self.engine.connect() as conn:
                    stored = await self._stored_position(conn)
                self.position = stored or await self._first_position()
                await self._stream(self.position)
            finally:
                self.active = False
                self._lock_conn = None
                self._tenure.lose("released")
                with contextlib.suppress(Exception):
                    await lock_conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self.lock_name})
                    # The connection goes back to the engine's pool.
                    await lock_conn.exec_driver_sql("SET SESSION wait_timeout = DEFAULT")
                    await lock_conn.commit()

    async def _stream(self, start: Position) -> None:
        schema = self.engine.url.database or ""
        reader = _Reader(
            self._settings(), schema, start, self.heartbeat, asyncio.get_running_loop()
        )
        reader.start()
        self._activate(f"holds {self.lock_name}, streaming from {start[0]}:{start[1]}")
        try:
            # A batch closes at ``batch_size`` rows even inside a transaction (the binlog
            # holds only transactions that commit), so a huge one goes out in bounded
            # batches; the checkpoint moves only to the end of a transaction read whole.
            ready: list[OutboxRow] = []
            in_transaction = False
            last_commit: Position | None = None
            last_seen = time.monotonic()
            last_checkpoint = time.monotonic()
            while not self._stopping.is_set():
                try:
                    item = await within(reader.queue.get(), 0.2)
                except TimeoutError:
                    item = None
                while item is not None:
                    last_seen = time.monotonic()
                    kind, value = item
                    if kind == "error":
                        raise value
                    if kind == "rows":
                        ready.extend(OutboxRow.from_mapping(v) for v in value)
                        in_transaction = True
                    elif kind == "commit":
                        in_transaction = False
                        last_commit = value
                    if len(ready) >= self.batch_size:
                        break
                    item = reader.queue.get_nowait() if not reader.queue.empty() else None
                if ready:
                    await self._publish(ready, last_commit or start)
                    ready = []
                    last_checkpoint = time.monotonic()
                elif (
                    last_commit is not None
                    and not in_transaction
                    and last_commit != self.position
                    and time.monotonic() - last_checkpoint > self.idle_checkpoint_interval
                ):
                    # Other tables' commits move the position too; record it now and
                    # then so a restart does not reread them.
                    await self._publish([], last_commit)
                    last_checkpoint = time.monotonic()
                if self._tenure.due():
                    await self._prove_lock(self._owned())
                if time.monotonic() - last_seen > self.stall_timeout:
                    self.reconnects += 1
                    raise StreamStalledError(
                        f"no binlog event or heartbeat for {self.stall_timeout:.0f}s; reconnecting"
                    )
        finally:
            await reader.close()

    async def _publish(self, rows: list[OutboxRow], position: Position) -> None:
        conn = self._owned()
        # The server frees the lock the moment the lock connection dies; a standby may
        # already stream the same rows. Ask first, so a former owner publishes nothing,
        # and check the proof's age before each wave (a relay stopped mid-batch may
        # have lost the lock while it was stopped).
        await self._prove_lock(conn)
        async with self._tenure.kept(lambda: self._prove_lock(conn)):
            outcome = await publish_rows(
                self.transport,
                rows,
                guard=lambda: self._tenure.ensure(lambda: self._prove_lock(conn)),
            )
        if isinstance(outcome.failure, OwnershipLostError):
            raise LockLostError(str(outcome.failure)) from outcome.failure
        if self._tenure.lost:
            # A renewal failed during the last wave: the lock connection is gone.
            raise LockLostError(f"{self.lock_name}: {self._tenure.lost}")
        # The position moves only past a fully published transaction: after a failure
        # the whole transaction comes again (what went out, twice; in key order).
        outcome.raise_failure()
        published, bad = outcome.published, outcome.bad
        now = time.time()
        async with conn.begin():
            # Fencing: the lock belongs to this very session, so it cannot be lost between
            # this check and the commit without the commit failing too.
            await self._check_lock(conn)
            ids = [r.id for r in published]
            if ids:
                await conn.execute(delete(outbox).where(outbox.c.id.in_(ids)))
            await move_aside(conn, bad, self.name)
            values: dict[str, Any] = {"position": f"{position[0]}:{position[1]}", "updated_at": now}
            if published:
                values["last_published_at"] = now
                values["published"] = relay_checkpoint.c.published + len(published)
            await conn.execute(
                update(relay_checkpoint).where(relay_checkpoint.c.relay == OWNER_KEY).values(values)
            )
        self.position = position
        self._count(len(published), len(bad))

    async def _sweep(self) -> None:
        """Publish rows written before the first start (the stream only sees later ones)."""
        assert self.position is not None
        while not self._stopping.is_set():
            async with self.engine.connect() as conn:
                result = await conn.execute(
                    select(outbox).order_by(outbox.c.id).limit(self.batch_size)
                )
                rows = [OutboxRow.from_mapping(r) for r in result.mappings()]
            if not rows:
                return
            await self._publish(rows, self.position)

    async def lag(self) -> int | None:
        """Bytes of binlog between the server's position and the checkpoint (same file only)."""
        async with self.engine.connect() as conn:
            current = await self.current_position(conn)
            stored = (
                await conn.execute(
                    select(relay_checkpoint.c.position).where(relay_checkpoint.c.relay == OWNER_KEY)
                )
            ).scalar()
        if not stored:
            return None
        done = parse_position(stored)
        return current[1] - done[1] if current[0] == done[0] else None

    async def drain(self, timeout: float) -> None:
        async with self.engine.connect() as conn:
            top = (await conn.execute(select(func.max(outbox.c.id)))).scalar_one()
        if top is None:
            return

        async def done() -> bool:
            async with self.engine.connect() as conn:
                stmt = select(func.count()).select_from(outbox).where(outbox.c.id <= top)
                return int((await conn.execute(stmt)).scalar_one()) == 0

        await self._wait_for(done, timeout, "drain")
