"""gRPC over real grpc.aio servers on loopback: the three call styles, health,
reflection, context propagation, error mapping, deadlines and resilience."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from servicewire.discovery import RedisRegistry
from servicewire.grpc import GrpcClient, Server, call_context, client_interceptors
from servicewire.grpc.generated.testing.v1 import echo_pb2
from servicewire.grpc.generated.testing.v1.echo_pb2_grpc import EchoServiceStub
from servicewire.grpc.testing import add_echo_service
from servicewire.resilience import (
    BulkheadFullError,
    CallRetryPolicy,
    CircuitOpenError,
    CircuitState,
    ConflictError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    RemoteServerError,
    Resilience,
    ServiceUnavailableError,
    counts_as_failure,
    is_transient,
)
from servicewire.timeouts import within
from tests.rest.server import free_port
from tests.services import URLS, require


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    server = Server(grace=1.0)
    add_echo_service(server)
    async with server:
        yield server


def _client(*addresses: str, **options: object) -> GrpcClient:
    settings: dict[str, object] = {
        "timeout": 2.0,
        "retry": CallRetryPolicy(attempts=3, initial_backoff=0.01, retryable=is_transient),
        "is_failure": counts_as_failure,
    }
    settings.update(options)
    return GrpcClient({"echo": list(addresses)}, resilience=Resilience(**settings))  # type: ignore[arg-type]


async def test_unary_call_carries_correlation_id_trace_and_deadline(server: Server) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with _client(server.address) as client:
        with call_context(correlation_id="corr-42", traceparent=parent):
            reply = await client.unary(
                "echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(message="hi"), timeout=1.5
            )
    assert reply.message == "hi"
    assert reply.context["correlation_id"] == "corr-42"
    assert reply.context["traceparent"] == parent  # no SDK tracer: passed on unchanged
    # The server's deadline is gRPC core's (the grpc-timeout header on its own clock,
    # which core reads from a cache that may lag a few milliseconds): seen 1,508 once
    # for a 1.5 s timeout in CI. Passed on, not made longer than asked, is the point.
    assert 0 < int(reply.context["deadline_ms"]) <= 1500 + 50


async def test_server_streaming(server: Server) -> None:
    async with _client(server.address) as client:
        values = [
            item.value
            async for item in client.server_stream(
                "echo", EchoServiceStub, "Countdown", echo_pb2.CountdownRequest(start=5)
            )
        ]
    assert values == [5, 4, 3, 2, 1]


async def test_abandoned_stream_frees_its_slot(server: Server) -> None:
    async with _client(server.address, max_concurrent=1) as client:
        stream = client.server_stream(
            "echo", EchoServiceStub, "Countdown", echo_pb2.CountdownRequest(start=100)
        )
        async for item in stream:
            assert item.value == 100
            break
        await stream.aclose()  # type: ignore[attr-defined]
        reply = await client.unary("echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest())
        assert reply.message == ""


async def test_bidirectional_streaming(server: Server) -> None:
    async def requests() -> AsyncIterator[echo_pb2.EchoRequest]:
        for word in ("a", "b", "c"):
            yield echo_pb2.EchoRequest(message=word)

    async with _client(server.address) as client:
        replies = [
            (r.sequence, r.message)
            async for r in client.bidi_stream("echo", EchoServiceStub, "Chat", requests())
        ]
    assert replies == [(1, "a"), (2, "b"), (3, "c")]


async def test_errors_map_to_status_codes_with_details_and_back(server: Server) -> None:
    async with _client(server.address) as client:

        async def echo(fail: str) -> None:
            await client.unary(
                "echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(fail_with=fail)
            )

        with pytest.raises(NotFoundError, match="no such echo"):
            await echo("not_found")
        with pytest.raises(InvalidArgumentError) as invalid:
            await echo("invalid")
        assert invalid.value.errors[0]["field"] == "message"
        with pytest.raises(ConflictError):
            await echo("conflict")
        with pytest.raises(RemoteServerError) as crash:
            await echo("crash")
        assert "secret" not in str(crash.value) and "internal error" in str(crash.value)
        assert client.resilience.breaker("echo").state is CircuitState.CLOSED


async def test_raw_status_code_of_a_mapped_error(server: Server) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(fail_with="not_found"))
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    keys = [key for key, _ in info.value.trailing_metadata()]
    assert "grpc-status-details-bin" in keys


async def test_expired_deadline_is_a_clear_timeout(server: Server) -> None:
    async with _client(server.address) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="echo/Echo"):
            await client.unary(
                "echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(delay_ms=2000), timeout=0.2
            )
        assert time.monotonic() - started < 1.0
        with pytest.raises(DeadlineExceededError):
            async for _ in client.server_stream(
                "echo",
                EchoServiceStub,
                "Countdown",
                echo_pb2.CountdownRequest(start=50, interval_ms=100),
                timeout=0.3,
            ):
                pass


async def test_idempotent_call_retries_on_another_instance(server: Server) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with _client(dead, server.address, failure_threshold=100) as client:
        for _ in range(4):
            reply = await client.unary(
                "echo",
                EchoServiceStub,
                "Echo",
                echo_pb2.EchoRequest(message="x"),
                idempotent=True,
            )
            assert reply.message == "x"


async def test_circuit_opens_on_unavailable_and_fails_fast(server: Server) -> None:
    async with _client(
        server.address, failure_threshold=2, reset_timeout=0.3, retry=CallRetryPolicy()
    ) as client:
        for _ in range(2):
            with pytest.raises(ServiceUnavailableError):
                await client.unary(
                    "echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(fail_with="unavailable")
                )
        with pytest.raises(CircuitOpenError):
            await client.unary("echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest())
        await asyncio.sleep(0.3)
        client.locator = type(client.locator)(client.locator.resolver)
        assert client.resilience.breaker("echo").state is CircuitState.HALF_OPEN
        await client.unary("echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest())
        assert client.resilience.breaker("echo").state is CircuitState.CLOSED


async def test_bulkhead_rejects_beyond_its_cap(server: Server) -> None:
    async with _client(server.address, max_concurrent=2) as client:
        slow = [
            asyncio.create_task(
                client.unary("echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(delay_ms=300))
            )
            for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        with pytest.raises(BulkheadFullError):
            await client.unary("echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest())
        await asyncio.gather(*slow)


async def test_health_and_reflection(server: Server) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "servicewire.testing.v1.EchoService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        services = set()
        async for reply in stub.ServerReflectionInfo(ask()):
            services |= {s.name for s in reply.list_services_response.service}
        assert {"servicewire.testing.v1.EchoService", "grpc.health.v1.Health"} <= services


async def test_graceful_shutdown_finishes_in_flight_calls() -> None:
    server = Server(grace=2.0)
    add_echo_service(server)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = EchoServiceStub(channel)

            async def slow_call() -> echo_pb2.EchoResponse:
                return await stub.Echo(echo_pb2.EchoRequest(message="m", delay_ms=300))

            in_flight = asyncio.create_task(slow_call())
            await asyncio.sleep(0.1)
            await server.stop()
            assert (await in_flight).message == "m"
    finally:
        await server.stop(0)


RAW_PARENT = f"00-{'a' * 32}-{'b' * 16}-01"


async def test_client_interceptors_propagate_context_on_raw_channels(server: Server) -> None:
    async with grpc.aio.insecure_channel(
        server.address, interceptors=client_interceptors()
    ) as channel:
        with call_context(correlation_id="raw-7", traceparent=RAW_PARENT):
            reply = await EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(message="r"))
        bare = await EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(message="b"))
    assert reply.context["correlation_id"] == "raw-7"
    assert reply.context["traceparent"] == RAW_PARENT
    assert bare.context["correlation_id"] and not bare.context["traceparent"]


async def test_server_self_registers_and_deregisters() -> None:
    require("redis")
    registry = RedisRegistry(URLS["redis"], prefix=f"test-grpc-{uuid.uuid4().hex}")
    try:
        server = Server(registry=registry, service_name="echo", ttl=5.0)
        add_echo_service(server)
        async with server:
            async with GrpcClient(registry) as client:
                reply = await client.unary(
                    "echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(message="found")
                )
                assert reply.message == "found"
        assert await registry.resolve("echo") == ()
    finally:
        await registry.close()


async def test_serve_runs_until_stopped_then_shuts_down() -> None:
    server = Server(grace=0.5)
    add_echo_service(server)
    stop = asyncio.Event()
    serving = asyncio.create_task(server.serve(stop))
    try:
        for _ in range(100):
            if server.port:
                break
            await asyncio.sleep(0.01)
        async with _client(server.address) as client:
            reply = await client.unary(
                "echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(message="up")
            )
            assert reply.message == "up"
    finally:
        stop.set()
        await within(serving, 5)
    async with grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(), timeout=0.5)
