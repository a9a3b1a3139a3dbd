"""Avro single-object encoding, with the schema derived from the contract (fastavro).

Each payload is ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of the
writer's schema + the Avro binary body. A reader looks the fingerprint up in a
:class:`SchemaStore` and resolves the writer's schema against its own, so a 1.0 reader
reads 1.1 data (the extra field is skipped) and a 1.1 reader reads 1.0 data (the new
field takes its default)::

    codec = AvroCodec()
    data = codec.encode(CreateOrder(order_id="o-1"))
    codec.decode(data, CreateOrder)

    store = SchemaStore()
    store.add_contract(CreateOrderV1_1)        # a newer MINOR this process does not define
    AvroCodec(store=store).decode(data_from_1_1, CreateOrder)

    avro_schema(CreateOrder)                   # the .avsc of the contract, as a dict
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import LOGICAL_READERS
from fastavro.write import LOGICAL_WRITERS
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from servicewire.codecs._avro_deep import read_nested
from servicewire.codecs._avro_schema import avro_schema, without_logical_types
from servicewire.codecs._avro_store import SchemaStore, default_schema_store, fingerprint
from servicewire.codecs._dumper import build_dumper, build_loader
from servicewire.codecs._types import TypeNode
from servicewire.codecs.base import DEFAULT_MAX_SIZE, C, check_size, validation_error
from servicewire.errors import DecodeError, EncodeError
from servicewire.messaging.contracts import Contract

__all__ = [
    "MAGIC",
    "AvroCodec",
    "SchemaStore",
    "avro_schema",
    "default_schema_store",
    "fingerprint",
]

MAGIC = b"\xc3\x01"
"""The two marker bytes that open every Avro single-object encoded payload."""
_HEADER = len(MAGIC) + 8


# The logical types the generated dump converts itself, with fastavro's own functions
# (public: ``fastavro.write.LOGICAL_WRITERS``), so the bytes are the same. Called there
# directly they cost a third of what fastavro's per-value dispatch on the schema's
# ``logicalType`` does (about 1.2 us of the FTGO Order's 11 us write).
_CONVERTED = {
    "uuid": ("_uuid", "string-uuid", "uuid"),
    "datetime": ("_ts", "long-timestamp-micros", "timestamp-micros"),
    "date": ("_date", "int-date", "date"),
}
_DUMP_HELPERS: dict[str, Any] = {
    "_UUID": UUID,
    "_uuid_text": to_jsonable_python,
    **{name: LOGICAL_WRITERS[writer] for name, writer, _ in _CONVERTED.values()},
}
_WRITTEN_PLAIN = frozenset(logical for _, _, logical in _CONVERTED.values())
# On the common decode, the same for timestamps and dates (fastavro's LOGICAL_READERS,
# called from a generated loader: 0.3 us less per timestamp than its dispatch); UUIDs
# are read as text for Pydantic where the contract allows (takes_uuid_text).
_READ_CONVERTED = {
    "datetime": ("_ts", "long-timestamp-micros", "timestamp-micros"),
    "date": ("_date", "int-date", "date"),
}
_LOAD_HELPERS: dict[str, Any] = {
    name: LOGICAL_READERS[reader] for name, reader, _ in _READ_CONVERTED.values()
}
_READ_PLAIN = frozenset(logical for _, _, logical in _READ_CONVERTED.values())
_UUID_ONLY = frozenset({"uuid"})
# Core-schema parts that see a field's input before (or instead of) Pydantic's own
# validation of its type, or make that validation refuse text for a UUID.
_SEES_INPUT = frozenset({"function-before", "function-wrap", "function-plain"})


def _leaf(node: TypeNode, var: str) -> str:
    # Only what fastavro cannot take as is: Decimal travels as a string, and enums
    # whose class is not a str subclass need their value; UUIDs, datetimes and dates
    # become their base type's value (see _CONVERTED).
    if node.kind == "decimal":
        return f"str({var})"
    if node.kind == "enum":
        return f"_ev({var})"
    if node.kind == "uuid":
        # pydantic-core writes a UUID's text in Rust: a third of the time of UUID.__str__.
        return f"(_uuid_text({var}) if {var}.__class__ is _UUID else _uuid({var}, None))"
    converted = _CONVERTED.get(node.kind)
    if converted is not None:
        return f"{converted[0]}({var}, None)"
    return var


def _read_leaf(node: TypeNode, var: str) -> str:
    converted = _READ_CONVERTED.get(node.kind)
    return var if converted is None else f"{converted[0]}({var}, None, None)"


def _enum_value(v: Any) -> Any:
    return getattr(v, "value", v)


def takes_uuid_text(cls: type[BaseModel]) -> bool:
    """Whether ``cls`` validates a UUID given as its text exactly as the UUID object.

    Then the common decode reads ``uuid`` fields as plain strings and Pydantic parses
    them (in Rust), instead of fastavro calling ``uuid.UUID(text)`` per value (~1.5 us
    less on the FTGO Order). That holds unless something strict is in the schema (a
    strict UUID refuses text) or a before, wrap or plain validator would see the
    input; such contracts keep fastavro's UUID objects. Decided once per contract.
    """
    schema = cls.__pydantic_core_schema__
    return isinstance(schema, dict) and not _sees_input(schema)


def _sees_input(node: Any) -> bool:
    if isinstance(node, list):
        return any(_sees_input(item) for item in node)
    if not isinstance(node, dict):
        return False
    if node.get("strict") is True or node.get("type") in _SEES_INPUT:
        return True
    return any(
        _sees_input(value)
        for key, value in node.items()
        if key not in ("serialization", "metadata")
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything about one contract class, computed once."""

    schema: dict[str, Any]
    parsed: Any
    """The contract's schema, parsed: the reader's side of a resolution."""
    write: Any
    """The same schema without the logical types the dump converts itself."""
    read: Any
    """What the common decode reads with: the schema without the logical types ``load``
    converts, nor ``uuid`` when the contract :func:`takes_uuid_text`."""
    header: bytes
    fingerprint: bytes
    recursive: bool
    dump: Callable[[Any], dict[str, Any]]
    load: Callable[[dict[str, Any]], dict[str, Any]] | None
    """Converts a record read with ``read``: its timestamps and dates (None: it has none)."""


