"""DNS discovery: the platform's own (Kubernetes Services, Consul DNS, docker networks).

A service name maps to a host name, resolved with the system resolver
(``getaddrinfo``, so /etc/hosts and search domains apply); every address it returns
is one instance on the configured port::

    resolver = DnsResolver(port=8080, hosts={"orders": "orders.ftgo.svc.cluster.local"})
    await resolver.resolve("orders")

SRV records are not read: the standard library has no SRV lookup; see docs/discovery.md.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence

from servicewire.discovery.base import DiscoveryError, Instance


class DnsResolver:
    """Resolve ``hosts.get(service, service)`` to A/AAAA records on ``port``."""

    def __init__(
        self,
        *,
        port: int,
        hosts: Mapping[str, str] | None = None,
        family: int = socket.AF_UNSPEC,
    ) -> None:
        self.port = port
        self.hosts = dict(hosts or {})
        self.family = family

    async def resolve(self, service: str) -> Sequence[Instance]:
        host = self.hosts.get(service, service)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                host, self.port, family=self.family, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
                return ()
            raise DiscoveryError(f"DNS lookup of {host!r} for {service!r} failed: {exc}") from exc
        seen: dict[str, Instance] = {}
        for _family, _type, _proto, _name, sockaddr in infos:
            address = str(sockaddr[0])
            seen.setdefault(address, Instance(service=service, host=address, port=self.port))
        return tuple(seen.values())
