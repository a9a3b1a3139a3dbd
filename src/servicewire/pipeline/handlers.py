"""The handler registry: which function handles which contract on which channel.

A service registers handlers by contract type; the registry answers, for a message on
a channel, which handler (and which contract class, by MAJOR version) it goes to::

    registry = HandlerRegistry()
    spec = HandlerSpec(CreateTicket, create_ticket, HandlerKind.COMMAND, "kitchen", "kitchen")
    registry.add(spec)
    spec = registry.lookup("kitchen", "ftgo.kitchen.CreateTicket", "1.4.0")
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from servicewire.errors import UnknownContractError, UnsupportedVersionError
from servicewire.messaging.contracts import Contract
from servicewire.messaging.versioning import SemVer

if TYPE_CHECKING:
    from servicewire.pipeline.context import Context

HandlerFunc = Callable[[Any, "Context"], Awaitable[None]]


class HandlerKind(enum.StrEnum):
    COMMAND = "command"
    EVENT = "event"
    REPLY = "reply"


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """One registered entry point."""

    contract: type[Contract]
    func: HandlerFunc
    kind: HandlerKind
    channel: str
    group: str

    @property
    def name(self) -> str:
        """``module.qualname`` of the handler function, for dead-letter headers and logs."""
        module = getattr(self.func, "__module__", "?")
        return f"{module}.{getattr(self.func, '__qualname__', repr(self.func))}"


class HandlerRegistry:
    """Handlers by (channel, group), then by (wire name, MAJOR)."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], dict[tuple[str, int], HandlerSpec]] = {}

    def add(self, spec: HandlerSpec) -> None:
        routes = self._routes.setdefault((spec.channel, spec.group), {})
        key = (spec.contract.contract_name(), spec.contract.contract_version().major)
        if key in routes:
            raise ValueError(
                f"{key[0]} major {key[1]} on channel {spec.channel!r} already has handler "
                f"{routes[key].name}"
            )
        routes[key] = spec

    def subscriptions(self) -> list[tuple[str, str]]:
        """The (channel, group) pairs the service must consume."""
        return list(self._routes)

    def specs(self) -> Iterator[HandlerSpec]:
        for routes in self._routes.values():
            yield from routes.values()

    def ignores_unknown(self, channel: str, group: str) -> bool:
        """Whether unhandled types on this channel are skipped rather than dead-lettered.

        Event channels carry every event of an aggregate; a subscriber handles the ones
        it cares about and ignores the rest. On command and reply channels a message
        nobody handles is an error and goes to the dead-letter channel.
        """
        routes = self._routes.get((channel, group), {})
        return bool(routes) and all(s.kind is HandlerKind.EVENT for s in routes.values())

    def lookup(self, channel: str, group: str, name: str, version: str) -> HandlerSpec:
        """The handler for a message; raises Unknown/UnsupportedVersion errors naming both."""
        routes = self._routes.get((channel, group), {})
        try:
            major = SemVer.parse(version).major if version else None
        except ValueError:
            major = -1
        if major is None:
            candidates = [s for (n, _), s in routes.items() if n == name]
            if candidates:
                return max(candidates, key=lambda s: s.contract.contract_version())
            raise UnknownContractError(name)
        spec = routes.get((name, major))
        if spec is not None:
            return spec
        supported = sorted(
            str(s.contract.contract_version()) for (n, _), s in routes.items() if n == name
        )
        if supported:
            raise UnsupportedVersionError(name, version, supported)
        raise UnknownContractError(name, version)
