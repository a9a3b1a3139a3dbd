"""gRPC with server TLS and mutual TLS, and service identity (tokens or client certs)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import grpc
import pytest

from servicewire.grpc import GrpcClient, Server
from servicewire.grpc.auth import AuthInterceptor, caller
from servicewire.grpc.generated.testing.v1 import echo_pb2, echo_pb2_grpc
from servicewire.grpc.generated.testing.v1.echo_pb2_grpc import EchoServiceStub
from servicewire.grpc.testing import SERVICE, EchoServicer
from servicewire.resilience import (
    BadRequestError,
    CallRetryPolicy,
    Resilience,
    ServiceUnavailableError,
)
from servicewire.security.authorization import AccessPolicy
from servicewire.security.identity import TokenIssuer, TokenVerifier
from servicewire.security.tls import TLSConfig
from tests.security.certs import Pki

KEYS = {"k1": os.urandom(32)}
ECHO = "/servicewire.testing.v1.EchoService/"
POLICY = AccessPolicy({ECHO + "Echo": {"order-service"}, ECHO + "*": {"*"}})


class WhoAmI(EchoServicer):
    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext
    ) -> echo_pb2.EchoResponse:
        who = caller()
        return echo_pb2.EchoResponse(message=f"{who.service} via {who.via}")


async def _server(tls: TLSConfig, interceptor: AuthInterceptor) -> Server:
    server = Server(grace=0.5, tls=tls, interceptors=[interceptor])
    server.add_service(echo_pb2_grpc.add_EchoServiceServicer_to_server, WhoAmI(), SERVICE)
    await server.start()
    return server


@pytest.fixture
async def token_server(pki: Pki) -> AsyncIterator[Server]:
    tls = TLSConfig(cert=pki.server_cert, key=pki.server_key)
    server = await _server(
        tls, AuthInterceptor(POLICY, verifier=TokenVerifier("echo", hmac_keys=KEYS))
    )
    yield server
    await server.stop(0)


@pytest.fixture
async def mtls_server(pki: Pki) -> AsyncIterator[Server]:
    tls = TLSConfig(cert=pki.server_cert, key=pki.server_key, ca=pki.ca, require_client_cert=True)
    server = await _server(tls, AuthInterceptor(POLICY, trust_client_certs=True))
    yield server
    await server.stop(0)


def _client(server: Server, tls: TLSConfig, auth: TokenIssuer | None = None) -> GrpcClient:
    resilience = Resilience(timeout=3.0, retry=CallRetryPolicy(attempts=1))
    return GrpcClient({"echo": [server.address]}, resilience=resilience, tls=tls, auth=auth)


async def _echo(client: GrpcClient) -> str:
    reply = await client.unary("echo", EchoServiceStub, "Echo", echo_pb2.EchoRequest(message="x"))
    return str(reply.message)


async def test_server_tls_with_tokens(token_server: Server, pki: Pki) -> None:
    tls = TLSConfig(ca=pki.ca)
    async with _client(token_server, tls, TokenIssuer("order-service", hmac_keys=KEYS)) as c:
        assert await _echo(c) == "order-service via token"
        steps = c.server_stream(
            "echo", EchoServiceStub, "Countdown", echo_pb2.CountdownRequest(start=2)
        )
        assert [s.value async for s in steps] == [2, 1]
    async with _client(token_server, tls, TokenIssuer("api-gateway", hmac_keys=KEYS)) as c:
        with pytest.raises(BadRequestError) as denied:
            await _echo(c)
        assert denied.value.status == 403 and denied.value.title == "PERMISSION_DENIED"
        assert "api-gateway" in denied.value.detail
    async with _client(token_server, tls) as anonymous:
        with pytest.raises(BadRequestError) as unauthenticated:
            await _echo(anonymous)
        assert unauthenticated.value.status == 401
        assert unauthenticated.value.title == "UNAUTHENTICATED"
        # Streams are guarded too.
        with pytest.raises(BadRequestError):
            steps = anonymous.server_stream(
                "echo", EchoServiceStub, "Countdown", echo_pb2.CountdownRequest(start=2)
            )
            [s async for s in steps]
    wrong_audience = TokenIssuer("order-service", hmac_keys=KEYS)
    async with _client(token_server, tls) as c:
        with pytest.raises(BadRequestError) as refused:
            await c.unary(
                "echo",
                EchoServiceStub,
                "Echo",
                echo_pb2.EchoRequest(),
                metadata=[("authorization", f"Bearer {wrong_audience.token('billing')}")],
            )
        assert refused.value.status == 401


async def test_untrusted_server_certificate_is_refused(token_server: Server, pki: Pki) -> None:
    issuer = TokenIssuer("order-service", hmac_keys=KEYS)
    for tls in (TLSConfig(), TLSConfig(ca=pki.other_ca)):  # system CAs; another CA
        async with _client(token_server, tls, issuer) as client:
            with pytest.raises(ServiceUnavailableError):
                await _echo(client)


async def test_mutual_tls_identity_from_client_certificate(mtls_server: Server, pki: Pki) -> None:
    good = TLSConfig(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    async with _client(mtls_server, good) as client:
        assert await _echo(client) == "order-service via mtls"
    for bad in (
        TLSConfig(ca=pki.ca),  # no client certificate
        TLSConfig(ca=pki.ca, cert=pki.rogue_cert, key=pki.rogue_key),  # signed by another CA
    ):
        async with _client(mtls_server, bad) as client:
            with pytest.raises(ServiceUnavailableError):
                await _echo(client)
