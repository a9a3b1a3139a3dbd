"""The delivery pipeline (DESIGN section 5): deliveries from receipt to acknowledgement.

The unit is a *batch*: the deliveries a consumer found ready at once (one, at low
load), at most one per shard, so per-key order holds. A batch runs in one database
transaction, each handler inside its own savepoint::

    receive N -> check signature, decode each (fails: dead-letter at once, with the reason)
              -> open transaction -> claim the N inbox ids (one statement; duplicates: skip)
              -> per message: SAVEPOINT -> handler (sends collected; its ORM changes
                 flushed) (a handler error: ROLLBACK TO SAVEPOINT, re-run a few times,
                 then give its inbox id back: it was not processed)
              -> outbox insert of every message sent (one statement) -> commit
              -> after-commit callbacks (Context.after_commit) -> ack, nack or dead-letter

Each handler run passes through the middleware the pipeline is given (tracing, metrics,
log context: :mod:`~.middleware`) before it reaches its savepoint.

A handler error rolls back its own savepoint (its business rows, its outgoing messages)
and nothing else; the message is re-run a few times at once, then redelivered with
backoff by the transport, then dead-lettered with headers that say why. Unknown types
and unsupported MAJOR versions are dead-lettered at once (on event channels, types the
service does not handle are skipped instead). Nothing is acknowledged before the
commit. If the batch itself fails (the commit, the inbox claim, a savepoint that cannot
be rolled back) with any error but an unreachable database, its messages run again one
per transaction, so that only the message at fault is counted as failing. A database
that cannot be reached (:func:`~servicewire.storage.failures.is_infrastructure_error`)
is never a reason to dead-letter: the batch keeps its deliveries and tries again with
growing pauses for up to :data:`OUTAGE_PATIENCE` seconds, then nacks them for a
redelivery that again does not count against them. The consumer
keeps running through all of it: :meth:`Pipeline.process_batch` never raises for a bad
message::

    outcomes = await pipeline.process_batch([delivery_1, delivery_2])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from servicewire.codecs import CodecRegistry
from servicewire.errors import (
    DecodeError,
    InvalidNameError,
    MessageTooLargeError,
    PermanentError,
    UnknownContractError,
    UnsupportedContentTypeError,
    UnsupportedVersionError,
)
from servicewire.messaging.message import Message
from servicewire.messaging.text import text_problem
from servicewire.outbox.writer import PendingRows
from servicewire.pipeline import inbox
from servicewire.pipeline.after_commit import run_after_commit
from servicewire.pipeline.context import Context
from servicewire.pipeline.deadletter import DeadLetterPublisher, dead_letter_message
from servicewire.pipeline.handlers import HandlerRegistry, HandlerSpec
from servicewire.pipeline.middleware.base import Middleware, Run, chain
from servicewire.pipeline.outcome import Outcome
from servicewire.pipeline.retry import RetryPolicy
from servicewire.security.identity import MessageAuthenticity
from servicewire.security.signing import SignatureError
from servicewire.storage.asyncpg_direct import AsyncpgDirect
from servicewire.storage.failures import is_infrastructure_error
from servicewire.storage.held_connections import HeldConnections
from servicewire.storage.savepoints import Savepoints
from servicewire.transports.base import Delivery

log = logging.getLogger("servicewire.pipeline.unit_of_work")

OutboxWriter = Callable[[Any, Sequence[Message]], Awaitable[None]]
"""Writes messages to the outbox: given a session, or the batch's :class:`PendingRows`."""


OUTAGE_PATIENCE = 60.0
"""Seconds a batch that cannot reach its database keeps its deliveries and tries again
(with growing pauses, from ``OUTAGE_FIRST_PAUSE`` to ``OUTAGE_MAX_PAUSE``) before it
nacks them; either way they are never dead-lettered for it."""
OUTAGE_FIRST_PAUSE = 0.05
OUTAGE_MAX_PAUSE = 2.0
OUTAGE_RETRY_CAP = 5.0
"""Longest redelivery delay, seconds, of a delivery nacked for an unreachable database."""


