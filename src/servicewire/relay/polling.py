"""The polling publisher: claim committed outbox rows, publish, then delete or mark them.

PostgreSQL and MariaDB: each batch is one transaction that first locks the shard rows
of ``servicewire_relay_shard`` it can get (``FOR UPDATE SKIP LOCKED``), then claims the
oldest outbox rows of those shards (``FOR UPDATE SKIP LOCKED``), publishes them with
broker confirmation, and deletes (or marks) them before committing. So each shard has
one publisher at a time (per-key order holds across several relay processes), and a
relay that dies releases its shards the moment its connection drops.

On PostgreSQL a relay runs ``concurrency`` (2) such batches at once over disjoint shard
sets, so one claims and deletes while the other waits for broker confirms. On MariaDB a
batch takes all shards or none (InnoDB locks rows while scanning, before the shard
filter), so relays take turns, and its claim is a plain (snapshot) read, never a
locking one that could take a transaction's later rows without its earlier ones.

SQLite has no row locks: one relay holds a lease row (renewed every batch, expiring
after ``lease_ttl`` seconds) and only the holder publishes. Each takeover writes a new
tenure token into the row (an epoch); the delete transaction renews the lease by the
token its batch was claimed under, so a relay whose lease was taken deletes nothing.

Fencing (:mod:`~.fencing`): a relay stopped mid-batch (SIGSTOP, a pause, a partition)
keeps its session and locks, so the server ends them after ``lease_ttl`` idle seconds
(PostgreSQL ``idle_in_transaction_session_timeout``, MariaDB
``idle_transaction_timeout``, set for the batch only), and the relay checks before each
wave that it proved ownership (a statement on the batch's session, or a lease renewal)
within ``lease_ttl / 2``, proving it again when not: resumed after the server ended its
session (or another relay took the lease), it publishes nothing more of its stale batch.

Shard and lease rows belong to the outbox (:data:`~.ownership.OWNER_KEY`), not to a
relay name: relays named differently on one database share them, so each shard (or the
SQLite outbox) still has one publisher at a time. The name is a label in logs and in the
lease holder.

An idle relay costs almost nothing: its batch loops sleep until something may be
there. One watcher decides when: at once on :meth:`wake` (a commit in this process) or
a PostgreSQL ``NOTIFY`` (``listen=True``: commits of any process), otherwise after a
pause that doubles after each empty look, from ``poll_interval`` up to
``max_poll_interval`` (2 s). A look is one cheap query ("is any row there?"), never a
query per shard; rows found wake the batch loops and set the pause back.

Rows are found by what is *there*, never by an ``id > last_seen`` cursor: ids are
assigned at insert and transactions commit out of id order, so a cursor skips the row
of a slow transaction forever. Crashing between publish and delete publishes the batch
again (at least once; the inbox removes the duplicates).

    relay = PollingRelay(engine, transport, poll_interval=0.01, max_poll_interval=2.0, listen=True)
    await relay.start()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from servicewire.messaging.channels import DEFAULT_SHARDS
from servicewire.messaging.message import Message
from servicewire.outbox.tables import NOTIFY_CHANNEL, outbox, relay_shard
from servicewire.outbox.writer import outbox_shard
from servicewire.relay.base import Relay
from servicewire.relay.batch_statements import LEASE_SHARD, BatchStatements
from servicewire.relay.fencing import OwnershipLostError, Tenure
from servicewire.relay.ownership import OWNER_KEY
from servicewire.relay.poll_delay import PollDelay
from servicewire.relay.rows import OutboxRow, PublishOutcome, move_aside, publish_rows
from servicewire.storage.asyncpg_direct import AsyncpgDirect, CompiledText
from servicewire.storage.database import dialect_of, plain_url
from servicewire.storage.held_connections import HeldConnections
from servicewire.timeouts import woken
from servicewire.transports.base import Transport
from servicewire.urls import redact_text

log = logging.getLogger("servicewire.relay")

# Bound parameters, not interpolation (tests/security: SQL only through parameters).
_SET_MARIADB_IDLE_TIMEOUT = text("SET SESSION idle_transaction_timeout = :seconds")


def _claiming(wakeup: asyncio.Event | None) -> None:
    """A batch is about to claim: wake-ups so far are for rows its claim will see.

    A commit in this process sets the event only once it has committed, so clearing it
    right before the claim statement forgets only rows that statement sees; a wake-up
    after this point makes the loop look again. (Cleared before the batch, as a loop
    used to, the commits during the lock round trip cost an empty batch each.)
    """
    if wakeup is not None:
        wakeup.clear()


def relay_owner_id(name: str) -> str:
    """Who holds a lease: relay name (a label), host, process and a random suffix."""
    return f"{name}@{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"[:200]


class PollingRelay(Relay):
    """Publishes outbox rows by polling (PostgreSQL, MariaDB/MySQL, SQLite)."""

    mode = "polling"

    def __init__(
        self,
        engine: AsyncEngine,
        transport: Transport,
        *,
        poll_interval: float = 0.01,
        max_poll_interval: float = 2.0,
        batch_size: int = 500,
        shards: int = DEFAULT_SHARDS,
        name: str = "relay",
        cleanup: str = "delete",
        retention: float = 3600.0,
        cleanup_interval: float = 60.0,
        listen: bool = False,
        lease_ttl: float = 5.0,
        concurrency: int = 2,
        progress_interval: float = 5.0,
    ) -> None:
        super().__init__(
            engine, transport, name=name, batch_size=batch_size, progress_interval=progress_interval
        )
        if cleanup not in ("delete", "mark"):
            raise ValueError(f"cleanup must be 'delete' or 'mark', not {cleanup!r}")
        self.poll_interval = poll_interval
        # Idle looks back off from poll_interval to this; rows written by another process
        # without NOTIFY (SQLite, MariaDB) are published within it.
        self.max_poll_interval = max(poll_interval, max_poll_interval)
        self._poll_delay = PollDelay(poll_interval, self.max_poll_interval)
        self.shards = max(1, shards)
        self.cleanup = cleanup
        self.retention = retention
        self.cleanup_interval = cleanup_interval
        self.listen = listen
        self.lease_ttl = lease_ttl
        self.concurrency = concurrency
        self.dialect = dialect_of(engine)
        # SQLite: the token of this relay's current tenure of the lease (None: not held).
        self._lease_token: str | None = None
        self._lease_tenure = Tenure(lease_ttl)
        self._lease_until = 0.0
        self._next_cleanup = 0.0
        self._listener: Any = None
        self._shards_per_worker = self.shards
        self._busy_loops = 0  # batch loops in a batch right now (the watcher waits then)
        self._sql = BatchStatements(
            self.dialect, shards=self.shards, cleanup=cleanup, batch_size=batch_size
        )
        self._texts: dict[Any, CompiledText] = {}  # a statement of _sql -> its text
        # PostgreSQL: a connection per batch loop kept between batches (no pool checkout
        # per batch); made by _serve, closed by _release.
        self._held: HeldConnections | None = None

    # The loop ------------------------------------------------------------------------------

    async def _serve(self) -> None:
        await self._ensure_shard_rows()
        if self.dialect != "sqlite":
            # Ownership is per batch (shard row locks), so every such relay is active.
            self._activate(f"{self.shards} shards, locked per batch")
        # Only PostgreSQL runs batches side by side (see _batch for MariaDB's reason).
        workers = max(1, min(self.concurrency, self.shards)) if self.dialect == "postgresql" else 1
        # Batches of disjoint shard sets overlap: while one waits for broker confirms,
        # another claims and deletes. A shard still has one batch at a time.
        per_worker = -(-self.shards // workers)
        if self.dialect == "postgresql" and self._held is None:
            self._held = HeldConnections(self.engine, keep=workers)
        # wake() sets every one of these, so each batch loop sees every wake-up;
        # wake_for() only those of the shards that got rows.
        self._worker_wakeups = [asyncio.Event() for _ in range(workers)]
        self._shards_per_worker = per_worker
        self._busy_loops = 0
        self._poll_delay.reset()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch())
            for index, event in enumerate(self._worker_wakeups):
                group.create_task(self._work(per_worker, index * per_worker, event))

    async def _work(self, max_shards: int, first_shard: int, event: asyncio.Event) -> None:
        """A batch loop: batches while rows may be left, then sleeps until woken.

        Each loop prefers its own shard range (from ``first_shard``), so idle loops
        woken together cover every shard between them. After a batch that saw every
        row of its shards (fewer than ``batch_size``, all the shards it asked for) the
        loop waits for the next wake-up instead of looking again at once: rows committed
        meanwhile woke it already, and the extra look was an empty transaction of four
        round trips after every busy batch.
        """
        while not self._stopping.is_set():
            event.clear()
            self._busy_loops += 1
            try:
                handled, saw_all = await self._batch(max_shards, first_shard, event)
            finally:
                self._busy_loops -= 1
            if handled:
                self._poll_delay.reset()
                if not saw_all:
                    continue  # a full batch, or shards held elsewhere: more may be waiting
            await event.wait()  # at once if a wake-up came after the batch's claim

    async def _watch(self) -> None:
        """Wakes the batch loops when rows may be there; otherwise backs off.

        A wake-up (``wake()`` or ``NOTIFY``) reaches the batch loops directly; this loop
        only sets the pause back. After a pause without one it asks once whether any row
        is there (rows of other processes that did not notify) and wakes the loops if so.
        """
        while not self._stopping.is_set():
            if self.listen and self.dialect == "postgresql":
                await self._keep_listening()
            woken = await self._pause(self._next_pause())
            if self._stopping.is_set():
                return
            if self.cleanup == "mark" and time.monotonic() >= self._next_cleanup:
                await self._purge_marked()
            if woken or self._busy_loops:
                # Activity. A busy loop looks again by itself until it has seen every
                # row of its range: a look now would only find the rows it is publishing.
                self._poll_delay.reset()
            elif await self._row_waiting() is not None:
                self._poll_delay.reset()
                # Every loop: this is the safety net (rows nobody announced, rows a
                # cancelled batch left locked for a while), so no loop may stay asleep
                # on them. Commits in this process wake loops by shard (wake_for).
                for event in self._worker_wakeups:
                    event.set()
            else:
                self._poll_delay.grow()
                await self._renew_idle_lease()

    def _next_pause(self) -> float:
        pause = self._poll_delay.current
        if self.dialect == "sqlite" and self._lease_until:
            # The leaseholder renews while idle, well before the lease expires.
            pause = min(pause, self.lease_ttl / 3)
        return pause

    async def _pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if woken (or stopped) meanwhile."""
        was_woken = await woken(self._wakeup, seconds)
        self._wakeup.clear()
        return was_woken

    async def _row_waiting(self) -> int | None:
        """The shard of an unpublished row, if any is there: one cheap query for all."""
        stmt = select(outbox.c.shard).limit(1)
        if self.cleanup == "mark":
            stmt = stmt.where(outbox.c.published_at.is_(None)).order_by(outbox.c.id)
        # Never a locking read (FOR UPDATE SKIP LOCKED would skip a busy batch's rows):
        # a row this look locked, however briefly, is one a claim skips, publishing the
        # next row of its key first.
        async with self.engine.connect() as conn:
            return (await conn.execute(stmt)).scalar()

    async def _renew_idle_lease(self) -> None:
        """SQLite: an idle leaseholder keeps its lease (batches renew it when busy)."""
        if self.dialect != "sqlite" or not self._lease_until:
            return
        if time.time() > self._lease_until - self.lease_ttl * 2 / 3:
            async with self.engine.begin() as conn:
                await self._take_lease(conn)

    async def _release(self) -> None:
        if self._held is not None:
            await self._held.close()
            self._held = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        if self.dialect == "sqlite" and self._lease_until:
            with contextlib.suppress(Exception):
                async with self.engine.begin() as conn:
                    await conn.execute(
                        update(relay_shard)
                        .where(*self._lease_row(), relay_shard.c.owner == self._lease_token)
                        .values(owner=None, expires_at=None)
                    )
            self._lease_token = None
            self._lease_until = 0.0

    async def _batch(
        self,
        max_shards: int | None = None,
        first_shard: int = 0,
        wakeup: asyncio.Event | None = None,
    ) -> tuple[int, bool]:
        """One claim-publish-delete round: (rows handled, whether it saw every row of the
        shards it asked for, so that nothing is left until new rows are committed)."""
        if self.dialect == "sqlite":
            return await self._batch_leased(wakeup)
        held = self._held
        async with held.connection() if held is not None else self.engine.connect() as conn:
            if self.dialect == "mysql":
                # No gap locks: the claim must not block the service's inserts.
                conn = await conn.execution_options(isolation_level="READ COMMITTED")
            try:
                async with conn.begin():
                    done = await self._locked_batch(
                        conn, max_shards or self.shards, first_shard, wakeup
                    )
            finally:
                if self.dialect == "mysql":
                    await self._forget_idle_timeout(conn)
        if done is None:
            return 0, True
        handled, outcome, saw_all = done
        # Only now, with what did go out deleted and committed: back off and retry the rest.
        outcome.raise_failure()
        return handled, saw_all

    async def _locked_batch(
        self,
        conn: AsyncConnection,
        max_shards: int,
        first_shard: int = 0,
        wakeup: asyncio.Event | None = None,
    ) -> tuple[int, PublishOutcome, bool] | None:
        """The body of a PostgreSQL/MariaDB batch, inside its transaction on ``conn``."""
        # Fencing: the shard locks last as long as this session. Should this process
        # stop answering (SIGSTOP, a partition), the server ends the session after
        # lease_ttl idle seconds, freeing the shards for another relay; the Tenure makes
        # this relay stop publishing before that can happen.
        tenure = Tenure(self.lease_ttl, f"relay {self.name}: the shard locks")
        asked_at = time.monotonic()
        if self.dialect == "mysql":
            await self._set_mariadb_idle_timeout(conn)
        # PostgreSQL: the lock query sets the batch's idle timeout itself.
        lock = self._sql.lock(max_shards, first_shard)
        shards = [
            int(s)
            for s in (await conn.execute(lock, self._sql.lock_values(self.lease_ttl))).scalars()
        ]
        if not shards:
            return None
        if self.dialect == "mysql" and len(shards) < self.shards:
            # InnoDB locks rows while it scans, before the shard filter is
            # applied, so a concurrent claim could make us SKIP a row of our own
            # shard and publish the next one first. On MariaDB a batch therefore
            # takes every shard or none: relays take turns, order is safe.
            return None
        # MariaDB: a plain read. A locking read sees each row's latest version
        # as the scan reaches it, so a writer committing mid-scan has its first
        # rows skipped (still locked) and its last ones taken: a key's later row
        # went out before its earlier one. A plain read is one snapshot (a
        # transaction's rows all or none), and holding every shard already keeps
        # other relays out. PostgreSQL's locking read is a snapshot too.
        _claiming(wakeup)
        # PostgreSQL on asyncpg: the claim and the settle go to the driver directly, in
        # the transaction the lock query began (storage/asyncpg_direct.py).
        direct = await AsyncpgDirect.on(conn) if self.dialect == "postgresql" else None
        rows = await self._claim(conn, shards, lock=self.dialect != "mysql", direct=direct)
        if not rows:
            return None
        tenure.proven(asked_at)

        async def still_here() -> None:
            await conn.execute(select(1))  # keeps the session (and its locks) from timing out

        async with tenure.kept(still_here):
            outcome = await publish_rows(
                self.transport, rows, guard=lambda: tenure.ensure(still_here)
            )
        if isinstance(outcome.failure, OwnershipLostError):
            # Drop the session (the server rolls back, if it has not ended it already):
            # another relay may own these shards now and publish them. Invalidating,
            # not rolling back: a session the server ended may be mid-error.
            await conn.invalidate()
            raise outcome.failure
        await self._settle(conn, outcome, direct)
        # Saw every row it may own now: not a full batch, and the shard range it prefers
        # (another batch loop or relay holding some of them may leave rows behind).
        preferred = {(first_shard + k) % self.shards for k in range(max_shards)}
        return len(rows), outcome, len(rows) < self.batch_size and set(shards) == preferred

    async def _set_mariadb_idle_timeout(self, conn: AsyncConnection) -> None:
        """Make MariaDB end this batch's session after ``lease_ttl`` idle seconds.

        MariaDB has no SET LOCAL and counts whole seconds; _forget_idle_timeout puts the
        server default back before the connection returns to the pool the service shares.
        (PostgreSQL's timeout is SET LOCAL, set by the lock query: BatchStatements.lock.)
        """
        seconds = max(1, math.ceil(self.lease_ttl))
        await conn.execute(_SET_MARIADB_IDLE_TIMEOUT, {"seconds": seconds})

    @staticmethod
    async def _forget_idle_timeout(conn: AsyncConnection) -> None:
        with contextlib.suppress(Exception):
            await conn.exec_driver_sql("SET SESSION idle_transaction_timeout = DEFAULT")
            await conn.rollback()

    async def _claim(
        self,
        conn: AsyncConnection,
        shards: list[int],
        *,
        lock: bool,
        direct: AsyncpgDirect | None = None,
    ) -> list[OutboxRow]:
        stmt, values = self._sql.claim(shards, lock=lock)
        if direct is not None:
            compiled = self._compiled(stmt, conn)
            found = await direct.rows(compiled.sql, *compiled.args(values))
            return [OutboxRow.from_mapping(r) for r in found]
        result = await conn.execute(stmt, values)
        return [OutboxRow.from_mapping(r) for r in result.mappings()]

    async def _settle(
        self, conn: AsyncConnection, outcome: PublishOutcome, direct: AsyncpgDirect | None = None
    ) -> None:
        """Delete (or mark) what went out, move bad rows aside, count: in the batch's
        transaction, so only a session that still holds the shard locks can do it."""
        await self._finish(conn, outcome.published, direct)
        await move_aside(conn, outcome.bad, self.name)
        self._count(len(outcome.published), len(outcome.bad))

    async def _finish(
        self, conn: AsyncConnection, published: list[OutboxRow], direct: AsyncpgDirect | None = None
    ) -> None:
        # Progress per shard row (already locked by this transaction: no extra contention).
        for stmt, values in self._sql.settle(published, time.time()):
            if direct is not None:
                compiled = self._compiled(stmt, conn)
                await direct.run(compiled.sql, *compiled.args(values))
            else:
                await conn.execute(stmt, values)

    def _compiled(self, stmt: Any, conn: AsyncConnection) -> CompiledText:
        """``stmt`` (one of the relay's statements, built once) as asyncpg's SQL text."""
        compiled = self._texts.get(stmt)
        if compiled is None:
            # Bounded: the statements BatchStatements built once, and the per-batch
            # MariaDB/SQLite ones never come here.
            compiled = self._texts[stmt] = CompiledText(stmt, conn.dialect)
        return compiled

    # SQLite: one leaseholder ------------------------------------------------------------

    def _lease_row(self) -> tuple[Any, Any]:
        # Keyed by the outbox, not the relay name: differently named relays share it.
        return (relay_shard.c.relay == OWNER_KEY, relay_shard.c.shard == LEASE_SHARD)

    async def _take_lease(self, conn: AsyncConnection) -> bool:
        """Renew this relay's tenure of the lease, or begin a new one if the lease is free.

        A tenure is fenced by a token of its own in ``owner`` (minted at each takeover,
        so it plays the part of an epoch): a renewal, and the delete of a batch, succeed
        only while the row still carries the token the batch was claimed under.
        """
        asked_at = time.monotonic()
        if self._lease_token is not None:
            if await self._renew_lease(conn, self._lease_token):
                self._lease_tenure.proven(asked_at)
                return True
            self._lose_lease("another relay took the SQLite lease")
        now = time.time()
        token = relay_owner_id(self.name)
        taken = await conn.execute(
            update(relay_shard)
            .where(
                *self._lease_row(),
                relay_shard.c.owner.is_(None) | (relay_shard.c.expires_at < now),
            )
            .values(owner=token, expires_at=now + self.lease_ttl)
        )
        if not taken.rowcount:
            self._lease_until = 0.0
            return False
        self._lease_token = token
        self._lease_tenure = Tenure(self.lease_ttl, f"relay {self.name}: the SQLite lease")
        self._lease_tenure.proven(asked_at)
        self._lease_until = now + self.lease_ttl
        self._activate(f"{token} holds the SQLite lease")
        return True

    async def _renew_lease(self, conn: AsyncConnection, token: str) -> bool:
        """Extend the lease if it still carries ``token`` (even if it expired meanwhile:
        nobody else took it, so nobody else published)."""
        now = time.time()
        renewed = await conn.execute(
            self._sql.renew_lease, {"token": token, "expires": now + self.lease_ttl}
        )
        if not renewed.rowcount:
            return False
        if token == self._lease_token:
            self._lease_until = now + self.lease_ttl
        return True

    def _lose_lease(self, reason: str) -> None:
        self._lease_tenure.lose(reason)
        self._lease_token = None
        self._lease_until = 0.0
        if self.active:
            log.warning("relay %s: %s; standing by", self.name, reason)
            self.active = False

    async def _batch_leased(self, wakeup: asyncio.Event | None = None) -> tuple[int, bool]:
        if time.time() > self._lease_until - self.lease_ttl * 2 / 3:
            async with self.engine.begin() as conn:
                if not await self._take_lease(conn):
                    return 0, True
        token, tenure = self._lease_token, self._lease_tenure
        if token is None:
            return 0, True
        _claiming(wakeup)
        async with self.engine.connect() as conn:
            rows = await self._claim(conn, list(range(self.shards)), lock=False)
        if not rows:
            return 0, True

        async def renew() -> None:
            async with self.engine.begin() as conn:
                if not await self._renew_lease(conn, token):
                    raise OwnershipLostError("another relay took the SQLite lease")

        # A stalled relay (SIGSTOP, a long pause) stops before the next wave: its lease
        # may have expired and been taken by another relay meanwhile.
        async with tenure.kept(renew):
            outcome = await publish_rows(self.transport, rows, guard=lambda: tenure.ensure(renew))
        if isinstance(outcome.failure, OwnershipLostError):
            self._lose_lease(str(outcome.failure))
            raise outcome.failure
        published, bad = outcome.published, outcome.bad
        async with self.engine.begin() as conn:
            # Fencing: delete only under the tenure the batch was claimed under. A relay
            # whose lease was taken meanwhile leaves the rows to the new holder.
            if not await self._renew_lease(conn, token):
                self._lose_lease("the SQLite lease was taken mid-batch")
                raise OwnershipLostError(
                    f"relay {self.name} lost the SQLite lease mid-batch; the new holder "
                    "publishes the rest"
                )
            await self._finish(conn, published)
            await move_aside(conn, bad, self.name)
        self._count(len(published), len(bad))
        outcome.raise_failure()
        return len(rows), len(rows) < self.batch_size

    # Setup, wake-up and cleanup ---------------------------------------------------------

    def wake_for(self, messages: Sequence[Message]) -> None:
        """Wake the batch loops whose shard ranges got rows for ``messages`` (just
        committed by this process); the others stay asleep instead of running an empty
        batch. A loop that finds its range partly held elsewhere looks again, and the
        watcher's next look finds anything left (within ``poll_interval``)."""
        wakeups = self._worker_wakeups
        if len(wakeups) <= 1:
            self.wake()
            return
        self._wakeup.set()  # the watcher: activity, set its pause back
        for message in messages:
            self._wake_shard(outbox_shard(message))  # the shard its row was written with

    def _wake_shard(self, shard: int) -> None:
        """Wake the batch loop whose shard range holds ``shard`` (a writer's shard)."""
        wakeups = self._worker_wakeups
        if not wakeups:
            self.wake()
            return
        index = (shard % self.shards) // self._shards_per_worker
        wakeups[min(index, len(wakeups) - 1)].set()

    async def _ensure_shard_rows(self) -> None:
        wanted = [LEASE_SHARD] if self.dialect == "sqlite" else list(range(self.shards))
        values = [{"relay": OWNER_KEY, "shard": s, "published": 0} for s in wanted]
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(pg_insert(relay_shard).values(values).on_conflict_do_nothing())
            elif self.dialect == "mysql":
                await conn.execute(mysql_insert(relay_shard).values(values).prefix_with("IGNORE"))
            else:
                await conn.execute(
                    sqlite_insert(relay_shard).values(values).on_conflict_do_nothing()
                )

    async def _keep_listening(self) -> None:
        """PostgreSQL: (re)open the LISTEN connection if there is none or it was lost."""
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = None
        try:
            await self._start_listening()
        except Exception as exc:
            # Polling still finds every row; the next watcher round tries again.
            log.warning("relay %s: LISTEN failed (%s); polling", self.name, redact_text(str(exc)))
            return
        # Notifications sent while not listening are lost: look now.
        self.wake()

    async def _start_listening(self) -> None:
        import asyncpg

        url = plain_url(self.engine).replace("postgresql://", "postgres://", 1)
        connection = await asyncpg.connect(url)
        await connection.add_listener(NOTIFY_CHANNEL, lambda *_: self.wake())
        # A lost connection wakes the watcher, which reconnects (and looks for rows).
        connection.add_termination_listener(lambda *_: self._wakeup.set())
        self._listener = connection

    async def _purge_marked(self) -> None:
        self._next_cleanup = time.monotonic() + self.cleanup_interval
        cutoff = time.time() - self.retention
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(outbox).where(
                    outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff
                )
            )
        if result.rowcount:
            log.info("relay %s: removed %d published rows", self.name, result.rowcount)

    async def drain(self, timeout: float) -> None:
        async with self.engine.connect() as conn:
            top = (await conn.execute(select(func.max(outbox.c.id)))).scalar_one()
        if top is None:
            return

        async def done() -> bool:
            async with self.engine.connect() as conn:
                stmt = select(func.count()).select_from(outbox).where(outbox.c.id <= top)
                if self.cleanup == "mark":
                    stmt = stmt.where(outbox.c.published_at.is_(None))
                return int((await conn.execute(stmt)).scalar_one()) == 0

        await self._wait_for(done, timeout, "drain")
