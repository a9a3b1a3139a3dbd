"""Transports, one module each, selected by URL scheme.

    transport = await connect_transport("amqp://guest:guest@127.0.0.1:5672/")

=================================  =========================================  ============
scheme                             transport                                  extra
=================================  =========================================  ============
``memory://[name]``                in-process reference implementation        (core)
``amqp://`` ``amqps://``           RabbitMQ through aio-pika                  ``amqp``
``kafka://`` ``kafka+ssl://``      Kafka protocol through aiokafka            ``kafka``
``nats://`` ``tls://``             NATS JetStream through nats-py             ``nats``
``redis://`` ``rediss://``         Redis Streams through redis-py             ``redis``
``stomp://``                       Apache ActiveMQ over STOMP, via stompman   ``stomp``
``zmq+tcp://`` ``zmq+ipc://``      brokerless ZeroMQ through pyzmq            ``zmq``
``sqs://``                         Amazon SQS through aiobotocore             ``sqs``
``kinesis://``                     Amazon Kinesis Data Streams (aiobotocore)  ``kinesis``
=================================  =========================================  ============
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from servicewire.errors import ConnectionFailedError, TransportError
from servicewire.transports.base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Capabilities,
    Delivery,
    Subscription,
    Transport,
)
from servicewire.urls import redact

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Capabilities",
    "Delivery",
    "Subscription",
    "Transport",
    "connect_transport",
    "register_scheme",
    "transport_from_url",
]

# scheme -> "module:Class"; modules are imported only when their scheme is used, so a
# user installs only the client libraries of the brokers they run.
_SCHEMES: dict[str, str] = {
    "memory": "servicewire.transports.memory.transport:MemoryTransport",
    "amqp": "servicewire.transports.amqp.transport:AmqpTransport",
    "amqps": "servicewire.transports.amqp.transport:AmqpTransport",
    "kafka": "servicewire.transports.kafka.transport:KafkaTransport",
    "kafka+ssl": "servicewire.transports.kafka.transport:KafkaTransport",
    "nats": "servicewire.transports.nats.transport:NatsTransport",
    "tls": "servicewire.transports.nats.transport:NatsTransport",
    "redis": "servicewire.transports.redis.transport:RedisTransport",
    "rediss": "servicewire.transports.redis.transport:RedisTransport",
    "stomp": "servicewire.transports.stomp.transport:StompTransport",
    "zmq+tcp": "servicewire.transports.zmq.transport:ZmqTransport",
    "zmq+ipc": "servicewire.transports.zmq.transport:ZmqTransport",
    "sqs": "servicewire.transports.sqs.transport:SqsTransport",
    "kinesis": "servicewire.transports.kinesis.transport:KinesisTransport",
}

# module -> the extra that installs its client library (pyproject.toml)
_EXTRAS: dict[str, str] = {
    "servicewire.transports.amqp.transport": "amqp",
    "servicewire.transports.kafka.transport": "kafka",
    "servicewire.transports.nats.transport": "nats",
    "servicewire.transports.redis.transport": "redis",
    "servicewire.transports.stomp.transport": "stomp",
    "servicewire.transports.zmq.transport": "zmq",
    "servicewire.transports.sqs.transport": "sqs",
    "servicewire.transports.kinesis.transport": "kinesis",
}


def register_scheme(scheme: str, target: str) -> None:
    """Map a URL scheme to ``"module:Class"`` (for third-party transports)."""
    _SCHEMES[scheme] = target


def transport_from_url(url: str, **options: Any) -> Transport:
    """A new, not yet connected transport for ``url``."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise TransportError(f"invalid transport URL {redact(url)!r}: {exc}") from None
    target = _SCHEMES.get(scheme)
    if target is None:
        known = ", ".join(sorted(_SCHEMES))
        raise TransportError(
            f"no transport for URL {redact(url)!r}: unknown scheme {scheme!r} (known: {known})"
        )
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRAS.get(module_name)
        advice = f"pip install 'servicewire[{extra}]'" if extra else "install its extra"
        raise ConnectionFailedError(
            scheme, url, f"its client library is not installed ({exc.name}); {advice}"
        ) from None
    cls: type[Transport] = getattr(module, class_name)
    return cls(url, **options)


async def connect_transport(url: str, **options: Any) -> Transport:
    """A connected transport for ``url``."""
    transport = transport_from_url(url, **options)
    await transport.connect()
    return transport
