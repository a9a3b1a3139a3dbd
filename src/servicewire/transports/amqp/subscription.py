"""One member of a group on RabbitMQ: shard consumers, settlement and shard handover.

Each shard queue is single-active-consumer with a prefetch of one, so the broker
never hands out a shard's next message before the previous one is settled, and never
to two members at once. The member registers a consumer only on the shards the
membership deal gives it (:mod:`.membership`). Handing a shard to another member
must not let the next message overtake the one being handled, so a member gives a
shard up only while it holds a message of it (nothing else can be in flight then):

* a shard with a delivery in the application's hands: at its settlement the member
  cancels its consumer *first* and acks (or nacks) after, on the same AMQP channel;
* an idle shard: the member puts a handover marker into the queue (default exchange,
  routing key = queue name) and cancels when the marker reaches it; everything before
  the marker it handles as usual. A marker reaching a member with nothing to give up
  is dropped.

``nack(delay)`` does not give the message back to the broker: a quorum queue puts a
requeued message behind the shard's next ones (a key's later messages would overtake
it; the contract case ``test_nacked_message_comes_back_before_the_next_of_its_key``
caught it). The member keeps it unacknowledged instead, so the shard stays blocked at
the broker, and hands the same message out again after ``delay`` with ``attempt`` one
higher. Only when it cannot (the subscription closes, the channel was lost) or must not
(``delivery_limit`` is set on a quorum queue: the broker does the counting then) does
the broker get it back.

A shard that is to move while one of its messages waits out a delay stays here until
that message is settled for good: the retry is handed out here, and its ack (or
reject) hands the shard over as above. Cancelling first and nacking after would let
the new owner, active the moment we cancel, take the key's next message while the
retried one is still checked out to us (the contract case
``test_delayed_retry_keeps_its_place_when_a_member_joins`` caught it). For the same
reason a nack that gives the message back to the broker (``delivery_limit`` set) never
cancels first: the broker returns it to us, the still active consumer, ahead of the
shard's next messages, and its settlement hands the shard over.

Closing with a retry waiting (:meth:`AmqpSubscription.close`): if other members live,
closing the channel returns the message ahead of the shard's next ones and the next
owner counts it from the broker (``x-delivery-count``; a classic queue only sets
``redelivered``). A member closing alone gives it back *with its count*
(:meth:`AmqpSubscription._give_back`): a copy carrying the next attempt number goes to
the end of the shard queue and the original is acked, because a classic queue counts
no requeue, nor a quorum queue since RabbitMQ 4.3; nobody consumes the shard before the
next instance starts, so a restart between attempts continues the count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, cast

import aio_pika
import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from servicewire.errors import TransportError
from servicewire.messaging import headers as h
from servicewire.messaging.ids import new_id
from servicewire.timeouts import within
from servicewire.transports.amqp.headers import HANDOVER, attempt_of, decode, encode
from servicewire.transports.amqp.membership import Membership
from servicewire.transports.amqp.options import AmqpOptions
from servicewire.transports.amqp.topology import queue_name, shards_of
from servicewire.transports.base import Delivery, Subscription
from servicewire.transports.sharding import deal

log = logging.getLogger(__name__)

_SETTLE_ERRORS = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    RuntimeError,
)


_GIVE_BACK_TIMEOUT = 5.0
"""Seconds to wait for the broker to confirm a given-back copy before requeueing."""


class AmqpDelivery(Delivery):
    """A message delivered from one shard queue, settled on the AMQP channel it came on."""

    __slots__ = ("_channel", "_sub", "_tag", "consumer_tag", "settled")

    def __init__(
        self,
        sub: AmqpSubscription,
        raw: DeliveredMessage,
        shard: int,
        channel: aiormq.abc.AbstractChannel,
    ) -> None:
        props = raw.header.properties
        deliver = cast(Basic.Deliver, raw.delivery)  # consumers only ever get Deliver
        super().__init__(decode(raw.body, props, sub.channel), attempt_of(props, deliver), shard)
        self._sub = sub
        self._tag: int = deliver.delivery_tag or 0
        self.consumer_tag: str = deliver.consumer_tag or ""
        self._channel = channel
        self.settled = False

    async def ack(self) -> None:
        if not self.settled:
            self.settled = True
            self._sub._release(self)
            await self._sub._settle(self, "ack")

    async def nack(self, delay: float = 0.0) -> None:
        if self.settled:
            return
        self.settled = True
        self._sub._release(self)
        if self._sub._can_keep(self):
            # Keep it, and so its shard, and hand it out again here (module docstring).
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self._sub._hand_out_again, self)
            else:
                self._sub._hand_out_again(self)
        elif delay > 0:
            # Hold the message, and so its shard, for the delay: later messages of the
            # key must not overtake it.
            loop = asyncio.get_running_loop()
            loop.call_later(delay, self._sub._settle_later, self)
        else:
            await self._sub._settle(self, "give_back")

    def _again(self) -> AmqpDelivery:
        """The same broker delivery, handed out once more (one attempt later)."""
        again = object.__new__(AmqpDelivery)
        Delivery.__init__(again, self.message, self.attempt + 1, self.shard)
        again._sub, again._tag, again._channel = self._sub, self._tag, self._channel
        again.consumer_tag = self.consumer_tag
        again.settled = False
        return again

    async def reject(self) -> None:
        """Refuse the message for good: the broker moves it to ``<channel>.dlq``."""
        if not self.settled:
            self.settled = True
            self._sub._release(self)
            await self._sub._settle(self, "reject")


class OpenChannel(Protocol):
    """Opens a robust AMQP channel on the transport's connection."""

    def __call__(self, *, confirms: bool) -> Awaitable[aio_pika.abc.AbstractRobustChannel]: ...


