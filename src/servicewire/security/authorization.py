"""Authorization: which services may call which operations.

Given the caller's :class:`~servicewire.security.identity.Identity` (from a token or a
client certificate), a policy answers for one operation::

    policy = AccessPolicy({
        "POST /v1/tickets": {"order-service"},        # REST: "METHOD path"
        "GET /v1/tickets/*": {"order-service", "api-gateway"},
        "/ftgo.kitchen.Kitchen/*": {"order-service"},  # gRPC: "/package.Service/Method"
    })
    policy.check(caller, "POST /v1/tickets")         # or raises PermissionDeniedError

Patterns are shell-style (``fnmatch``); the first that matches an operation decides;
an operation no pattern matches is refused unless ``default=`` names who may call it.
Enforcement on servers is in :mod:`servicewire.rest.auth` and :mod:`servicewire.grpc.auth`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

from servicewire.errors import ServicewireError
from servicewire.security.identity import Identity

ANY_SERVICE = "*"
"""In a policy: any authenticated service."""


class PermissionDeniedError(ServicewireError):
    """The caller is known but may not call this operation."""

    def __init__(self, service: str, operation: str) -> None:
        self.service = service
        self.operation = operation
        super().__init__(f"service {service!r} may not call {operation!r}")


class AccessPolicy:
    """Which services may call which operations (first matching pattern decides)."""

    def __init__(
        self,
        rules: Mapping[str, Iterable[str]] | Iterable[tuple[str, Iterable[str]]],
        *,
        default: Iterable[str] = (),
    ) -> None:
        items = rules.items() if isinstance(rules, Mapping) else rules
        self.rules = [(pattern, frozenset(services)) for pattern, services in items]
        self.default = frozenset(default)

    def allowed(self, operation: str) -> frozenset[str]:
        for pattern, services in self.rules:
            if fnmatch.fnmatchcase(operation, pattern):
                return services
        return self.default

    def check(self, caller: Identity, operation: str) -> None:
        services = self.allowed(operation)
        if caller.service not in services and ANY_SERVICE not in services:
            raise PermissionDeniedError(caller.service, operation)


__all__ = ["ANY_SERVICE", "AccessPolicy", "PermissionDeniedError"]
