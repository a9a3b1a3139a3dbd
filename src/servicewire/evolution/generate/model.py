"""What a service does on one channel: the input of the AsyncAPI generator.

A :class:`ChannelUse` says "this service *sends* (or *receives*) these contracts on this
channel". :meth:`servicewire.service.service.Service.channel_uses` derives them from a service's
handlers and declared sends; a plain list works as well::

    uses = [
        ChannelUse("order-service", "receive", [CreateOrder, ApproveOrder]),
        ChannelUse("ftgo.order.events", "send", [OrderCreated], description="Order events"),
    ]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from servicewire.messaging.contracts import Contract


@dataclass(frozen=True)
class ChannelUse:
    """One channel, one direction, the contracts that travel on it."""

    channel: str
    action: Literal["send", "receive"]
    contracts: Sequence[type[Contract]]
    description: str = ""
