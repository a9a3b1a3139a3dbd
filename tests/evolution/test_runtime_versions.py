"""Run-time rules for versions, in every message format.

* Tolerant reader across a MAJOR: a 1.0 consumer reads 1.3 messages (new fields are
  skipped) and a 1.3 consumer reads 1.0 messages (missing fields take defaults).
* A 2.0 message is refused by a registry that only knows major 1, with an error that
  names both versions; a registry (or service) with a major-2 contract routes it there.
* Through a service's delivery pipeline: a 2.0 message reaches the handler registered
  for major 2, or is dead-lettered with a reason naming both versions.
"""

from __future__ import annotations

import pytest

from servicewire.codecs import Codec, default_codecs
from servicewire.codecs.serialization import from_message, to_message
from servicewire.errors import UnsupportedContentTypeError, UnsupportedVersionError
from servicewire.messaging import headers as h
from servicewire.messaging.contracts import Command, ContractRegistry, Event
from servicewire.pipeline.context import Context
from servicewire.pipeline.unit_of_work import Outcome
from servicewire.service.service import Service
from servicewire.testing import ServiceHarness
from tests.services import services_required

CODECS = default_codecs()
FORMATS = ["json", "xml", "protobuf", "avro"]


class PlacedV1_0(
    Event, name="rt.OrderPlaced", version="1.0.0", channel="rt-orders", register=False
):
    order_id: str
    total: int


class PlacedV1_3(
    Event, name="rt.OrderPlaced", version="1.3.0", channel="rt-orders", register=False
):
    order_id: str
    total: int
    note: str = ""
    items: list[str] = []


class PlacedV2(Event, name="rt.OrderPlaced", version="2.0.0", channel="rt-orders", register=False):
    order_id: str
    amount_cents: int


def codec(fmt: str) -> Codec:
    try:
        return CODECS.for_format(fmt)
    except UnsupportedContentTypeError:  # an optional format whose library is absent
        if services_required():  # the dev extra installs every codec: CI must have it
            pytest.fail(f"{fmt} codec not installed (SERVICEWIRE_REQUIRE_SERVICES=1)")
        pytest.skip(f"{fmt} codec not installed")


def registry(*classes: type[Event]) -> ContractRegistry:
    reg = ContractRegistry()
    for cls in classes:
        reg.register(cls)
    return reg


@pytest.mark.parametrize("fmt", FORMATS)
def test_old_reader_reads_a_newer_minor(fmt: str) -> None:
    message = to_message(
        PlacedV1_3(order_id="o-1", total=12, note="ring twice", items=["a", "b"]), codec=codec(fmt)
    )
    assert message.version == "1.3.0"
    value = from_message(message, registry=registry(PlacedV1_0), codecs=CODECS)
    assert isinstance(value, PlacedV1_0)
    assert (value.order_id, value.total) == ("o-1", 12)


@pytest.mark.parametrize("fmt", FORMATS)
def test_new_reader_reads_an_older_minor(fmt: str) -> None:
    message = to_message(PlacedV1_0(order_id="o-2", total=7), codec=codec(fmt))
    value = from_message(message, registry=registry(PlacedV1_3), codecs=CODECS)
    assert isinstance(value, PlacedV1_3)
    assert (value.order_id, value.total, value.note, value.items) == ("o-2", 7, "", [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_major_2_is_refused_naming_both_versions(fmt: str) -> None:
    message = to_message(PlacedV2(order_id="o-3", amount_cents=300), codec=codec(fmt))
    with pytest.raises(UnsupportedVersionError) as caught:
        from_message(message, registry=registry(PlacedV1_3), codecs=CODECS)
    text = str(caught.value)
    assert "2.0.0" in text and "1.3.0" in text and "rt.OrderPlaced" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_major_reaches_its_own_contract(fmt: str) -> None:
    both = registry(PlacedV1_3, PlacedV2)
    v2 = from_message(
        to_message(PlacedV2(order_id="o-4", amount_cents=1), codec=codec(fmt)),
        registry=both,
        codecs=CODECS,
    )
    v1 = from_message(
        to_message(PlacedV1_0(order_id="o-5", total=2), codec=codec(fmt)),
        registry=both,
        codecs=CODECS,
    )
    assert isinstance(v2, PlacedV2) and v2.amount_cents == 1
    assert isinstance(v1, PlacedV1_3) and v1.total == 2


class ShipV1(Command, name="rt.Ship", version="1.1.0", channel="rt-shipping", register=False):
    order_id: str


class ShipV2(Command, name="rt.Ship", version="2.0.0", channel="rt-shipping", register=False):
    order_id: str
    carrier: str


def _service(with_v2: bool, seen: list[str]) -> Service:
    service = Service("rt-shipping-service")

    @service.handles(ShipV1)
    async def ship_v1(cmd: ShipV1, ctx: Context) -> None:
        seen.append(f"v1:{cmd.order_id}")

    if with_v2:

        @service.handles(ShipV2)
        async def ship_v2(cmd: ShipV2, ctx: Context) -> None:
            seen.append(f"v2:{cmd.order_id}:{cmd.carrier}")

    return service


@pytest.mark.parametrize("fmt", FORMATS)
async def test_pipeline_dead_letters_an_unsupported_major(fmt: str) -> None:
    seen: list[str] = []
    async with ServiceHarness(_service(False, seen)) as harness:
        message = to_message(ShipV2(order_id="o-6", carrier="bike"), codec=codec(fmt))
        assert await harness.deliver(message) is Outcome.DEAD_LETTERED
        old = to_message(ShipV1(order_id="o-7"), codec=codec(fmt))
        assert await harness.deliver(old) is Outcome.HANDLED
        [dead] = await harness.dead_lettered()
    reason = dead.headers[h.DLQ_REASON]
    assert "2.0.0" in reason and "1.1.0" in reason, reason
    assert dead.id == message.id and dead.payload == message.payload
    assert seen == ["v1:o-7"]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_pipeline_routes_each_major_to_its_handler(fmt: str) -> None:
    seen: list[str] = []
    async with ServiceHarness(_service(True, seen)) as harness:
        v2 = to_message(ShipV2(order_id="o-8", carrier="van"), codec=codec(fmt))
        v1 = to_message(ShipV1(order_id="o-9"), codec=codec(fmt))
        assert await harness.deliver(v2) is Outcome.HANDLED
        assert await harness.deliver(v1) is Outcome.HANDLED
        assert await harness.dead_lettered() == []
    assert seen == ["v2:o-8:van", "v1:o-9"]
