"""Servicewire's own options in an ``amqp://`` URL, split from the ones aio-pika reads.

    amqp://guest:guest@127.0.0.1:5672/?shards=16&delivery_limit=20&heartbeat=30

================  =========  ===========================================================
option            default    meaning
================  =========  ===========================================================
shards            16         shard queues per group, 1..1024 (same value in every client!)
queue_type        quorum     ``quorum`` (durable, replicated, delivery count) or ``classic``
delivery_limit    0          quorum only: after this many deliveries the broker
                             dead-letters the message (0: never)
publish_timeout   30         seconds a publish may wait (reconnect, confirm) before it fails
connect_timeout   10         seconds the first connection attempt may take
reconnect_delay   1          seconds between reconnection attempts
member_interval   1          seconds between membership heartbeats of a group member
member_timeout    3.5        a member silent this long is presumed gone; its shards move
ce_headers        amqp       CloudEvents header names written: ``amqp`` (``cloudEvents:type``),
                             ``rabbitmq`` (``ce-type``, the Knative RabbitMQ binding) or
                             ``both``; every naming is read
reply_expires     60         seconds an instance reply queue lives without a reader
                             before RabbitMQ deletes it (``x-expires``)
================  =========  ===========================================================

The keys aio-pika and aiormq read themselves (:data:`DRIVER_KEYS`: ``heartbeat``,
``name``, ``timeout`` ...) go to them untouched; any other key is refused with a
:class:`~servicewire.errors.TransportError` naming it (they used to be passed on to
aio-pika, which ignored them, so a misspelt option silently kept its default).
The shared ``tls_*`` options (:mod:`servicewire.security.tls`) switch to ``amqps`` with the
server certificate verified:
``amqp://app:pw@broker:5671/?tls_ca=/etc/ca.pem&tls_cert=c.pem&tls_key=k.pem``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal
from urllib.parse import urlencode, urlunsplit

from servicewire.messaging.channels import DEFAULT_SHARDS
from servicewire.security.tls import driver_options
from servicewire.transports.options import TransportOptions, option

DRIVER_KEYS = frozenset(
    {
        # aiormq
        "auth",
        "cadata",
        "cafile",
        "capath",
        "certfile",
        "heartbeat",
        "keyfile",
        "name",
        "no_verify_ssl",
        "timeout",
        # aio-pika
        "fail_fast",
        "happy_eyeballs_delay",
        "interleave",
        "reconnect_interval",
    }
)
"""Query keys aio-pika/aiormq read from the URL themselves."""


@dataclass(frozen=True, slots=True)
class AmqpOptions(TransportOptions):
    broker: ClassVar[str] = "amqp"
    driver_keys: ClassVar[frozenset[str]] = DRIVER_KEYS

    shards: int = option(DEFAULT_SHARDS, at_least=1, at_most=1024)
    queue_type: Literal["quorum", "classic"] = "quorum"
    delivery_limit: int = option(0, at_least=0)
    publish_timeout: float = option(30.0, above=0)
    connect_timeout: float = option(10.0, above=0)
    reconnect_delay: float = option(1.0, above=0)
    member_interval: float = option(1.0, above=0)
    member_timeout: float = option(3.5, above=0)
    ce_headers: Literal["amqp", "rabbitmq", "both"] = "amqp"
    """CloudEvents application-header names to write (:mod:`.headers`); all are read."""
    reply_expires: float = option(60.0, at_least=1)

    def problems(self) -> list[str]:
        if self.member_timeout <= self.member_interval:
            return ["member_timeout must exceed member_interval"]
        return []


def parse(url: str) -> tuple[str, AmqpOptions]:
    """The URL for aio-pika (our options removed) and our options."""
    parsed = AmqpOptions.parse(url)
    parts = parsed.parts
    scheme = parts.scheme
    rest = list(parsed.driver)
    if parsed.tls is not None:
        # aiormq verifies amqps connections by default; these only name the files.
        scheme = "amqps"
        names = {"ca": "cafile", "cert": "certfile", "key": "keyfile"}
        rest.extend(driver_options(parsed.tls, names, [("no_verify_ssl", "1")]))
    plain = urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return plain, parsed.options
