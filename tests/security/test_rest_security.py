"""REST over TLS (uvicorn with the test CA) and service identity with bearer tokens."""

from __future__ import annotations

import os
import ssl
import time

import pytest
from fastapi import APIRouter, Depends, FastAPI

from servicewire.resilience import (
    BadRequestError,
    CallRetryPolicy,
    Resilience,
    ServiceUnavailableError,
)
from servicewire.rest import create_app
from servicewire.rest.auth import caller, install_auth
from servicewire.rest.client import RestClient
from servicewire.security.authorization import AccessPolicy
from servicewire.security.identity import Identity, TokenIssuer, TokenVerifier
from servicewire.security.tls import TLSConfig
from tests.security.certs import Pki
from tests.security.servers import serve_https

KEYS = {"k1": os.urandom(32)}
NO_RETRY = Resilience(timeout=3.0, retry=CallRetryPolicy(attempts=1))


def kitchen_app() -> FastAPI:
    app = create_app("Kitchen", "1.0.0")
    router = APIRouter()

    @router.get("/v1/tickets")
    async def list_tickets(who: Identity = Depends(caller)) -> dict[str, str]:
        return {"caller": who.service}

    @router.post("/v1/tickets", status_code=201)
    async def create_ticket(who: Identity = Depends(caller)) -> dict[str, str]:
        return {"created_by": who.service}

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "up"}

    app.include_router(router)
    install_auth(
        app,
        TokenVerifier("kitchen-service", hmac_keys=KEYS),
        AccessPolicy({"POST /v1/tickets": {"order-service"}, "GET /v1/*": {"*"}}),
    )
    return app


def _client(port: int, pki: Pki, issuer: TokenIssuer | None = None, **kw: object) -> RestClient:
    tls = kw.pop("tls", TLSConfig(ca=pki.ca))
    return RestClient(
        {"kitchen-service": [f"127.0.0.1:{port}"]},
        auth=issuer,
        tls=tls,  # type: ignore[arg-type]
        resilience=NO_RETRY,
    )


async def test_https_verified_and_identity_enforced(pki: Pki) -> None:
    orders = TokenIssuer("order-service", hmac_keys=KEYS)
    gateway = TokenIssuer("api-gateway", hmac_keys=KEYS)
    with serve_https(kitchen_app(), pki) as port:
        async with _client(port, pki, orders) as client:
            created = await client.post("kitchen-service", "/v1/tickets")
            assert created.status == 201 and created.data == {"created_by": "order-service"}
            listed = await client.get("kitchen-service", "/v1/tickets")
            assert listed.data == {"caller": "order-service"}
        async with _client(port, pki, gateway) as client:
            assert (await client.get("kitchen-service", "/v1/tickets")).status == 200
            with pytest.raises(BadRequestError) as forbidden:
                await client.post("kitchen-service", "/v1/tickets")
            assert forbidden.value.status == 403
            assert "api-gateway" in forbidden.value.detail
        async with _client(port, pki) as anonymous:
            assert (await anonymous.get("kitchen-service", "/health")).status == 200
            with pytest.raises(BadRequestError) as unauthenticated:
                await anonymous.get("kitchen-service", "/v1/tickets")
            assert unauthenticated.value.status == 401


async def test_bad_tokens_are_401_problem_details(pki: Pki) -> None:
    wrong_key = TokenIssuer("order-service", hmac_keys={"k1": os.urandom(32)})
    orders = TokenIssuer("order-service", hmac_keys=KEYS)
    tokens = {
        "wrong key": wrong_key.token("kitchen-service"),
        "other audience": orders.token("accounting-service"),
        "expired": orders.token("kitchen-service", now=time.time() - 3600),
        "garbage": "a.b.c",
        "alg none": "eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.eyJpc3MiOiJ4In0.",
    }
    with serve_https(kitchen_app(), pki) as port:
        async with _client(port, pki) as client:
            for case, token in tokens.items():
                with pytest.raises(BadRequestError) as refused:
                    await client.get(
                        "kitchen-service",
                        "/v1/tickets",
                        headers={"authorization": f"Bearer {token}"},
                    )
                assert refused.value.status == 401, case
                assert token not in str(refused.value)  # the token is never echoed


async def test_untrusted_or_plaintext_is_refused(pki: Pki) -> None:
    orders = TokenIssuer("order-service", hmac_keys=KEYS)
    with serve_https(kitchen_app(), pki) as port:
        # Default client context: system CAs only, and the test CA is not one of them.
        for tls in (ssl.create_default_context(), TLSConfig(ca=pki.other_ca)):
            async with _client(port, pki, orders, tls=tls) as client:
                with pytest.raises(ServiceUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.get("kitchen-service", "/v1/tickets")
        async with _client(port, pki, orders, tls=None) as plaintext:
            with pytest.raises((ServiceUnavailableError, BadRequestError)):
                await plaintext.get("kitchen-service", "/v1/tickets")


async def test_mutual_tls_http(pki: Pki) -> None:
    orders = TokenIssuer("order-service", hmac_keys=KEYS)
    with serve_https(kitchen_app(), pki, mutual=True) as port:
        with_cert = TLSConfig(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
        async with _client(port, pki, orders, tls=with_cert) as client:
            assert (await client.get("kitchen-service", "/v1/tickets")).status == 200
        async with _client(port, pki, orders) as no_cert:
            with pytest.raises(ServiceUnavailableError):
                await no_cert.get("kitchen-service", "/v1/tickets")