class _Batch:
    """One batch transaction, as the savepoint step sees it."""

    __slots__ = (
        "_open_session",
        "_session",
        "broken",
        "claim_each",
        "connection",
        "context",
        "pending",
        "savepoint_statements",
        "savepoints",
    )

    def __init__(
        self,
        connection: AsyncConnection,
        open_session: Callable[..., AsyncSession],
        *,
        claim_each: bool,
        savepoints: Savepoints | None,
    ) -> None:
        self.connection = connection
        self._open_session = open_session
        self._session: AsyncSession | None = None
        self.savepoints = savepoints is not None
        self.savepoint_statements = savepoints
        """Each run in its own savepoint; without (a batch of one), a failed run fails
        the transaction and is re-run in a new one."""
        self.claim_each = claim_each
        """Each run claims its inbox id in its savepoint (no multi-row claim here)."""
        self.pending = PendingRows()
        self.context: Context | None = None
        """The context of the run that just succeeded (read back by the batch loop)."""
        self.broken = False
        """A savepoint could not be rolled back or released: the transaction is lost."""

    def session(self) -> AsyncSession:
        """The batch's ORM session, made on first use (``ctx.session``) on its connection.

        Most handlers never ask (Core statements on ``ctx.connection``, or none), and a
        session costs about 60 µs of CPU per transaction to open, begin, commit and
        close. It joins the batch's transaction in ``rollback_only`` mode: its
        ``commit()`` cannot end the batch early; a failed flush rolls the transaction
        back, and the batch is then lost as a whole (see ``_roll_back_run``).
        """
        if self._session is None:
            self._session = self._open_session(
                bind=self.connection, join_transaction_mode="rollback_only"
            )
        return self._session

    @property
    def open_session(self) -> AsyncSession | None:
        """The session if a run asked for it, else ``None``."""
        return self._session


class _RunFailed(Exception):
    """A handler failed in a transaction without savepoints: the whole one must go."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Result:
    """What became of one run of a batch, before it is settled."""

    __slots__ = ("context", "error", "outcome", "run", "whole_batch")

    def __init__(self, run: Run) -> None:
        self.run = run
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.whole_batch = False
        """The error failed the batch (its transaction), not this message's handler."""
        self.context: Context | None = None

    @property
    def unreachable(self) -> bool:
        """Failed because the database could not be reached (not the message's fault)."""
        if self.error is None:
            return False
        # A handler's own ConnectionError may be another system's: only the database's
        # errors (SQLAlchemy's) count there; a failed batch also counts a driver's
        # refused or reset socket.
        return is_infrastructure_error(self.error, sockets=self.whole_batch)


