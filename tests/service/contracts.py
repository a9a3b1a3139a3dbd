"""Contracts used by the service tests (a tiny kitchen and accounting domain)."""

from __future__ import annotations

from servicewire import Command, Event, FailureReply, SuccessReply


class CreateTicket(
    Command,
    name="test.kitchen.CreateTicket",
    version="1.0.0",
    channel="test-kitchen",
    key="order_id",
):
    order_id: str
    items: list[str] = []
    fail: bool = False


class TicketCreated(SuccessReply, name="test.kitchen.TicketCreated", version="1.0.0"):
    order_id: str
    ticket_id: str


class TicketRejected(FailureReply, name="test.kitchen.TicketRejected", version="1.0.0"):
    order_id: str = ""


class TicketEvent(
    Event,
    name="test.kitchen.TicketEvent",
    version="1.0.0",
    channel="test-kitchen.events",
    key="order_id",
):
    order_id: str
    seq: int


class OtherEvent(
    Event,
    name="test.kitchen.OtherEvent",
    version="1.0.0",
    channel="test-kitchen.events",
):
    note: str = ""


class PriceQuery(
    Event, name="test.pricing.PriceQuery", version="1.0.0", channel="test-pricing.queries"
):
    item: str


class PriceQuote(SuccessReply, name="test.pricing.PriceQuote", version="1.0.0"):
    vendor: str
    price: float
