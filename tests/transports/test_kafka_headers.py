"""Kafka record headers: shared pairs for repeating values, the same headers as ever.

``to_kafka`` builds each (name, bytes) pair of a value that repeats from message to
message once and shares it (fewer allocations, fewer garbage-collector passes per
publish). What goes on the wire must not change, and the cache must stay bounded
whatever names and values messages carry.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicewire.messaging import headers as h
from servicewire.messaging.message import Headers, Message
from servicewire.transports.kafka import headers as kafka_headers
from servicewire.transports.kafka.headers import from_kafka, to_kafka


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    kafka_headers._PAIRS.clear()
    kafka_headers._UNCACHED.clear()
    yield
    kafka_headers._PAIRS.clear()
    kafka_headers._UNCACHED.clear()


def _plain(message: Message) -> list[tuple[str, bytes]]:
    """The record headers without any cache: the binding's rule, written out."""
    return [
        ("content-type" if name == h.CONTENT_TYPE else "ce_" + name, value.encode())
        for name, value in message.headers.to_dict().items()
    ]


def _event(**extra: str) -> Message:
    return Message.create(
        b"{}", destination="orders", kind="event", type="Ordered", partition_key="o-1", **extra
    )


@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=200), max_size=12))
def test_headers_are_what_the_binding_writes_whatever_they_carry(extra: dict[str, str]) -> None:
    message = Message("m-1", Headers({"id": "m-1", **extra}), b"")
    for _ in range(3):  # first build, then from the cache
        assert to_kafka(message)[0] == _plain(message)
        assert from_kafka(to_kafka(message)[0], b"", fallback_id="x").headers.to_dict() == (
            message.headers.to_dict()
        )


def test_a_repeating_value_is_built_once_and_a_unique_one_every_time() -> None:
    first, second = to_kafka(_event())[0], to_kafka(_event())[0]
    by_name = {pair[0]: pair for pair in first}
    again = {pair[0]: pair for pair in second}
    assert again["ce_type"] is by_name["ce_type"]  # shared, not rebuilt
    assert again["content-type"] is by_name["content-type"]
    assert again["ce_id"] != by_name["ce_id"]  # a fresh id per message, as before


def test_a_name_with_a_value_per_message_stops_being_cached() -> None:
    for _ in range(kafka_headers._PAIR_VALUES + 5):
        to_kafka(_event())
    assert h.ID in kafka_headers._UNCACHED and h.ID not in kafka_headers._PAIRS
    assert all(len(v) <= kafka_headers._PAIR_VALUES for v in kafka_headers._PAIRS.values())


def test_the_cache_stays_bounded_whatever_names_messages_carry() -> None:
    for i in range(kafka_headers._PAIR_NAMES * 2):
        to_kafka(Message(f"m-{i}", Headers({"id": f"m-{i}", f"x-{i}": "v"}), b""))
    tracked = len(kafka_headers._PAIRS) + len(kafka_headers._UNCACHED)
    assert tracked <= kafka_headers._PAIR_NAMES
    long_value = "v" * (kafka_headers._PAIR_VALUE_CHARS + 1)
    to_kafka(Message("m", Headers({"id": "m", "type": long_value}), b""))
    assert long_value not in kafka_headers._PAIRS.get("type", {})


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ce_id", "ce_type", "content-type", "x-foreign", "ce_new_attr"])
            | st.text(max_size=12),
            st.none() | st.binary(max_size=20) | st.text(max_size=20).map(str.encode),
        ),
        max_size=12,
    ),
    st.booleans(),
)
def test_any_record_headers_read_as_the_careful_rule_reads_them(
    record: list[tuple[str, bytes | None]], as_iterator: bool
) -> None:
    # Whatever a foreign producer wrote (unknown names, missing values, bytes that are not
    # UTF-8, headers given as a one-pass iterator) reads by the binding's rule, and the
    # consumer never stops on it.
    expected: dict[str, str] = {}
    for wire, raw in record:
        name = h.CONTENT_TYPE if wire == "content-type" else wire.removeprefix("ce_")
        expected[name] = "" if raw is None else raw.decode("utf-8", errors="replace")
    given_headers = iter(record) if as_iterator else record
    message = from_kafka(given_headers, b"p", fallback_id="t-0-1")  # type: ignore[arg-type]
    assert message.headers.to_dict() == {**expected, h.ID: message.id}
    assert message.id == (expected.get(h.ID) or "t-0-1")
