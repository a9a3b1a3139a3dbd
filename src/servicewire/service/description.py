"""What a service receives and sends, per channel: the input of its AsyncAPI document.

uses = channel_uses(service.handlers.specs(), [OrderCreated, OrderApproved])
doc = build_asyncapi("Order Service", "1.2.0", uses)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from servicewire.messaging.channels import ChannelUse
from servicewire.messaging.contracts import Contract
from servicewire.pipeline.handlers import HandlerSpec


def channel_uses(
    handlers: Iterable[HandlerSpec], declared_sends: Sequence[type[Contract]]
) -> list[ChannelUse]:
    """One receive use per channel ``handlers`` read, one send use per channel sent to."""
    receives: dict[str, list[type[Contract]]] = {}
    for spec in handlers:
        receives.setdefault(spec.channel, []).append(spec.contract)
    uses = [ChannelUse(ch, "receive", cs) for ch, cs in receives.items()]
    sends: dict[str, list[type[Contract]]] = {}
    for contract in declared_sends:
        channel = contract.default_channel() or "(reply-to)"
        sends.setdefault(channel, []).append(contract)
    uses.extend(ChannelUse(ch, "send", cs) for ch, cs in sends.items())
    return uses
