"""The sending side of a node: which member each shard of a group goes to, and what
each sender still holds until a member acks it.

Shards are dealt over a group's live members with
:func:`~servicewire.transports.sharding.owners` (the rule every transport uses); a
shard sticks to its current member until that member settled everything of it this
sender sent, so per-key order holds across a move. What a departed member held goes
to the shard's next owner, in the order it was sent::

    router = Router(ctx, shards=16)
    router.apply(view)                         # a new membership view from the directory
    receipts = router.start(message, channel)  # one receipt per group; no await
    handled = router.start(message, channel, until_acked=True)  # done when acked
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict

import zmq
import zmq.asyncio

from servicewire.errors import PublishError
from servicewire.messaging.channels import shard_for
from servicewire.messaging.message import Message
from servicewire.transports.sharding import owners
from servicewire.transports.zmq.membership import View
from servicewire.transports.zmq.wire import (
    ACK,
    RECEIPT,
    RETURN,
    encode_message,
    unpack_returns,
    unpack_tags,
)

Target = tuple[str, str]
"""(member id, inbox endpoint) of one group member."""


class _Send:
    """One message on its way to one group, kept by the sender until a member acks it.

    ``receipt`` is done when the member holds it, or, ``until_acked``, once it acked it.
    """

    __slots__ = ("attempt", "channel", "group", "message", "receipt", "shard", "tag", "until_acked")

    def __init__(
        self, message: Message, channel: str, group: str, shard: int, until_acked: bool
    ) -> None:
        self.message = message
        self.channel = channel
        self.group = group
        self.shard = shard
        self.until_acked = until_acked
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

    def __init__(self, router: Router, endpoint: str) -> None:
        self.socket = router.ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.task = asyncio.create_task(router.replies(self.socket))


class Router:
    """Routes this node's messages to group members and tracks them until acked."""

    def __init__(self, ctx: zmq.asyncio.Context, shards: int) -> None:
        self.ctx = ctx
        self.shards = shards
        self._owners: dict[str, dict[str, list[Target]]] = {}  # channel -> group -> by shard
        self._live: set[Target] = set()
        self._peers: dict[str, _Peer] = {}
        self._routes: dict[tuple[str, str, int], _Route] = {}
        self._outstanding: dict[int, _Send] = {}
        self._next_tag = 0

    def apply(self, view: View) -> None:
        """Take a new membership view: deal the shards again, re-route the departed's."""
        dealt: dict[str, dict[str, list[Target]]] = {}
        live: set[Target] = set()
        for channel, groups in view["members"].items():
            for group, entries in groups.items():
                targets = {str(m): (str(m), str(e)) for m, e in entries}
                live.update(targets.values())
                if targets:
                    by_shard = [targets[m] for m in owners(targets, self.shards)]
                    dealt.setdefault(channel, {})[group] = by_shard
        self._owners, self._live = dealt, live
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

    def has_members(self, channel: str) -> bool:
        """Whether some group of ``channel`` has a live member (in this node's view)."""
        return bool(self._owners.get(channel))

    def start(
        self, message: Message, channel: str, *, until_acked: bool = False
    ) -> list[asyncio.Future[None]]:
        """Send ``message`` to one member of every group of ``channel`` (no await).

        The futures are done on the members' receipts, or ``until_acked`` on their acks.
        With no live member in any group there are none: brokerless keeps nothing for
        later, and the caller decides whether that is an error.
        """
        receipts = []
        for group in self._owners.get(channel, {}):
            shard = shard_for(message.partition_key, self.shards, message.id)
            send = _Send(message, channel, group, shard, until_acked)
            self._route(send)
            receipts.append(send.receipt)
        return receipts

    def _route(self, send: _Send) -> None:
        dealt = self._owners.get(send.channel, {}).get(send.group)
        if not dealt:
            # The group's last member is gone: brokerless cannot keep it for later.
            if send.receipt.done():
                pass
            elif send.until_acked:
                send.receipt.set_exception(
                    PublishError(
                        f"zmq: group {send.group!r} of {send.channel!r} has no live member "
                        f"to handle message {send.message.id}"
                    )
                )
            else:
                send.receipt.set_result(None)
            return
        key = (send.channel, send.group, send.shard)
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = _Route()
        owner = dealt[send.shard]
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

    async def replies(self, socket: zmq.asyncio.Socket) -> None:
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
                    if send is not None and not send.until_acked and not send.receipt.done():
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

    async def close(self) -> None:
        """Stop listening to peers and close their sockets."""
        tasks = [peer.task for peer in self._peers.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for peer in self._peers.values():
            peer.socket.close(linger=0)
        self._peers.clear()
