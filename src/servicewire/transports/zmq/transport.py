"""``zmq+tcp://`` and ``zmq+ipc://`` — brokerless messaging through pyzmq (asyncio).

No broker: each process (a *node*) binds its own inbox, and a message goes straight
from the publishing process to a consuming one. The URL names a rendezvous address
where one node hosts a directory of members (:mod:`~servicewire.transports.zmq.membership`);
it carries no messages::

    transport = await connect_transport("zmq+tcp://127.0.0.1:5555")
    sub = await transport.subscribe("orders", "billing")     # every node knows on return
    await transport.publish(message)       # returns when each group's member holds it

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
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import zmq
import zmq.asyncio

from servicewire.errors import ConnectionFailedError, PublishError, TransportError
from servicewire.messaging.channels import shard_for, validate_name
from servicewire.messaging.message import Message
from servicewire.transports.base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Capabilities,
    Subscription,
    Transport,
)
from servicewire.transports.zmq.membership import DirectoryClient, DirectoryHost, NodeState, View
from servicewire.transports.zmq.options import ZmqOptions
from servicewire.transports.zmq.subscription import Incoming, ZmqSubscription
from servicewire.transports.zmq.wire import (
    ACK,
    MSG,
    RECEIPT,
    RETURN,
    decode_message,
    encode_message,
    pack_returns,
    pack_tags,
    unpack_returns,
    unpack_tags,
)
from servicewire.urls import redact

log = logging.getLogger("servicewire.transports.zmq.transport")

Target = tuple[str, str]
"""(member id, inbox endpoint) of one group member."""


class _Send:
    """One message on its way to one group, kept by the sender until a member acks it."""

    __slots__ = ("attempt", "channel", "group", "message", "receipt", "shard", "tag")

    def __init__(self, message: Message, channel: str, group: str, shard: int) -> None:
        self.message = message
        self.channel = channel
        self.group = group
        self.shard = shard
        self.attempt = 1
        self.tag = 0
        self.receipt: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class _Route:
    """Where one shard of one group goes from this sender, and what it has not settled."""

    __slots__ = ("target", "unacked")

    def __init__(self) -> None:
        self.target: Target | None = None
        self.unacked: OrderedDict[int, _Send] = OrderedDict()


class _Peer:
    """A DEALER connected to another node's inbox; it also receives that node's replies."""

    def __init__(self, transport: ZmqTransport, endpoint: str) -> None:
        assert transport._ctx is not None
        self.socket = transport._ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.task = asyncio.create_task(transport._replies(self.socket))


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
        self._members: dict[str, dict[str, list[Target]]] = {}
        self._live: set[Target] = set()
        self._subs: dict[str, ZmqSubscription] = {}
        self._peers: dict[str, _Peer] = {}
        self._routes: dict[tuple[str, str, int], _Route] = {}
        self._outstanding: dict[int, _Send] = {}
        self._next_tag = 0
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
        members: dict[str, dict[str, list[Target]]] = {}
        live: set[Target] = set()
        for channel, groups in view["members"].items():
            for group, entries in groups.items():
                targets = [(str(m), str(e)) for m, e in entries]
                members.setdefault(channel, {})[group] = targets
                live.update(targets)
        self._members, self._live = members, live
        # A member that left or died: what it held unacked goes to the shard's new owner,
        # in the order it was sent.
        for route in list(self._routes.values()):
            if route.target is not None and route.target not in live:
                pending = list(route.unacked.values())
                route.unacked.clear()
                route.target = None
                for send in pending:
                    self._outstanding.pop(send.tag, None)
                    send.attempt += 1
                    self._route(send)
        # Inboxes no member lives at any more: stop dialling them (what they held was
        # re-routed just above; a late reply from them no longer matters).
        endpoints = {endpoint for _, endpoint in live}
        for endpoint in [e for e in self._peers if e not in endpoints]:
            peer = self._peers.pop(endpoint)
            peer.task.cancel()
            peer.socket.close(linger=0)

    # Publishing -----------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        await self._confirmed(self._start(message), f"message {message.id}")

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        receipts: list[asyncio.Future[None]] = []
        for message in messages:
            receipts.extend(self._start(message))
        await self._confirmed(receipts, f"a batch of {len(messages)} messages")

    def _start(self, message: Message) -> list[asyncio.Future[None]]:
        """Send ``message`` to one member of every group of its channel (no await)."""
        channel = validate_name(message.destination, "channel")
        if self._inbox is None or self._closing:
            raise TransportError(f"zmq transport {redact(self.url)} is not connected")
        receipts = []
        for group, members in self._members.get(channel, {}).items():
            if members:
                shard = shard_for(message.partition_key, self.options.shards, message.id)
                send = _Send(message, channel, group, shard)
                self._route(send)
                receipts.append(send.receipt)
        # No live member in any group: brokerless keeps nothing for later.
        return receipts

    async def _confirmed(self, receipts: list[asyncio.Future[None]], what: str) -> None:
        if not receipts:
            return
        waiting = asyncio.gather(*receipts)
        self._publishing.add(waiting)
        try:
            async with asyncio.timeout(self.options.timeout):
                await asyncio.shield(waiting)
        except TimeoutError:
            raise PublishError(
                f"zmq: no receipt for {what} within {self.options.timeout:.0f}s "
                "(the consuming peer may be gone)"
            ) from None
        finally:
            self._publishing.discard(waiting)

    def _route(self, send: _Send) -> None:
        members = self._members.get(send.channel, {}).get(send.group, [])
        if not members:
            # The group's last member is gone: brokerless cannot keep it for later.
            if not send.receipt.done():
                send.receipt.set_result(None)
            return
        route = self._routes.get((send.channel, send.group, send.shard))
        if route is None:
            route = self._routes[(send.channel, send.group, send.shard)] = _Route()
        owner = members[send.shard % len(members)]
        # Sticky: the shard moves to its new owner only once the old owner has settled
        # everything of it we sent, so per-key order holds across the move.
        if route.target != owner and (route.target not in self._live or not route.unacked):
            route.target = owner
        assert route.target is not None
        self._next_tag += 1
        send.tag = self._next_tag
        self._outstanding[send.tag] = send
        route.unacked[send.tag] = send
        member, endpoint = route.target
        frames = encode_message(member.encode(), send.tag, send.attempt, send.message)
        self._peer(endpoint).socket.send_multipart(frames)

    def _peer(self, endpoint: str) -> _Peer:
        peer = self._peers.get(endpoint)
        if peer is None:
            peer = self._peers[endpoint] = _Peer(self, endpoint)
        return peer

    async def _replies(self, socket: zmq.asyncio.Socket) -> None:
        """Receipts, acks and returns from one peer."""
        while True:
            try:
                frames = await socket.recv_multipart()
            except zmq.ZMQError:
                return  # the socket was closed: the peer is gone from the view
            kind = frames[0]
            if kind == RECEIPT:
                for tag in unpack_tags(frames[1]):
                    send = self._outstanding.get(tag)
                    if send is not None and not send.receipt.done():
                        send.receipt.set_result(None)
            elif kind == ACK:
                for tag in unpack_tags(frames[1]):
                    send = self._outstanding.pop(tag, None)
                    if send is not None:
                        self._forget(send)
            elif kind == RETURN:
                for tag, attempt in unpack_returns(frames[1]):
                    send = self._outstanding.pop(tag, None)
                    if send is not None:
                        route = self._routes.get((send.channel, send.group, send.shard))
                        if route is not None:
                            route.unacked.pop(tag, None)
                        send.attempt = attempt
                        self._route(send)

    def _forget(self, send: _Send) -> None:
        if not send.receipt.done():
            send.receipt.set_result(None)
        route = self._routes.get((send.channel, send.group, send.shard))
        if route is not None:
            route.unacked.pop(send.tag, None)

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
        tasks = [p.task for p in self._peers.values()]
        if self._inbox_task is not None:
            tasks.append(self._inbox_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for peer in self._peers.values():
            peer.socket.close(linger=0)
        self._peers.clear()
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            await asyncio.to_thread(ctx.term)  # waits out the inbox linger off the loop
