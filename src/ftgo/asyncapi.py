"""FTGO's message APIs as AsyncAPI targets (for ``servicewire docs asyncapi`` and the lock).

Each function builds a service that is never started and returns what it sends and
receives on which channel::

    servicewire docs asyncapi ftgo.asyncapi:order_service --html build/order-asyncapi.html
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftgo.consumer.service import create_consumer_service
from ftgo.order.service import create_order_service
from ftgo.restaurant.service import create_restaurant_service

if TYPE_CHECKING:
    from servicewire.messaging import ChannelUse

_UNUSED_DB = "sqlite://"
_UNUSED_TRANSPORT = "memory://ftgo-asyncapi"


def order_service() -> list[ChannelUse]:
    service, _orders = create_order_service(_UNUSED_DB, _UNUSED_TRANSPORT)
    return service.channel_uses()


def consumer_service() -> list[ChannelUse]:
    return create_consumer_service(_UNUSED_DB, _UNUSED_TRANSPORT).channel_uses()


def restaurant_service() -> list[ChannelUse]:
    return create_restaurant_service(_UNUSED_DB, _UNUSED_TRANSPORT).channel_uses()
