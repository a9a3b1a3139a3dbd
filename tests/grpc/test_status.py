"""Rich error details on gRPC: what our server sends is what gRPC's own decoder
(grpcio-status) reads, and details a client cannot trust cost only the details."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from servicewire.grpc import GrpcClient, Server, rich_status
from servicewire.grpc.generated.testing.v1 import echo_pb2, echo_pb2_grpc
from servicewire.grpc.generated.testing.v1.echo_pb2_grpc import EchoServiceStub
from servicewire.grpc.testing import SERVICE, EchoServicer
from servicewire.resilience import NotFoundError, Resilience

DETAILS_KEY = "grpc-status-details-bin"  # the trailer gRPC defines for google.rpc.Status
NON_ASCII = "aucune commande « o-9 » trouvée ✓"


class _OddServer(EchoServicer):
    """Echo, except that ``message`` picks an error the test needs."""

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext
    ) -> echo_pb2.EchoResponse:
        code = grpc.StatusCode.NOT_FOUND
        if request.message == "unicode":
            raise NotFoundError("echo", NON_ASCII, title="Commande introuvable")
        if request.message == "garbage details":
            await context.abort(code, "gone", ((DETAILS_KEY, b"\xff\xfe not a Status"),))
        if request.message == "contradicting details":
            other = status_pb2.Status(code=code.value[0], message="something else")
            await context.abort(code, "gone", ((DETAILS_KEY, other.SerializeToString()),))
        return await super().Echo(request, context)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    server = Server(grace=1.0)
    server.add_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, _OddServer(), SERVICE)
    async with server:
        yield server


async def _raw_error(server: Server, request: echo_pb2.EchoRequest) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await EchoServiceStub(channel).Echo(request)
    return info.value


async def test_the_standard_decoder_reads_our_error_details(server: Server) -> None:
    error = await _raw_error(server, echo_pb2.EchoRequest(fail_with="invalid"))
    status = rpc_status.from_call(error)  # raises if code or message disagree
    assert status is not None and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(bad)
    assert (info.reason, info.domain) == ("InvalidArgumentError", "servicewire")
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("message", "must not be empty")
    ]


async def test_a_non_ascii_message_keeps_its_details(server: Server) -> None:
    error = await _raw_error(server, echo_pb2.EchoRequest(message="unicode"))
    assert error.details() == NON_ASCII
    status = rpc_status.from_call(error)
    assert status is not None and status.message == NON_ASCII
    async with GrpcClient({"echo": [f"127.0.0.1:{server.port}"]}) as client:
        with pytest.raises(NotFoundError) as info:
            await client.unary(
                "echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(message="unicode")
            )
    assert info.value.detail == NON_ASCII
    assert info.value.title == "Commande introuvable"  # carried in the ErrorInfo


@pytest.mark.parametrize("kind", ["garbage details", "contradicting details"])
async def test_details_the_client_cannot_trust_cost_only_the_details(
    server: Server, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    resilience = Resilience(timeout=2.0, failure_threshold=100)
    async with GrpcClient({"echo": [f"127.0.0.1:{server.port}"]}, resilience=resilience) as client:
        with caplog.at_level(logging.WARNING, logger="servicewire.grpc.status"):
            with pytest.raises(NotFoundError) as info:
                await client.unary(
                    "echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(message=kind)
                )
    # The code and message still arrive; the details are dropped, and the log says why.
    assert (info.value.detail, info.value.title, info.value.errors) == ("gone", "NOT_FOUND", [])
    assert "ignoring the status details" in caplog.text and "echo/Echo" in caplog.text


def test_rich_status_is_what_abort_needs() -> None:
    info = error_details_pb2.ErrorInfo(reason="OrderGone", domain="servicewire")
    status = rich_status(grpc.StatusCode.NOT_FOUND, "no order o-9", [info])
    assert (status.code, status.details) == (grpc.StatusCode.NOT_FOUND, "no order o-9")
    [(key, raw)] = status.trailing_metadata
    decoded = status_pb2.Status.FromString(raw)
    assert key == DETAILS_KEY and decoded.message == "no order o-9"
    assert decoded.details[0].Unpack(unpacked := error_details_pb2.ErrorInfo())
    assert unpacked == info
