"""One member of a group on NATS JetStream: pulls the shards it owns, yields deliveries.

Each shard of a channel has, per group, a durable pull consumer with
``max_ack_pending=1``. A member keeps one long pull request (a batch, with an expiry)
outstanding on each shard it owns; the server fills it one message at a time, each
after the previous one was acked, so a shard's next message never overtakes the one
being handled. All of a member's pull requests answer on one wildcard inbox
``<inbox>.<shard>``; the last token says which shard a message or status belongs to::

    sub = NatsSubscription("orders", "billing", 64, nc=nc, js=js, options=options,
                           on_close=forget)
    await sub.start()
    async for delivery in sub:
        await delivery.ack()          # or nack(delay=...): NAK with a delay
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from servicewire.errors import TransportError
from servicewire.messaging.channels import shards_of
from servicewire.timeouts import stop_task
from servicewire.transports.base import Delivery, Subscription
from servicewire.transports.nats.headers import from_nats
from servicewire.transports.nats.membership import Membership
from servicewire.transports.nats.names import durable_name, stream_name
from servicewire.transports.nats.options import NatsOptions

log = logging.getLogger(__name__)

PULL_BATCH = 512
"""Messages one pull request asks for; the server sends them one ack at a time."""
PULL_EXPIRES = 1.0
"""Seconds a pull request lives. Short, because nats-server 2.9 cannot cancel one: a
leaving member waits this long (holding what still arrives) before handing back."""
_ACK = b"+ACK"
_NAK = b"-NAK"


class NatsDelivery(Delivery):
    __slots__ = ("_reply", "_settled", "_sub")

    def __init__(
        self, message: Any, attempt: int, shard: int, reply: str, sub: NatsSubscription
    ) -> None:
        super().__init__(message, attempt, shard)
        self._reply = reply
        self._sub = sub
        self._settled = False

    async def ack(self) -> None:
        if not self._settled:
            self._settled = True
            await self._sub._settle(self, _ACK)

    async def nack(self, delay: float = 0.0) -> None:
        if not self._settled:
            self._settled = True
            if 0 < delay < self._sub._hold_limit and not self._sub._closed:
                self._sub._hold(self, delay)  # see NatsSubscription._hold
            else:
                await self._sub._settle(self, _nak(delay))


def _nak(delay: float) -> bytes:
    if delay <= 0:
        return _NAK
    return b"-NAK " + json.dumps({"delay": int(delay * 1e9)}).encode()


class _Shard:
    """Pull state of one owned shard."""

    __slots__ = ("deadline", "next_pull", "remaining")

    def __init__(self) -> None:
        self.remaining = 0  # messages the outstanding pull request may still bring
        self.deadline = 0.0  # when that request expires (loop time)
        self.next_pull = 0.0  # do not pull before (back-off after an error status)


class NatsSubscription(Subscription):
    """A member of ``group`` on ``channel``, given the connection (``nc``), its JetStream
    context (``js``) and the transport's options; ``on_close`` tells the transport it left.
    """

    def __init__(
        self,
        channel: str,
        group: str,
        prefetch: int,
        *,
        nc: Any,
        js: Any,
        options: NatsOptions,
        on_close: Callable[[NatsSubscription], None],
    ) -> None:
        self.channel = channel
        self.group = group
        self.prefetch = prefetch
        self._on_close = on_close
        self._nc = nc
        self._stream = stream_name(channel)
        self._queue: asyncio.Queue[NatsDelivery | None] = asyncio.Queue()
        self._unsettled: set[NatsDelivery] = set()
        # Nacked deliveries held for their delay: delivery -> (timer, when it is due).
        self._held: dict[NatsDelivery, tuple[asyncio.TimerHandle, float]] = {}
        self._hold_limit = options.ack_wait / 2
        self._naks: set[asyncio.Task[None]] = set()
        self._owned: set[int] = set()
        self._requests: dict[int, _Shard] = {}  # shards with a pull request outstanding
        self._next_subjects = [
            f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{durable_name(channel, group, s)}"
            for s in range(shards_of(channel, options.shards))
        ]
        self._inbox = self._nc.new_inbox()
        self._sub: Any = None
        self._pump: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._membership = Membership(
            self._nc,
            js,
            channel=channel,
            group=group,
            member_id=self._inbox.rsplit(".", 1)[1],
            shards=shards_of(channel, options.shards),
            ttl=options.lease_ttl,
            on_change=self._assign,
        )

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox + ".*", cb=self._on_msg)
        await self._membership.start()
        self._pump = asyncio.create_task(self._run_pump())

    # Shard ownership --------------------------------------------------------------------

    def _assign(self, owned: set[int]) -> None:
        # A shard taken away keeps its outstanding pull request until it expires; a
        # message it still brings is handled normally (the server keeps the order).
        self._owned = set(owned)
        self._wake.set()

    def reset_pulls(self) -> None:
        """Forget outstanding pull requests (the server lost them in a restart)."""
        for state in self._requests.values():
            state.remaining = 0
        self._wake.set()

    # Pulling ----------------------------------------------------------------------------

    async def _run_pump(self) -> None:
        loop = asyncio.get_running_loop()
        expires_ns = int(PULL_EXPIRES * 1e9)
        while not self._closed:
            now = loop.time()
            for shard in list(self._owned):
                state = self._requests.get(shard)
                if state is None:
                    state = self._requests[shard] = _Shard()
                if (state.remaining <= 0 or now > state.deadline + 0.5) and now >= state.next_pull:
                    request = json.dumps({"batch": PULL_BATCH, "expires": expires_ns}).encode()
                    try:
                        await self._nc.publish(
                            self._next_subjects[shard], request, reply=f"{self._inbox}.{shard}"
                        )
                    except Exception as exc:  # disconnected: retry on the next round
                        log.debug("pull request failed: %s", exc)
                        state.next_pull = now + 0.5
                        continue
                    state.remaining = PULL_BATCH
                    state.deadline = now + PULL_EXPIRES
            with contextlib.suppress(TimeoutError):  # not wait_for: see nats_members
                async with asyncio.timeout(0.5):
                    await self._wake.wait()
            self._wake.clear()

    async def _on_msg(self, msg: Any) -> None:
        shard = int(msg.subject.rsplit(".", 1)[1])
        reply: str = msg.reply
        if not reply:  # a status: 408 request expired, 409 consumer changed, 503, 100
            status = (msg.headers or {}).get("Status", "")
            state = self._requests.get(shard)
            if state is not None and status != "100":
                state.remaining = 0
                if status not in ("408", "404"):
                    # 409/503: the consumer is busy, gone or restarting; do not spin.
                    state.next_pull = asyncio.get_running_loop().time() + 0.5
                self._wake.set()
            return
        state = self._requests.get(shard)
        if state is not None:
            state.remaining -= 1
            if state.remaining <= 0:
                self._wake.set()
        tokens = reply.split(".")
        # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>, or the
        # v2 form with domain and account hash after "$JS.ACK".
        base = 2 if len(tokens) == 9 else 4
        attempt = int(tokens[base + 2])
        message = from_nats(
            msg.headers,
            msg.data,
            channel=self.channel,
            fallback_id=f"nats:{self._stream}:{tokens[base + 3]}",
        )
        delivery = NatsDelivery(message, attempt, shard, reply, self)
        self._unsettled.add(delivery)
        if not self._closed:
            # During close a late arrival is only held: NAKing it while our pull
            # requests still live would have the server hand it right back to us.
            self._queue.put_nowait(delivery)

    async def _settle(self, delivery: NatsDelivery, body: bytes) -> None:
        self._unsettled.discard(delivery)
        nc = self._nc
        try:
            if nc.is_closed or not hasattr(nc, "_send_command"):
                await nc.publish(delivery._reply, body)
                return
            # nats-py's publish minus its per-call subject validation: the reply subject
            # came from the server. The ack is queued (buffered while reconnecting).
            await nc._send_command(
                b"PUB %s %d\r\n%s\r\n" % (delivery._reply.encode(), len(body), body)
            )
            if nc._flush_queue is not None and nc._flush_queue.empty():
                await nc._flush_pending()
        except Exception as exc:
            raise TransportError(f"nats transport could not settle a delivery: {exc}") from exc

    def _hold(self, delivery: NatsDelivery, delay: float) -> None:
        """Keep a nacked delivery unacknowledged for ``delay`` seconds, then NAK it.

        A ``-NAK {"delay": ...}`` would have the server redeliver it after the delay,
        even into the pull request of a member that is closing and never hands it out:
        ``num_delivered`` (``Delivery.attempt``) counts that delivery too, and the next
        member saw one attempt more than were made. Held here (the shard stays blocked,
        ``max_ack_pending=1``), the NAK goes out when the delay is over, or at close
        once the pull requests are gone (with what is left of the delay). Delays of
        half ``ack_wait`` or more go to the server, which would redeliver a held one.
        """
        self._unsettled.discard(delivery)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(delay, self._release_held, delivery)
        self._held[delivery] = (timer, loop.time() + delay)

    def _release_held(self, delivery: NatsDelivery) -> None:
        if self._closed:
            return  # close NAKs it after its pull requests ended
        self._held.pop(delivery, None)
        task = asyncio.get_running_loop().create_task(self._settle(delivery, _NAK))
        self._naks.add(task)
        task.add_done_callback(self._nak_done)

    def _nak_done(self, task: asyncio.Task[None]) -> None:
        self._naks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Lost with the connection: the server redelivers it after ack_wait.
            log.debug("a delayed NAK was not sent: %s", task.exception())

    # Iteration and close ----------------------------------------------------------------

    async def _await_requests_end(self) -> None:
        # nats-server 2.9 may still fill a pull request whose inbox is gone, and the
        # message would then wait out ack_wait. So a leaving member lets its requests
        # run out (408) or expire first, holding whatever they still bring.
        loop = asyncio.get_running_loop()
        limit = loop.time() + PULL_EXPIRES + 0.5
        while loop.time() < limit:
            now = loop.time()
            if all(s.remaining <= 0 or now > s.deadline + 0.1 for s in self._requests.values()):
                return
            await asyncio.sleep(0.02)

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if item._settled:
                continue  # handed back at close
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._pump is not None:
            await stop_task(self._pump)
        await self._await_requests_end()
        if self._sub is not None:
            # drain: UNSUB, then a round trip, so whatever the server sent before it saw
            # the UNSUB still reaches _on_msg and is held; after it nothing more comes.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._sub.drain()
        await self._membership.stop()
        # Unsettled deliveries go back at once rather than after ack_wait; held ones
        # after what is left of their delay.
        now = asyncio.get_running_loop().time()
        for delivery in list(self._unsettled):
            delivery._settled = True
            with contextlib.suppress(Exception):
                await self._nc.publish(delivery._reply, _NAK)
        self._unsettled.clear()
        for delivery, (timer, due) in list(self._held.items()):
            timer.cancel()
            with contextlib.suppress(Exception):
                await self._nc.publish(delivery._reply, _nak(due - now))
        self._held.clear()
        if self._naks:
            await asyncio.wait(list(self._naks), timeout=5.0)
        self._queue.put_nowait(None)
        self._on_close(self)
