"""gRPC on grpcio aio: server bootstrap, interceptors, a resilient client.

    from servicewire.grpc import GrpcClient, Server

    server = Server(port=50051)                  # health + reflection + interceptor
    server.add_service(add_OrderServiceServicer_to_server, OrderServicer(),
                       order_pb2.DESCRIPTOR.services_by_name["OrderService"])
    async with server:
        await server.wait_for_termination()

    async with GrpcClient(locator) as client:
        order = await client.unary("order-service", OrderServiceStub, "GetOrder", request,
                                   timeout=1.0, idempotent=True)

A span per call, on both sides, while tracing is on::

    server = Server(port=50051, interceptors=[TracingServerInterceptor()])
    with client_span("restaurant-service", "ValidateOrderDetails") as metadata:
        await client.unary(..., metadata=metadata)

Services are defined in protos/ and compiled by ``make protos`` into checked-in code.
Needs ``servicewire[grpc]``.
"""

from servicewire.grpc.client import GrpcClient
from servicewire.grpc.context import (
    CORRELATION_ID,
    TRACEPARENT,
    call_context,
    current_correlation_id,
    current_traceparent,
)
from servicewire.grpc.interceptors import ServerContextInterceptor, client_interceptors
from servicewire.grpc.server import Server
from servicewire.grpc.status import code_for, error_from_rpc, rich_status, status_for
from servicewire.telemetry.grpc_spans import TracingServerInterceptor, client_span

__all__ = [
    "CORRELATION_ID",
    "TRACEPARENT",
    "GrpcClient",
    "Server",
    "ServerContextInterceptor",
    "TracingServerInterceptor",
    "call_context",
    "client_interceptors",
    "client_span",
    "code_for",
    "current_correlation_id",
    "current_traceparent",
    "error_from_rpc",
    "rich_status",
    "status_for",
]
