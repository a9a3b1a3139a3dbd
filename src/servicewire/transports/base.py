"""The transport contract: what every broker or brokerless transport provides.

A transport publishes :class:`~servicewire.messaging.message.Message` objects to the channel named
by their ``destination`` header and lets groups of members consume a channel::

    async with await connect_transport("memory://") as transport:
        await transport.declare("orders", "billing")          # the group exists from now on
        await transport.publish(message)                      # returns once confirmed
        async with await transport.subscribe("orders", "billing") as sub:
            async for delivery in sub:
                handle(delivery.message)
                await delivery.ack()                          # or: await delivery.nack(delay=1.0)

Semantics every transport keeps (checked by :mod:`servicewire.testing.contract`):

* ``publish`` returns only after the broker accepted the message (confirm / ack).
* A declared group receives every message published after it was declared.
* Members of one group compete; separate groups each receive everything.
* Where ``capabilities.ordered_per_key``: messages of one partition key are delivered to a
  group in publish order, and the next message of a shard is not delivered before the
  previous one is settled.
* A delivery not acked (nacked, or its subscription closed) is delivered again.
* ``delete_group`` and ``delete_channel`` remove what ``declare`` made, with its messages,
  so that tests, tools and benchmarks leave a broker as they found it (see
  :meth:`Transport.tear_down`).
* Oversized messages (payload plus headers over ``max_message_size``, or headers over
  :data:`MAX_HEADER_BYTES`) raise :class:`~servicewire.errors.MessageTooLargeError`
  before any I/O: :meth:`Transport.publish` checks them, then calls the transport's own
  :meth:`Transport._send` (and ``publish_batch`` its ``_send_batch``)::

      class PigeonTransport(Transport):
          async def _send(self, message: Message) -> None:
              await self._client.post(message.destination, message.payload)
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Self

from servicewire.errors import MessageTooLargeError
from servicewire.messaging.message import Message

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
"""Largest message (payload plus headers) a transport accepts by default: 1 MiB."""

MAX_HEADER_BYTES = 64 * 1024
"""Largest total of header names and values: brokers cap headers well below payloads
(Kafka, NATS and AMQP frame them separately), and no legitimate envelope comes close."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport guarantees. The contract suite checks each declaration both ways."""

    durable: bool
    """A declared group's messages wait for it while no member is connected."""
    persistent: bool
    """Accepted messages survive a restart of the broker."""
    ordered_per_key: bool
    """Same partition key is delivered in order, even with competing members."""
    competing_consumers: bool
    """Several members of one group share its messages."""
    exactly_once: bool
    """No duplicates ever (otherwise: at least once; duplicates are possible)."""
    replays_history: bool
    """A new group also receives messages published before it existed."""
    brokerless: bool = False
    """Peers talk directly, with no broker in between."""

    def describe(self) -> dict[str, bool]:
        return {
            "durable": self.durable,
            "persistent": self.persistent,
            "ordered_per_key": self.ordered_per_key,
            "competing_consumers": self.competing_consumers,
            "exactly_once": self.exactly_once,
            "replays_history": self.replays_history,
            "brokerless": self.brokerless,
        }


class Delivery(abc.ABC):
    """One message handed to one member of a group, to be settled exactly once."""

    __slots__ = ("attempt", "message", "shard")

    def __init__(self, message: Message, attempt: int = 1, shard: int | None = None) -> None:
        self.message = message
        self.attempt = attempt
        """How many times this message has been delivered to this group, starting at 1."""
        self.shard = shard

    @abc.abstractmethod
    async def ack(self) -> None:
        """The message is handled; it will not be delivered to this group again."""

    @abc.abstractmethod
    async def nack(self, delay: float = 0.0) -> None:
        """The message was not handled; deliver it again after ``delay`` seconds."""


