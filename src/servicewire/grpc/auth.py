"""Service identity on gRPC: TLS credentials, bearer tokens or client certs, and a policy.

Server side, :class:`AuthInterceptor` authenticates each call (a bearer token in the
``authorization`` metadata, or the client certificate's common name under mutual TLS)
and applies the policy to the full method name; it answers ``UNAUTHENTICATED`` or
``PERMISSION_DENIED`` with status details (an ``ErrorInfo`` naming the reason)::

    server = Server(
        tls=TLSConfig(cert="srv.pem", key="srv.key", ca="ca.pem", require_client_cert=True),
        interceptors=[AuthInterceptor(
            AccessPolicy({"/ftgo.kitchen.v1.Kitchen/*": {"order-service"}}),
            trust_client_certs=True,
        )],
    )
    # in a handler: caller().service == "order-service"

Client side, ``GrpcClient(..., tls=TLSConfig(ca="ca.pem"), auth=TokenIssuer(...))``:
channels are TLS with the server certificate verified, and each call carries a token
whose audience is the service called. Health and reflection stay public.
"""

from __future__ import annotations

import contextvars
import fnmatch
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.rpc import error_details_pb2

from servicewire.grpc.status import DOMAIN, rich_status
from servicewire.security.authorization import AccessPolicy, PermissionDeniedError
from servicewire.security.identity import (
    AuthenticationError,
    Identity,
    TokenVerifier,
    bearer_token,
    identity_from_common_name,
)
from servicewire.security.tls import TLSConfig, TLSConfigError

DEFAULT_PUBLIC: tuple[str, ...] = (
    "/grpc.health.v1.Health/*",
    "/grpc.reflection.v1alpha.ServerReflection/*",
    "/grpc.reflection.v1.ServerReflection/*",
)

_caller: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "servicewire_grpc_caller", default=None
)


def caller() -> Identity:
    """The authenticated service calling the current handler."""
    identity = _caller.get()
    if identity is None:
        raise AuthenticationError("no authenticated caller (is AuthInterceptor installed?)")
    return identity


def channel_credentials(tls: TLSConfig) -> grpc.ChannelCredentials:
    """Client credentials: server verified against ``tls.ca`` (system CAs if none)."""
    if not tls.verify:
        # gRPC has no switch to skip verification, and we would not offer one anyway.
        raise TLSConfigError("gRPC channels always verify the server certificate")
    ca, cert, key = tls.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """Server credentials; client certificates required when ``tls.require_client_cert``."""
    ca, cert, key = tls.read()
    if cert is None or key is None:
        raise TLSConfigError("a TLS server needs tls_cert and tls_key")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=tls.require_client_cert
    )


async def _refuse(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> None:
    """Abort the call with ``code`` and an ``ErrorInfo`` whose reason is the code's name."""
    info = error_details_pb2.ErrorInfo(reason=code.name, domain=DOMAIN)
    status = rich_status(code, message, [info])
    await context.abort(status.code, status.details, status.trailing_metadata)


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticate every call (token and/or client certificate), then apply ``policy``."""

    def __init__(
        self,
        policy: AccessPolicy,
        *,
        verifier: TokenVerifier | None = None,
        trust_client_certs: bool = False,
        public: Sequence[str] = DEFAULT_PUBLIC,
    ) -> None:
        if verifier is None and not trust_client_certs:
            raise ValueError("give a token verifier, trust_client_certs=True, or both")
        self.policy = policy
        self.verifier = verifier
        self.trust_client_certs = trust_client_certs
        self.public = tuple(public)

    def authenticate(self, context: grpc.aio.ServicerContext) -> Identity:
        """The caller's identity: a bearer token first, else a verified client cert."""
        metadata = dict(context.invocation_metadata() or ())
        authorization = metadata.get("authorization")
        if self.verifier is not None and (authorization or not self.trust_client_certs):
            value = authorization if isinstance(authorization, str) else None
            return self.verifier.verify(bearer_token(value))
        auth = context.auth_context() or {}
        # gRPC puts the common name here only after it verified the certificate chain.
        names = auth.get("x509_common_name") or []
        return identity_from_common_name(names[0] if names else None)

    async def _admit(self, context: grpc.aio.ServicerContext, method: str) -> None:
        try:
            identity = self.authenticate(context)
        except AuthenticationError as exc:
            await _refuse(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        try:
            self.policy.check(identity, method)
        except PermissionDeniedError as exc:
            await _refuse(context, grpc.StatusCode.PERMISSION_DENIED, str(exc))
        _caller.set(identity)  # each call runs in a task of its own: scoped to this call

    def _unary(self, behavior: Callable[..., Awaitable[Any]], method: str) -> Any:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._admit(context, method)
            return await behavior(request, context)

        return guarded

    def _streaming(self, behavior: Callable[..., Any], method: str) -> Any:
        if not inspect.isasyncgenfunction(behavior):
            return self._unary(behavior, method)

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await self._admit(context, method)
            async for item in behavior(request, context):
                yield item

        return guarded

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or any(fnmatch.fnmatchcase(method, p) for p in self.public):
            return handler
        common = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method), **common
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method), **common
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method), **common
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.stream_stream, method), **common
            )
        return handler


__all__ = [
    "DEFAULT_PUBLIC",
    "AuthInterceptor",
    "caller",
    "channel_credentials",
    "server_credentials",
]
