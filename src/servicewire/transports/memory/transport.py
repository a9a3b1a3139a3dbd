"""``memory://`` — the in-process reference transport.

Everything the contract suite asks of a broker, inside one event loop: groups, shards,
per-key order with competing members, redelivery on nack (with delay) and when a
member leaves without acking. It is the embedded default (``make demo``) and the
transport for unit tests of handlers::

    transport = await connect_transport("memory://")            # broker named "default"
    other = await connect_transport("memory://")                # same broker, another client
    isolated = await connect_transport("memory://test-42")      # a broker of its own

Clients whose URLs name the same broker share it, like processes sharing a RabbitMQ.
Nothing survives the process (``persistent=False``).
"""

from __future__ import annotations

from servicewire.errors import TransportError
from servicewire.messaging.channels import dead_letter_channel, validate_name
from servicewire.messaging.message import Message
from servicewire.transports.base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Capabilities,
    Subscription,
    Transport,
)
from servicewire.transports.memory.broker import MemoryBroker
from servicewire.transports.memory.options import MemoryOptions
from servicewire.transports.memory.subscription import MemorySubscription

__all__ = ["MemoryBroker", "MemoryTransport"]


class MemoryTransport(Transport):
    """A client of a named :class:`MemoryBroker`."""

    scheme = "memory"
    capabilities = Capabilities(
        durable=True,
        persistent=False,
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=False,
    )

    def __init__(
        self, url: str = "memory://", *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        super().__init__(url, max_message_size=max_message_size)
        self.options = MemoryOptions.from_url(url)
        self.broker_name = self.options.broker_name
        self.broker = MemoryBroker.named(self.broker_name)
        self._subscriptions: set[MemorySubscription] = set()
        self._connected = False

    async def connect(self) -> None:
        self._connected = True

    def _check_open(self) -> None:
        if not self._connected:
            raise TransportError(f"memory transport {self.url!r} is not connected")

    async def _send(self, message: Message) -> None:
        self._check_open()
        validate_name(message.destination, "channel")
        self.broker.publish(message)

    async def declare(self, channel: str, group: str) -> None:
        self._check_open()
        self.broker.group(validate_name(channel, "channel"), validate_name(group, "group"))

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        self._check_open()
        state = self.broker.group(validate_name(channel, "channel"), validate_name(group, "group"))
        sub = MemorySubscription(state, channel, group, prefetch, self._subscriptions.discard)
        self._subscriptions.add(sub)
        state.join(sub)
        return sub

    async def delete_group(self, channel: str, group: str) -> bool:
        self._check_open()
        self.broker.delete_group(validate_name(channel, "channel"), validate_name(group, "group"))
        return True

    async def delete_channel(self, channel: str) -> bool:
        self._check_open()
        self.broker.delete_channel(validate_name(channel, "channel"))
        self.broker.delete_channel(dead_letter_channel(channel))
        return True

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            await sub.close()
        self._connected = False
