"""Order Service's published API: the events of an order's life."""

from __future__ import annotations

from decimal import Decimal

from ftgo.values import LineItem
from servicewire import Event

EVENTS = "ftgo.order.events"


class OrderCreated(
    Event, name="ftgo.order.OrderCreated", version="1.0.0", channel=EVENTS, key="order_id"
):
    order_id: str
    consumer_id: str
    restaurant_id: str
    line_items: list[LineItem]
    order_total: Decimal


class OrderValidated(
    Event, name="ftgo.order.OrderValidated", version="1.0.0", channel=EVENTS, key="order_id"
):
    order_id: str
    order_total: Decimal


class OrderRejected(
    Event, name="ftgo.order.OrderRejected", version="1.0.0", channel=EVENTS, key="order_id"
):
    order_id: str
    reason: str


class OrderCancelled(
    Event, name="ftgo.order.OrderCancelled", version="1.0.0", channel=EVENTS, key="order_id"
):
    order_id: str
