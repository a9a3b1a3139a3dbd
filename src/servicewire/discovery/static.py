"""Static discovery: service names mapped to fixed addresses in configuration.

resolver = StaticResolver({"orders": ["127.0.0.1:8001", "127.0.0.1:8002"]})
await resolver.resolve("orders")    # two Instances
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from servicewire.discovery.base import Instance


class StaticResolver:
    """Resolves from a fixed mapping; an unknown service has no instances."""

    def __init__(self, services: Mapping[str, Sequence[str]]) -> None:
        self._instances = {
            name: tuple(Instance.parse(name, address) for address in addresses)
            for name, addresses in services.items()
        }

    async def resolve(self, service: str) -> Sequence[Instance]:
        return self._instances.get(service, ())
