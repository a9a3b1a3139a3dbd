"""The shared TLS options on every URL: parsed the same way, verified, never plaintext.

Servers here (RabbitMQ, Redis, PostgreSQL, MariaDB) speak plaintext, and the tests must
not reconfigure them: so what is shown against them is that asking for TLS from a
plaintext server fails, instead of quietly connecting in the clear.
"""

from __future__ import annotations

import ssl

import pytest

from servicewire.errors import ConnectionFailedError, TransportError
from servicewire.security.tls import TLSConfig, TLSConfigError
from servicewire.transports import connect_transport
from servicewire.transports.amqp.options import parse as parse_amqp
from servicewire.transports.redis.options import RedisOptions
from tests import services
from tests.security.certs import Pki


def test_client_context_verifies_by_default(pki: Pki) -> None:
    ctx = TLSConfig(ca=pki.ca).client_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_server_context_for_mutual_tls(pki: Pki) -> None:
    tls = TLSConfig(cert=pki.server_cert, key=pki.server_key, ca=pki.ca, require_client_cert=True)
    assert tls.server_context().verify_mode is ssl.CERT_REQUIRED
    with pytest.raises(TLSConfigError):
        TLSConfig(cert=pki.server_cert, key=pki.server_key, require_client_cert=True)


@pytest.mark.parametrize(
    ("query", "secure"),
    [({}, False), ({"tls": "true"}, True), ({"tls": "false"}, False), ({}, True)],
)
def test_when_tls_is_on(query: dict[str, str], secure: bool) -> None:
    config = TLSConfig.from_query(query, secure_scheme=secure and not query)
    assert (config is not None) is (query.get("tls") == "true" or (secure and not query))


def test_contradictions_are_refused(pki: Pki) -> None:
    with pytest.raises(TLSConfigError):
        TLSConfig.from_query({"tls": "false", "tls_ca": pki.ca})
    with pytest.raises(TLSConfigError):
        TLSConfig.from_query({"tls": "false"}, secure_scheme=True)
    with pytest.raises(TLSConfigError):
        TLSConfig.from_query({"tls": "maybe"})


def test_amqp_and_redis_urls_become_verified_tls(pki: Pki) -> None:
    plain, _ = parse_amqp(f"amqp://u:p@h:5671/?shards=4&tls_ca={pki.ca}")
    assert plain.startswith("amqps://") and "cafile=" in plain and "no_verify" not in plain
    client = RedisOptions.from_url(f"redis://h:6379/0?tls_ca={pki.ca}").client_url
    assert client.startswith("rediss://") and "ssl_ca_certs=" in client
    assert "ssl_cert_reqs" not in client  # redis-py's default: required
    for url in ("amqp://h/?tls_verify=false", "redis://h/0?tls_verify=false"):
        with pytest.raises(TransportError):
            parse_amqp(url) if url.startswith("amqp") else RedisOptions.from_url(url)


async def test_amqp_tls_against_a_plaintext_broker_fails(pki: Pki) -> None:
    services.require("rabbitmq")
    url = services.URLS["rabbitmq"] + f"?tls_ca={pki.ca}&connect_timeout=3"
    with pytest.raises(ConnectionFailedError):
        await connect_transport(url)


async def test_redis_tls_against_a_plaintext_server_fails(pki: Pki) -> None:
    services.require("redis")
    url = services.URLS["redis"] + f"?tls_ca={pki.ca}&socket_connect_timeout=1"
    with pytest.raises(TransportError):
        transport = await connect_transport(url)
        await transport.close()


def test_kafka_url_tls_options(pki: Pki) -> None:
    from servicewire.transports.kafka.client import client_kwargs
    from servicewire.transports.kafka.options import parse_kafka_url

    address = parse_kafka_url(
        f"kafka://svc:pw@broker:9093?tls_ca={pki.ca}&tls_cert={pki.client_cert}"
        f"&tls_key={pki.client_key}"
    )
    kwargs = client_kwargs(address)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["ssl_context"].verify_mode is ssl.CERT_REQUIRED
    with pytest.raises(TransportError):
        parse_kafka_url("kafka://broker:9093?tls_verify=false")
