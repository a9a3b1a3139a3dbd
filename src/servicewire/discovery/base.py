"""What every discovery mechanism shares: an instance, a resolver, and a load balancer.

Clients name a service, never a URL; a :class:`Resolver` turns the name into live
instances and a :class:`Locator` picks one per call, round-robin over the instances
that have not just failed::

    locator = Locator(StaticResolver({"orders": ["127.0.0.1:8001", "127.0.0.1:8002"]}))
    instance = await locator.pick("orders")        # Instance(host='127.0.0.1', port=8001)
    locator.mark_failed(instance)                   # skipped for `cooldown` seconds
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from servicewire.errors import ServicewireError


class DiscoveryError(ServicewireError):
    """Service discovery failed (the registry is unreachable or an address is malformed)."""


class NoInstancesError(DiscoveryError):
    """No live, healthy instance of a service is known."""

    def __init__(self, service: str, known: int = 0) -> None:
        self.service = service
        self.known = known
        detail = f" ({known} known, all marked unhealthy)" if known else ""
        super().__init__(f"no live instance of service {service!r}{detail}")


@dataclass(frozen=True, slots=True)
class Instance:
    """One running copy of a service, reachable at ``host:port``."""

    service: str
    host: str
    port: int
    id: str = ""
    metadata: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    expires_at: float | None = field(default=None, compare=False, hash=False)
    """``time.monotonic()`` after which the entry is dead (registries with a TTL)."""

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://{self.address}"

    @property
    def key(self) -> str:
        """Identity used by the load balancer and the registry."""
        return self.id or self.address

    @classmethod
    def parse(cls, service: str, address: str) -> Instance:
        """Parse ``host:port``, ``[v6]:port`` or ``scheme://host:port``."""
        text = address.split("://", 1)[-1].rstrip("/")
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise DiscoveryError(f"address {address!r} of {service!r} is not host:port")
        return cls(service=service, host=host.strip("[]"), port=int(port))


@runtime_checkable
class Resolver(Protocol):
    """Turns a service name into its currently live instances (possibly none)."""

    async def resolve(self, service: str) -> Sequence[Instance]: ...


def _alive(instances: Sequence[Instance]) -> Sequence[Instance]:
    # A cached entry past its TTL is dead even if the cache is not: drop it, so caching
    # never resurrects an instance that stopped heartbeating.
    if all(i.expires_at is None for i in instances):
        return instances
    now = time.monotonic()
    return [i for i in instances if i.expires_at is None or i.expires_at > now]


class Locator:
    """Client-side load balancing: round-robin across healthy instances of a service.

    ``mark_failed`` takes an instance out of rotation for ``cooldown`` seconds (passive
    health checking: the caller saw a connection error). When every instance is marked
    the locator still returns one rather than failing: the marks are guesses, the
    resolver's list is the truth. Resolutions are cached for ``refresh`` seconds so a
    busy client does not ask the registry on every call.
    """

    def __init__(self, resolver: Resolver, *, refresh: float = 1.0, cooldown: float = 5.0) -> None:
        self.resolver = resolver
        self.refresh = refresh
        self.cooldown = cooldown
        self._cache: dict[str, tuple[float, Sequence[Instance]]] = {}
        self._counters: dict[str, itertools.count[int]] = {}
        self._failed: dict[str, float] = {}

    async def instances(self, service: str) -> Sequence[Instance]:
        now = time.monotonic()
        cached = self._cache.get(service)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.resolver.resolve(service)
        self._cache[service] = (now + self.refresh, found)
        return found

    def invalidate(self, service: str) -> None:
        self._cache.pop(service, None)

    async def pick(self, service: str) -> Instance:
        live = _alive(await self.instances(service))
        if not live:
            # Ask again at once: the cache may predate a new registration.
            self.invalidate(service)
            live = _alive(await self.instances(service))
            if not live:
                raise NoInstancesError(service)
        pool = live
        if self._failed:
            now = time.monotonic()
            pool = [i for i in live if self._failed.get(i.key, 0.0) <= now] or live
        counter = self._counters.setdefault(service, itertools.count())
        return pool[next(counter) % len(pool)]

    def mark_failed(self, instance: Instance) -> None:
        self._failed[instance.key] = time.monotonic() + self.cooldown
