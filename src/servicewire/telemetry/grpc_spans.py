"""A server span per gRPC call, parented by the trace context of the caller's metadata.

Add the interceptor to a :class:`~servicewire.grpc.Server`; it runs inside
Servicewire's own context interceptor, so the span sees the handler's exception
before it becomes a status code::

    server = Server(port=9081, interceptors=[TracingServerInterceptor()])

A client continues the trace by sending the current span (and baggage) as metadata,
written by OpenTelemetry's configured propagators (a ``GrpcClient`` call inside the
block sends the same by itself; the metadata serves other clients)::

    with client_span("restaurant-service", "ValidateOrderDetails") as metadata:
        await grpc_client.unary(..., metadata=metadata)
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc

from servicewire.telemetry.tracing import active, current_call_headers, span


@contextlib.contextmanager
def client_span(service: str, method: str) -> Iterator[tuple[tuple[str, str], ...]]:
    """A ``CLIENT`` span for one outgoing call; yields the metadata that carries it."""
    attributes = {"rpc.system": "grpc", "rpc.method": method, "server.address": service}
    with span(f"call {service}/{method}", kind="CLIENT", attributes=attributes):
        yield tuple(current_call_headers().items())


def _parent(context: grpc.aio.ServicerContext) -> Any:
    """The OpenTelemetry context the call's metadata carries (tracing is on)."""
    from servicewire.telemetry.propagation import extract_metadata

    return extract_metadata(context.invocation_metadata())


def _name(method: str) -> str:
    return method.lstrip("/")  # "/ftgo.restaurant.v1.RestaurantService/ValidateOrderDetails"


def _attributes(method: str) -> dict[str, str]:
    service, _, name = _name(method).rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def rewrap_handler(
    handler: grpc.RpcMethodHandler,
    method: str,
    unary: Callable[[Callable[..., Any], str], Callable[..., Any]],
    streaming: Callable[[Callable[..., Any], str], Callable[..., Any]],
) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour wrapped: ``unary`` where one response comes back,
    ``streaming`` where a stream of responses does (server interceptors share this)."""
    common = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary, method), **common)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            streaming(handler.unary_stream, method), **common
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary, method), **common)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(
            streaming(handler.stream_stream, method), **common
        )
    return handler


def _unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        with span(_name(method), kind="SERVER", parent=_parent(context),
                  attributes=_attributes(method)):  # fmt: skip
            return await behavior(request, context)

    return wrapped


def _streaming(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):
        return _unary(behavior, method)

    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        with span(_name(method), kind="SERVER", parent=_parent(context),
                  attributes=_attributes(method)):  # fmt: skip
            async for item in behavior(request, context):
                yield item

    return wrapped


class TracingServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """One ``SERVER`` span per call of every style (no-op while tracing is off)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or not active():
            return handler
        return rewrap_handler(handler, handler_call_details.method, _unary, _streaming)
