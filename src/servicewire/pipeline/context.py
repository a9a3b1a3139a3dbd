"""What a handler receives besides its message: the transaction and the ways to talk.

Everything a handler sends goes to the outbox in the handler's own database
transaction, so it leaves the service exactly when the transaction commits::

    @service.handles(ValidateConsumer)
    async def validate(cmd: ValidateConsumer, ctx: Context) -> None:
        consumer = await ctx.session.get(ConsumerRow, cmd.consumer_id)
        if consumer is None:
            await ctx.reply(ConsumerValidationFailed(reason="unknown consumer"))
        else:
            await ctx.reply(ConsumerValidated(consumer_id=cmd.consumer_id))
            await ctx.publish(ConsumerChecked(consumer_id=cmd.consumer_id))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from servicewire.codecs import Codec
from servicewire.codecs.serialization import to_message
from servicewire.messaging import headers as h
from servicewire.messaging.contracts import Command, Contract, Event, Reply
from servicewire.messaging.message import Headers, Message
from servicewire.pipeline.after_commit import AfterCommit
from servicewire.telemetry.tracing import current_trace_headers

# Headers an outgoing message inherits from the one being handled: the conversation
# (correlation) and the trace continue across the hop.
# Passed on unchanged while tracing is off; with it on, the propagators write them.
_PASSED_ON = (h.TRACEPARENT, h.TRACESTATE, h.BAGGAGE)


class Context:
    """The handler's view of one delivery (or of a unit of work started by the service)."""

    __slots__ = (
        "_codec",
        "_committed_callbacks",
        "_connection",
        "_default_reply_to",
        "_open_session",
        "_session",
        "_source",
        "attempt",
        "message",
        "outgoing",
    )

    def __init__(
        self,
        session: AsyncSession | None = None,
        *,
        source: str,
        codec: Codec,
        message: Message | None = None,
        attempt: int = 1,
        default_reply_to: str | None = None,
        connection: AsyncConnection | None = None,
        open_session: Callable[[], AsyncSession] | None = None,
    ) -> None:
        if session is None and open_session is None:
            raise TypeError("a Context needs a session or a way to open one")
        self._session = session
        # The pipeline passes ``open_session``: a session costs CPU on every
        # transaction, and most handlers use ctx.connection or no table at all.
        self._open_session = open_session
        self._connection = connection
        self.message = message
        """The message being handled (``None`` in a unit of work started by the service)."""
        self.attempt = attempt
        """Delivery attempt number, from 1."""
        self.outgoing: list[Message] = []
        """Messages sent so far; written to the outbox when the transaction commits."""
        self._source = source
        self._codec = codec
        self._default_reply_to = default_reply_to
        self._committed_callbacks: list[AfterCommit] = []

    @property
    def session(self) -> AsyncSession:
        """The SQLAlchemy ORM session of the current transaction.

        In a handler it is opened on first use, on the transaction's connection; its
        ``commit()`` does not end the delivery's transaction (the pipeline commits)::

            consumer = await ctx.session.get(ConsumerRow, cmd.consumer_id)
        """
        if self._session is None:
            assert self._open_session is not None
            self._session = self._open_session()
        return self._session

    @property
    def opened_session(self) -> AsyncSession | None:
        """The session if :attr:`session` was asked for, else ``None`` (none is opened)."""
        return self._session

    @property
    def connection(self) -> AsyncConnection:
        """The current transaction's connection, for SQLAlchemy Core statements.

        The same transaction as :attr:`session`, without the ORM's bookkeeping: the
        faster way to run a handler's own ``insert()``/``update()``/``select()``::

            await ctx.connection.execute(tickets.insert().values(order_id=cmd.order_id))

        A statement run here does not flush ORM objects added to :attr:`session` first
        (``session.execute`` would): flush them yourself when you mix the two.
        """
        if self._connection is None:
            raise RuntimeError("this context was made without a connection; use ctx.session")
        return self._connection

    @property
    def headers(self) -> Headers:
        """Headers of the message being handled (empty outside a handler)."""
        return self.message.headers if self.message is not None else Headers()

    def after_commit(self, callback: AfterCommit) -> None:
        """Run ``callback`` (sync or async, no arguments) once this transaction commits.

        Never on rollback, never for a run that failed and is retried: each run has its
        own context. Callbacks run in registration order; one that raises is logged and
        does not undo or retry the delivery. For telling the world what is now true::

            await _set_state(ctx, order_id, OrderState.REJECTED)
            ctx.after_commit(lambda: watch.changed(order_id))
        """
        self._committed_callbacks.append(callback)

    @property
    def has_callbacks(self) -> bool:
        """Whether :meth:`after_commit` registered anything (skips work when not)."""
        return bool(self._committed_callbacks)

    @property
    def committed_callbacks(self) -> list[AfterCommit]:
        """What :meth:`after_commit` registered, in order (run by whoever commits)."""
        return list(self._committed_callbacks)

    def _derive(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        inherited: dict[str, str] = {}
        # With tracing on, the current span (handler or REST request) is the parent,
        # and the current baggage goes along.
        trace = current_trace_headers()
        if self.message is not None:
            headers = self.message.headers
            correlation = headers.get(h.CORRELATION_ID)
            inherited[h.CORRELATION_ID] = self.message.id if correlation is None else correlation
            if not trace:
                for name in _PASSED_ON:
                    value = headers.get(name)
                    if value is not None:
                        inherited[name] = value
        inherited.update(trace)
        if extra:
            inherited.update(extra)
        return inherited

    def _emit(
        self,
        value: Contract,
        *,
        destination: str | None,
        reply_to: str | None,
        partition_key: str | None,
        correlation_id: str | None,
        headers: Mapping[str, str] | None,
    ) -> Message:
        extra = self._derive(headers)
        if correlation_id is not None:
            extra[h.CORRELATION_ID] = correlation_id
        corr = extra.pop(h.CORRELATION_ID, None)
        message = to_message(
            value,
            destination=destination,
            codec=self._codec,
            source=self._source,
            correlation_id=corr,
            causation_id=self.message.id if self.message is not None else None,
            reply_to=reply_to,
            partition_key=partition_key,
            extra=extra,
        )
        self.outgoing.append(message)
        return message

    async def send(
        self,
        command: Command,
        *,
        destination: str | None = None,
        reply_to: str | None = None,
        partition_key: str | None = None,
        correlation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Message:
        """Send a command (point to point) to its channel; replies go to ``reply_to``.

        ``reply_to`` defaults to the service's reply channel when it has reply handlers.
        """
        return self._emit(
            command,
            destination=destination,
            reply_to=reply_to if reply_to is not None else self._default_reply_to,
            partition_key=partition_key,
            correlation_id=correlation_id,
            headers=headers,
        )

    async def publish(
        self,
        event: Event,
        *,
        channel: str | None = None,
        partition_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Message:
        """Publish an event to its channel (every subscribing group receives it)."""
        return self._emit(
            event,
            destination=channel,
            reply_to=None,
            partition_key=partition_key,
            correlation_id=None,
            headers=headers,
        )

    async def reply(self, reply: Reply, *, headers: Mapping[str, str] | None = None) -> Message:
        """Answer the command being handled, on its reply-to channel.

        As in Eventuate Tram, the reply carries the command's correlation id back, its
        causation id is the command's id, and it keeps the command's partition key so
        replies about one aggregate stay in order.
        """
        if self.message is None or not self.message.reply_to:
            raise ValueError("reply() needs a command with a reply-to channel")
        command = self.message
        return self._emit(
            reply,
            destination=command.reply_to,
            reply_to=None,
            partition_key=command.partition_key,
            correlation_id=command.correlation_id or command.id,
            headers=headers,
        )
