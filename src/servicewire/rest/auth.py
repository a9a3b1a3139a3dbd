"""Service identity on REST: bearer tokens checked, operations allowed per caller.

Server side, one middleware: every request (except the public paths) must carry
``Authorization: Bearer <token>`` addressed to this service; no or a bad token is
answered ``401`` with ``WWW-Authenticate: Bearer``, a caller the policy does not allow
``403``, both as problem details. The operation a policy names is ``"METHOD path"``::

    app = create_app("Kitchen Service", "1.0.0")
    install_auth(
        app,
        TokenVerifier("kitchen-service", hmac_keys=keys),
        AccessPolicy({"POST /v1/tickets": {"order-service"}, "GET /v1/*": {"*"}}),
    )

    @router.post("/v1/tickets")
    async def create(body: NewTicket, who: Identity = Depends(caller)) -> ...: ...

Client side, pass the issuer; each call carries a token for the service it calls::

    RestClient({"kitchen-service": [...]}, auth=TokenIssuer("order-service", hmac_keys=keys))
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from servicewire.rest.problems import problem_response
from servicewire.security.authorization import AccessPolicy, PermissionDeniedError
from servicewire.security.identity import AuthenticationError, Identity, TokenVerifier, bearer_token

CALLER_KEY = "servicewire_caller"
"""Where the authenticated :class:`Identity` is kept in ``request.state``."""

DEFAULT_PUBLIC: tuple[str, ...] = ("/health", "/health/*", "/metrics")
"""Paths anyone may call: health checks and metrics scrapes."""


class ServiceAuth:
    """ASGI middleware: authenticate the calling service, then apply the policy."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        policy: AccessPolicy,
        public: Sequence[str] = DEFAULT_PUBLIC,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.policy = policy
        self.public = tuple(public)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in self.public):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        operation = f"{scope['method']} {path}"
        try:
            identity = self.verifier.verify(bearer_token(authorization))
        except AuthenticationError as exc:
            # The reason is safe to tell (it never echoes the token) and saves guessing.
            response = problem_response(
                401,
                "Unauthorized",
                detail=str(exc),
                instance=path,
                headers={"www-authenticate": 'Bearer error="invalid_token"'},
            )
            await response(scope, receive, send)
            return
        try:
            self.policy.check(identity, operation)
        except PermissionDeniedError as exc:
            await problem_response(403, "Forbidden", detail=str(exc), instance=path)(
                scope, receive, send
            )
            return
        scope.setdefault("state", {})[CALLER_KEY] = identity
        await self.app(scope, receive, send)


def install_auth(
    app: FastAPI,
    verifier: TokenVerifier,
    policy: AccessPolicy,
    *,
    public: Sequence[str] = DEFAULT_PUBLIC,
) -> None:
    """Require a service identity on every request of ``app`` (see the module docs)."""
    app.add_middleware(ServiceAuth, verifier=verifier, policy=policy, public=public)


def caller(request: Request) -> Identity:
    """FastAPI dependency: the authenticated calling service."""
    identity = getattr(request.state, CALLER_KEY, None)
    if not isinstance(identity, Identity):
        raise AuthenticationError("no authenticated caller (is install_auth missing?)")
    return identity


__all__ = ["CALLER_KEY", "DEFAULT_PUBLIC", "ServiceAuth", "caller", "install_auth"]