class Pipeline:
    """Processes deliveries of one (channel, group) for one service."""

    def __init__(
        self,
        *,
        service: str,
        channel: str,
        group: str,
        handlers: HandlerRegistry,
        sessions: async_sessionmaker[AsyncSession],
        codecs: CodecRegistry,
        default_codec: str,
        outbox_writer: OutboxWriter,
        dead_letters: DeadLetterPublisher,
        retry: RetryPolicy,
        default_reply_to: str | None = None,
        write_lock: asyncio.Lock | None = None,
        on_commit: Callable[[list[Message]], None] | None = None,
        on_outcome: Callable[[Message, Outcome, HandlerSpec | None], None] | None = None,
        authenticity: MessageAuthenticity | None = None,
        middleware: Sequence[Middleware] = (),
        connections: HeldConnections | None = None,
    ) -> None:
        self.service = service
        self.channel = channel
        self.group = group
        self._handlers = handlers
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        if not isinstance(bind, AsyncEngine):
            raise TypeError("Pipeline needs sessions bound to an AsyncEngine")
        # Connections kept open between transactions (the service shares its own);
        # without, none is kept: each transaction checks one out of the pool.
        self._connections = connections or HeldConnections(bind, keep=0)
        self._codecs = codecs
        self._out_codec = codecs.for_content_type(default_codec)
        self._write_outbox = outbox_writer
        self._dead_letters = dead_letters
        self._retry = retry
        self._reply_to = default_reply_to
        self._write_lock = write_lock
        self._on_commit = on_commit
        self._on_outcome = on_outcome
        self._ignore_unknown = handlers.ignores_unknown(channel, group)
        self._authenticity = authenticity
        # Each handler run goes through the middleware (first outermost) to its savepoint.
        self._handle = chain(middleware, self._run_in_savepoint)

    async def process(self, delivery: Delivery) -> Outcome:
        """Handle one delivery and settle it (ack, nack or dead-letter). Never raises."""
        return (await self.process_batch([delivery]))[0]

    async def process_batch(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Handle ``deliveries`` in one transaction and settle each; outcomes in order.

        The deliveries should be of different shards (what a transport hands over
        unsettled at once is); two of one shard or one message id are run in separate
        transactions, one after the other, in the order given. Never raises for a bad
        message.
        """
        outcomes: list[Outcome | None] = [None] * len(deliveries)
        ready: list[tuple[int, Delivery, HandlerSpec, object]] = []
        for index, delivery in enumerate(deliveries):
            prepared = await self._prepare(delivery)
            if isinstance(prepared, Outcome):
                outcomes[index] = prepared
            else:
                ready.append((index, delivery, *prepared))
        for part in _apart(ready):
            await self._run_part(part, outcomes)
        return [outcome or Outcome.RETRYING for outcome in outcomes]

    async def _run_part(
        self,
        part: list[tuple[int, Delivery, HandlerSpec, object]],
        outcomes: list[Outcome | None],
    ) -> None:
        """Run, commit and settle ``part``; wait out a database outage (bounded)."""
        waited, pause = 0.0, OUTAGE_FIRST_PAUSE
        while True:
            results = await self._execute(part)
            await self._after_commit(results)
            unreachable: list[tuple[int, Delivery, HandlerSpec, object]] = []
            for entry, result in zip(part, results, strict=True):
                if waited < OUTAGE_PATIENCE and result.unreachable:
                    # Held, not nacked: a redelivery could come back behind later
                    # messages of its key (quorum queues requeue at the tail), and the
                    # database is down for every message alike.
                    unreachable.append(entry)
                else:
                    outcomes[entry[0]] = await self._settle(result)
            if not unreachable:
                return
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, OUTAGE_MAX_PAUSE)
            part = unreachable

    async def _prepare(self, delivery: Delivery) -> Outcome | tuple[HandlerSpec, object]:
        """Check and decode: the handler and value, or the outcome of a message settled."""
        message = delivery.message
        spec: HandlerSpec | None = None
        if self._authenticity is not None:
            # Before decoding: a forged payload never reaches a codec or a handler.
            try:
                self._authenticity.check(message)
            except SignatureError as exc:
                return await self._dead_letter(delivery, f"signature: {exc}", exc, None)
        unsafe_id = text_problem(message.id)
        if unsafe_id is not None:  # the inbox stores it: PostgreSQL would refuse each run
            return await self._dead_letter(delivery, f"unsafe message id: {unsafe_id}", None, None)
        try:
            spec = self._handlers.lookup(self.channel, self.group, message.type, message.version)
            value = self._codecs.for_content_type(message.content_type).decode(
                message.payload, spec.contract
            )
        except UnknownContractError as exc:
            if self._ignore_unknown:
                await delivery.ack()
                return self._done(message, Outcome.IGNORED, None)
            return await self._dead_letter(delivery, f"unknown contract type: {exc}", exc, None)
        except UnsupportedVersionError as exc:
            return await self._dead_letter(delivery, f"unsupported version: {exc}", exc, spec)
        except (DecodeError, UnsupportedContentTypeError) as exc:
            return await self._dead_letter(delivery, f"undecodable: {exc}", exc, spec)
        return spec, value

    async def _execute(
        self, part: Sequence[tuple[int, Delivery, HandlerSpec, object]]
    ) -> list[_Result]:
        """Run ``part`` in one transaction; on a failure of the batch itself, see above."""
        if len(part) == 1:
            return [await self._execute_alone(part[0])]
        try:
            return await self._transaction(part, savepoints=True)
        except Exception as exc:
            if is_infrastructure_error(exc):
                # Nothing was committed, and the database is away for every message.
                log.warning(
                    "%s: a batch of %d on %s did not commit: %s: %s",
                    self.service,
                    len(part),
                    self.channel,
                    type(exc).__name__,
                    exc,
                )
                return [self._failed(entry, exc, whole_batch=True) for entry in part]
            log.info(
                "%s: a batch of %d on %s failed (%s: %s); running its messages one by one",
                self.service,
                len(part),
                self.channel,
                type(exc).__name__,
                exc,
            )
            return [await self._execute_alone(entry) for entry in part]

    async def _execute_alone(self, entry: tuple[int, Delivery, HandlerSpec, object]) -> _Result:
        """One message in a transaction of its own, without a savepoint (a batch of one,
        as at low load): a failed run rolls the transaction back and is re-run in a new
        one, a few times at once."""
        error: BaseException | None = None
        whole_batch = False
        for _attempt in range(1 + self._retry.immediate):
            try:
                [result] = await self._transaction([entry], savepoints=False)
                return result
            except _RunFailed as failed:
                error, whole_batch = failed.error, False
                if isinstance(error, PermanentError):
                    break
            except Exception as exc:  # the claim or the commit: re-run, unless unreachable
                error, whole_batch = exc, True
                if is_infrastructure_error(exc):
                    log.warning(
                        "%s: a message on %s did not commit: %s: %s",
                        self.service,
                        self.channel,
                        type(exc).__name__,
                        exc,
                    )
                    break
        assert error is not None
        return self._failed(entry, error, whole_batch=whole_batch)

    def _failed(
        self,
        entry: tuple[int, Delivery, HandlerSpec, object],
        error: BaseException,
        *,
        whole_batch: bool,
    ) -> _Result:
        _i, delivery, spec, value = entry
        result = _Result(Run(self.service, self.channel, self.group, spec, value, delivery))
        result.error = error
        result.whole_batch = whole_batch
        return result

    async def _transaction(
        self, part: Sequence[tuple[int, Delivery, HandlerSpec, object]], *, savepoints: bool
    ) -> list[_Result]:
        async with self._locked(), self._connections.connection() as conn, conn.begin():
            ids = [delivery.message.id for _i, delivery, _s, _v in part]
            # The claim is the transaction's first statement: SQLAlchemy begins it.
            claimed = await inbox.claim_many(conn, self.group, ids)
            # PostgreSQL on asyncpg: the savepoints and the outbox insert go to the
            # driver directly, inside that transaction (storage/asyncpg_direct.py).
            direct = await AsyncpgDirect.on(conn)
            batch = _Batch(
                conn,
                self._sessions,
                claim_each=claimed is None,
                savepoints=await Savepoints.on(conn, direct) if savepoints else None,
            )
            try:
                results: list[_Result] = []
                unclaim: list[str] = []
                for _i, delivery, spec, value in part:
                    run = Run(self.service, self.channel, self.group, spec, value, delivery, batch)
                    result = _Result(run)
                    results.append(result)
                    if claimed is not None and delivery.message.id not in claimed:
                        result.outcome = Outcome.DUPLICATE
                        continue
                    await self._run_with_reruns(run, batch, result)
                    if result.error is not None and claimed is not None:
                        unclaim.append(delivery.message.id)
                await inbox.release(conn, self.group, unclaim)
                await batch.pending.flush(conn, direct=direct)
            finally:
                session = batch.open_session
                if session is not None:
                    await session.close()  # rollback_only: leaves the transaction alone
        return results

    async def _run_with_reruns(self, run: Run, batch: _Batch, result: _Result) -> None:
        """The handler, re-run at once (each in a fresh savepoint) while it fails."""
        for _attempt in range(1 + self._retry.immediate):
            try:
                result.outcome = await self._handle(run)
            except Exception as exc:  # a handler's failure is data here, not a crash
                if not batch.savepoints:
                    raise _RunFailed(exc) from exc  # the caller rolls back and re-runs
                if batch.broken:
                    raise  # the transaction is gone: the batch fails as a whole
                result.error = exc
                if isinstance(exc, PermanentError):
                    return
                log.debug("handler %s failed on %s: %r", run.spec.name, run.message.id, exc)
                continue
            result.error = None
            result.context = batch.context
            batch.context = None
            return

    async def _run_in_savepoint(self, run: Run) -> Outcome:
        """The innermost step: one handler run in its own savepoint of the batch."""
        batch = run.batch
        if not isinstance(batch, _Batch):
            raise TypeError("a run reaches its savepoint only through Pipeline.process_batch")
        message = run.delivery.message
        # A fresh context per run: nothing from a failed run leaks into the next.
        ctx = Context(
            open_session=batch.session,
            source=self.service,
            codec=self._out_codec,
            message=message,
            attempt=run.delivery.attempt,
            default_reply_to=self._reply_to,
            connection=batch.connection,
        )
        mark = batch.pending.mark()
        # A plain SAVEPOINT, never released (storage/savepoints.py): one round trip per message,
        # and no ORM bookkeeping for handlers that use none. Reusing the name is what
        # SQL allows (ROLLBACK TO names the newest); COMMIT releases them all.
        if batch.savepoint_statements is not None:
            await batch.savepoint_statements.mark()
        try:
            if batch.claim_each and not await inbox.claim(batch.connection, self.group, message.id):
                outcome = Outcome.DUPLICATE
            else:
                await run.spec.func(run.value, ctx)
                if ctx.outgoing:
                    await self._write_outbox(batch.pending, ctx.outgoing)
                outcome = Outcome.HANDLED
            session = batch.open_session
            if session is not None and (session.new or session.dirty or session.deleted):
                await session.flush()  # the handler's ORM changes, inside its savepoint
        except BaseException:
            batch.pending.rewind(mark)
            if batch.savepoints:
                await self._roll_back_run(batch)
            raise
        batch.context = ctx if outcome is Outcome.HANDLED else None
        return outcome

    @staticmethod
    async def _roll_back_run(batch: _Batch) -> None:
        """Undo a failed run: back to its savepoint, and forget the ORM's view of it."""
        try:
            assert batch.savepoint_statements is not None
            await batch.savepoint_statements.roll_back()
        except BaseException:
            batch.broken = True
            raise
        # Earlier runs' objects were flushed, so nothing of theirs is lost; the failed
        # run's objects (and any state it changed in memory) are dropped.
        session = batch.open_session
        if session is None:
            return
        session.expunge_all()
        transaction = session.get_transaction()
        if transaction is None or not transaction.is_active:
            batch.broken = True  # a failed ORM flush ended the session's transaction

    async def _after_commit(self, results: Sequence[_Result]) -> None:
        """Tell the relay, then run each handled message's callbacks, in batch order."""
        contexts = [r.context for r in results if r.context is not None]
        if not contexts:
            return
        if self._on_commit is not None:
            sent = [m for ctx in contexts for m in ctx.outgoing]
            if sent:
                self._on_commit(sent)
        # Committed, and out of the write lock: a callback may start a transaction.
        for ctx in contexts:
            if ctx.has_callbacks:
                await run_after_commit(ctx.committed_callbacks)

    async def _settle(self, result: _Result) -> Outcome:
        """Ack what was handled; retry, nack or dead-letter what failed."""
        delivery, spec = result.run.delivery, result.run.spec
        message = delivery.message
        if result.error is None:
            assert result.outcome is not None
            await delivery.ack()
            return self._done(message, result.outcome, spec)
        error = result.error
        if isinstance(error, PermanentError):
            return await self._dead_letter(delivery, f"handler refused: {error}", error, spec)
        if result.unreachable:
            # The database, not the message: wait and redeliver, whatever the attempt.
            delay = min(self._retry.redelivery_delay(delivery.attempt), OUTAGE_RETRY_CAP)
            log.warning(
                "database unreachable handling %s %s (attempt %d); redelivering in %.2fs: %s",
                message.type,
                message.id,
                delivery.attempt,
                delay,
                error,
            )
            await delivery.nack(delay=delay)
            return self._done(message, Outcome.RETRYING, spec)
        if self._retry.should_redeliver(delivery.attempt):
            delay = self._retry.redelivery_delay(delivery.attempt)
            log.info(
                "retrying %s %s (attempt %d) in %.2fs after %s: %s",
                message.type,
                message.id,
                delivery.attempt,
                delay,
                type(error).__name__,
                error,
            )
            await delivery.nack(delay=delay)
            return self._done(message, Outcome.RETRYING, spec)
        reason = f"handler failed {delivery.attempt} deliveries x {1 + self._retry.immediate} runs"
        return await self._dead_letter(delivery, reason, error, spec)

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        # SQLite has one writer at a time; queueing here is cheaper than its busy loop.
        if self._write_lock is None:
            yield
        else:
            async with self._write_lock:
                yield

    async def _dead_letter(
        self,
        delivery: Delivery,
        reason: str,
        exc: BaseException | None,
        spec: HandlerSpec | None,
    ) -> Outcome:
        message = delivery.message
        dead = dead_letter_message(
            message,
            channel=self.channel,
            group=self.group,
            reason=reason,
            exception=exc,
            handler=spec.name if spec else None,
            attempts=delivery.attempt,
        )
        try:
            sent = await self._dead_letters.send(dead)
        except (MessageTooLargeError, InvalidNameError) as refused:
            # No retry can make this dead letter acceptable (even without its payload and
            # extension headers): retrying would hold the message, and every later one of
            # its key, forever. Say so loudly, with what identifies it, and move on.
            log.error(
                "cannot dead-letter %s %s from %s (%s), dropped after: %s; refused: %s",
                message.type,
                message.id,
                self.channel,
                message.partition_key,
                reason,
                refused,
            )
            await delivery.ack()
            return self._done(message, Outcome.DROPPED, spec)
        except Exception as publish_error:
            # Never lose it: if the dead-letter channel is unreachable, leave the message
            # with the transport and try again later.
            log.warning("cannot dead-letter %s (%s); will retry", message.id, publish_error)
            await delivery.nack(delay=self._retry.max_backoff / 4)
            return self._done(message, Outcome.RETRYING, spec)
        log.warning(
            "dead-lettered %s %s from %s: %s", message.type, message.id, self.channel, reason
        )
        if sent is not dead:
            log.warning("dead letter %s was over the size limit: sent without its payload", sent.id)
        await delivery.ack()
        return self._done(message, Outcome.DEAD_LETTERED, spec)

    def _done(self, message: Message, outcome: Outcome, spec: HandlerSpec | None) -> Outcome:
        if self._on_outcome is not None:
            self._on_outcome(message, outcome, spec)
        return outcome


# Outcome lived here before it had a module of its own; code importing it from here works.
__all__ = ["OUTAGE_PATIENCE", "OUTAGE_RETRY_CAP", "OutboxWriter", "Outcome", "Pipeline"]


def _apart(
    ready: list[tuple[int, Delivery, HandlerSpec, object]],
) -> list[list[tuple[int, Delivery, HandlerSpec, object]]]:
    """``ready`` cut into consecutive parts with no shard and no message id twice."""
    parts: list[list[tuple[int, Delivery, HandlerSpec, object]]] = []
    current: list[tuple[int, Delivery, HandlerSpec, object]] = []
    shards: set[int] = set()
    ids: set[str] = set()
    for entry in ready:
        delivery = entry[1]
        shard, message_id = delivery.shard, delivery.message.id
        if message_id in ids or (shard is not None and shard in shards):
            parts.append(current)
            current, shards, ids = [], set(), set()
        current.append(entry)
        ids.add(message_id)
        if shard is not None:
            shards.add(shard)
    if current:
        parts.append(current)
    return parts
