"""How the memory transport reads its URL: ``memory://NAME`` names an in-process broker.

    MemoryOptions.from_url("memory://orders-test").broker_name    # 'orders-test'
    MemoryOptions.from_url("memory://").broker_name               # 'default'

Clients with the same name share one broker; the query string takes no options, so
any key in it is refused (like every transport's unknown keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from servicewire.transports.options import INTERNAL, TransportOptions


@dataclass(frozen=True, slots=True)
class MemoryOptions(TransportOptions):
    broker: ClassVar[str] = "memory"
    supports_tls: ClassVar[bool] = False

    broker_name: str = field(default="default", metadata=INTERNAL)
    """The broker's name: host and path of the URL, ``default`` when empty."""

    @classmethod
    def from_url(cls, url: str) -> MemoryOptions:
        parsed = cls.parse(url)
        parts = parsed.parts
        name = (parts.netloc + parts.path).strip("/") or "default"
        return replace(parsed.options, broker_name=name)
