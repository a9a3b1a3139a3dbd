"""A handler run to feed a middleware directly, with no service around it."""

from __future__ import annotations

from servicewire import Context
from servicewire.codecs import to_message
from servicewire.pipeline.handlers import HandlerKind, HandlerSpec
from servicewire.pipeline.middleware import Run
from servicewire.testing.harness import HarnessDelivery
from tests.service.contracts import CreateTicket

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def _handler(cmd: CreateTicket, ctx: Context) -> None:
    """Never called: the steps under test stand in for the transactional unit."""


def a_run(service: str = "kitchen", order_id: str = "o-1") -> Run:
    """A run of CreateTicket on ``test-kitchen``, sent from a traced caller."""
    message = to_message(CreateTicket(order_id=order_id), extra={"traceparent": TRACEPARENT})
    spec = HandlerSpec(CreateTicket, _handler, HandlerKind.COMMAND, "test-kitchen", "kitchen")
    value = CreateTicket(order_id=order_id)
    return Run(service, "test-kitchen", "kitchen", spec, value, HarnessDelivery(message))