class AvroCodec:
    """``application/avro``: single-object encoded Avro records."""

    content_type = "application/avro"
    format_name = "avro"

    def __init__(
        self, *, max_size: int = DEFAULT_MAX_SIZE, store: SchemaStore | None = None
    ) -> None:
        self.max_size = max_size
        self.store = store if store is not None else default_schema_store
        self._plans: dict[type[BaseModel], _Plan] = {}
        self._lock = threading.Lock()

    def plan(self, cls: type[BaseModel]) -> _Plan:
        plan = self._plans.get(cls)
        if plan is None:
            with self._lock:
                schema = avro_schema(cls)
                fp = self.store.add(schema)
                self.store.add_contract(cls)
                parsed = parse_schema(schema, named_schemas={})
                recursive = self.store.recursive(fp)
                # (a recursive schema is read by _avro_deep, never with ``read``)
                load = None if recursive else build_loader(cls, _read_leaf, _LOAD_HELPERS)
                plain = (_READ_PLAIN if load is not None else frozenset()) | (
                    _UUID_ONLY if takes_uuid_text(cls) else frozenset()
                )
                plan = _Plan(
                    schema=schema,
                    parsed=parsed,
                    write=_parsed_without(schema, _WRITTEN_PLAIN),
                    read=_parsed_without(schema, plain) if plain else parsed,
                    header=MAGIC + fp,
                    fingerprint=fp,
                    recursive=recursive,
                    dump=build_dumper(cls, _leaf, {"_ev": _enum_value, **_DUMP_HELPERS}),
                    load=load,
                )
                self._plans[cls] = plan
        return plan

    def encode(self, value: Contract) -> bytes:
        cls = type(value)
        plan = self._plans.get(cls) or self.plan(cls)
        out = io.BytesIO()
        out.write(plan.header)
        try:
            schemaless_writer(out, plan.write, plan.dump(value))
        except Exception as exc:
            raise EncodeError(f"cannot encode {cls.contract_name()} as avro: {exc}") from None
        return out.getvalue()

    def decode(self, payload: bytes, cls: type[C]) -> C:
        check_size(payload, cls, self.format_name, self.max_size)
        plan = self._plans.get(cls)
        if plan is None:
            try:
                plan = self.plan(cls)
            except TypeError as exc:
                raise self._error(cls, f"no Avro schema: {exc}") from None
        data = payload if type(payload) is bytes else bytes(payload)
        if len(data) < _HEADER or data[:2] != MAGIC:
            raise self._error(
                cls,
                "not Avro single-object encoding (expected C3 01 and an 8-byte fingerprint)",
                offset=0,
            )
        fp = data[2:_HEADER]
        stream = io.BytesIO(data)
        stream.seek(_HEADER)
        try:
            if fp == plan.fingerprint and not plan.recursive:
                record: Any = schemaless_reader(stream, plan.read, None)  # the common case
                if plan.load is not None:
                    record = plan.load(record)  # a record of the contract's schema: a dict
            else:
                record = self._read_other(stream, fp, plan, cls)
        except DecodeError:
            raise
        except RecursionError:
            raise self._error(cls, "nesting too deep", offset=stream.tell()) from None
        except Exception as exc:
            raise self._error(cls, f"{type(exc).__name__}: {exc}", offset=stream.tell()) from None
        if stream.tell() != len(data):
            raise self._error(cls, "trailing bytes after the record", offset=stream.tell())
        try:
            return cls.__pydantic_validator__.validate_python(record)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise validation_error(cls, self.format_name, exc) from None
        except Exception as exc:
            raise self._error(cls, str(exc)) from None

    def _read_other(self, stream: io.BytesIO, fp: bytes, plan: _Plan, cls: type[C]) -> Any:
        """A record written with another schema (resolved), or of a recursive schema."""
        writer = plan.parsed if fp == plan.fingerprint else self.store.get(fp)
        if writer is None:
            raise self._error(
                cls,
                f"unknown writer schema fingerprint {fp.hex()}; add the writer's schema to "
                "the SchemaStore",
                offset=2,
            )
        if self.store.recursive(fp) or plan.recursive:
            # Nesting as deep as the payload says: never on fastavro's C stack.
            written = plan.schema if writer is plan.parsed else self.store.schema(fp)
            assert written is not None
            return read_nested(stream, written, plan.schema)
        return schemaless_reader(stream, writer, plan.parsed)

    def _error(self, cls: type[C], reason: str, offset: int | None = None) -> DecodeError:
        return DecodeError(
            cls.contract_name() or cls.__name__, self.format_name, reason, offset=offset
        )


def _parsed_without(schema: dict[str, Any], names: frozenset[str]) -> Any:
    return parse_schema(without_logical_types(schema, names), named_schemas={})
