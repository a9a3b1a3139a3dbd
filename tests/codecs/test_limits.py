"""Recursive models round-trip, and hostile nesting is refused by every codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from pydantic import BaseModel

from servicewire.codecs import Codec
from servicewire.codecs.avro import AvroCodec
from servicewire.errors import DecodeError
from servicewire.messaging.contracts import Document
from tests.codecs.roundtrip import CODECS, assert_roundtrips
from tests.codecs.strategies import SMALL, values_of


class Node(BaseModel):
    name: str
    children: list[Node] = []
    parent: Node | None = None


class Tree(Document, name="test.codecs.Tree", version="1.0.0", register=False):
    root: Node


Node.model_rebuild()
Tree.model_rebuild()

TREE = Tree(
    root=Node(name="a", children=[Node(name="b", children=[Node(name="c")])], parent=Node(name="p"))
)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.format_name)
def test_recursive_model_round_trips(codec: Codec) -> None:
    assert_roundtrips(TREE, codec)

    @SMALL
    @given(values_of(Tree))
    def check(value: Tree) -> None:
        assert_roundtrips(value, codec)

    check()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if not n:
            return bytes(out + bytes([byte]))
        out.append(byte | 0x80)


def hostile(fmt: str, depth: int) -> bytes:
    """A payload nesting ``parent`` ``depth`` levels deep, well within 1 MiB."""
    if fmt == "json":
        return b'{"root":' + b'{"name":"","parent":' * depth + b"null" + b"}" * depth + b"}"
    if fmt == "xml":
        return (
            b"<Tree><root>"
            + b"<parent>" * depth
            + b"<name/>"
            + b"</parent>" * depth
            + b"</root></Tree>"
        )
    if fmt == "protobuf":
        from servicewire.codecs._proto_schema import proto_schema

        node = next(m for m in proto_schema(Tree).nested if m.name == "Node")
        parent = next(f.number for f in node.fields if f.name == "parent")
        root = proto_schema(Tree).root.fields[0].number
        msg = b""
        for _ in range(depth):
            msg = _varint(parent << 3 | 2) + _varint(len(msg)) + msg
        return _varint(root << 3 | 2) + _varint(len(msg)) + msg
    header = AvroCodec().encode(Tree(root=Node(name="")))[:10]
    # each level: name "" (0), children [] (0), parent union branch 1 (2 zig-zag)
    return header + b"\x00\x00\x02" * depth + b"\x00\x00\x00"


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.format_name)
def test_hostile_nesting_is_a_decode_error_not_a_crash(codec: Codec) -> None:
    # Tens of thousands of levels: fastavro's compiled reader would overflow the C stack
    # here; the codec reads recursive schemas with the pure-Python reader instead.
    # (Protobuf's runtime stops at 100 levels; 2,000 keeps building the payload cheap.)
    depth = {"json": 30_000, "xml": 50_000, "protobuf": 2_000}.get(codec.format_name, 100_000)
    payload = hostile(codec.format_name, depth)
    assert len(payload) <= codec.max_size
    with pytest.raises(DecodeError) as info:
        codec.decode(payload, Tree)
    assert info.value.format == codec.format_name
