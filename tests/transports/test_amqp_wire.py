"""The AMQP properties fast path writes exactly the bytes pamqp writes.

:class:`~servicewire.transports.amqp.headers.WireProperties` marshals what a publish
sets (content type, headers, delivery mode, message id) in one pass; everything else
goes through pamqp. Both must put the same bytes on the wire, whatever the text.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pamqp.commands import Basic

from servicewire.messaging.message import Message
from servicewire.transports.amqp import headers as wire
from servicewire.transports.amqp.headers import WireProperties, decode, encode

_short_text = st.text(max_size=40)
_header_names = st.text(min_size=1, max_size=60)


def _both(**fields: object) -> tuple[bytes, bytes]:
    ours = WireProperties(**fields).marshal()  # type: ignore[arg-type]
    pamqp = Basic.Properties(**fields).marshal()  # type: ignore[arg-type]
    return ours, pamqp


@given(
    headers=st.dictionaries(_header_names, st.text(max_size=300), max_size=12),
    content_type=st.none() | _short_text,
    message_id=st.none() | _short_text,
    delivery_mode=st.none() | st.sampled_from([1, 2]),
)
def test_any_text_headers_marshal_as_pamqp_does(
    headers: dict[str, str], content_type: str | None, message_id: str | None, delivery_mode: int
) -> None:
    ours, pamqp = _both(
        headers=headers,
        content_type=content_type,
        message_id=message_id,
        delivery_mode=delivery_mode,
    )
    assert ours == pamqp


@pytest.mark.parametrize("naming", ["amqp", "rabbitmq", "both"])
def test_an_encoded_message_reads_back_through_pamqp(naming: wire.Naming) -> None:
    message = Message.create(
        b'{"a": 1}', destination="orders", kind="event", type="Ordered", partition_key="k-ü"
    )
    _, props = encode(message, naming)
    assert isinstance(props, WireProperties)
    assert wire._marshal(props) is not None  # the fast path, not the fallback
    read = Basic.Properties()
    read.unmarshal(int.from_bytes(props.marshal()[:2], "big"), props.marshal()[2:])
    again = decode(message.payload, read, "orders")
    assert again.id == message.id
    assert dict(again.headers) == dict(message.headers)


@pytest.mark.parametrize(
    "fields",
    [
        {"headers": {"count": 3, "name": "x"}},  # a value that is not text
        {"headers": {"n" * 129: "long name"}},  # pamqp truncates such a name
        {"headers": {"a": "b"}, "correlation_id": "c-1"},  # a property we do not write
        {"headers": {"a": "b"}, "timestamp": None, "priority": 5},
    ],
)
def test_what_the_fast_path_does_not_cover_goes_through_pamqp(fields: dict[str, object]) -> None:
    assert wire._marshal(WireProperties(**fields)) is None  # type: ignore[arg-type]
    ours, pamqp = _both(**fields)
    assert ours == pamqp


def test_too_long_a_message_id_is_refused_like_pamqp_refuses_it() -> None:
    with pytest.raises(TypeError, match="255"):
        WireProperties(message_id="m" * 256).marshal()
