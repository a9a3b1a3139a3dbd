"""The service: handlers registered by contract type, and everything around them.

A :class:`Service` owns its database engine, its transport, its outbox relay task and
its consumers. Handlers are plain async functions registered with decorators on the
service object (as in FastStream); each receives the decoded contract and a
:class:`~servicewire.pipeline.context.Context`::

    orders = Service(
        "order-service",
        db="sqlite:///orders.db",
        transport="memory://",
        options=ServiceOptions(concurrency=8),          # optional: how it behaves
    )

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
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from servicewire.codecs.serialization import shared_codecs
from servicewire.errors import ServiceStateError
from servicewire.messaging.channels import reply_channel, validate_name
from servicewire.messaging.contracts import Command, Contract, Event, Reply
from servicewire.messaging.ids import new_id
from servicewire.messaging.message import Message
from servicewire.outbox.writer import PendingRows
from servicewire.pipeline.after_commit import run_after_commit
from servicewire.pipeline.context import Context
from servicewire.pipeline.deadletter import DeadLetterPublisher
from servicewire.pipeline.handlers import HandlerFunc, HandlerKind, HandlerRegistry, HandlerSpec
from servicewire.pipeline.middleware import Middleware
from servicewire.pipeline.middleware.logging import log_context
from servicewire.pipeline.middleware.metrics import handler_timing
from servicewire.pipeline.middleware.tracing import handler_tracing
from servicewire.pipeline.outcome import Outcome
from servicewire.pipeline.unit_of_work import OutboxWriter, Pipeline
from servicewire.security.identity import MessageAuthenticity
from servicewire.service.consumers import Batching, Consumers, clean_inbox_forever
from servicewire.service.description import channel_uses
from servicewire.service.options import ServiceOptions
from servicewire.service.outbox_writing import outbox_writer
from servicewire.service.request_reply import InstanceRequests
from servicewire.service.resources import (
    connect,
    create_tables,
    open_engine,
    remove_sqlite_files,
    start_relay,
)
from servicewire.service.stopping import run_steps
from servicewire.storage.asyncpg_direct import AsyncpgDirect
from servicewire.storage.held_connections import HeldConnections
from servicewire.telemetry.metrics import record_outcome
from servicewire.timeouts import stop_task
from servicewire.transports import Delivery, Transport

if TYPE_CHECKING:
    from servicewire.messaging.channels import ChannelUse

log = logging.getLogger("servicewire.service.service")

F = TypeVar("F", bound=HandlerFunc)

TELEMETRY: tuple[Middleware, ...] = (log_context, handler_tracing, handler_timing)
"""Around every handler run, outermost first: the span and the timing see log context."""


class Service:
    """One microservice: its handlers, database, transport, relay and consumers."""

    def __init__(
        self,
        name: str,
        *,
        db: str | AsyncEngine = "sqlite://",
        transport: str | Transport = "memory://",
        options: ServiceOptions | None = None,
    ) -> None:
        """``db`` and ``transport`` say where it runs; ``options`` how (:class:`ServiceOptions`)."""
        self.name = validate_name(name, "service")
        self.options = options or ServiceOptions()
        """How this service behaves (read-only: the service is made from it)."""
        opts = self.options
        signatures = opts.signatures
        self.authenticity = MessageAuthenticity(
            signer=signatures.signer, verifier=signatures.verifier, required=signatures.required
        )
        """Signs what this service sends; checks what it receives (servicewire.security.signing)."""
        self.instance_id = opts.instance_id or new_id()[-12:]
        self.retry = opts.retry
        self.codecs = opts.codecs or shared_codecs()
        self.content_type = opts.content_type
        self.codecs.for_content_type(opts.content_type)  # fail early on an unknown format
        self.concurrency = opts.concurrency
        self.prefetch = opts.prefetch
        self.inbox_retention = opts.inbox_retention
        self.stats: Counter[str] = Counter()
        """Outcomes so far: handled, duplicate, ignored, retrying, dead-lettered."""
        self.handlers = HandlerRegistry()
        self._db = db
        self._transport_spec = transport
        self._middleware = (*TELEMETRY, *opts.middleware)
        self._declared_sends: list[type[Contract]] = []
        self.journal = opts.journal
        """Where sends and receives are recorded, if anywhere (:mod:`~.telemetry.journal`)."""

        self.engine: AsyncEngine | None = None
        self._temp_db: str | None = None
        self.transport: Transport | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._outbox_writer: OutboxWriter | None = None  # made by start()
        self._held: HeldConnections | None = None  # open connections, reused (start)
        self._relay: Any = None
        self._write_lock: asyncio.Lock | None = None
        self.pipelines: dict[tuple[str, str], Pipeline] = {}
        """The pipeline of each (channel, group) consumed, once started."""
        self._subscribe = True
        self._consumers = Consumers()
        self._background: list[asyncio.Task[None]] = []
        self._requests = InstanceRequests(
            self.instance_reply_channel,
            self.instance_id,
            authenticity=self.authenticity,
            codecs=self.codecs,
            transaction=self.transaction,
        )
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
        from servicewire.storage.database import dialect_of

        self.engine, self._temp_db = open_engine(self._db, self.name)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Kept open between units of work, shared by the pipelines and transaction():
        # two, the transactions a pipeline runs at once by default.
        self._held = HeldConnections(self.engine, keep=2)
        self._outbox_writer = outbox_writer(self.authenticity, self.name)
        if dialect_of(self.engine) == "sqlite":
            self._write_lock = asyncio.Lock()
        if self.options.create_tables:
            await create_tables(self.engine, self.options.tables)
        self.transport = await connect(self._transport_spec)
        dead_letters = DeadLetterPublisher(self.transport)
        if self.options.relay:
            self._relay = await start_relay(
                self.engine,
                self.transport,
                poll_interval=self.options.relay_poll_interval,
                name=f"{self.name}-relay",
            )
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
                outbox_writer=self._outbox_writer,
                dead_letters=dead_letters,
                retry=self.retry,
                default_reply_to=default_reply_to,
                write_lock=self._write_lock,
                on_commit=self._committed,
                on_outcome=self._record,
                authenticity=self.authenticity,
                middleware=self._middleware,
                connections=self._held,
            )
            self.pipelines[(channel, group)] = pipeline
            if not self._subscribe:
                continue  # a test harness drives the pipelines directly
            await self._consumers.add(
                self.transport,
                channel,
                group,
                pipeline,
                prefetch=self.prefetch,
                concurrency=self.concurrency,
                batching=Batching(self.options.batch_size, self.options.batch_linger),
            )
        cleaner = clean_inbox_forever(
            self.engine, self.inbox_retention, self.options.inbox_cleanup_every, self.name
        )
        self._background.append(asyncio.create_task(cleaner))
        self._started = True
        self._stopping = False
        log.info("%s started (%d subscriptions)", self.name, len(self._consumers.subscriptions))

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, finish those in flight, flush the outbox, close.

        Every step runs even when an earlier one fails (each failure is logged); the
        service is stopped afterwards, and then the first failure is raised, so that a
        caller knows the shutdown was not clean (messages may be left in the outbox).
        """
        if not self._started:
            return
        self._stopping = True
        first = await run_steps(
            self.name,
            [
                ("consumers", lambda: self._consumers.stop(timeout)),
                ("reply router", self._requests.close),
                ("background tasks", self._cancel_background),
                ("relay", lambda: self._stop_relay(timeout)),
                ("transport", self._close_transport),
                ("held connections", self._close_held),
                ("engine", self._dispose_engine),
                ("temporary database", self._remove_temp_db),
            ],
        )
        self.pipelines.clear()
        self._consumers.clear()
        self._background.clear()
        self._relay = None
        self._started = False
        log.info("%s stopped%s", self.name, "" if first is None else " (with errors)")
        if first is not None:
            raise first

    async def _cancel_background(self) -> None:
        for task in self._background:
            # Loops over database and broker calls: a cancel lost inside a client
            # library's wait_for must not leave one running (see stop_task).
            await stop_task(task)

    async def _stop_relay(self, timeout: float) -> None:
        if self._relay is None:
            return
        try:
            await self._relay.drain(timeout=min(timeout, 10.0))
        except Exception as exc:
            # Not a failure of stopping: the rows stay in the outbox for the next start.
            log.warning("%s: outbox not drained before stopping: %s", self.name, exc)
        await self._relay.stop()

    async def _close_transport(self) -> None:
        if self.transport is not None:
            await self.transport.close()

    async def _close_held(self) -> None:
        # Kept (closed): a unit of work still finishing uses the pool from now on.
        if self._held is not None:
            await self._held.close()

    async def _dispose_engine(self) -> None:
        if self.engine is not None and not isinstance(self._db, AsyncEngine):
            await self.engine.dispose()

    async def _remove_temp_db(self) -> None:
        if self._temp_db is not None:
            remove_sqlite_files(self._temp_db)
            self._temp_db = None

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
        if exc[0] is None:
            await self.stop()
            return
        # The body's own error is the one to see; a failure to stop is logged by stop().
        with contextlib.suppress(Exception):
            await self.stop()

    # Consuming ----------------------------------------------------------------------------

    def _record(self, message: Message, outcome: Outcome, spec: HandlerSpec | None) -> None:
        self.stats[outcome.value] += 1
        record_outcome(self.name, message, outcome.value)
        if self.journal is not None and outcome is not Outcome.IGNORED:
            self.journal.record_receive(self.name, message, outcome.value)
        if self.options.on_outcome is not None:
            self.options.on_outcome(message, outcome, spec)

    def _committed(self, sent: list[Message]) -> None:
        """Messages reached the outbox in a committed transaction."""
        if self._relay is not None:
            self._relay.wake_for(sent)
        if self.journal is not None:
            for message in sent:
                self.journal.record_send(self.name, message)

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
            ctx.after_commit(lambda: print("committed"))  # runs after the block commits
        """
        self._require_started()
        assert self._sessions is not None and self.engine is not None
        sessions = self._sessions
        lock = self._write_lock or contextlib.nullcontext()
        assert self._held is not None
        async with lock, self._held.connection() as conn, conn.begin():
            # The ORM session is opened only when the block asks for ctx.session (it
            # costs CPU on every transaction), joined to this transaction: its commit()
            # cannot end the block early.
            ctx = Context(
                open_session=lambda: sessions(bind=conn, join_transaction_mode="rollback_only"),
                source=self.name,
                codec=self.codecs.for_content_type(self.content_type),
                default_reply_to=self.reply_channel if self._has_reply_handlers() else None,
                connection=conn,
            )
            try:
                yield ctx
                session = ctx.opened_session
                if session is not None and (session.new or session.dirty or session.deleted):
                    await session.flush()
                if ctx.outgoing:
                    await self._write_outbox_rows(conn, ctx.outgoing)
            finally:
                session = ctx.opened_session
                if session is not None:
                    await session.close()  # rollback_only: leaves the transaction alone
        if ctx.outgoing:
            self._committed(ctx.outgoing)
        await run_after_commit(ctx.committed_callbacks)

    async def _write_outbox_rows(self, conn: AsyncConnection, messages: list[Message]) -> None:
        """``messages`` into the outbox in ``conn``'s transaction, as the pipeline writes
        them: one statement, straight on asyncpg once the transaction has begun there."""
        assert self._outbox_writer is not None
        rows = PendingRows()
        await self._outbox_writer(rows, messages)
        await rows.flush(conn, direct=await AsyncpgDirect.begun(conn))

    async def send(self, command: Command, **options: Any) -> Message:
        """Send one command in a transaction of its own."""
        async with self.transaction() as ctx:
            return await ctx.send(command, **options)

    async def publish(self, event: Event, **options: Any) -> Message:
        """Publish one event in a transaction of its own."""
        async with self.transaction() as ctx:
            return await ctx.publish(event, **options)

    async def request(
        self, command: Command, *, timeout: float = 10.0, destination: str | None = None
    ) -> Reply:
        """Send ``command`` and wait for its reply (success or failure) up to ``timeout``.

        Raises :class:`~servicewire.errors.RequestTimeoutError` when none comes.
        """
        self._require_started()
        assert self.transport is not None
        return await self._requests.request(
            self.transport, command, timeout=timeout, destination=destination
        )

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
        assert self.transport is not None
        return await self._requests.scatter(
            self.transport,
            request,
            timeout=timeout,
            destinations=destinations,
            expected=expected,
        )

    # Introspection --------------------------------------------------------------------

    def channel_uses(self) -> list[ChannelUse]:
        """What this service receives and sends, per channel (for AsyncAPI documents)."""
        return channel_uses(self.handlers.specs(), self._declared_sends)

    @property
    def relay(self) -> Any:
        """The relay task's object, when the service runs one."""
        return self._relay

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no delivery is being processed (for tests and demos)."""
        deadline = time.monotonic() + timeout
        while self._consumers.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.005)


def handled(service: Service) -> int:
    """Messages a service has handled so far (all outcomes but retrying)."""
    return sum(v for k, v in service.stats.items() if k != Outcome.RETRYING.value)


__all__ = ["Delivery", "Service", "handled"]
