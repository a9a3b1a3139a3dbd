"""The call context along a chain of gRPC calls, over real servers on loopback:

    test client ──> relay server (handler calls on) ──> echo server

The correlation id is ours; trace context and baggage are written and read by
OpenTelemetry's configured propagators (default: W3C trace context + baggage).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from servicewire.grpc import (
    GrpcClient,
    Server,
    TracingServerInterceptor,
    call_context,
    current_traceparent,
)
from servicewire.grpc.generated.testing.v1 import echo_pb2, echo_pb2_grpc
from servicewire.grpc.generated.testing.v1.echo_pb2_grpc import EchoServiceStub
from servicewire.grpc.testing import SERVICE, EchoServicer, add_echo_service

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"
PARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


class RelayServicer(EchoServicer):
    """Echo that calls the next server's Echo, answering what both hops saw."""

    def __init__(self, downstream: GrpcClient) -> None:
        self.downstream = downstream

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext
    ) -> echo_pb2.EchoResponse:
        here = await super().Echo(request, context)
        there = await self.downstream.unary("echo", EchoServiceStub, "Echo", request)
        seen = {f"relay.{k}": v for k, v in here.context.items()}
        seen.update({f"echo.{k}": v for k, v in there.context.items()})
        return echo_pb2.EchoResponse(message=request.message, context=seen)


async def _chain(traced: bool = False) -> AsyncIterator[EchoServiceStub]:
    interceptors = [TracingServerInterceptor()] if traced else []
    echo = Server(grace=1.0, interceptors=interceptors)
    add_echo_service(echo)
    relay = Server(grace=1.0, interceptors=interceptors)
    async with echo, GrpcClient({"echo": [echo.address]}) as downstream:
        relay.add_service(
            echo_pb2_grpc.add_EchoServiceServicer_to_server, RelayServicer(downstream), SERVICE
        )
        async with relay, grpc.aio.insecure_channel(relay.address) as channel:
            yield EchoServiceStub(channel)


@pytest.fixture
async def chain() -> AsyncIterator[EchoServiceStub]:
    async for stub in _chain():
        yield stub


@pytest.fixture
async def traced_chain(spans: InMemorySpanExporter) -> AsyncIterator[EchoServiceStub]:
    async for stub in _chain(traced=True):
        yield stub


async def _call(stub: EchoServiceStub, *metadata: tuple[str, str]) -> dict[str, str]:
    reply = await stub.Echo(echo_pb2.EchoRequest(message="m"), metadata=metadata, timeout=5)
    return dict(reply.context)


async def test_trace_context_and_baggage_reach_the_handler_and_go_downstream(
    chain: EchoServiceStub,
) -> None:
    seen = await _call(
        chain,
        ("x-correlation-id", "corr-chain"),
        ("traceparent", PARENT),
        ("tracestate", "vendor=opaque"),
        ("baggage", "tenant=acme,plan=gold"),
    )
    # No SDK tracer: the API passes the incoming trace context on unchanged.
    assert seen["relay.traceparent"] == seen["echo.traceparent"] == PARENT
    assert seen["relay.baggage"] == seen["echo.baggage"] == "plan=gold,tenant=acme"
    assert seen["relay.correlation_id"] == seen["echo.correlation_id"] == "corr-chain"


async def test_with_an_sdk_tracer_the_downstream_call_is_a_child_of_the_server_span(
    traced_chain: EchoServiceStub, spans: InMemorySpanExporter
) -> None:
    seen = await _call(traced_chain, ("traceparent", PARENT), ("baggage", "tenant=acme"))
    # What each handler saw current: its own server span.
    _, relay_trace, relay_span, _ = seen["relay.traceparent"].split("-")
    _, echo_trace, echo_span, _ = seen["echo.traceparent"].split("-")
    assert relay_trace == echo_trace == TRACE_ID
    assert len({PARENT_SPAN, relay_span, echo_span}) == 3
    assert seen["echo.baggage"] == "tenant=acme"

    recorded = {f"{s.context.span_id:016x}": s for s in spans.get_finished_spans()}
    relay, echo = recorded[relay_span], recorded[echo_span]
    assert relay.name == echo.name == "servicewire.testing.v1.EchoService/Echo"
    assert relay.parent is not None and f"{relay.parent.span_id:016x}" == PARENT_SPAN
    assert echo.parent is not None and echo.parent.span_id == relay.context.span_id
    assert {f"{s.context.trace_id:032x}" for s in (relay, echo)} == {TRACE_ID}


@pytest.mark.parametrize(
    "bad",
    [
        "00-not-a-trace-01",
        f"00-{'0' * 32}-{PARENT_SPAN}-01",  # an all-zero trace id is invalid
        f"ff-{TRACE_ID}-{PARENT_SPAN}-01",  # version ff is forbidden
        "x" * 600,
    ],
)
async def test_a_malformed_traceparent_is_ignored(chain: EchoServiceStub, bad: str) -> None:
    seen = await _call(
        chain, ("x-correlation-id", "corr-bad"), ("traceparent", bad), ("baggage", "tenant=acme")
    )
    assert seen["relay.traceparent"] == seen["echo.traceparent"] == ""
    assert seen["relay.correlation_id"] == seen["echo.correlation_id"] == "corr-bad"
    assert seen["echo.baggage"] == "tenant=acme"  # the rest of the context still flows


async def test_a_call_without_correlation_id_gets_one_kept_along_the_chain(
    chain: EchoServiceStub,
) -> None:
    first, second = await _call(chain), await _call(chain)
    assert first["relay.correlation_id"] == first["echo.correlation_id"] != ""
    assert first["relay.correlation_id"] != second["relay.correlation_id"]
    assert first["relay.traceparent"] == first["echo.traceparent"] == ""  # no trace made up


async def test_grpc_client_sends_the_current_context() -> None:
    server = Server(grace=1.0)
    add_echo_service(server)
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        async with server, GrpcClient({"echo": [server.address]}) as client:
            with call_context(correlation_id="corr-7", traceparent=PARENT):
                assert current_traceparent() == PARENT
                reply = await client.unary(
                    "echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(message="c")
                )
            assert current_traceparent() is None  # the block's trace ended with it
    finally:
        otel_context.detach(token)
    assert dict(reply.context) | {"deadline_ms": ""} == {
        "correlation_id": "corr-7",
        "traceparent": PARENT,
        "baggage": "tenant=acme",
        "deadline_ms": "",
    }


async def test_callers_own_metadata_wins_over_the_context() -> None:
    server = Server(grace=1.0)
    add_echo_service(server)
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    async with server, GrpcClient({"echo": [server.address]}) as client:
        with call_context(correlation_id="corr-8", traceparent=PARENT):
            reply = await client.unary(
                "echo",
                EchoServiceStub,
                "Echo",
                echo_pb2.EchoRequest(message="c"),
                metadata=(("traceparent", other),),
            )
    assert reply.context["traceparent"] == other
    assert reply.context["correlation_id"] == "corr-8"
