"""Every transport reads its URL options the same way (servicewire.transports.options).

No broker needed: these only parse URLs. Each scheme refuses an unknown key (naming it
and the keys it accepts), a value of the wrong type and one out of range, keeps
accepting the shared ``tls_*`` keys where it speaks TLS, and never shows a password.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Literal

import pytest

from servicewire.errors import TransportError
from servicewire.transports.amqp.options import parse as parse_amqp
from servicewire.transports.kafka.options import parse_kafka_url
from servicewire.transports.memory.options import MemoryOptions
from servicewire.transports.nats.options import NatsOptions
from servicewire.transports.options import TransportOptions, option
from servicewire.transports.redis.options import RedisOptions
from servicewire.transports.sqs.options import parse_sqs_url
from servicewire.transports.zmq.options import ZmqOptions

SECRET = "s3cr3t-pw"


@dataclass(frozen=True)
class Scheme:
    name: str
    parse: Callable[[str], Any]
    url: str
    """A URL with credentials (where the scheme has any) and a query to append to."""
    integer: str
    """An integer option with a lower bound of 1."""
    tls: bool = True


SCHEMES = [
    Scheme("amqp", parse_amqp, f"amqp://app:{SECRET}@127.0.0.1:5672/vh?", "shards"),
    Scheme("kafka", parse_kafka_url, f"kafka://app:{SECRET}@127.0.0.1:9092/?", "partitions"),
    Scheme("nats", NatsOptions.from_url, f"nats://app:{SECRET}@127.0.0.1:4222?", "shards"),
    Scheme("redis", RedisOptions.from_url, f"redis://:{SECRET}@127.0.0.1:6379/0?", "shards"),
    Scheme("zmq", ZmqOptions.from_url, "zmq+tcp://127.0.0.1:5555?", "shards", tls=False),
    Scheme(
        "sqs", parse_sqs_url, f"sqs://KEYID:{SECRET}@127.0.0.1:5000/?", "connections", tls=False
    ),
    Scheme("memory", MemoryOptions.from_url, "memory://opts?", "", tls=False),
]
BY_NAME = pytest.mark.parametrize("scheme", SCHEMES, ids=[s.name for s in SCHEMES])
# memory:// takes no typed option, so type and range checks have nothing to refuse there.
TYPED = [s for s in SCHEMES if s.integer]
BY_NAME_TYPED = pytest.mark.parametrize("scheme", TYPED, ids=[s.name for s in TYPED])


def refused(scheme: Scheme, query: str) -> str:
    with pytest.raises(TransportError) as info:
        scheme.parse(scheme.url + query)
    text = str(info.value)
    assert SECRET not in text
    return text


@BY_NAME
def test_plain_url_parses(scheme: Scheme) -> None:
    assert scheme.parse(scheme.url) is not None


@BY_NAME
def test_unknown_key_is_named_with_the_accepted_keys(scheme: Scheme) -> None:
    text = refused(scheme, "shardz=4")
    assert "unknown option 'shardz'" in text
    assert "accepted:" in text
    if scheme.integer:
        assert scheme.integer in text.split("accepted:")[1]


@BY_NAME_TYPED
def test_bad_type_names_the_option(scheme: Scheme) -> None:
    text = refused(scheme, f"{scheme.integer}=many")
    assert f"option {scheme.integer}='many'" in text
    assert "integer" in text


@BY_NAME_TYPED
def test_out_of_range_is_refused(scheme: Scheme) -> None:
    assert "at least 1" in refused(scheme, f"{scheme.integer}=0")


@BY_NAME
def test_tls_keys(scheme: Scheme) -> None:
    if scheme.tls:
        scheme.parse(scheme.url + "tls=true")
        assert "tls_colour" in refused(scheme, "tls_colour=blue")
    else:
        assert "unknown option 'tls'" in refused(scheme, "tls=true")


@BY_NAME
def test_secret_in_query_is_redacted(scheme: Scheme) -> None:
    text = refused(scheme, f"password={SECRET}")
    assert "unknown option 'password'" in text


def test_amqp_passes_driver_keys_on_and_refuses_the_rest() -> None:
    plain, options = parse_amqp("amqp://g:g@h/?heartbeat=30&name=svc&shards=8")
    assert plain == "amqp://g:g@h/?heartbeat=30&name=svc"
    assert options.shards == 8
    with pytest.raises(TransportError, match="unknown option 'hearbeat'"):
        parse_amqp("amqp://g:g@h/?hearbeat=30")


def test_redis_passes_driver_keys_on() -> None:
    options = RedisOptions.from_url("redis://h:6379/0?max_connections=5&shards=4")
    assert options.client_url == "redis://h:6379/0?max_connections=5"
    assert options.shards == 4


def test_cross_field_checks() -> None:
    with pytest.raises(TransportError, match="member_timeout must exceed member_interval"):
        parse_amqp("amqp://h/?member_interval=2&member_timeout=1")
    with pytest.raises(TransportError, match="heartbeat must be at most lease_ttl/3"):
        RedisOptions.from_url("redis://h/0?heartbeat=3")


class Mode(Enum):
    FAST = "fast"
    SAFE = "safe"


@dataclass(frozen=True, slots=True)
class PigeonOptions(TransportOptions):
    """A third party's options: every supported field type."""

    broker: ClassVar[str] = "pigeon"

    shards: int = option(16, at_least=1, at_most=1024)
    timeout: float = option(10.0, above=0)
    durable: bool = True
    persistent: bool | None = None
    name: str | None = None
    prefix: str = "sw"
    kind: Literal["a", "b"] = "a"
    mode: Mode = Mode.SAFE


def test_every_field_type_converts() -> None:
    url = (
        "pigeon://h/?shards=8&timeout=1.5&durable=no&persistent=auto&name="
        "&prefix=x&kind=b&mode=fast"
    )
    options = PigeonOptions.parse(url).options
    assert options == PigeonOptions(8, 1.5, False, None, None, "x", "b", Mode.FAST)
    assert PigeonOptions.parse("pigeon://h/?persistent=yes").options.persistent is True


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("shards=2000", "must be at most 1024"),
        ("timeout=0", "must be more than 0"),
        ("timeout=nan", "finite"),
        ("durable=maybe", "needs true or false"),
        ("kind=c", "use one of a, b"),
        ("mode=slow", "use one of fast, safe"),
    ],
)
def test_every_field_type_is_checked(query: str, problem: str) -> None:
    with pytest.raises(TransportError, match=problem):
        PigeonOptions.parse(f"pigeon://h/?{query}")
