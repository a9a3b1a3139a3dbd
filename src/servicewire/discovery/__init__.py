"""Service discovery: clients resolve a service name, never a URL.

Three resolvers share one protocol, :class:`Resolver`, and one load balancer,
:class:`Locator` (round-robin over healthy instances)::

    from servicewire.discovery import Locator, StaticResolver, DnsResolver, RedisRegistry

    Locator(StaticResolver({"orders": ["127.0.0.1:8001"]}))      # configuration
    Locator(DnsResolver(port=8080))                               # the platform's DNS
    registry = RedisRegistry("redis://127.0.0.1:6379/0")          # self-registration
    async with registry.register(Instance("orders", "127.0.0.1", 8001), ttl=10):
        Locator(registry)

:class:`RedisRegistry` needs ``servicewire[redis]``; it is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from servicewire.discovery.base import (
    DiscoveryError,
    Instance,
    Locator,
    NoInstancesError,
    Resolver,
)
from servicewire.discovery.dns import DnsResolver
from servicewire.discovery.static import StaticResolver

if TYPE_CHECKING:
    from servicewire.discovery.redis import RedisRegistry, Registration

__all__ = [
    "DiscoveryError",
    "DnsResolver",
    "Instance",
    "Locator",
    "NoInstancesError",
    "RedisRegistry",
    "Registration",
    "Resolver",
    "StaticResolver",
]


def __getattr__(name: str) -> Any:
    # The Redis registry loads redis-py; keep it out of `import servicewire.discovery`.
    if name in ("RedisRegistry", "Registration"):
        from servicewire.discovery import redis

        return getattr(redis, name)
    raise AttributeError(name)
