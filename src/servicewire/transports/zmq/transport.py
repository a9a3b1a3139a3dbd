"""``zmq+tcp://`` and ``zmq+ipc://`` — brokerless messaging through pyzmq (asyncio).

No broker: each process (a *node*) binds its own inbox, and a message goes straight
from the publishing process to a consuming one. The URL names a rendezvous address
where one node hosts a directory of members (:mod:`~servicewire.transports.zmq.membership`);
it carries no messages::

    transport = await connect_transport("zmq+tcp://127.0.0.1:5555")
    sub = await transport.subscribe("orders", "billing")     # every node knows on return
    await transport.publish(message)       # returns when each group's member holds it
    with confirm_handled():                # (as outbox relays publish)
        await transport.publish(message)   # returns when each group's member acked it

What holds, as on a broker: each group gets every message, members of a group share
them, per-key order with competing members (a shard of a group is routed to one
member; it moves only once that member has settled what it holds), redelivery after a
nack, and — while the sender lives — redelivery of what a departed or crashed member
did not ack (the sender keeps every message until a member acks it).

What brokerless does not give, declared in :attr:`ZmqTransport.capabilities`: no
buffering for a group that has no live member (those messages are not kept for it:
``durable=False``), nothing survives a restart of the processes (``persistent=False``),
and messages a sender held unacked are lost if the sender dies before they are acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import zmq
import zmq.asyncio

from servicewire.errors import ConnectionFailedError, PublishError, TransportError
from servicewire.messaging.channels import validate_name
from servicewire.messaging.message import Message
from servicewire.transports.base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Capabilities,
    Subscription,
    Transport,
)
from servicewire.transports.handled import handled_wanted
from servicewire.transports.zmq.membership import DirectoryClient, DirectoryHost, NodeState, View
from servicewire.transports.zmq.options import ZmqOptions
from servicewire.transports.zmq.routing import Router
from servicewire.transports.zmq.subscription import Incoming, ZmqSubscription
from servicewire.transports.zmq.wire import (
    ACK,
    MSG,
    RECEIPT,
    RETURN,
    decode_message,
    pack_returns,
    pack_tags,
)
from servicewire.urls import redact

log = logging.getLogger("servicewire.transports.zmq.transport")


class ZmqTransport(Transport):
    """One node: an inbox for its members, DEALERs to its peers, a directory link."""

    scheme = "zmq+tcp"
    capabilities = Capabilities(
        durable=False,
        persistent=False,
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=False,
        brokerless=True,
    )

    def __init__(self, url: str, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(url, max_message_size=max_message_size)
        self.options = ZmqOptions.from_url(url)
        self.node_id = uuid.uuid4().hex
        self.endpoint = ""
        self._ctx: zmq.asyncio.Context | None = None
        self._inbox: zmq.asyncio.Socket | None = None
        self._inbox_task: asyncio.Task[None] | None = None
        self._host: DirectoryHost | None = None
        self._directory: DirectoryClient | None = None
        self._router: Router | None = None
        self._subs: dict[str, ZmqSubscription] = {}
        self._publishing: set[asyncio.Future[Any]] = set()
        self._replies_out: dict[bytes, tuple[list[int], list[tuple[int, int]]]] = {}
        self._flush_scheduled = False
        self._closing = False

    # Connection -----------------------------------------------------------------------

    async def connect(self) -> None:
        ctx = zmq.asyncio.Context()
        inbox = ctx.socket(zmq.ROUTER)
        inbox.setsockopt(zmq.SNDHWM, 0)
        inbox.setsockopt(zmq.RCVHWM, 0)
        inbox.setsockopt(zmq.LINGER, 200)  # let the last acks leave on close
        try:
            inbox.bind(self.options.data_endpoint())
        except zmq.ZMQError as exc:
            inbox.close(linger=0)
            ctx.term()
            reason = f"cannot bind this node's inbox: {exc}"
            raise ConnectionFailedError("zmq", self.url, reason) from None
        self._ctx, self._inbox = ctx, inbox
        self._router = Router(ctx, self.options.shards)
        self.endpoint = self.options.advertised(inbox.getsockopt_string(zmq.LAST_ENDPOINT))
        self._inbox_task = asyncio.create_task(self._receive())
        try:
            self._take_over()
            self._directory = DirectoryClient(
                ctx,
                self.options.rendezvous,
                self._state,
                self._apply_view,
                heartbeat=self.options.heartbeat,
                take_over=self._take_over,
            )
            await self._directory.start()
        except BaseException:
            self._directory = None
            await self._shutdown()
            raise

    def _take_over(self) -> None:
        """Host the directory if nobody does (first node, or the host went away)."""
        if self._host is not None or self._ctx is None:
            return
        host = DirectoryHost(self._ctx, self.options.rendezvous, heartbeat=self.options.heartbeat)
        if host.bind():
            host.start()
            self._host = host

    def _state(self) -> NodeState:
        return {
            "node": self.node_id,
            "endpoint": self.endpoint,
            "members": sorted(
                [s.channel, s.group, s.member] for s in self._subs.values() if not s._leaving
            ),
        }

    def _apply_view(self, view: View) -> None:
        if self._router is not None:
            self._router.apply(view)

    # Publishing -----------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        handled = handled_wanted()
        router = self._sender([message], handled)
        receipts = router.start(message, message.destination, until_acked=handled)
        await self._confirmed(receipts, f"message {message.id}", handled)

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        handled = handled_wanted()
        router = self._sender(messages, handled)
        receipts: list[asyncio.Future[None]] = []
        for message in messages:
            receipts.extend(router.start(message, message.destination, until_acked=handled))
        await self._confirmed(receipts, f"a batch of {len(messages)} messages", handled)

    def _sender(self, messages: Sequence[Message], handled: bool) -> Router:
        """The router, once every message can go out (names, connection; no I/O yet).

        ``handled`` (inside :func:`~servicewire.transports.handled.confirm_handled`, as
        outbox relays publish): receipts are done on the members' acks, and a channel
        without any live member is a :class:`PublishError` before anything is sent, so
        the caller keeps its copy.
        """
        router = self._router
        for message in messages:
            channel = validate_name(message.destination, "channel")
            if self._inbox is None or router is None or self._closing:
                raise TransportError(f"zmq transport {redact(self.url)} is not connected")
            if handled and not router.has_members(channel):
                raise PublishError(
                    f"zmq: channel {channel!r} has no live member to handle message {message.id}"
                )
        if router is None:  # unreachable with messages (the loop raised); for mypy
            raise TransportError(f"zmq transport {redact(self.url)} is not connected")
        return router

    async def _confirmed(
        self, receipts: list[asyncio.Future[None]], what: str, handled: bool
    ) -> None:
        if not receipts:
            return
        waiting = asyncio.gather(*receipts)
        self._publishing.add(waiting)
        try:
            async with asyncio.timeout(self.options.timeout):
                await asyncio.shield(waiting)
        except TimeoutError:
            # The sender keeps routing what it sent (a member may still ack it later);
            # the caller keeps its copy and retries, so a retry may deliver it twice.
            # Nobody awaits ``waiting`` any more: retrieve its outcome when it comes.
            waiting.add_done_callback(_retrieve)
            got = "ack" if handled else "receipt"
            raise PublishError(
                f"zmq: no {got} for {what} within {self.options.timeout:.0f}s "
                "(the consuming peer may be gone, or not done handling it)"
            ) from None
        finally:
            self._publishing.discard(waiting)

    # Receiving ------------------------------------------------------------------------

    async def _receive(self) -> None:
        """The inbox: messages for this node's members; receipts are batched per sender."""
        inbox = self._inbox
        assert inbox is not None
        receipts: dict[bytes, list[int]] = {}
        while True:
            frames = await inbox.recv_multipart()
            routing_id = frames[0]
            if len(frames) == 7 and frames[1] == MSG:
                try:
                    member, tag, attempt, message = decode_message(frames[2:])
                except (ValueError, KeyError) as exc:
                    log.warning("zmq: dropping a malformed message frame: %s", exc)
                    continue
                receipts.setdefault(routing_id, []).append(tag)
                sub = self._subs.get(member.decode())
                if sub is None:
                    self.send_return(routing_id, tag, attempt)
                else:
                    sub.accept(Incoming(routing_id, tag, attempt, message))
            events: Any = inbox.getsockopt(zmq.EVENTS)
            if not events & zmq.POLLIN:
                for rid, tags in receipts.items():
                    await inbox.send_multipart([rid, RECEIPT, pack_tags(tags)])
                receipts.clear()

    def send_ack(self, routing_id: bytes, tag: int) -> None:
        self._replies_out.setdefault(routing_id, ([], []))[0].append(tag)
        self._schedule_flush()

    def send_return(self, routing_id: bytes, tag: int, attempt: int) -> None:
        self._replies_out.setdefault(routing_id, ([], []))[1].append((tag, attempt))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        # Acks of one event-loop turn leave together, one frame per sender.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        inbox = self._inbox
        out, self._replies_out = self._replies_out, {}
        if inbox is None:
            return
        for routing_id, (acks, returns) in out.items():
            with contextlib.suppress(zmq.ZMQError):
                if acks:
                    inbox.send_multipart([routing_id, ACK, pack_tags(acks)])
                if returns:
                    inbox.send_multipart([routing_id, RETURN, pack_returns(returns)])

    # Groups ---------------------------------------------------------------------------

    async def declare(self, channel: str, group: str) -> None:
        # Brokerless: a group exists while it has live members; there is nothing to
        # create in advance (and nothing is kept for a group without members).
        validate_name(channel, "channel")
        validate_name(group, "group")

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        validate_name(channel, "channel")
        validate_name(group, "group")
        if self._directory is None or self._closing:
            raise TransportError(f"zmq transport {redact(self.url)} is not connected")
        member = f"{group}.{uuid.uuid4().hex[:12]}"
        sub = ZmqSubscription(self, channel, group, member, prefetch, self.options.shards)
        self._subs[member] = sub
        try:
            await self._directory.sync()
        except TimeoutError:
            del self._subs[member]
            raise TransportError(
                f"zmq: the directory at {self.options.rendezvous} did not confirm the member"
            ) from None
        return sub

    async def leave(self, sub: ZmqSubscription) -> None:
        """Called by a closing member: every node forgets it before it returns its messages."""
        if self._directory is not None:
            with contextlib.suppress(TimeoutError, zmq.ZMQError):
                await self._directory.sync()
        self._subs.pop(sub.member, None)

    # Shutdown -------------------------------------------------------------------------

    async def close(self) -> None:
        if self._ctx is None or self._closing:
            return
        # Publishes in flight get their receipts first (bounded by the publish timeout).
        if self._publishing:
            await asyncio.wait(list(self._publishing), timeout=self.options.timeout)
        for sub in list(self._subs.values()):
            await sub.close()
        self._closing = True
        self._flush()
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._directory is not None:
            await self._directory.close()
            self._directory = None
        if self._host is not None:
            await self._host.close()
            self._host = None
        if self._router is not None:
            await self._router.close()
            self._router = None
        if self._inbox_task is not None:
            self._inbox_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._inbox_task
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            await asyncio.to_thread(ctx.term)  # waits out the inbox linger off the loop


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an abandoned future's outcome as seen (no "never retrieved" warning)."""
    if not future.cancelled():
        future.exception()
