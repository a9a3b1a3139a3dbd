"""Protocol Buffers (proto3), with the message type generated from the contract at run time.

No compiler is needed to install or run: the codec derives a ``FileDescriptorProto``
from the contract (see :mod:`servicewire.codecs._proto_schema` for the field numbering
rule), loads it into a private descriptor pool and lets the protobuf runtime build the
message class. :func:`proto_source` gives the same schema as ``.proto`` text, for other
languages or to check in::

    codec = ProtobufCodec()
    data = codec.encode(CreateOrder(order_id="o-1"))
    codec.decode(data, CreateOrder)
    print(proto_source(CreateOrder))       # syntax = "proto3"; package ftgo.order.v1; ...

Tolerant reader: unknown fields (from a newer MINOR) are skipped; a missing field takes
the contract's default (fields with a default have explicit presence on the wire).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import Message as ProtoMessageBase
from pydantic import BaseModel, ValidationError

from servicewire.codecs._proto_schema import (
    ProtoMessage,
    ProtoSchema,
    Shape,
    derived_number,
    proto_schema,
)
from servicewire.codecs._types import TypeNode
from servicewire.codecs.base import DEFAULT_MAX_SIZE, C, check_size, validation_error
from servicewire.contracts import Contract
from servicewire.errors import DecodeError, EncodeError

__all__ = ["ProtobufCodec", "derived_number", "message_class", "proto_schema", "proto_source"]

Convert = Callable[[Any], Any]


def proto_source(cls: type[BaseModel]) -> str:
    """The ``.proto`` text of ``cls`` (proto3, one self-contained file)."""
    return proto_schema(cls).source()


@dataclass(frozen=True, slots=True)
class _Plan:
    schema: ProtoSchema
    message_class: type[ProtoMessageBase]
    encode: Convert
    decode: Convert


_plans: dict[type[BaseModel], _Plan] = {}
_plans_lock = threading.Lock()


def _plan(cls: type[BaseModel]) -> _Plan:
    plan = _plans.get(cls)
    if plan is not None:
        return plan
    with _plans_lock:
        plan = _plans.get(cls)
        if plan is None:
            plan = _build_plan(cls)
            _plans[cls] = plan
    return plan


def message_class(cls: type[BaseModel]) -> type[ProtoMessageBase]:
    """The run-time protobuf message class generated for ``cls``."""
    return _plan(cls).message_class


def _build_plan(cls: type[BaseModel]) -> _Plan:
    schema = proto_schema(cls)
    # A pool per contract class: two MINOR versions of one contract (same message name,
    # different fields) can live in one process, as tests of evolution need.
    pool = descriptor_pool.DescriptorPool()
    if schema.uses_timestamp:
        pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(schema.file_proto)
    msg_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.full_name[1:]))
    builder = _Converters(schema.messages)
    encode_root = builder.model_encoder(schema.root)
    decode_root = builder.model_decoder(schema.root)
    return _Plan(schema, msg_cls, encode_root, decode_root)


def _enum_value(v: Any) -> Any:
    return getattr(v, "value", v)


def _iso(v: Any) -> Any:
    return v.isoformat()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(v: Any) -> dict[str, int]:
    """A Timestamp as constructor dict (the class of our private pool is not the stock one)."""
    delta = (v if v.tzinfo is not None else v.replace(tzinfo=UTC)) - _EPOCH
    return {"seconds": delta.days * 86400 + delta.seconds, "nanos": delta.microseconds * 1000}


def _to_datetime(ts: Any) -> Any:
    return ts.ToDatetime(tzinfo=UTC)


class _Converters:
    """Builds, once per class, the closures that move values between dumps and messages.

    Encoding starts from ``model_dump(mode="python")`` (fast, in Rust) and rewrites only
    what protobuf cannot take as is; the protobuf constructor accepts nested dicts for
    sub-messages, lists for repeated fields and dicts for maps.
    """

    def __init__(self, messages: dict[type[BaseModel], ProtoMessage]) -> None:
        self.messages = messages
        self.encoders: dict[str, list[Convert | None]] = {}
        self.decoders: dict[str, list[Convert | None]] = {}

    # Encoding: dumped python value -> constructor argument ------------------------------

    def leaf_encoder(self, node: TypeNode) -> Convert | None:
        kind = node.kind
        if kind in ("decimal", "uuid"):
            return str
        if kind == "date":
            return _iso
        if kind == "enum":
            return _enum_value
        if kind == "datetime":
            # The constructor takes a datetime for a Timestamp field but not inside a
            # map value or a nested dict; the dict form works everywhere.
            return _timestamp
        return None  # str, int, float, bool, literals

    def encoder(self, shape: Shape) -> Convert | None:
        if shape.form == "element":
            node = shape.node.inner if shape.node.kind == "optional" else shape.node
            assert node is not None
            if node.kind == "model":
                conv: Convert | None = self.model_encoder_ref(self._model_for(shape))
            else:
                conv = self.leaf_encoder(node)
            if conv is None or shape.node.kind != "optional":
                return conv
            inner = conv
            return lambda v: None if v is None else inner(v)
        assert shape.item is not None
        item = self.encoder(shape.item)
        if shape.form == "repeated":
            return None if item is None else (lambda v: [item(x) for x in v])
        if shape.form == "map":
            return None if item is None else (lambda v: {k: item(x) for k, x in v.items()})
        # box: wrap the value; None leaves an `X | None` field unset, while a None list
        # item becomes a box whose own optional value is unset.
        wrap: Convert = (lambda v: {"value": v}) if item is None else (lambda v: {"value": item(v)})
        if not shape.nullable:
            return wrap
        return lambda v: None if v is None else wrap(v)

    def model_encoder_ref(self, msg: ProtoMessage) -> Convert:
        cell = self.encoders.get(msg.full_name)
        if cell is None:
            return self.model_encoder(msg)
        return lambda v: cell[0](v) if cell[0] is not None else v

    def model_encoder(self, msg: ProtoMessage) -> Convert:
        cell: list[Convert | None] = [None]
        self.encoders[msg.full_name] = cell
        pairs: list[tuple[str, Convert]] = []
        for pf in msg.fields:
            conv = self.encoder(pf.shape)
            if conv is not None:
                pairs.append((pf.name, conv))

        def encode(d: dict[str, Any]) -> dict[str, Any]:
            for name, conv in pairs:
                d[name] = conv(d[name])
            return d

        cell[0] = encode
        return encode

    def _model_for(self, shape: Shape) -> ProtoMessage:
        node = shape.node.inner if shape.node.kind == "optional" else shape.node
        assert node is not None and node.model is not None
        return self.messages[node.model]

    # Decoding: message value -> python value for model_validate -------------------------

    def decoder(self, shape: Shape) -> Convert | None:
        if shape.form == "element":
            if shape.node.kind == "datetime" or (
                shape.node.kind == "optional"
                and shape.node.inner is not None
                and shape.node.inner.kind == "datetime"
            ):
                return _to_datetime
            if shape.message is not None:
                return self.model_decoder_ref(self._model_for(shape))
            return None
        assert shape.item is not None
        item = self.decoder(shape.item)
        if shape.form == "repeated":
            return list if item is None else (lambda v: [item(x) for x in v])
        if shape.form == "map":
            return dict if item is None else (lambda v: {k: item(x) for k, x in v.items()})
        value = shape.item
        read = self.reader("value", value)
        return lambda box: read(box)

    def reader(self, name: str, shape: Shape) -> Convert:
        """A function reading field ``name`` of a message as a python value (or _ABSENT)."""
        conv = self.decoder(shape)
        if shape.presence:
            is_optional = shape.node.kind == "optional"
            absent: Any = None if is_optional else _ABSENT

            def read_present(m: Any) -> Any:
                if not m.HasField(name):
                    return absent
                v = getattr(m, name)
                return conv(v) if conv is not None else v

            return read_present
        if conv is None:
            return lambda m: getattr(m, name)
        return lambda m: conv(getattr(m, name))

    def model_decoder_ref(self, msg: ProtoMessage) -> Convert:
        cell = self.decoders.get(msg.full_name)
        if cell is None:
            return self.model_decoder(msg)
        return lambda v: cell[0](v) if cell[0] is not None else v

    def model_decoder(self, msg: ProtoMessage) -> Convert:
        cell: list[Convert | None] = [None]
        self.decoders[msg.full_name] = cell
        readers = [(pf.name, self.reader(pf.name, pf.shape)) for pf in msg.fields]

        def decode(m: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, read in readers:
                v = read(m)
                if v is not _ABSENT:
                    out[name] = v
            return out

        cell[0] = decode
        return decode


_ABSENT: Any = object()


class ProtobufCodec:
    """``application/protobuf``: proto3 binary messages generated from contracts."""

    content_type = "application/protobuf"
    format_name = "protobuf"

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size

    def encode(self, value: Contract) -> bytes:
        plan = _plan(type(value))
        try:
            message = plan.message_class(**plan.encode(value.model_dump(mode="python")))
            return message.SerializeToString()
        except Exception as exc:
            raise EncodeError(
                f"cannot encode {type(value).contract_name()} as protobuf: {exc}"
            ) from None

    def decode(self, payload: bytes, cls: type[C]) -> C:
        check_size(payload, cls, self.format_name, self.max_size)
        name = cls.contract_name() or cls.__name__
        try:
            plan = _plan(cls)
        except TypeError as exc:
            raise DecodeError(name, self.format_name, f"no protobuf schema: {exc}") from None
        try:
            message = plan.message_class.FromString(bytes(payload))
            data = plan.decode(message)
        except RecursionError:
            raise DecodeError(name, self.format_name, "nesting too deep") from None
        except Exception as exc:
            raise DecodeError(name, self.format_name, f"{type(exc).__name__}: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise validation_error(cls, self.format_name, exc) from None
        except Exception as exc:
            raise DecodeError(name, self.format_name, str(exc)) from None
