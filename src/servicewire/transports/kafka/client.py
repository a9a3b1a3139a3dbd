"""Keyword arguments shared by every aiokafka client the Kafka transport opens.

Producer, admin client and group members all reach the same brokers with the same
security settings; building those arguments in one place keeps them from drifting::

    kwargs = client_kwargs(parse_kafka_url("kafka+ssl://u:p@broker:9093"))
    producer = AIOKafkaProducer(**kwargs, acks="all")
"""

from __future__ import annotations

from typing import Any

from servicewire.transports.kafka.options import KafkaAddress


def client_kwargs(address: KafkaAddress) -> dict[str, Any]:
    """Bootstrap servers, client id, timeouts and security for ``address``."""
    options = address.options
    kwargs: dict[str, Any] = {
        "bootstrap_servers": address.bootstrap,
        "client_id": options.client_id,
        "request_timeout_ms": options.request_timeout_ms,
    }
    ssl_context = None
    if address.tls is not None:
        kwargs["ssl_context"] = address.tls.client_context()
    elif address.ssl:
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context(cafile=options.cafile or None)
        kwargs["ssl_context"] = ssl_context
    if address.username is not None:
        kwargs["security_protocol"] = "SASL_SSL" if address.ssl else "SASL_PLAINTEXT"
        kwargs["sasl_mechanism"] = options.sasl_mechanism
        kwargs["sasl_plain_username"] = address.username
        kwargs["sasl_plain_password"] = address.password or ""
    elif address.ssl:
        kwargs["security_protocol"] = "SSL"
    return kwargs
