"""The test service of protos/servicewire/testing/v1/echo.proto, for tests and benchmarks.

server = Server()
add_echo_service(server)
async with server: ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from opentelemetry import baggage

from servicewire.grpc import context as call_context
from servicewire.grpc.generated.testing.v1 import echo_pb2, echo_pb2_grpc
from servicewire.grpc.server import Server
from servicewire.resilience import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    ServiceUnavailableError,
    current_deadline,
)

SERVICE = echo_pb2.DESCRIPTOR.services_by_name["EchoService"]


def _fail(kind: str) -> None:
    if kind == "not_found":
        raise NotFoundError("echo", "no such echo")
    if kind == "invalid":
        raise InvalidArgumentError(
            "echo",
            "message is invalid",
            errors=[{"field": "message", "message": "must not be empty"}],
        )
    if kind == "conflict":
        raise ConflictError("echo", "echo is in the wrong state")
    if kind == "unavailable":
        raise ServiceUnavailableError("echo", "try again later")
    if kind == "crash":
        raise RuntimeError("secret internal detail /srv/echo.py")


def _context() -> dict[str, str]:
    seen = {
        "correlation_id": call_context.current_correlation_id() or "",
        "traceparent": call_context.current_traceparent() or "",
        "baggage": ",".join(f"{k}={v}" for k, v in sorted(baggage.get_all().items())),
    }
    deadline = current_deadline()
    if deadline is not None:
        seen["deadline_ms"] = str(int(deadline.remaining() * 1000))
    return seen


class EchoServicer(echo_pb2_grpc.EchoServiceServicer):
    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext
    ) -> echo_pb2.EchoResponse:
        if request.delay_ms:
            await asyncio.sleep(request.delay_ms / 1000)
        _fail(request.fail_with)
        return echo_pb2.EchoResponse(message=request.message, context=_context())

    async def Countdown(
        self, request: echo_pb2.CountdownRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[echo_pb2.CountdownResponse]:
        for value in range(request.start, 0, -1):
            if request.interval_ms:
                await asyncio.sleep(request.interval_ms / 1000)
            yield echo_pb2.CountdownResponse(value=value)

    async def Chat(
        self,
        requests: AsyncIterator[echo_pb2.EchoRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[echo_pb2.EchoResponse]:
        sequence = 0
        async for request in requests:
            _fail(request.fail_with)
            sequence += 1
            yield echo_pb2.EchoResponse(message=request.message, sequence=sequence)


def add_echo_service(server: Server) -> None:
    server.add_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, EchoServicer(), SERVICE)
