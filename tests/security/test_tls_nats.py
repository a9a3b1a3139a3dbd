"""NATS over TLS on a private nats-server: verified by default, never plaintext by surprise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicewire.errors import ConnectionFailedError, TransportError
from servicewire.testing.contract.helpers import make_message, unique
from servicewire.transports import connect_transport
from servicewire.transports.base import Delivery
from tests.security.certs import Pki
from tests.security.servers import TlsNats
from tests.services import require


@pytest.fixture(scope="module")
def tls_nats(pki: Pki) -> Iterator[TlsNats]:
    with TlsNats(pki) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_nats(pki: Pki) -> Iterator[TlsNats]:
    with TlsNats(pki, mutual=True) as server:
        yield server


async def _roundtrip(url: str) -> None:
    transport = await connect_transport(url)
    try:
        channel = unique("tls")
        sub = await transport.subscribe(channel, "g")
        await transport.publish(make_message(channel, 1))
        delivery: Delivery = await anext(aiter(sub))
        assert delivery.message.payload == b"1"
        await delivery.ack()
        await sub.close()
    finally:
        await transport.close()


async def test_verified_tls_connection_carries_messages(tls_nats: TlsNats, pki: Pki) -> None:
    await _roundtrip(f"{tls_nats.url}?tls_ca={pki.ca}&connect_timeout=3")


async def test_mutual_tls_with_client_certificate(mtls_nats: TlsNats, pki: Pki) -> None:
    await _roundtrip(
        f"{mtls_nats.url}?tls_ca={pki.ca}&tls_cert={pki.client_cert}"
        f"&tls_key={pki.client_key}&connect_timeout=3"
    )


@pytest.mark.parametrize("trust", ["system", "other"])
async def test_untrusted_server_certificate_is_refused(
    tls_nats: TlsNats, pki: Pki, trust: str
) -> None:
    # "system": tls=true trusts only the system CAs, which never signed the test CA.
    query = "tls=true" if trust == "system" else f"tls_ca={pki.other_ca}"
    with pytest.raises(ConnectionFailedError):
        await connect_transport(f"{tls_nats.url}?{query}&connect_timeout=2")


async def test_mutual_tls_server_refuses_client_without_trusted_cert(
    mtls_nats: TlsNats, pki: Pki
) -> None:
    with pytest.raises(ConnectionFailedError):
        await connect_transport(f"{mtls_nats.url}?tls_ca={pki.ca}&connect_timeout=2")
    with pytest.raises(ConnectionFailedError):
        await connect_transport(
            f"{mtls_nats.url}?tls_ca={pki.ca}&tls_cert={pki.rogue_cert}"
            f"&tls_key={pki.rogue_key}&connect_timeout=2"
        )


async def test_tls_requested_but_server_plaintext_is_refused(pki: Pki) -> None:
    require("nats")
    with pytest.raises(ConnectionFailedError, match="TLS required"):
        await connect_transport(f"nats://127.0.0.1:4222?tls_ca={pki.ca}&connect_timeout=2")


def test_bad_tls_options_are_one_clear_error(pki: Pki) -> None:
    from servicewire.transports.nats.options import NatsOptions

    for query in (
        "tls_ca=/nonexistent/ca.pem",
        f"tls_cert={pki.client_cert}",  # no key
        "tls_verify=false",  # insecure without the acknowledgement
        "tls_vrify=false",  # misspelt: never silently ignored
    ):
        with pytest.raises(TransportError):
            NatsOptions.from_url(f"nats://127.0.0.1:4222?{query}")
    opts = NatsOptions.from_url("nats://127.0.0.1:4222?tls_verify=false&tls_insecure=yes-i-know")
    assert opts.tls is not None and not opts.tls.verify
