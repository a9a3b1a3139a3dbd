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
from typing import Any

from google.protobuf import descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import Message as ProtoMessageBase
from pydantic import BaseModel, ValidationError

from servicewire.codecs._proto_codegen import build_decoder, build_encoder
from servicewire.codecs._proto_schema import (
    ProtoSchema,
    derived_number,
    proto_schema,
)
from servicewire.codecs.base import DEFAULT_MAX_SIZE, C, check_size, validation_error
from servicewire.errors import DecodeError, EncodeError
from servicewire.messaging.contracts import Contract

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
    classes = {
        m.full_name: message_factory.GetMessageClass(pool.FindMessageTypeByName(m.full_name[1:]))
        for m in [schema.root, *schema.nested]
    }
    return _Plan(
        schema, classes[schema.full_name], build_encoder(schema, classes), build_decoder(schema)
    )


class ProtobufCodec:
    """``application/protobuf``: proto3 binary messages generated from contracts."""

    content_type = "application/protobuf"
    format_name = "protobuf"

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size

    def encode(self, value: Contract) -> bytes:
        plan = _plans.get(type(value)) or _plan(type(value))
        try:
            return plan.encode(value).SerializeToString()  # type: ignore[no-any-return]
        except Exception as exc:
            raise EncodeError(
                f"cannot encode {type(value).contract_name()} as protobuf: {exc}"
            ) from None

    def decode(self, payload: bytes, cls: type[C]) -> C:
        check_size(payload, cls, self.format_name, self.max_size)
        try:
            plan = _plans.get(cls) or _plan(cls)
        except TypeError as exc:
            raise self._error(cls, f"no protobuf schema: {exc}") from None
        try:
            message = plan.message_class.FromString(
                payload if type(payload) is bytes else bytes(payload)
            )
            data = plan.decode(message)
        except RecursionError:
            raise self._error(cls, "nesting too deep") from None
        except Exception as exc:
            raise self._error(cls, f"{type(exc).__name__}: {exc}") from None
        try:
            return cls.__pydantic_validator__.validate_python(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise validation_error(cls, self.format_name, exc) from None
        except Exception as exc:
            raise self._error(cls, str(exc)) from None

    def _error(self, cls: type[C], reason: str) -> DecodeError:
        return DecodeError(cls.contract_name() or cls.__name__, self.format_name, reason)
