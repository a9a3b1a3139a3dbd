"""What a relay's publishes report: spans, counts and commit-to-publish latency.

:class:`Relay <servicewire.relay.base.Relay>` wraps its transport with
:func:`observed_transport`; every batch it publishes then gets a producer span per
message (a child of the span that wrote the outbox row, and the parent of the
consumer's span) and is counted in the Prometheus metrics::

    transport = observed_transport(await connect_transport(url), relay="ftgo-order")
    await transport.publish_batch(messages)

Everything but publishing is passed through to the wrapped transport unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

from servicewire.messaging.message import Message
from servicewire.telemetry.metrics import record_published
from servicewire.telemetry.tracing import end_spans, start_publish_spans
from servicewire.transports.base import Subscription, Transport


class ObservedTransport(Transport):
    """A transport whose publishes are traced and counted."""

    def __init__(self, inner: Transport, relay: str) -> None:
        super().__init__(inner.url, max_message_size=inner.max_message_size)
        self.inner = inner
        self.relay = relay

    def __getattr__(self, name: str) -> Any:
        # scheme, capabilities and transport-specific attributes come from the real one.
        return getattr(self.inner, name)

    async def connect(self) -> None:
        await self.inner.connect()

    # The inner transport checks the limits again after stamping (trace headers add bytes).
    async def _send(self, message: Message) -> None:
        stamped, spans = start_publish_spans(self.relay, [message])
        await self._settle(self.inner.publish(stamped[0]), spans, [message])

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        stamped, spans = start_publish_spans(self.relay, messages)
        await self._settle(self.inner.publish_batch(stamped), spans, messages)

    async def _settle(
        self, sending: Awaitable[None], spans: list[Any], messages: Sequence[Message]
    ) -> None:
        try:
            await sending
        except BaseException as exc:
            end_spans(spans, exc)
            raise
        end_spans(spans)
        record_published(self.relay, messages)

    async def declare(self, channel: str, group: str) -> None:
        await self.inner.declare(channel, group)

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        return await self.inner.subscribe(channel, group, prefetch=prefetch)

    async def delete_group(self, channel: str, group: str) -> bool:
        return await self.inner.delete_group(channel, group)

    async def delete_channel(self, channel: str) -> bool:
        return await self.inner.delete_channel(channel)

    async def close(self) -> None:
        await self.inner.close()

    def check_size(self, message: Message) -> None:
        self.inner.check_size(message)


def observed_transport(transport: Transport, *, relay: str) -> Transport:
    """``transport`` with traced, counted publishes (itself if already wrapped)."""
    if isinstance(transport, ObservedTransport):
        return transport
    return ObservedTransport(transport, relay)
