"""Encode + decode of the FTGO Order message in each format, next to the raw library.

    .venv/bin/python benchmarks/codecs.py [--rounds 20000] [--repeats 5]

For every format it prints the time per round trip (encode then decode, microseconds,
best of several runs) and the payload size, for Servicewire's codec (typed contract in,
validated typed contract out) and for the raw library doing the same round trip on
the same data as plain Python values, then the ratio ours / raw:

- JSON: stdlib ``json`` and ``orjson`` on a dict, ``msgspec`` on a typed Struct (the
  speed anchor: it also decodes into validated typed objects);
- XML: ``xml.etree.ElementTree`` building the same document, ``defusedxml`` parsing it;
- Protobuf: the class ``protoc`` generates from our ``proto_source(Order)``;
- Avro: ``fastavro`` schemaless writer/reader with our ``avro_schema(Order)``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID
from xml.etree import ElementTree as ET

import fastavro
import msgspec
import orjson
from defusedxml import ElementTree as SafeET
from grpc_tools import protoc

from servicewire.codecs import default_codecs
from servicewire.codecs._proto_schema import proto_schema
from servicewire.codecs.avro import avro_schema
from servicewire.codecs.protobuf import proto_source
from servicewire.messaging.contracts import Event
from servicewire.messaging.text import TextSafeModel

# Nested values derive from TextSafeModel, as FTGO's (ftgo.values) do: the text rule
# then checks each string once, where a nested plain BaseModel would be walked again
# after validation (docs/benchmarks.md, Codecs).


class LineItem(TextSafeModel):
    menu_item_id: str
    name: str
    quantity: int
    price: Decimal


class DeliveryAddress(TextSafeModel):
    street1: str
    street2: str | None = None
    city: str
    state: str
    zip: str


class Order(Event, name="ftgo.order.Order", version="1.0.0", channel="order-events", key="id"):
    id: UUID
    consumer_id: int
    restaurant_id: int
    line_items: list[LineItem]
    delivery_address: DeliveryAddress
    created_at: datetime
    delivery_time: datetime
    state: str = "APPROVAL_PENDING"


ORDER = Order(
    id=UUID("01938a6e-7b1c-7def-8123-456789abcdef"),
    consumer_id=1511300065921,
    restaurant_id=1,
    line_items=[
        LineItem(menu_item_id="1", name="Chicken Vindaloo", quantity=2, price=Decimal("12.34")),
        LineItem(menu_item_id="2", name="Lamb 65", quantity=1, price=Decimal("9.50")),
        LineItem(menu_item_id="3", name="Garlic Naan", quantity=3, price=Decimal("2.75")),
    ],
    delivery_address=DeliveryAddress(
        street1="9 Amazing View", city="Oakland", state="CA", zip="94612"
    ),
    created_at=datetime(2026, 11, 28, 7, 31, 9, 123456, tzinfo=UTC),
    delivery_time=datetime(2026, 11, 28, 8, 15, tzinfo=UTC),
)

# The same order as plain Python data, which is what the raw libraries take.
PLAIN: dict[str, Any] = json.loads(ORDER.model_dump_json())


# --- raw JSON -----------------------------------------------------------------------------


class MsLineItem(msgspec.Struct):
    menu_item_id: str
    name: str
    quantity: int
    price: Decimal


class MsAddress(msgspec.Struct):
    street1: str
    city: str
    state: str
    zip: str
    street2: str | None = None


class MsOrder(msgspec.Struct):
    id: UUID
    consumer_id: int
    restaurant_id: int
    line_items: list[MsLineItem]
    delivery_address: MsAddress
    created_at: datetime
    delivery_time: datetime
    state: str = "APPROVAL_PENDING"


MS_ORDER = msgspec.json.decode(ORDER.model_dump_json(), type=MsOrder)
_ms_encoder = msgspec.json.Encoder()
_ms_decoder = msgspec.json.Decoder(MsOrder)


def raw_json() -> Any:
    return json.loads(json.dumps(PLAIN))


def raw_orjson() -> Any:
    return orjson.loads(orjson.dumps(PLAIN))


def raw_msgspec() -> Any:
    return _ms_decoder.decode(_ms_encoder.encode(MS_ORDER))


# --- raw XML ------------------------------------------------------------------------------


def _to_element(tag: str, value: Any) -> ET.Element:
    element = ET.Element(tag)
    if isinstance(value, dict):
        for key, item in value.items():
            element.append(_to_element(key, item))
    elif isinstance(value, list):
        for item in value:
            element.append(_to_element("item", item))
    elif value is None:
        element.set("nil", "true")
    else:
        element.text = str(value)
    return element


def _from_element(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return None if element.get("nil") == "true" else (element.text or "")
    if children[0].tag == "item":
        return [_from_element(c) for c in children]
    return {c.tag: _from_element(c) for c in children}


def raw_xml() -> Any:
    data = ET.tostring(_to_element("Order", PLAIN))
    return _from_element(SafeET.fromstring(data))


# --- raw Protobuf: the class protoc generates from our .proto -----------------------------


def _generated_module() -> Any:
    schema = proto_schema(Order)
    tmp = Path(tempfile.mkdtemp(prefix="sw-bench-proto-"))
    source = tmp / schema.file_name
    source.parent.mkdir(parents=True)
    source.write_text(proto_source(Order))
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(
        ["protoc", f"-I{tmp}", f"-I{include}", f"--python_out={tmp}", str(source.relative_to(tmp))]
    )
    if rc != 0:
        raise SystemExit("protoc failed")
    # Loaded by path under a private name: the package path (ftgo/...) would otherwise
    # collide with the real ftgo package.
    path = tmp / (schema.file_name[:-6] + "_pb2.py")
    spec = importlib.util.spec_from_file_location("_bench_order_pb2", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_raw_protobuf() -> tuple[Callable[[], Any], int]:
    pb2 = _generated_module()
    cls = pb2.Order
    items = PLAIN["line_items"]
    address = PLAIN["delivery_address"]
    created = ORDER.created_at
    delivery = ORDER.delivery_time

    def build() -> Any:
        return cls(
            id=PLAIN["id"],
            consumer_id=PLAIN["consumer_id"],
            restaurant_id=PLAIN["restaurant_id"],
            line_items=[cls.LineItem(**i) for i in items],
            delivery_address=cls.DeliveryAddress(**address),
            created_at=created,
            delivery_time=delivery,
            state=PLAIN["state"],
        )

    def round_trip() -> Any:
        m = cls.FromString(build().SerializeToString())
        return {
            "id": m.id,
            "consumer_id": m.consumer_id,
            "restaurant_id": m.restaurant_id,
            "line_items": [
                {
                    "menu_item_id": i.menu_item_id,
                    "name": i.name,
                    "quantity": i.quantity,
                    "price": i.price,
                }
                for i in m.line_items
            ],
            "delivery_address": {
                "street1": m.delivery_address.street1,
                "city": m.delivery_address.city,
                "state": m.delivery_address.state,
                "zip": m.delivery_address.zip,
            },
            "created_at": m.created_at.ToDatetime(tzinfo=UTC),
            "delivery_time": m.delivery_time.ToDatetime(tzinfo=UTC),
            "state": m.state,
        }

    return round_trip, len(build().SerializeToString())


# --- raw Avro -----------------------------------------------------------------------------

_AVRO_SCHEMA = fastavro.parse_schema(avro_schema(Order))
_AVRO_RECORD = {
    **ORDER.model_dump(),
    "line_items": [{**i, "price": str(i["price"])} for i in ORDER.model_dump()["line_items"]],
}


def raw_avro() -> Any:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _AVRO_SCHEMA, _AVRO_RECORD)
    return fastavro.schemaless_reader(io.BytesIO(out.getvalue()), _AVRO_SCHEMA, None)


def _avro_size() -> int:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _AVRO_SCHEMA, _AVRO_RECORD)
    return len(out.getvalue())


# --- measuring ----------------------------------------------------------------------------


def per_call_us(fn: Callable[[], Any], rounds: int, repeats: int = 5) -> float:
    return best_per_call_us([fn], rounds, repeats)[0]


def best_per_call_us(fns: list[Callable[[], Any]], rounds: int, repeats: int = 5) -> list[float]:
    """Best time per call of each of ``fns``, their timing runs taken in turn.

    CPU time of this process, not wall time, and the runs of ours and the raw library's
    alternate: the benchmark machine is shared, and a burst of other processes' load
    then lands on both sides of a ratio rather than on whichever ran at that moment.
    """
    for fn in fns:
        fn()  # warm caches (schemas, descriptors, plans)
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            run = timeit.timeit(fn, number=rounds, timer=time.process_time)
            best[i] = min(best[i], run / rounds * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000, help="round trips per timing run")
    parser.add_argument("--repeats", type=int, default=5, help="timing runs per implementation")
    args = parser.parse_args()
    codecs = default_codecs()
    raw_pb, raw_pb_size = make_raw_protobuf()
    raws: dict[str, list[tuple[str, Callable[[], Any], int]]] = {
        "json": [
            ("msgspec (typed)", raw_msgspec, len(_ms_encoder.encode(MS_ORDER))),
            ("orjson", raw_orjson, len(orjson.dumps(PLAIN))),
            ("json (stdlib)", raw_json, len(json.dumps(PLAIN).encode())),
        ],
        "xml": [("ElementTree+defusedxml", raw_xml, len(ET.tostring(_to_element("Order", PLAIN))))],
        "protobuf": [("protoc-generated class", raw_pb, raw_pb_size)],
        "avro": [("fastavro schemaless", raw_avro, _avro_size())],
    }
    print(
        "FTGO Order round trip (encode + decode), CPU time, "
        f"best of {args.repeats} x {args.rounds} rounds (ours and raw in turn)"
    )
    print(f"{'format':<9} {'implementation':<26} {'us/trip':>9} {'bytes':>6} {'ours/raw':>9}")
    dumped = ORDER.model_dump()
    t_typed = per_call_us(lambda: Order.model_validate(ORDER.model_dump()), args.rounds)
    print(f"  measuring typed-contract cost ... {t_typed:.2f} us", file=sys.stderr, flush=True)
    assert Order.model_validate(dumped) == ORDER
    for fmt in ("json", "xml", "protobuf", "avro"):
        codec = codecs.for_format(fmt)
        payload = codec.encode(ORDER)
        assert codec.decode(payload, Order) == ORDER

        def ours(codec: Any = codec) -> Any:
            return codec.decode(codec.encode(ORDER), Order)

        print(f"  measuring {fmt} ...", file=sys.stderr, flush=True)
        t_ours, *t_raws = best_per_call_us(
            [ours, *(fn for _, fn, _ in raws[fmt])], args.rounds, args.repeats
        )
        print(f"{fmt:<9} {'servicewire':<26} {t_ours:9.2f} {len(payload):6d} {'':>9}")
        for (label, _, size), t_raw in zip(raws[fmt], t_raws, strict=True):
            print(f"{'':<9} {label:<26} {t_raw:9.2f} {size:6d} {t_ours / t_raw:8.2f}x")
    print(
        f"pydantic model_dump + model_validate of the Order alone: {t_typed:.2f} us per trip "
        "(typed, validated contracts; the raw libraries above skip it, except msgspec)"
    )


if __name__ == "__main__":
    main()
