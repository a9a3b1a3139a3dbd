"""Avro: single-object encoding, fingerprints, the schema store and MINOR resolution."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import to_parsing_canonical_form

from servicewire.codecs.avro import MAGIC, AvroCodec, SchemaStore, avro_schema, fingerprint
from servicewire.errors import DecodeError, EncodeError
from servicewire.messaging.contracts import ContractRegistry
from tests.codecs.contracts import (
    Address,
    Everything,
    LineItem,
    OrderNoteV1_0,
    OrderNoteV1_1,
)
from tests.codecs.test_roundtrip import EVERYTHING

LINES = [LineItem(menu_item_id="m-1", quantity=2, price=Decimal("3.50"))]


def test_single_object_header_and_fingerprint() -> None:
    payload = AvroCodec().encode(OrderNoteV1_0(order_id="o-1"))
    assert payload[:2] == MAGIC == b"\xc3\x01"
    schema = avro_schema(OrderNoteV1_0)
    assert payload[2:10] == fingerprint(schema)
    # fastavro's own CRC-64-AVRO agrees (it prints the little-endian bytes as hex)
    canonical = to_parsing_canonical_form(schema)
    assert payload[2:10].hex() == fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")
    # the body is plain Avro binary of the writer schema
    body = fastavro.schemaless_reader(__import__("io").BytesIO(payload[10:]), schema)
    assert body["order_id"] == "o-1"


def test_known_crc64_avro_vector() -> None:
    # CRC-64-AVRO of the canonical form of the primitive schema "int".
    assert fingerprint('"int"') == (0x7275D51A3F395C8F).to_bytes(8, "little")


def test_schema_mapping() -> None:
    schema = avro_schema(Everything)
    assert schema["name"] == "Everything" and schema["namespace"] == "test.codecs"
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types["number"] == "long"
    assert types["amount"] == "string"
    assert types["at"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert types["day"] == {"type": "int", "logicalType": "date"}
    assert types["ident"] == {"type": "string", "logicalType": "uuid"}
    assert types["maybe"] == ["null", "long"]
    assert types["scores"] == {"type": "map", "values": "long"}
    defaults = {f["name"]: f.get("default", "-") for f in schema["fields"]}
    assert defaults["count"] == 7 and defaults["maybe"] is None and defaults["text"] == "-"
    assert defaults["when"] == 1577836800000000
    fastavro.parse_schema(schema)  # valid, defaults included


def test_newer_writer_older_reader_skips_the_added_field() -> None:
    writer = AvroCodec()
    writer.store.add_contract(OrderNoteV1_1)
    newer = OrderNoteV1_1(order_id="o-1", lines=LINES, priority=1, courier=Address(street="s"))
    payload = writer.encode(newer)
    reader = AvroCodec(store=SchemaStore())
    with pytest.raises(DecodeError, match=payload[2:10].hex()):
        reader.decode(payload, OrderNoteV1_0)  # this reader has never seen 1.1's schema
    reader.store.add_contract(OrderNoteV1_1)
    assert reader.decode(payload, OrderNoteV1_0) == OrderNoteV1_0(order_id="o-1", lines=LINES)


def test_older_writer_newer_reader_fills_defaults() -> None:
    payload = AvroCodec().encode(OrderNoteV1_0(order_id="o-1", note="n", lines=LINES))
    newer = AvroCodec().decode(payload, OrderNoteV1_1)
    assert newer == OrderNoteV1_1(order_id="o-1", note="n", lines=LINES)
    assert newer.priority == 5 and newer.courier is None


def test_store_knows_registered_contracts_without_setup() -> None:
    store = SchemaStore()
    fp = fingerprint(avro_schema(OrderNoteV1_0))
    assert fp in store and store.schema(fp) == avro_schema(OrderNoteV1_0)
    # an unregistered (older/newer) version needs adding
    assert fingerprint(avro_schema(OrderNoteV1_1)) not in store
    own = SchemaStore(ContractRegistry())
    assert fp not in own


def test_store_loads_a_directory_of_avsc(tmp_path: Path) -> None:
    (tmp_path / "note-1.1.avsc").write_text(json.dumps(avro_schema(OrderNoteV1_1)))
    (tmp_path / "ignored.txt").write_text("not a schema")
    store = SchemaStore(ContractRegistry())
    assert store.load_directory(tmp_path) == [fingerprint(avro_schema(OrderNoteV1_1))]
    payload = AvroCodec(store=store).encode(OrderNoteV1_1(order_id="x", priority=9))
    assert AvroCodec(store=store).decode(payload, OrderNoteV1_0).order_id == "x"


def test_unknown_fingerprint_is_named() -> None:
    payload = bytearray(AvroCodec().encode(OrderNoteV1_0(order_id="o")))
    payload[2:10] = b"\x01" * 8
    with pytest.raises(DecodeError, match="0101010101010101") as info:
        AvroCodec().decode(bytes(payload), OrderNoteV1_0)
    assert info.value.offset == 2


def test_not_single_object_encoding() -> None:
    with pytest.raises(DecodeError, match="single-object") as info:
        AvroCodec().decode(b'{"order_id": "o"}', OrderNoteV1_0)
    assert info.value.offset == 0


def test_trailing_bytes_are_refused() -> None:
    payload = AvroCodec().encode(EVERYTHING) + b"\x00"
    with pytest.raises(DecodeError, match="trailing"):
        AvroCodec().decode(payload, Everything)


def test_int_beyond_64_bits_is_an_encode_error() -> None:
    value = Everything.model_validate({**EVERYTHING.model_dump(), "number": 2**64})
    with pytest.raises(EncodeError, match="avro"):
        AvroCodec().encode(value)


def test_list_of_fieldless_models_is_refused() -> None:
    from pydantic import BaseModel

    from servicewire.messaging.contracts import Document

    class Nothing(BaseModel):
        pass

    class Many(Document, name="test.codecs.Many", version="1.0.0", register=False):
        things: list[Nothing] = []

    # 0xC3 0x01 + fingerprint + a block count of 2**40 would take forever to read.
    with pytest.raises(TypeError, match="without fields"):
        avro_schema(Many)
