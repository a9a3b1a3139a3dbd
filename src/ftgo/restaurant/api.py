"""Restaurant Service's published API: order-detail validation and restaurant events."""

from __future__ import annotations

from decimal import Decimal

from ftgo.values import LineItem, MenuItem
from servicewire import Command, Event, FailureReply, SuccessReply

COMMANDS = "ftgo.restaurant.commands"
EVENTS = "ftgo.restaurant.events"


class ValidateOrderDetails(
    Command,
    name="ftgo.restaurant.ValidateOrderDetails",
    version="1.0.0",
    channel=COMMANDS,
    key="order_id",
):
    """Is every line item on the menu, and does the restaurant deliver there?"""

    order_id: str
    restaurant_id: str
    line_items: list[LineItem]
    delivery_postcode: str


class OrderDetailsValidated(
    SuccessReply, name="ftgo.restaurant.OrderDetailsValidated", version="1.0.0"
):
    """The details are valid; ``order_total`` is priced from the current menu."""

    order_id: str
    restaurant_id: str
    order_total: Decimal


class OrderDetailsRejected(
    FailureReply, name="ftgo.restaurant.OrderDetailsRejected", version="1.0.0"
):
    order_id: str
    restaurant_id: str


class RestaurantCreated(
    Event,
    name="ftgo.restaurant.RestaurantCreated",
    version="1.0.0",
    channel=EVENTS,
    key="restaurant_id",
):
    restaurant_id: str
    name: str
    menu: list[MenuItem]
    postcodes: list[str]


class RestaurantMenuRevised(
    Event,
    name="ftgo.restaurant.RestaurantMenuRevised",
    version="1.0.0",
    channel=EVENTS,
    key="restaurant_id",
):
    restaurant_id: str
    menu: list[MenuItem]
