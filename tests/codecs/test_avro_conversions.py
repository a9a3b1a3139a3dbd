"""Avro: the logical types the codec converts itself write and read what fastavro would.

The encode hands fastavro base-type values (the UUID's text, a timestamp's microseconds,
a date's day number) converted with fastavro's own functions, and the common decode
reads ``uuid`` fields as text for Pydantic to parse, unless the contract would see or
refuse that text (strict, or a before/wrap/plain validator). Issue 17 (speed); these
tests pin that the bytes and the decoded values did not change.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

import fastavro
import pytest
from pydantic import ConfigDict, Strict, field_validator, model_validator

from servicewire.codecs._avro_schema import without_logical_types
from servicewire.codecs.avro import MAGIC, AvroCodec, avro_schema, fingerprint, takes_uuid_text
from servicewire.errors import DecodeError
from servicewire.messaging.contracts import Document
from servicewire.messaging.text import TextSafeModel
from tests.codecs.contracts import Everything
from tests.codecs.test_roundtrip import EVERYTHING

ID = UUID("01938a6e-7b1c-7def-8123-456789abcdef")
AT = datetime(2026, 11, 28, 7, 31, 9, 123456, tzinfo=UTC)


class Stamp(TextSafeModel):
    at: datetime
    ident: UUID
    day: date | None = None


class Moments(Document, name="test.codecs.avro.Moments", version="1.0.0", register=False):
    """UUIDs, timestamps and dates in every position the dump converts them in."""

    ident: UUID
    at: datetime
    naive: datetime
    day: date
    maybe_ident: UUID | None = None
    maybe_at: datetime | None = None
    idents: list[UUID] = []
    by_name: dict[str, datetime] = {}
    days: list[date] = []
    stamps: list[Stamp] = []
    stamp: Stamp | None = None


MOMENTS = Moments(
    ident=ID,
    at=AT,
    naive=datetime(2026, 1, 2, 3, 4, 5, 6),  # fastavro reads a naive one as local time
    day=date(1969, 12, 31),
    maybe_ident=UUID(int=0),
    maybe_at=datetime(1, 1, 2, tzinfo=UTC),
    idents=[ID, UUID(int=1)],
    by_name={"a": AT, "": datetime(1970, 1, 1, tzinfo=UTC)},
    days=[date(2000, 2, 29)],
    stamps=[Stamp(at=AT, ident=ID, day=date(2026, 1, 1)), Stamp(at=AT, ident=ID)],
    stamp=Stamp(at=AT, ident=UUID(int=2)),
)


def fastavro_payload(value: Any, record: dict[str, Any]) -> bytes:
    """What fastavro writes for ``record`` with the contract's schema, logical types on."""
    schema = avro_schema(type(value))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema, named_schemas={}), record)
    return MAGIC + fingerprint(schema) + out.getvalue()


def test_converted_logical_types_write_fastavros_bytes() -> None:
    codec = AvroCodec()
    assert codec.encode(MOMENTS) == fastavro_payload(MOMENTS, MOMENTS.model_dump())
    decoded = codec.decode(codec.encode(MOMENTS), Moments)
    assert decoded.model_dump(exclude={"naive"}) == MOMENTS.model_dump(exclude={"naive"})
    # fastavro wrote the naive one as local time and reads it back as UTC, as before
    body = io.BytesIO(codec.encode(MOMENTS)[10:])
    assert decoded.naive == fastavro.schemaless_reader(body, avro_schema(Moments))["naive"]
    none = Moments(ident=ID, at=AT, naive=AT.replace(tzinfo=None), day=date(2026, 1, 1))
    assert codec.encode(none) == fastavro_payload(none, none.model_dump())


def test_everything_writes_fastavros_bytes() -> None:
    record = EVERYTHING.model_dump()
    record["amount"] = str(EVERYTHING.amount)
    record["items"] = [{**item, "price": str(item["price"])} for item in record["items"]]
    assert AvroCodec().encode(EVERYTHING) == fastavro_payload(EVERYTHING, record)


def test_without_logical_types_keeps_the_fingerprint() -> None:
    schema = avro_schema(Moments)
    plain = without_logical_types(schema, frozenset({"uuid", "timestamp-micros", "date"}))
    assert "logicalType" not in repr(plain)
    assert fingerprint(plain) == fingerprint(schema)
    assert without_logical_types(schema, frozenset()) == schema


class StrictConfig(Document, name="test.codecs.avro.StrictConfig", version="1.0.0", register=False):
    model_config = ConfigDict(strict=True)
    ident: UUID


class StrictField(Document, name="test.codecs.avro.StrictField", version="1.0.0", register=False):
    ident: Annotated[UUID, Strict()]


