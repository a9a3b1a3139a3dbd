"""The delivery pipeline (DESIGN section 5): one message from receipt to acknowledgement.

    receive -> decode (fails: dead-letter at once, with the reason)
            -> open transaction -> inbox check (duplicate: ack and skip)
            -> handler (its sends and replies collected) -> outbox insert -> commit
            -> after-commit callbacks (Context.after_commit) -> ack

Each handler run passes through the middleware the pipeline is given (tracing, metrics,
log context: :mod:`~.middleware`) before it reaches the transactional unit.

A handler error rolls the whole transaction back (its business rows, its outgoing
messages and its inbox row), then the message is re-run a few times at once, then
redelivered with backoff by the transport, then dead-lettered with headers that say
why. Unknown types and unsupported MAJOR versions are dead-lettered at once (on event
channels, types the service does not handle are skipped instead). The consumer keeps
running through all of it: :meth:`Pipeline.process` never raises for a bad message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
from servicewire.transports.base import Delivery

log = logging.getLogger("servicewire.pipeline.unit_of_work")

OutboxWriter = Callable[[AsyncSession, Sequence[Message]], Awaitable[None]]


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
    ) -> None:
        self.service = service
        self.channel = channel
        self.group = group
        self._handlers = handlers
        self._sessions = sessions
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
        # Each handler run goes through the middleware (first outermost) to the unit.
        self._handle = chain(middleware, self._run_in_transaction)

    async def process(self, delivery: Delivery) -> Outcome:
        """Handle one delivery and settle it (ack, nack or dead-letter). Never raises."""
        message = delivery.message
        spec: HandlerSpec | None = None
        if self._authenticity is not None:
            # Before decoding: a forged payload never reaches a codec or a handler.
            try:
                self._authenticity.check(message)
            except SignatureError as exc:
                return await self._dead_letter(delivery, f"signature: {exc}", exc, None)
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

        last_error: BaseException | None = None
        run = Run(self.service, self.channel, self.group, spec, value, delivery)
        for _attempt in range(1 + self._retry.immediate):
            try:
                outcome = await self._handle(run)
            except PermanentError as exc:
                return await self._dead_letter(delivery, f"handler refused: {exc}", exc, spec)
            except Exception as exc:  # a handler's failure is data here, not a crash
                last_error = exc
                log.debug("handler %s failed on %s: %r", spec.name, message.id, exc)
                continue
            await delivery.ack()
            return self._done(message, outcome, spec)

        assert last_error is not None
        if self._retry.should_redeliver(delivery.attempt):
            delay = self._retry.redelivery_delay(delivery.attempt)
            log.info(
                "retrying %s %s (attempt %d) in %.2fs after %s: %s",
                message.type,
                message.id,
                delivery.attempt,
                delay,
                type(last_error).__name__,
                last_error,
            )
            await delivery.nack(delay=delay)
            return self._done(message, Outcome.RETRYING, spec)
        reason = f"handler failed {delivery.attempt} deliveries x {1 + self._retry.immediate} runs"
        return await self._dead_letter(delivery, reason, last_error, spec)

    async def _run_in_transaction(self, run: Run) -> Outcome:
        message, delivery, spec = run.message, run.delivery, run.spec
        async with self._locked(), self._sessions() as session:
            async with session.begin():
                if not await inbox.claim(session, self.group, message.id):
                    return Outcome.DUPLICATE
                # A fresh context per run: nothing from a failed run leaks into the next.
                ctx = Context(
                    session,
                    source=self.service,
                    codec=self._out_codec,
                    message=message,
                    attempt=delivery.attempt,
                    default_reply_to=self._reply_to,
                )
                await spec.func(run.value, ctx)
                if ctx.outgoing:
                    await self._write_outbox(session, ctx.outgoing)
        if ctx.outgoing and self._on_commit is not None:
            self._on_commit(ctx.outgoing)
        # Committed, and out of the write lock: a callback may start a transaction.
        await run_after_commit(ctx.committed_callbacks)
        return Outcome.HANDLED

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
__all__ = ["OutboxWriter", "Outcome", "Pipeline"]