class AmqpSubscription(Subscription):
    """A member of ``group`` reading ``channel`` through its own AMQP channel.

    Its transport gives it what it needs and nothing more::

        AmqpSubscription(channel, group, prefetch, options=options,
                         open_channel=open_channel, background=tasks, on_close=forget)

    ``background`` holds the settle tasks the transport waits for on close.
    """

    def __init__(
        self,
        channel: str,
        group: str,
        prefetch: int,
        *,
        options: AmqpOptions,
        open_channel: OpenChannel,
        background: set[asyncio.Task[None]],
        on_close: Callable[[AmqpSubscription], None],
    ) -> None:
        self.channel = channel
        self.group = group
        self.prefetch = max(1, prefetch)
        self.member_id = new_id()
        self._options = options
        self._open_channel = open_channel
        self._background = background
        self._on_close = on_close
        self._shards = shards_of(channel, options.shards)
        self._queues = [queue_name(channel, group, s) for s in range(self._shards)]
        self._inbox: asyncio.Queue[AmqpDelivery | None] = asyncio.Queue()
        self._robust: aio_pika.abc.AbstractRobustChannel | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._membership: Membership | None = None
        self._owned: set[int] = set()
        self._consumers: dict[int, str] = {}  # shard -> consumer tag
        self._tag_shard: dict[str, int] = {}
        self._inflight: dict[int, AmqpDelivery] = {}
        self._yielding: set[int] = set()
        self._marked: dict[int, float] = {}  # shard -> when we last sent a handover marker
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._reconciler: asyncio.Task[None] | None = None
        self._closed = False
        self._handed = 0  # deliveries given to the application and not yet settled
        self._room = asyncio.Event()
        # With a delivery limit the broker counts deliveries and must see every retry.
        self._broker_counts = options.delivery_limit > 0 and options.queue_type == "quorum"
        self._giver: aio_pika.abc.AbstractRobustChannel | None = None

    async def start(self) -> None:
        options = self._options
        robust = await self._open_channel(confirms=False)
        self._robust = robust
        await robust.set_qos(prefetch_count=1)  # per consumer: one message per shard
        self._channel = await robust.get_underlay_channel()
        robust.reopen_callbacks.add(self._on_reopen)
        self._membership = Membership(
            robust,
            self.channel,
            self.group,
            self.member_id,
            self._on_members,
            options.member_interval,
            options.member_timeout,
            self._on_standby,
        )
        await self._membership.start()
        self._on_members(self._membership.members())
        self._reconciler = asyncio.create_task(self._reconcile_loop(), name=f"sw {self._queues[0]}")

    # Membership and shard assignment --------------------------------------------------

    def _on_members(self, members: list[str]) -> None:
        self._owned = deal(members, self._shards, self.member_id)
        self._dirty.set()

    async def _reconcile_loop(self) -> None:
        interval = self._options.member_interval
        # A newcomer's hello is answered at once: wait for the answers before taking
        # shards, so it does not queue up as a stand-by on shards it will not own.
        await asyncio.sleep(min(0.15, interval))
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await within(self._dirty.wait(), interval)
            self._dirty.clear()
            if self._closed:
                return
            try:
                await self._reconcile()
            except _SETTLE_ERRORS as exc:  # connection trouble: the reopen callback resets
                log.debug("shard reconcile of %s deferred: %s", self.member_id, exc)
                await asyncio.sleep(min(interval, 0.5))
                self._dirty.set()

    async def _reconcile(self) -> None:
        channel = self._channel
        if channel is None or channel.is_closed or self._closed:
            return
        async with self._lock:
            for shard in sorted(self._owned):
                if self._closed:
                    return
                self._yielding.discard(shard)
                if shard not in self._consumers:
                    await self._consume(channel, shard)
            now = asyncio.get_running_loop().time()
            resend = self._options.member_timeout
            for shard in sorted(set(self._consumers) - self._owned):
                if self._closed:
                    return
                self._yielding.add(shard)
                if shard in self._inflight:
                    continue  # handed over at this delivery's settlement
                # An idle shard: we cancel when our marker reaches us. If we are only a
                # stand-by, the active member drops the marker, so try again now and then.
                if now - self._marked.get(shard, -resend) >= resend:
                    self._marked[shard] = now
                    await self._send_marker(channel, shard)

    async def _consume(self, channel: aiormq.abc.AbstractChannel, shard: int) -> None:
        async def on_message(raw: DeliveredMessage) -> None:
            headers = raw.header.properties.headers
            if headers and HANDOVER in headers:
                await self._on_marker(raw, shard, channel)
            elif not self._on_delivery(raw, shard, channel):
                tag = cast(Basic.Deliver, raw.delivery).delivery_tag or 0
                with contextlib.suppress(*_SETTLE_ERRORS):
                    await channel.basic_reject(tag, requeue=False, wait=False)

        ok = await channel.basic_consume(self._queues[shard], on_message)
        tag = ok.consumer_tag or ""
        self._consumers[shard] = tag
        self._tag_shard[tag] = shard

    async def _cancel(self, channel: aiormq.abc.AbstractChannel, shard: int) -> None:
        tag = self._consumers.pop(shard, None)
        self._yielding.discard(shard)
        self._marked.pop(shard, None)
        if tag is not None:
            self._tag_shard.pop(tag, None)
            await channel.basic_cancel(tag)

    async def _send_marker(self, channel: aiormq.abc.AbstractChannel, shard: int) -> None:
        props = aiormq.spec.Basic.Properties(headers={HANDOVER: self.member_id}, delivery_mode=2)
        await channel.basic_publish(
            b"", exchange="", routing_key=self._queues[shard], properties=props
        )

    # Deliveries ------------------------------------------------------------------------

    def _on_delivery(
        self, raw: DeliveredMessage, shard: int, channel: aiormq.abc.AbstractChannel
    ) -> bool:
        try:
            delivery = AmqpDelivery(self, raw, shard, channel)
        except Exception:
            # Unreadable even as a foreign message: holding it would stall the shard for
            # good, so the broker dead-letters it to <channel>.dlq.
            log.exception("cannot read a delivery from %s; dead-lettering it", self._queues[shard])
            return False
        self._inflight[shard] = delivery
        self._inbox.put_nowait(delivery)
        return True

    async def _on_marker(
        self, raw: DeliveredMessage, shard: int, channel: aiormq.abc.AbstractChannel
    ) -> None:
        tag = cast(Basic.Deliver, raw.delivery).delivery_tag or 0
        sender = (raw.header.properties.headers or {}).get(HANDOVER)
        try:
            async with self._lock:
                if shard in self._yielding and channel is self._channel:
                    await self._cancel(channel, shard)  # first cancel, then ack: see module doc
                elif isinstance(sender, str) and sender != self.member_id and self._membership:
                    # We are active and keep the shard: the sender is only a stand-by.
                    await self._membership.tell_standby(sender, shard)
                await channel.basic_ack(tag)
        except _SETTLE_ERRORS as exc:
            log.debug("handover marker on %s not settled: %s", self._queues[shard], exc)

    def _on_standby(self, shard: int) -> None:
        """Our consumer on ``shard`` waits behind the active one: cancel it, nothing to hand."""
        if shard in self._yielding and shard in self._consumers and shard not in self._inflight:
            task = asyncio.get_running_loop().create_task(self._cancel_standby(shard))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _cancel_standby(self, shard: int) -> None:
        channel = self._channel
        if channel is None or self._closed:
            return
        try:
            async with self._lock:
                if shard in self._yielding and shard not in self._inflight:
                    await self._cancel(channel, shard)
        except _SETTLE_ERRORS as exc:
            log.debug("stand-by consumer on %s not cancelled: %s", self._queues[shard], exc)

    def _can_keep(self, delivery: AmqpDelivery) -> bool:
        """Whether a nacked delivery can stay unacknowledged here for a local retry."""
        channel = delivery._channel
        shard = delivery.shard if delivery.shard is not None else 0
        return (
            not self._closed
            and not self._broker_counts
            and channel is self._channel
            and not channel.is_closed
            # Not "and the shard stays ours": a shard being handed over waits for its
            # retry to be settled (module docstring).
            and self._inflight.get(shard) is delivery
        )

    def _hand_out_again(self, delivery: AmqpDelivery) -> None:
        if self._closed:
            return  # close() decides how it goes back (module docstring)
        if not self._can_keep(delivery):
            # Closing, or the channel is gone: the broker takes it.
            self._settle_later(delivery)
            return
        again = delivery._again()
        self._inflight[again.shard if again.shard is not None else 0] = again
        self._inbox.put_nowait(again)

    def _settle_later(self, delivery: AmqpDelivery) -> None:
        task = asyncio.get_running_loop().create_task(self._settle(delivery, "give_back"))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _settle(self, delivery: AmqpDelivery, how: str, *, closing: bool = False) -> None:
        """Settle on the broker: ``ack``, ``reject``, or ``give_back`` (see :meth:`_give_back`).

        Once the subscription closes, only :meth:`close` gives messages back (``closing``).
        """
        channel = delivery._channel
        if channel is not self._channel or channel.is_closed:
            return  # the connection it came on is gone: the broker returns it by itself
        if how == "give_back" and self._closed and not closing:
            return  # close() gives it back, or closing the channel returns it
        shard = delivery.shard if delivery.shard is not None else 0
        if self._inflight.get(shard) is delivery:
            del self._inflight[shard]
        elif how == "give_back":
            return  # given back already (closing and a retry timer at once)
        try:
            if (
                how != "give_back"  # a requeued message comes back to us first: keep the shard
                and shard in self._yielding
                and self._consumers.get(shard) == delivery.consumer_tag
            ):
                async with self._lock:
                    if shard in self._yielding:
                        await self._cancel(channel, shard)
            if how == "ack":
                await channel.basic_ack(delivery._tag, wait=False)
            elif how == "give_back":
                await self._give_back(channel, delivery)
            else:
                await channel.basic_reject(delivery._tag, requeue=False, wait=False)
        except _SETTLE_ERRORS as exc:
            # Lost with the connection: the broker redelivers it (at least once).
            log.debug("settlement %s on %s lost: %s", how, self._queues[shard], exc)

    async def _give_back(self, channel: aiormq.abc.AbstractChannel, delivery: AmqpDelivery) -> None:
        """Return a failed delivery to the broker without losing its attempt count.

        A requeue would count nothing on a classic queue (only the "redelivered" flag)
        nor, since RabbitMQ 4.3, on a quorum queue. So a copy carrying the next attempt
        number (:data:`ATTEMPT_HEADER`) goes to the end of the shard queue, confirmed,
        and the original is acked; the copy is the next attempt, wherever it lands.
        With ``delivery_limit`` the broker counts and must see the requeue itself.
        """
        if self._closed:
            # Or the copy comes straight back to this closing member, which never hands
            # it out, and the broker counts that delivery too.
            await self._stop_consuming(channel)
        if not self._broker_counts:
            again = delivery.message.with_headers(**{h.ATTEMPT: str(delivery.attempt + 1)})
            body, props = encode(again)
            queue = self._queues[delivery.shard or 0]
            try:
                # A blocked broker (resource alarm) must not hang close().
                confirm = await within(self._publish_copy(queue, body, props), _GIVE_BACK_TIMEOUT)
            except (*_SETTLE_ERRORS, TransportError, TimeoutError) as exc:
                log.warning("could not hand %s back with its attempt: %s", delivery.message.id, exc)
            else:
                if isinstance(confirm, Basic.Ack):
                    await channel.basic_ack(delivery._tag, wait=False)
                    return
        await channel.basic_nack(delivery._tag, requeue=True, wait=False)

    async def _stop_consuming(self, channel: aiormq.abc.AbstractChannel) -> None:
        async with self._lock:
            for shard in list(self._consumers):
                with contextlib.suppress(*_SETTLE_ERRORS):
                    await self._cancel(channel, shard)

    async def _publish_copy(self, queue: str, body: bytes, props: Basic.Properties) -> object:
        """Publish to ``queue`` on a confirming channel opened on first use; the confirm."""
        if self._giver is None or self._giver.is_closed:
            self._giver = await self._open_channel(confirms=True)
        publisher = await self._giver.get_underlay_channel()
        return await publisher.basic_publish(body, exchange="", routing_key=queue, properties=props)

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while True:
            # ``prefetch`` caps what the application holds unsettled; the broker side is
            # capped by one message per owned shard.
            while self._handed >= self.prefetch and not self._closed:
                self._room.clear()
                await self._room.wait()
            item = await self._inbox.get()
            if item is None:
                return
            if item._channel is not self._channel:
                continue  # came on a connection since lost; the broker redelivers it
            self._handed += 1
            yield item

    def _release(self, delivery: AmqpDelivery) -> None:
        if delivery._channel is self._channel and self._handed > 0:
            self._handed -= 1
            self._room.set()

    # Reconnection and close ----------------------------------------------------------

    def _on_reopen(self, robust: object) -> None:
        task = asyncio.get_running_loop().create_task(self._after_reopen())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _after_reopen(self) -> None:
        if self._closed or self._robust is None:
            return
        # Every consumer and unsettled delivery died with the old channel.
        self._channel = await self._robust.get_underlay_channel()
        self._consumers.clear()
        self._tag_shard.clear()
        self._inflight.clear()
        self._yielding.clear()
        self._marked.clear()
        self._handed = 0  # what was handed out came on the old channel
        self._room.set()
        if self._membership is not None:
            with contextlib.suppress(Exception):
                await self._membership.announce("hello")
        self._dirty.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._dirty.set()
        if self._reconciler is not None:
            # Let a pass in progress finish: cancelling an AMQP call half-way makes
            # aiormq drop the channel, and a late frame on it costs the connection.
            try:
                await within(asyncio.shield(self._reconciler), 10.0)
            except TimeoutError:
                self._reconciler.cancel()
        alone = self._membership is None or self._membership.members() == [self.member_id]
        if self._membership is not None:
            await self._membership.stop()
        if alone:
            # Messages kept for a retry go back with their attempt count. With other
            # members alive, closing the channel returns them ahead of the shard's next
            # messages instead, for the next owner (module docstring).
            for delivery in [d for d in self._inflight.values() if d.settled]:
                await self._settle(delivery, "give_back", closing=True)
        if self._giver is not None:
            with contextlib.suppress(Exception):
                await within(self._giver.close(), 5.0)
        if self._robust is not None:
            # Closing the channel returns every unsettled delivery to its queue.
            with contextlib.suppress(Exception):
                await within(self._robust.close(), 5.0)
        self._channel = None
        self._room.set()
        self._inbox.put_nowait(None)
        self._on_close(self)
