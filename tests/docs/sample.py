"""Contracts and targets the docs tests generate AsyncAPI documents from."""

from __future__ import annotations

from servicewire.messaging.channels import ChannelUse
from servicewire.messaging.contracts import Command, Event, FailureReply, SuccessReply
from servicewire.service.service import Service


class CreateTicket(
    Command,
    name="docs.kitchen.CreateTicket",
    version="1.2.0",
    channel="docs-kitchen",
    key="order_id",
    register=False,
):
    """Ask the kitchen to prepare an order.

    Sent by the order service when an order is approved. <script>alert(1)</script>
    """

    order_id: str
    items: list[str] = []
    priority: int | None = None


class TicketCreated(
    SuccessReply, name="docs.kitchen.TicketCreated", version="1.0.0", register=False
):
    """The kitchen accepted the ticket."""

    ticket_id: str


class TicketRefused(
    FailureReply, name="docs.kitchen.TicketRefused", version="1.0.0", register=False
):
    """The kitchen cannot prepare the order."""


class TicketAccepted(
    Event,
    name="docs.kitchen.TicketAccepted",
    version="2.1.0",
    channel="docs.kitchen.events",
    register=False,
):
    """A ticket was accepted (major 2: ``eta`` replaced ``ready_by``)."""

    ticket_id: str
    eta_minutes: int = 15


USES = [
    ChannelUse("docs-kitchen", "receive", [CreateTicket], description="Commands to the kitchen"),
    ChannelUse("(reply-to)", "send", [TicketCreated, TicketRefused]),
    ChannelUse("docs.kitchen.events", "send", [TicketAccepted]),
]


def kitchen_service() -> Service:
    """A real Service with one handler and declared sends (not started)."""
    service = Service("docs-kitchen-service")
    service.sends(TicketCreated, TicketRefused, TicketAccepted)

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: object) -> None:
        return None

    return service


NOT_USES = 42
