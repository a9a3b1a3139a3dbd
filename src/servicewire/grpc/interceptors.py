"""gRPC interceptors: call context in, errors out (server); call context out (client).

Server side, :class:`ServerContextInterceptor` wraps every method of every style:

* the caller's deadline (``context.time_remaining()``) becomes the inherited
  :class:`~servicewire.resilience.Deadline`, so calls the handler makes get no more time;
* ``x-correlation-id`` becomes the current correlation id (a new one when missing),
  and what OpenTelemetry's configured propagators extract from the metadata (by default
  W3C ``traceparent``/``tracestate`` and ``baggage``) the current OpenTelemetry context;
* an exception becomes a status code with details (:mod:`servicewire.grpc.status`).

Client side, :func:`client_interceptors` add the correlation id and what the
propagators write for the current context to every call, and shrink its timeout to
the inherited deadline::

    channel = grpc.aio.insecure_channel(address, interceptors=client_interceptors())

(:class:`~servicewire.grpc.client.GrpcClient` does the same inline, without the
interceptor machinery, because grpc.aio client interceptors cost a measurable share
of a fast unary call.)
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from servicewire.grpc import context as call_context
from servicewire.grpc.status import status_for
from servicewire.resilience import Deadline, _current_deadline, current_deadline
from servicewire.telemetry.grpc_spans import rewrap_handler

log = logging.getLogger(__name__)


def _enter(context: grpc.aio.ServicerContext, method: str) -> None:
    # Each RPC runs in a task of its own, with a copy of the context: setting the
    # variables here scopes them to this call without an explicit reset.
    call_context.adopt(context.invocation_metadata())
    remaining = context.time_remaining()
    if remaining is not None and remaining > 0:
        _current_deadline.set(Deadline(remaining))


async def _fail(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    code, message, trailers = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("unhandled error in %s", method)
    await context.abort(code, message, trailers)


def _wrap_unary_response(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], method: str
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        _enter(context, method)
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _fail(context, method, exc)

    return wrapped


def _wrap_stream_response(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Any], method: str
) -> Callable[[Any, grpc.aio.ServicerContext], Any]:
    if not inspect.isasyncgenfunction(behavior):
        # A handler that writes with context.write() and returns None.
        return _wrap_unary_response(behavior, method)

    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        _enter(context, method)
        try:
            async for item in behavior(request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _fail(context, method, exc)

    return wrapped


class ServerContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Deadline, correlation id, trace context and error mapping for every method."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return rewrap_handler(
            handler, handler_call_details.method, _wrap_unary_response, _wrap_stream_response
        )


def _outgoing(client_call_details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    given = tuple(client_call_details.metadata or ())
    metadata = grpc.aio.Metadata(*call_context.outgoing_metadata(given))
    timeout = client_call_details.timeout
    inherited = current_deadline()
    if inherited is not None:
        left = inherited.remaining()
        timeout = left if timeout is None else min(timeout, left)
    return grpc.aio.ClientCallDetails(
        client_call_details.method,
        timeout,
        metadata,
        client_call_details.credentials,
        client_call_details.wait_for_ready,
    )


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_outgoing(details), request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_outgoing(details), request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_outgoing(details), requests)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_outgoing(details), requests)


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for ``grpc.aio`` channels that propagate the call context."""
    return [_UnaryUnary(), _UnaryStream(), _StreamUnary(), _StreamStream()]
