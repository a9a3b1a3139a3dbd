"""The envelope under fuzz: Message construction, CloudEvents bindings, and the pipeline.

No input crashes anything: construction either works or raises a typed error; a binding
round-trips any valid message; arbitrary binding headers decode or raise DecodeError;
and any message a broker could hand the pipeline ends HANDLED, IGNORED or DEAD_LETTERED,
never lost and never half-applied (a dead-lettered message leaves no outbox row).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicewire import Context, Service, ServiceOptions
from servicewire.codecs.serialization import to_message
from servicewire.errors import DecodeError, EncodeError, ServicewireError
from servicewire.messaging import headers as h
from servicewire.messaging.cloudevents import BINDINGS, from_binding, to_binding
from servicewire.messaging.message import Message
from servicewire.pipeline.inbox import size as inbox_size
from servicewire.pipeline.retry import NO_RETRY
from servicewire.pipeline.unit_of_work import Outcome
from servicewire.testing import ServiceHarness
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from tests import services
from tests.fuzz.settings import FUZZ, STORES
from tests.relay.dbs import private_database
from tests.service.contracts import CreateTicket, TicketEvent
from tests.service.test_dead_letter_limits import transport_url

header_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
header_values = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80)
header_maps = st.dictionaries(header_names, header_values, max_size=12)


@FUZZ
@given(st.binary(max_size=256), header_maps, header_values, header_values)
def test_message_construction_never_crashes(
    payload: bytes, extra: dict[str, str], dest: str, type_: str
) -> None:
    try:
        message = Message.create(payload, destination=dest, type=type_, extra=extra)
    except (ServicewireError, ValueError, TypeError):
        return
    assert message.headers[h.ID] == message.id
    assert message.payload == payload


@FUZZ
@given(
    st.sampled_from(BINDINGS),
    st.binary(max_size=256),
    st.dictionaries(
        st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=12),
        header_values,
        max_size=8,
    ),
)
def test_bindings_round_trip_any_valid_message(
    binding: str, payload: bytes, extra: dict[str, str]
) -> None:
    message = Message.create(payload, destination="c", type="t.T", extra=extra)
    try:
        wire_headers, body = to_binding(message, binding)  # type: ignore[arg-type]
    except EncodeError:
        return  # an extension that overwrote a required attribute with ""
    back = from_binding(binding, wire_headers, body)  # type: ignore[arg-type]
    assert back.id == message.id and back.payload == payload
    assert back.headers == message.headers


@FUZZ
@given(
    st.sampled_from(BINDINGS),
    st.dictionaries(
        st.one_of(st.sampled_from(["ce_id", "ce-id", "cloudEvents:id", "ce_type"]), header_names),
        st.one_of(header_values, st.binary(max_size=40)),
        max_size=10,
    ),
    st.binary(max_size=128),
)
def test_arbitrary_binding_headers_decode_or_raise_decode_error(
    binding: str, wire_headers: dict[str, str | bytes], body: bytes
) -> None:
    try:
        message = from_binding(binding, wire_headers, body)  # type: ignore[arg-type]
    except DecodeError:
        return
    assert message.payload == body


# The pipeline ----------------------------------------------------------------------------

VALID = to_message(CreateTicket(order_id="o-1", items=["a"]))


@st.composite
def hostile_deliveries(draw: st.DrawFn) -> Message:
    """A CreateTicket envelope with its type, version, content type or payload corrupted."""
    payload = draw(
        st.one_of(
            st.just(VALID.payload),
            st.binary(max_size=200),
            st.builds(
                lambda obj: obj.encode(),
                st.sampled_from(
                    [
                        '{"order_id": 1}',
                        '{"order_id": "x", "fail": "yes"}',
                        "[]",
                        "null",
                        "{}",
                        # Text no store takes: NUL (PostgreSQL refuses it), a lone surrogate.
                        '{"order_id": "o-\\u0000"}',
                        '{"order_id": "o-1", "items": ["a", "\\u0000b"]}',
                        '{"order_id": "\\udb66"}',
                    ]
                ),
            ),
        )
    )
    changes: dict[str, str | None] = {}
    if draw(st.booleans()):
        changes[h.TYPE] = draw(st.sampled_from(["test.kitchen.Unknown", "", "x" * 300]))
    if draw(st.booleans()):
        changes[h.VERSION] = draw(st.sampled_from(["2.0.0", "1.9.9", "junk", ""]))
    if draw(st.booleans()):
        changes[h.CONTENT_TYPE] = draw(
            st.sampled_from(["application/xml", "text/plain", "application/avro", ""])
        )
    message = Message(uuid.uuid4().hex, VALID.headers, payload)  # fresh: no duplicates
    return message.with_header_map(changes) if changes else message


def hostile_batch(store: str) -> list[Message]:
    """FUZZ-many hostile deliveries (after checking that ``store`` is up)."""
    if store != "sqlite":
        services.require(store)
    batch: list[Message] = []

    @FUZZ
    @given(hostile_deliveries())
    def collect(message: Message) -> None:
        batch.append(message)

    collect()
    return batch


def kitchen(**where: str) -> Service:
    """A service whose handler writes an event, then fails when told to (rolled back)."""
    service = Service("fuzz-kitchen", **where, options=ServiceOptions(retry=NO_RETRY))

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        await ctx.publish(TicketEvent(order_id=cmd.order_id, seq=1))
        if cmd.fail:
            raise RuntimeError("refused after writing: must roll back")

    return service


@pytest.mark.parametrize("store", STORES)
def test_pipeline_never_loses_or_half_applies_hostile_messages(store: str, tmp_path: Path) -> None:
    batch = hostile_batch(store)

    async def run(messages: list[Message]) -> None:
        async with (
            private_database(store, tmp_path) as db,
            ServiceHarness(kitchen(), db=db) as harness,
        ):
            outcomes = [await harness.deliver(m, channel="test-kitchen") for m in messages]
            handled = outcomes.count(Outcome.HANDLED)
            dead = outcomes.count(Outcome.DEAD_LETTERED)
            assert set(outcomes) <= {Outcome.HANDLED, Outcome.DEAD_LETTERED}
            assert handled + dead == len(messages)  # every message accounted for
            assert len(await harness.dead_lettered()) == dead
            assert len(await harness.sent()) == handled  # one event per handled, none else
            assert await inbox_size(harness.engine) == handled  # no id claimed otherwise

    asyncio.run(within(run(batch), timeout=max(60.0, len(batch) * 0.05)))


@pytest.mark.parametrize("store", STORES)
def test_pipeline_over_a_real_transport_settles_every_hostile_message(
    store: str, tmp_path: Path
) -> None:
    """The same messages through Redis to a running service: each is handled or
    dead-lettered, none stuck or retried forever, and only handled ones hold an inbox id."""
    services.require("redis")
    batch = hostile_batch(store)

    async def run() -> None:
        async with transport_url("redis") as url, private_database(store, tmp_path) as db:
            service = kitchen(db=db, transport=url)
            tool = await connect_transport(url)
            try:
                async with service:
                    for message in batch:
                        await tool.publish(message)
                    settled = ("handled", "dead-lettered", "duplicate")
                    deadline = time.monotonic() + max(30.0, len(batch) * 0.05)
                    while sum(service.stats[k] for k in settled) < len(batch):
                        assert time.monotonic() < deadline, f"stuck: {dict(service.stats)}"
                        await asyncio.sleep(0.05)
                    assert service.stats["retrying"] == 0, dict(service.stats)
                    assert service.engine is not None
                    duplicates = len(batch) - len({m.id for m in batch})
                    assert service.stats["duplicate"] <= duplicates
                    assert await inbox_size(service.engine) == service.stats["handled"]
            finally:
                await tool.close()

    asyncio.run(within(run(), timeout=max(120.0, len(batch) * 0.1)))