SEEN: list[type] = []


class SeesField(Document, name="test.codecs.avro.SeesField", version="1.0.0", register=False):
    ident: UUID

    @field_validator("ident", mode="before")
    @classmethod
    def _seen(cls, value: Any) -> Any:
        SEEN.append(type(value))
        return value


class SeesModel(Document, name="test.codecs.avro.SeesModel", version="1.0.0", register=False):
    ident: UUID

    @model_validator(mode="wrap")
    @classmethod
    def _seen(cls, value: Any, handler: Any) -> Any:
        if isinstance(value, dict):
            SEEN.append(type(value["ident"]))
        return handler(value)


class Ident(Document, name="test.codecs.avro.Ident", version="1.0.0", register=False):
    ident: UUID
    others: list[UUID] = []


def test_which_contracts_read_uuids_as_text() -> None:
    assert takes_uuid_text(Ident) and takes_uuid_text(Moments) and takes_uuid_text(Everything)
    for cls in (StrictConfig, StrictField, SeesField, SeesModel):
        assert not takes_uuid_text(cls), cls.__name__


@pytest.mark.parametrize("cls", [StrictConfig, StrictField])
def test_strict_uuid_contracts_still_decode(cls: Any) -> None:
    codec = AvroCodec()
    value = cls(ident=ID)
    assert codec.decode(codec.encode(value), cls) == value


@pytest.mark.parametrize("cls", [SeesField, SeesModel])
def test_validators_that_see_the_input_still_get_a_uuid(cls: Any) -> None:
    codec = AvroCodec()
    payload = codec.encode(cls(ident=ID))
    SEEN.clear()
    assert codec.decode(payload, cls).ident == ID
    assert SEEN == [UUID]


def test_bad_uuid_text_is_a_decode_error_naming_the_field() -> None:
    schema = avro_schema(Ident)
    out = io.BytesIO()
    plain = fastavro.parse_schema(without_logical_types(schema, frozenset({"uuid"})))
    fastavro.schemaless_writer(out, plain, {"ident": str(ID), "others": [str(ID), "nope"]})
    payload = MAGIC + fingerprint(schema) + out.getvalue()
    with pytest.raises(DecodeError) as info:
        AvroCodec().decode(payload, Ident)
    assert info.value.field == "others.1"
    # the same bytes with valid text decode to UUIDs
    out = io.BytesIO()
    fastavro.schemaless_writer(out, plain, {"ident": str(ID), "others": [str(UUID(int=5))]})
    decoded = AvroCodec().decode(MAGIC + fingerprint(schema) + out.getvalue(), Ident)
    assert decoded == Ident(ident=ID, others=[UUID(int=5)])


@pytest.mark.parametrize("value", [MOMENTS, EVERYTHING], ids=["moments", "everything"])
def test_the_common_decode_gives_what_fastavro_reads(value: Any) -> None:
    cls = type(value)
    payload = AvroCodec().encode(value)
    read = fastavro.schemaless_reader(io.BytesIO(payload[10:]), avro_schema(cls))
    assert AvroCodec().decode(payload, cls) == cls.model_validate(read)


def test_loader_only_where_there_is_something_to_convert() -> None:
    codec = AvroCodec()
    assert codec.plan(Ident).load is None  # UUIDs only: Pydantic parses the text
    load = codec.plan(Moments).load
    assert load is not None
    record = {"at": 0, "naive": 1, "day": 0, "maybe_at": None, "by_name": {"k": 2}}
    record |= {"days": [1], "stamps": [{"at": 3, "day": None}], "stamp": None}
    assert load(record) is record
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert record["at"] == epoch and record["day"] == date(1970, 1, 1)
    assert record["by_name"] == {"k": datetime(1970, 1, 1, 0, 0, 0, 2, tzinfo=UTC)}
    assert record["days"] == [date(1970, 1, 2)] and record["stamps"][0]["day"] is None
    assert record["stamps"][0]["at"] == datetime(1970, 1, 1, 0, 0, 0, 3, tzinfo=UTC)


def test_a_timestamp_out_of_range_is_a_decode_error() -> None:
    schema = avro_schema(Stamped)
    plain = fastavro.parse_schema(without_logical_types(schema, frozenset({"timestamp-micros"})))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, plain, {"at": 2**62})
    with pytest.raises(DecodeError, match=r"Overflow|range"):
        AvroCodec().decode(MAGIC + fingerprint(schema) + out.getvalue(), Stamped)


class Stamped(Document, name="test.codecs.avro.Stamped", version="1.0.0", register=False):
    at: datetime
