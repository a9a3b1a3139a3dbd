"""The service: handlers registered by contract type, and everything around them.

A :class:`Service` owns its database engine, its transport, its outbox relay task and
its consumers. Handlers are plain async functions registered with decorators on the
service object (as in FastStream); each receives the decoded contract and a
:class:`~servicewire.pipeline.context.Context`::

    orders = Service("order-service", db="sqlite:///orders.db", transport="memory://")

    @orders.handles(ApproveOrder)                       # a command, point to point
    async def approve(cmd: ApproveOrder, ctx: Context) -> None:
        await ctx.session.execute(update(order_table).where(...).values(state="APPROVED"))
        await ctx.publish(OrderApproved(order_id=cmd.order_id))
        await ctx.reply(OrderApprovalDone(order_id=cmd.order_id))

    @orders.subscribes(TicketCreated)                   # an event, publish-subscribe
    async def on_ticket(evt: TicketCreated, ctx: Context) -> None: ...

    @orders.on_reply(ConsumerValidated)                 # a reply to a command we sent
    async def on_validated(reply: ConsumerValidated, ctx: Context) -> None: ...

    async with orders:                                  # start(); ...; stop()
        reply = await orders.request(CheckCredit(consumer_id="c-1"), timeout=5)

Why decorators on a service object rather than a Nameko-style class: handlers stay
plain functions a test can call directly; the service object is the one place that
owns resources (engine, transport, relay), so lifecycle and configuration are explicit
and nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from servicewire.codecs import CodecRegistry
from servicewire.codecs.serialization import from_message, shared_codecs
from servicewire.errors import RequestTimeoutError, ServiceStateError
from servicewire.messaging.channels import reply_channel, validate_name
from servicewire.messaging.contracts import Command, Contract, Event, Reply
from servicewire.messaging.ids import new_id
from servicewire.messaging.message import Message
from servicewire.pipeline import inbox
from servicewire.pipeline.context import Context
from servicewire.pipeline.deadletter import DeadLetterPublisher
from servicewire.pipeline.handlers import HandlerFunc, HandlerKind, HandlerRegistry, HandlerSpec
from servicewire.pipeline.retry import RetryPolicy
from servicewire.pipeline.unit_of_work import OutboxWriter, Outcome, Pipeline
from servicewire.security.identity import MessageAuthenticity
from servicewire.security.signing import SignatureError, Signer, Verifier
from servicewire.service.requests import PendingReplies
from servicewire.telemetry.journal import Journal
from servicewire.telemetry.metrics import record_outcome
from servicewire.telemetry.tracing import traced_outbox_writer
from servicewire.transports import Delivery, Subscription, Transport, transport_from_url

if TYPE_CHECKING:
    from servicewire.messaging.channels import ChannelUse

log = logging.getLogger("servicewire.service.service")

F = TypeVar("F", bound=HandlerFunc)


class Service:
    """One microservice: its handlers, database, transport, relay and consumers."""

    def __init__(
        self,
        name: str,
        *,
        db: str | AsyncEngine = "sqlite://",
        transport: str | Transport = "memory://",
        content_type: str = "application/json",
        codecs: CodecRegistry | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int = 32,
        prefetch: int = 64,
        relay: bool = True,
        relay_poll_interval: float = 0.25,  # commits in this process wake the relay at once
        create_tables: bool = True,  # servicewire's tables and ``tables``, if missing
        inbox_retention: timedelta = inbox.DEFAULT_RETENTION,
        inbox_cleanup_every: float = 3600.0,
        instance_id: str | None = None,
        tables: Sequence[MetaData] = (),
        journal: Journal | None = None,
        on_outcome: Callable[[Message, Outcome, HandlerSpec | None], None] | None = None,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        require_signatures: bool = False,
    ) -> None:
        self.name = validate_name(name, "service")
        self.authenticity = MessageAuthenticity(
            signer=signer, verifier=verifier, required=require_signatures
        )
        """Signs what this service sends; checks what it receives (servicewire.security.signing)."""
        self.instance_id = instance_id or new_id()[-12:]
        self.retry = retry or RetryPolicy()
        if inbox_retention <= self.retry.horizon():
            raise ValueError(
                f"inbox retention {inbox_retention} must exceed the retry horizon "
                f"{self.retry.horizon()}, or late redeliveries would be processed twice"
            )
        self.codecs = codecs or shared_codecs()
        self.content_type = content_type
        self.codecs.for_content_type(content_type)  # fail early on an unknown format
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.inbox_retention = inbox_retention
        self.stats: Counter[str] = Counter()
        """Outcomes so far: handled, duplicate, ignored, retrying, dead-lettered."""
        self.handlers = HandlerRegistry()
        self._db = db
        self._transport_spec = transport
        self._relay_enabled = relay
        self._relay_poll_interval = relay_poll_interval
        self._create_tables = create_tables
        self._cleanup_every = inbox_cleanup_every
        self._on_outcome_hook = on_outcome
        self._declared_sends: list[type[Contract]] = []
        self._app_tables = list(tables)
        self.journal = journal
        """Where sends and receives are recorded, if anywhere (:mod:`~.telemetry.journal`)."""

        self.engine: AsyncEngine | None = None
        self._temp_db: str | None = None
        self.transport: Transport | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._relay: Any = None
        self._write_lock: asyncio.Lock | None = None
        self._subscriptions: list[Subscription] = []
        self.pipelines: dict[tuple[str, str], Pipeline] = {}
        """The pipeline of each (channel, group) consumed, once started."""
        self._subscribe = True
        self._consumers: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[Outcome]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._pending = PendingReplies()
        self._instance_replies: Subscription | None = None
        self._started = False
        self._stopping = False

    # Registration -------------------------------------------------------------------------

    @property
    def reply_channel(self) -> str:
        """The channel this service's reply handlers read: ``<name>.replies``."""
        return f"{self.name}.replies"

    @property
    def instance_reply_channel(self) -> str:
        """This instance's own reply channel, for :meth:`request` and :meth:`scatter`."""
        return reply_channel(self.name, self.instance_id)

    def _register(
        self, contract: type[Contract], kind: HandlerKind, channel: str | None, group: str | None
    ) -> Callable[[F], F]:
        if kind is HandlerKind.REPLY:
            target = channel or self.reply_channel
        else:
            target = channel or contract.default_channel() or ""
            if not target:
                raise ValueError(f"{contract.contract_name()} has no channel; pass channel=")
        validate_name(target, "channel")

        def decorator(func: F) -> F:
            self.handlers.add(HandlerSpec(contract, func, kind, target, group or self.name))
            return func

        return decorator

    def handles(self, contract: type[Command], *, channel: str | None = None) -> Callable[[F], F]:
        """Register a command handler (point to point: this service's group competes)."""
        return self._register(contract, HandlerKind.COMMAND, channel, None)

    def subscribes(
        self, contract: type[Event], *, channel: str | None = None, group: str | None = None
    ) -> Callable[[F], F]:
        """Register an event handler (publish-subscribe: every service's group gets it)."""
        return self._register(contract, HandlerKind.EVENT, channel, group)

    def on_reply(self, contract: type[Reply]) -> Callable[[F], F]:
        """Register a reply handler for replies to commands sent with ``ctx.send``."""
        return self._register(contract, HandlerKind.REPLY, None, None)

    def sends(self, *contracts: type[Contract]) -> None:
        """Declare the commands, events and replies this service sends (for AsyncAPI)."""
        self._declared_sends.extend(contracts)

    def _has_reply_handlers(self) -> bool:
        return any(s.kind is HandlerKind.REPLY for s in self.handlers.specs())

    # Lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create tables if asked, start the relay and the consumers."""
        if self._started:
            return
        from servicewire.storage.database import create_engine, dialect_of

        if isinstance(self._db, AsyncEngine):
            self.engine = self._db
        else:
            url = self._db_url()
            # SQLite has one writer at a time: with one connection, the relay and the
            # handlers queue for it in asyncio instead of sleeping in SQLite's busy
            # handler (which backs off in steps of up to 100 ms).
            single = {"pool_size": 1, "max_overflow": 0} if dialect_of(url) == "sqlite" else {}
            self.engine = create_engine(url, **single)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        if dialect_of(self.engine) == "sqlite":
            self._write_lock = asyncio.Lock()
        if self._create_tables:
            from servicewire.storage.schema import all_tables_metadata

            async with self.engine.begin() as conn:
                await conn.run_sync(all_tables_metadata().create_all)
                for app_metadata in self._app_tables:
                    await conn.run_sync(app_metadata.create_all)
        transport = self._transport_spec
        self.transport = transport_from_url(transport) if isinstance(transport, str) else transport
        await self.transport.connect()
        dead_letters = DeadLetterPublisher(self.transport)
        if self._relay_enabled:
            from servicewire.relay.polling import PollingRelay

            self._relay = PollingRelay(
                self.engine,
                self.transport,
                poll_interval=self._relay_poll_interval,
                name=f"{self.name}-relay",
            )
            await self._relay.start()
        default_reply_to = self.reply_channel if self._has_reply_handlers() else None
        for channel, group in self.handlers.subscriptions():
            pipeline = Pipeline(
                service=self.name,
                channel=channel,
                group=group,
                handlers=self.handlers,
                sessions=self._sessions,
                codecs=self.codecs,
                default_codec=self.content_type,
                outbox_writer=self._outbox_writer(),
                dead_letters=dead_letters,
                retry=self.retry,
                default_reply_to=default_reply_to,
                write_lock=self._write_lock,
                on_commit=self._committed,
                on_outcome=self._record,
                authenticity=self.authenticity,
            )
            self.pipelines[(channel, group)] = pipeline
            if not self._subscribe:
                continue  # a test harness drives the pipelines directly
            sub = await self.transport.subscribe(channel, group, prefetch=self.prefetch)
            self._subscriptions.append(sub)
            self._consumers.append(asyncio.create_task(self._consume(sub, pipeline)))
        self._background.append(asyncio.create_task(self._clean_inbox()))
        self._started = True
        self._stopping = False
        log.info("%s started (%d subscriptions)", self.name, len(self._subscriptions))

    def _db_url(self) -> str:
        """The database URL to open; an in-memory SQLite becomes a temporary file.

        An in-memory SQLite database lives in one connection, but the relay and the
        handlers need connections of their own (each with its own transaction), so a
        private temporary file stands in for it and is removed at stop.
        """
        assert isinstance(self._db, str)
        if self._db in (
            "sqlite://",
            "sqlite:///:memory:",
            "sqlite+aiosqlite://",
            "sqlite+inline://",
        ):
            handle, path = tempfile.mkstemp(prefix=f"servicewire-{self.name}-", suffix=".db")
            os.close(handle)
            self._temp_db = path
            return f"sqlite:///{path}"
        return self._db

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, finish those in flight, flush the outbox, close."""
        if not self._started:
            return
        self._stopping = True
        for task in self._consumers:
            task.cancel()
        for task in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=timeout)
        for sub in self._subscriptions:
            await sub.close()
        if self._instance_replies is not None:
            await self._instance_replies.close()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._relay is not None:
            with contextlib.suppress(Exception):
                await self._relay.drain(timeout=min(timeout, 10.0))
            await self._relay.stop()
        if self.transport is not None:
            await self.transport.close()
        if self.engine is not None and not isinstance(self._db, AsyncEngine):
            await self.engine.dispose()
        if self._temp_db is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(self._temp_db + suffix)
            self._temp_db = None
        self._subscriptions.clear()
        self.pipelines.clear()
        self._consumers.clear()
        self._background.clear()
        self._instance_replies = None
        self._relay = None
        self._started = False
        log.info("%s stopped", self.name)

    async def run(self) -> None:
        """Start, then run until SIGTERM or SIGINT, then stop gracefully."""
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # Consuming ----------------------------------------------------------------------------

    async def _consume(self, sub: Subscription, pipeline: Pipeline) -> None:
        # Per-key order is the transport's job (one unsettled delivery per shard), so
        # deliveries can be processed concurrently here up to `concurrency`.
        slots = asyncio.Semaphore(self.concurrency)
        try:
            async for delivery in sub:
                await slots.acquire()
                task = asyncio.create_task(pipeline.process(delivery))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                task.add_done_callback(lambda _t: slots.release())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer of %s/%s stopped", sub.channel, sub.group)

    def _record(self, message: Message, outcome: Outcome, spec: HandlerSpec | None) -> None:
        self.stats[outcome.value] += 1
        record_outcome(self.name, message, outcome.value)
        if self.journal is not None and outcome is not Outcome.IGNORED:
            self.journal.record_receive(self.name, message, outcome.value)
        if self._on_outcome_hook is not None:
            self._on_outcome_hook(message, outcome, spec)

    def _committed(self, sent: list[Message]) -> None:
        """Messages reached the outbox in a committed transaction."""
        if self._relay is not None:
            self._relay.wake()
        if self.journal is not None:
            for message in sent:
                self.journal.record_send(self.name, message)

    async def _clean_inbox(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_every)
            try:
                assert self.engine is not None
                removed = await inbox.purge_expired(self.engine, self.inbox_retention)
                if removed:
                    log.info("%s: removed %d expired inbox ids", self.name, removed)
            except Exception:
                log.exception("inbox cleanup failed; will try again")

    # Units of work and requests --------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started or self._sessions is None:
            raise ServiceStateError(f"service {self.name} is not started")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Context]:
        """A unit of work outside any handler (a REST endpoint, say)::

        async with service.transaction() as ctx:
            ctx.session.add(order)
            await ctx.send(ValidateConsumer(...))
        """
        self._require_started()
        assert self._sessions is not None
        lock = self._write_lock or contextlib.nullcontext()
        async with lock, self._sessions() as session:
            async with session.begin():
                ctx = Context(
                    session,
                    source=self.name,
                    codec=self.codecs.for_content_type(self.content_type),
                    default_reply_to=self.reply_channel if self._has_reply_handlers() else None,
                )
                yield ctx
                if ctx.outgoing:
                    await self._outbox_writer()(session, ctx.outgoing)
        if ctx.outgoing:
            self._committed(ctx.outgoing)

    def _outbox_writer(self) -> OutboxWriter:
        """Writes outgoing messages to the outbox: signed (if configured), in a span."""
        from servicewire.outbox.writer import write_messages

        if self.authenticity.signer is None:
            return traced_outbox_writer(write_messages, self.name)
        sign_all = self.authenticity.sign_all

        async def write_signed(session: AsyncSession, messages: Sequence[Message]) -> None:
            # Signed last, just before the write: nothing may change a header after.
            await write_messages(session, sign_all(messages))

        return traced_outbox_writer(write_signed, self.name)

    async def send(self, command: Command, **options: Any) -> Message:
        """Send one command in a transaction of its own."""
        async with self.transaction() as ctx:
            return await ctx.send(command, **options)

    async def publish(self, event: Event, **options: Any) -> Message:
        """Publish one event in a transaction of its own."""
        async with self.transaction() as ctx:
            return await ctx.publish(event, **options)

    async def _ensure_instance_replies(self) -> None:
        if self._instance_replies is not None:
            return
        assert self.transport is not None
        sub = await self.transport.subscribe(self.instance_reply_channel, self.instance_id)
        self._instance_replies = sub

        async def route() -> None:
            async for delivery in sub:
                try:
                    self.authenticity.check(delivery.message)
                except SignatureError as exc:
                    # A forged reply must not complete a request; nobody else reads it.
                    log.warning("dropped reply %s: signature: %s", delivery.message.id, exc)
                else:
                    self._pending.deliver(delivery.message)
                await delivery.ack()

        self._background.append(asyncio.create_task(route()))

    async def request(
        self, command: Command, *, timeout: float = 10.0, destination: str | None = None
    ) -> Reply:
        """Send ``command`` and wait for its reply (success or failure) up to ``timeout``.

        Raises :class:`~servicewire.errors.RequestTimeoutError` when none comes.
        """
        self._require_started()
        await self._ensure_instance_replies()
        correlation_id = new_id()
        waiter = self._pending.expect(correlation_id)
        await self.send(
            command,
            destination=destination,
            reply_to=self.instance_reply_channel,
            correlation_id=correlation_id,
        )
        message = await waiter.one(timeout)
        if message is None:
            raise RequestTimeoutError(command.contract_name(), correlation_id, timeout)
        return self._decode_reply(message)

    async def scatter(
        self,
        request: Command | Event,
        *,
        timeout: float,
        destinations: Sequence[str] | None = None,
        expected: int | None = None,
    ) -> list[Reply]:
        """Publish/async responses: one request, replies from many, gathered until a deadline.

        A command goes to each of ``destinations`` (or its channel); an event is
        published once and every subscriber may answer. Returns the replies that
        arrived before ``timeout`` (or as soon as ``expected`` have).
        """
        self._require_started()
        await self._ensure_instance_replies()
        correlation_id = new_id()
        waiter = self._pending.expect(correlation_id)
        deadline = time.monotonic() + timeout
        async with self.transaction() as ctx:
            if isinstance(request, Event):
                await ctx.publish(
                    request,
                    headers={
                        "replyto": self.instance_reply_channel,
                        "correlationid": correlation_id,
                    },
                )
            else:
                for destination in destinations or [None]:  # type: ignore[list-item]
                    await ctx.send(
                        request,
                        destination=destination,
                        reply_to=self.instance_reply_channel,
                        correlation_id=correlation_id,
                    )
        messages = await waiter.until(deadline, expected)
        return [self._decode_reply(m) for m in messages]

    def _decode_reply(self, message: Message) -> Reply:
        value = from_message(message, codecs=self.codecs)
        if not isinstance(value, Reply):
            raise TypeError(f"expected a reply, got {message.type}")
        return value

    # Introspection --------------------------------------------------------------------

    def channel_uses(self) -> list[ChannelUse]:
        """What this service receives and sends, per channel (for AsyncAPI documents)."""
        from servicewire.messaging.channels import ChannelUse

        receives: dict[str, list[type[Contract]]] = {}
        for spec in self.handlers.specs():
            receives.setdefault(spec.channel, []).append(spec.contract)
        uses = [ChannelUse(ch, "receive", cs) for ch, cs in receives.items()]
        sends: dict[str, list[type[Contract]]] = {}
        for contract in self._declared_sends:
            channel = contract.default_channel() or "(reply-to)"
            sends.setdefault(channel, []).append(contract)
        uses.extend(ChannelUse(ch, "send", cs) for ch, cs in sends.items())
        return uses

    @property
    def relay(self) -> Any:
        """The relay task's object, when the service runs one."""
        return self._relay

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no delivery is being processed (for tests and demos)."""
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.005)


def handled(service: Service) -> int:
    """Messages a service has handled so far (all outcomes but retrying)."""
    return sum(v for k, v in service.stats.items() if k != Outcome.RETRYING.value)


__all__ = ["Delivery", "Service", "handled"]
