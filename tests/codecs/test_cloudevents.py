"""The CloudEvents binary-mode mapping: round trips and what the spec (and its SDK) reads."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicewire.errors import DecodeError, EncodeError
from servicewire.messaging import headers as h
from servicewire.messaging.cloudevents import BINDINGS, from_binding, to_binding
from servicewire.messaging.message import Message, MessageKind
from tests.codecs.strategies import SMALL


def sample() -> Message:
    return Message.create(
        b'{"order_id": "o-1"}',
        destination="order-service",
        kind=MessageKind.COMMAND,
        type="ftgo.order.CreateOrder",
        version="1.2.0",
        source="/ftgo/order-service",
        partition_key="o-1 é",
        correlation_id="c-1",
        reply_to="order-replies",
        extra={h.TRACEPARENT: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )


@pytest.mark.parametrize("binding", BINDINGS)
def test_round_trip(binding: Any) -> None:
    message = sample()
    headers, body = to_binding(message, binding)
    assert body == message.payload
    assert from_binding(binding, headers, body) == message


def test_prefixes_and_content_type_per_binding() -> None:
    message = sample()
    amqp, _ = to_binding(message, "amqp")
    assert amqp["cloudEvents:type"] == "ftgo.order.CreateOrder"
    assert amqp["content-type"] == "application/json" and "cloudEvents:datacontenttype" not in amqp
    kafka, _ = to_binding(message, "kafka")
    assert kafka["ce_id"] == message.id.encode() and kafka["content-type"] == b"application/json"
    assert kafka["ce_partitionkey"] == "o-1 é".encode()
    for binding in ("http", "nats"):
        headers, _ = to_binding(message, binding)  # type: ignore[arg-type]
        assert headers["Content-Type"] == "application/json"
        assert headers["ce-specversion"] == "1.0"
        assert headers["ce-source"] == "/ftgo/order-service"
        assert headers["ce-partitionkey"] == "o-1%20%C3%A9"  # spec 3.1.3.2 percent-encoding
        assert all(v.isascii() and " " not in v for v in map(str, headers.values()))


def test_http_output_is_read_by_the_cloudevents_sdk() -> None:
    from cloudevents.core.bindings import http
    from cloudevents.core.formats.json import JSONFormat

    message = sample()
    headers, body = to_binding(message, "http")
    event = http.from_binary(http.HTTPMessage(headers=headers, body=body), JSONFormat())
    attrs = event.get_attributes()
    assert attrs["id"] == message.id
    assert attrs["type"] == "ftgo.order.CreateOrder"
    assert attrs["specversion"] == "1.0"
    assert attrs["datacontenttype"] == "application/json"
    assert attrs["partitionkey"] == "o-1 é"
    assert attrs["typeversion"] == "1.2.0"
    assert event.get_data() == {"order_id": "o-1"}
    # ...and what the SDK writes, we read.
    back = http.to_binary(event, JSONFormat())
    again = from_binding("http", back.headers, back.body)
    assert again.id == message.id and again.type == message.type
    assert again.headers["partitionkey"] == "o-1 é"


def test_kafka_and_amqp_output_is_read_by_the_cloudevents_sdk() -> None:
    from cloudevents.core.bindings import amqp, kafka
    from cloudevents.core.formats.json import JSONFormat

    message = sample()
    headers, body = to_binding(message, "kafka")
    event = kafka.from_binary(
        kafka.KafkaMessage(headers=headers, key=None, value=body), JSONFormat()
    )
    assert event.get_attributes()["id"] == message.id
    assert event.get_attributes()["datacontenttype"] == "application/json"
    props, body = to_binding(message, "amqp")
    event = amqp.from_binary(
        amqp.AMQPMessage(
            properties={"content-type": props.pop("content-type")},
            application_properties=props,
            application_data=body,
        ),
        JSONFormat(),
    )
    assert event.get_attributes()["type"] == "ftgo.order.CreateOrder"


def test_amqp_reader_accepts_the_underscore_prefix() -> None:
    message = sample()
    headers, body = to_binding(message, "amqp")
    renamed = {k.replace("cloudEvents:", "cloudEvents_"): v for k, v in headers.items()}
    assert from_binding("amqp", renamed, body) == message


def test_http_headers_are_case_insensitive_and_foreign_headers_ignored() -> None:
    message = sample()
    headers, body = to_binding(message, "http")
    shouted = {k.upper(): v for k, v in headers.items()}
    shouted["Accept"] = "*/*"
    assert from_binding("http", shouted, body) == message


def test_required_attributes() -> None:
    no_type = Message.create(b"", destination="d")
    with pytest.raises(EncodeError, match="type"):
        to_binding(no_type, "http")
    with pytest.raises(DecodeError, match="'id'"):
        from_binding("kafka", {"ce_type": b"t"}, b"")
    with pytest.raises(DecodeError, match="UTF-8"):
        from_binding("kafka", {"ce_id": b"\xff"}, b"")
    with pytest.raises(ValueError, match="binding"):
        to_binding(sample(), "mqtt")  # type: ignore[arg-type]


header_names = st.from_regex(r"[a-z][a-z0-9]{0,19}", fullmatch=True).filter(
    lambda n: n not in h.STANDARD
)


@pytest.mark.parametrize("binding", BINDINGS)
def test_any_attribute_values_round_trip(binding: Any) -> None:
    @SMALL
    @given(st.dictionaries(header_names, st.text(), max_size=6), st.binary(max_size=64))
    def check(extra: dict[str, str], payload: bytes) -> None:
        message = Message.create(payload, destination="d", type="t.T", extra=extra)
        headers, body = to_binding(message, binding)
        assert from_binding(binding, headers, body) == message

    check()
