"""Consumer Service's published API: the command it handles, its replies, its events."""

from __future__ import annotations

from decimal import Decimal

from servicewire import Command, Event, FailureReply, SuccessReply

COMMANDS = "ftgo.consumer.commands"
EVENTS = "ftgo.consumer.events"


class ValidateConsumerInfo(
    Command,
    name="ftgo.consumer.ValidateConsumerInfo",
    version="1.0.0",
    channel=COMMANDS,
    key="order_id",
):
    """May this consumer place an order of this total?"""

    consumer_id: str
    order_id: str
    order_total: Decimal


class ConsumerValidated(SuccessReply, name="ftgo.consumer.ConsumerValidated", version="1.0.0"):
    consumer_id: str
    order_id: str


class ConsumerValidationFailed(
    FailureReply, name="ftgo.consumer.ConsumerValidationFailed", version="1.0.0"
):
    """``reason`` says which rule failed: unknown, inactive, or over the order limit."""

    consumer_id: str
    order_id: str


class ConsumerCreated(
    Event, name="ftgo.consumer.ConsumerCreated", version="1.0.0", channel=EVENTS, key="consumer_id"
):
    consumer_id: str
    name: str