class Subscription(abc.ABC):
    """A member of a group, reading one channel. Iterate it for deliveries."""

    channel: str
    group: str

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Delivery]:
        """Deliveries until the subscription is closed."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the group; unsettled deliveries go back to the group for redelivery."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Transport(abc.ABC):
    """A connection to one broker (or to brokerless peers)."""

    scheme: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(self, url: str, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.url = url
        self.max_message_size = max_message_size

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection; raises :class:`~servicewire.errors.ConnectionFailedError`."""

    async def publish(self, message: Message) -> None:
        """Send ``message`` to ``message.destination``; return once the broker confirmed.

        Refuses a message over :attr:`max_message_size` or with more than
        :data:`MAX_HEADER_BYTES` of headers (:class:`~servicewire.errors.MessageTooLargeError`)
        before the broker sees it, then hands it to :meth:`_send`.
        """
        self.check_size(message)
        await self._send(message)

    async def publish_batch(self, messages: Sequence[Message]) -> None:
        """Send several messages, pipelined; return once all are confirmed.

        Every message is checked first: one over a limit refuses the whole batch before
        any is sent. Then :meth:`_send_batch` sends them.
        """
        for message in messages:
            self.check_size(message)
        await self._send_batch(messages)

    @abc.abstractmethod
    async def _send(self, message: Message) -> None:
        """The broker's own publish of one message whose limits :meth:`publish` checked."""

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        """The broker's own publish of checked messages; the default sends them concurrently.

        Transports override it where the broker has a cheaper batch path.
        """
        await asyncio.gather(*(self._send(m) for m in messages))

    @abc.abstractmethod
    async def declare(self, channel: str, group: str) -> None:
        """Make sure ``group`` exists on ``channel`` so it keeps messages from now on."""

    @abc.abstractmethod
    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        """Join ``group`` on ``channel`` (declaring it) and start receiving.

        ``prefetch`` caps unsettled deliveries held by this member.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Wait for publishes in flight, close subscriptions, close the connection."""

    # Cleanup ----------------------------------------------------------------------------
    #
    # Every transport answers both calls. Deleting what does not exist is not an error,
    # so a cleanup may run twice, or after a half-finished declare. The answer says
    # whether the transport keeps broker objects of that kind at all: ``False`` (the
    # default here) is "nothing to delete", as for the in-memory broker's groups or
    # ZeroMQ, where a group lives exactly as long as its members.

    async def delete_group(self, channel: str, group: str) -> bool:
        """Delete ``group`` on ``channel`` with every message it has not acknowledged.

        Returns ``True`` when the transport keeps per-group objects (RabbitMQ queues,
        Redis consumer groups, NATS consumers) and they are gone now, ``False`` when it
        keeps none. Members still subscribed lose the group under them: close them first.
        """
        return False

    async def delete_channel(self, channel: str) -> bool:
        """Delete ``channel`` and its dead-letter channel ``<channel>.dlq`` with their messages.

        Where a broker keeps groups inside the channel (Redis streams, a NATS stream, a
        Kafka topic, the in-memory broker) they go too; on RabbitMQ a group's queues are
        objects of their own, so delete the groups first (:meth:`tear_down` does both).
        Returns ``False`` when the transport keeps nothing per channel.
        """
        return False

    async def tear_down(self, channel: str, groups: Iterable[str] = ()) -> None:
        """Delete ``groups`` on ``channel``, then the channel: what a test, tool or
        benchmark declared, in the order every broker accepts::

            await transport.declare("orders", "billing")
            ...
            await transport.tear_down("orders", ["billing"])
        """
        for group in groups:
            await self.delete_group(channel, group)
        await self.delete_channel(channel)

    # Shared helpers ---------------------------------------------------------------------

    def check_size(self, message: Message) -> None:
        """Refuse a message over ``max_message_size``, or with over :data:`MAX_HEADER_BYTES`
        of headers, before any I/O (:meth:`publish` calls it for every transport)."""
        # message.size, with the sums done in C: this runs once per publish.
        headers = message.headers.view()
        header_bytes = sum(map(len, headers)) + sum(map(len, headers.values()))
        size = header_bytes + len(message.payload)
        if size > self.max_message_size:
            raise MessageTooLargeError(size, self.max_message_size, message.destination)
        if header_bytes > MAX_HEADER_BYTES:
            raise MessageTooLargeError(header_bytes, MAX_HEADER_BYTES, message.destination)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
