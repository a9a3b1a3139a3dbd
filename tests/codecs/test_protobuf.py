"""Protobuf: the generated .proto compiles to the runtime descriptor; numbering; evolution."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import grpc_tools
import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc
from pydantic import BaseModel, Field

from servicewire.codecs._proto_schema import derived_number, proto_schema
from servicewire.codecs.protobuf import ProtobufCodec, message_class, proto_source
from servicewire.errors import DecodeError, EncodeError
from servicewire.messaging.contracts import Document
from tests.codecs.contracts import (
    ALL,
    Address,
    Containers,
    Everything,
    LineItem,
    OrderNoteV1_0,
    OrderNoteV1_1,
    Pinned,
)

codec = ProtobufCodec()
WELL_KNOWN = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")


def _normalise(fd: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """Drop what protoc adds and we do not (json names, source info) and sort nested types."""
    out = descriptor_pb2.FileDescriptorProto()
    out.CopyFrom(fd)
    out.ClearField("source_code_info")

    def fix(msg: descriptor_pb2.DescriptorProto) -> None:
        for f in msg.field:
            f.ClearField("json_name")
        nested = sorted(msg.nested_type, key=lambda m: m.name)
        for n in nested:
            fix(n)
        del msg.nested_type[:]
        msg.nested_type.extend(nested)

    for m in out.message_type:
        fix(m)
    return out


@pytest.mark.parametrize("cls", [*ALL, OrderNoteV1_1], ids=lambda c: c.__name__)
def test_generated_proto_compiles_to_the_runtime_descriptor(cls: type, tmp_path: Path) -> None:
    schema = proto_schema(cls)
    source = tmp_path / schema.file_name
    source.parent.mkdir(parents=True)
    source.write_text(proto_source(cls))
    out = tmp_path / "set.pb"
    rc = protoc.main(
        [
            "protoc",
            f"-I{tmp_path}",
            f"-I{WELL_KNOWN}",
            f"--descriptor_set_out={out}",
            str(source.relative_to(tmp_path)),
        ]
    )
    assert rc == 0, proto_source(cls)
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    assert _normalise(compiled) == _normalise(schema.file_proto)
    # And the compiled descriptor's message reads what the runtime class wrote.
    assert message_class(cls).DESCRIPTOR.full_name == schema.full_name[1:]


def test_numbers_come_from_names_so_adding_a_field_renumbers_nothing() -> None:
    old = {f.name: f.number for f in proto_schema(OrderNoteV1_0).root.fields}
    new = {f.name: f.number for f in proto_schema(OrderNoteV1_1).root.fields}
    assert all(new[name] == number for name, number in old.items())
    assert new["priority"] == derived_number("priority")
    assert all(1 <= n < 2**18 and not 19000 <= n < 20000 for n in new.values())


def test_pinned_numbers_win() -> None:
    numbers = {f.name: f.number for f in proto_schema(Pinned).root.fields}
    assert numbers == {"a": 1, "b": 2, "c": derived_number("c")}
    assert "string a = 1;" in proto_source(Pinned)


def test_number_collision_asks_to_pin() -> None:
    class Clash(Document, name="test.codecs.Clash", version="1.0.0", register=False):
        __proto_numbers__: ClassVar[dict[str, int]] = {"x": derived_number("y")}
        x: str = ""
        y: str = ""

    with pytest.raises(TypeError, match="pin one"):
        proto_schema(Clash)


def test_reserved_number_is_refused() -> None:
    class Reserved(Document, name="test.codecs.Reserved", version="1.0.0", register=False):
        x: str = Field("", json_schema_extra={"proto_number": 19500})

    with pytest.raises(TypeError, match="reserved"):
        proto_schema(Reserved)


def test_unknown_fields_from_a_newer_minor_are_skipped() -> None:
    newer = OrderNoteV1_1(
        order_id="o-1",
        lines=[LineItem(menu_item_id="m", quantity=1, price="1.5")],
        priority=1,
        courier=Address(street="s"),
    )
    old = codec.decode(codec.encode(newer), OrderNoteV1_0)
    assert old == OrderNoteV1_0(order_id="o-1", lines=newer.lines)


def test_missing_fields_from_an_older_minor_take_defaults() -> None:
    older = OrderNoteV1_0(order_id="o-1", note="n")
    newer = codec.decode(codec.encode(older), OrderNoteV1_1)
    assert newer.priority == 5 and newer.courier is None and newer.note == "n"


def test_default_that_is_not_the_zero_value_survives_absence_and_zero() -> None:
    # count: int = 7 has explicit presence: absent -> 7, sent 0 -> 0.
    value = Everything.model_validate({**_minimal(), "count": 0, "label": ""})
    back = codec.decode(codec.encode(value), Everything)
    assert back.count == 0 and back.label == ""
    assert codec.decode(codec.encode(Everything.model_validate(_minimal())), Everything).count == 7


def test_int_beyond_64_bits_is_an_encode_error() -> None:
    value = Everything.model_validate({**_minimal(), "number": 2**64})
    with pytest.raises(EncodeError, match="protobuf"):
        codec.encode(value)


def test_missing_required_fields() -> None:
    # An empty payload is a valid protobuf message with nothing set: required scalars
    # read as proto3 zero values (as in any proto3 reader), required messages are missing.
    assert codec.decode(b"", OrderNoteV1_0).order_id == ""
    with pytest.raises(DecodeError) as info:
        codec.decode(b"", Everything)
    assert info.value.field == "amount"  # "" is no Decimal; `at` is missing too
    assert "protobuf" in str(info.value) and "more" in str(info.value)


def test_boxes_are_shared_and_named_structurally() -> None:
    source = proto_source(Containers)
    assert "message Sint64ListBox" in source
    assert "message OptionalSint64Box" in source
    assert "repeated .test.codecs.v1.Containers.Sint64ListBox grid" in source


def test_plain_model_without_contract_name() -> None:
    class Plain(BaseModel):
        x: int = 1

    assert "package v1;" in proto_schema(Plain).source()


def _minimal() -> dict[str, object]:
    return {
        "text": "t",
        "number": 1,
        "ratio": 0.5,
        "flag": False,
        "amount": "1.00",
        "at": "2026-01-01T00:00:00Z",
        "day": "2026-01-01",
        "ident": "01938a6e-7b1c-7def-8123-456789abcdef",
        "status": "pending",
        "mode": "fast",
    }
