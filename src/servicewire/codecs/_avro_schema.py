"""Derive an Avro record schema from a contract (or any pydantic model).

    schema = avro_schema(CreateOrder)
    # {"type": "record", "name": "CreateOrder", "namespace": "ftgo.order", "fields": [...]}

Type mapping (see docs/codecs.md): ``str``/Enum/Literal -> ``string``; ``int`` -> ``long``;
``float`` -> ``double``; ``bool`` -> ``boolean``; ``Decimal`` -> ``string`` (exact, any
scale); ``UUID`` -> ``string`` with logical type ``uuid``; ``datetime`` -> ``long`` with
``timestamp-micros``; ``date`` -> ``int`` with ``date``; ``X | None`` -> a union with
``null``; ``list[X]`` -> ``array``; ``dict[str, X]`` -> ``map``; nested models -> records.
A field with a default gets an Avro ``default``, which is what lets a reader with that
field resolve data written before the field existed (MINOR evolution).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel

from servicewire.codecs._types import FieldSpec, TypeNode, model_info

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")


def avro_name(part: str) -> str:
    """``part`` made a valid Avro name (letters, digits, underscore; no leading digit)."""
    name = _NOT_NAME.sub("_", part) or "_"
    return "_" + name if name[0].isdigit() else name


def split_wire_name(cls: type[BaseModel]) -> tuple[str, str]:
    """(namespace, name) from a contract's wire name, or the class name for plain models."""
    wire = getattr(cls, "__contract_name__", "") or cls.__name__
    parts = [avro_name(p) for p in wire.split(".") if p]
    return ".".join(parts[:-1]), parts[-1]


def avro_schema(cls: type[BaseModel]) -> dict[str, Any]:
    """The Avro record schema of ``cls`` (a new dict on each call; callers may keep it)."""
    namespace, name = split_wire_name(cls)
    builder = _Builder(namespace)
    return builder.record(cls, name)


class _Builder:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.names: dict[type[BaseModel], str] = {}
        self.taken: set[str] = set()

    def full(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    def record(self, cls: type[BaseModel], name: str) -> dict[str, Any]:
        self.names[cls] = name
        self.taken.add(name)
        record: dict[str, Any] = {"type": "record", "name": name}
        if self.namespace:
            record["namespace"] = self.namespace
        record["fields"] = [self.field(spec) for spec in model_info(cls).fields]
        return record

    def field(self, spec: FieldSpec) -> dict[str, Any]:
        node = spec.node
        schema = self.type(node)
        out: dict[str, Any] = {"name": avro_name(spec.name)}
        if not spec.required:
            default = avro_default(spec.default, node)
            if node.kind == "optional" and default is not None:
                # A union's default must match its first branch: put the value type first.
                assert isinstance(schema, list)
                schema = [schema[1], "null"]
            out["type"] = schema
            out["default"] = default
        else:
            out["type"] = schema
        return out

    def type(self, node: TypeNode) -> Any:
        kind = node.kind
        if kind in ("str", "enum", "decimal") or (kind == "literal" and node.literal_kind == "str"):
            return "string"
        if kind == "int" or kind == "literal":
            return "long"
        if kind == "float":
            return "double"
        if kind == "bool":
            return "boolean"
        if kind == "uuid":
            return {"type": "string", "logicalType": "uuid"}
        if kind == "datetime":
            return {"type": "long", "logicalType": "timestamp-micros"}
        if kind == "date":
            return {"type": "int", "logicalType": "date"}
        if kind == "optional":
            assert node.inner is not None
            return ["null", self.type(node.inner)]
        if kind == "list":
            assert node.inner is not None
            item = node.inner
            if (
                item.kind == "model"
                and item.model is not None
                and not model_info(item.model).fields
            ):
                # Items that take no bytes let a tiny payload claim billions of them.
                raise TypeError(
                    f"list[{item.model.__name__}]: Avro cannot bound a list of models without "
                    "fields; give the model a field"
                )
            return {"type": "array", "items": self.type(item)}
        if kind == "dict":
            assert node.inner is not None
            return {"type": "map", "values": self.type(node.inner)}
        assert node.model is not None
        known = self.names.get(node.model)
        if known is not None:
            return self.full(known)  # a record is defined once, then referenced by name
        name = avro_name(node.model.__name__)
        base, n = name, 2
        while name in self.taken:
            name, n = f"{base}_{n}", n + 1
        return self.record(node.model, name)


def avro_default(value: Any, node: TypeNode) -> Any:
    """``value`` (a field default) in the JSON form an Avro schema ``default`` takes."""
    if value is None:
        return None
    kind = node.kind
    if kind == "optional":
        assert node.inner is not None
        return avro_default(value, node.inner)
    if kind == "enum":
        return value.value
    if kind in ("decimal", "uuid"):
        return str(value)
    if kind == "datetime":
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = aware - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    if kind == "date":
        return (value - _EPOCH_DATE).days
    if kind == "list":
        assert node.inner is not None
        inner = node.inner
        return [avro_default(v, inner) for v in value]
    if kind == "dict":
        assert node.inner is not None
        inner = node.inner
        return {k: avro_default(v, inner) for k, v in value.items()}
    if kind == "model":
        return {
            avro_name(spec.name): avro_default(getattr(value, spec.name), spec.node)
            for spec in model_info(type(value)).fields
        }
    return value


def without_logical_types(schema: Any, names: frozenset[str]) -> Any:
    """``schema`` (a new copy) with the logical types in ``names`` reduced to their base.

    The binary encoding of a logical type is its base type's, so the result reads and
    writes the very same bytes; only the conversion fastavro would apply is left out
    (the Avro codec does it itself, where that is cheaper)::

        without_logical_types({"type": "string", "logicalType": "uuid"}, frozenset({"uuid"}))
        # 'string'
    """
    if isinstance(schema, list):
        return [without_logical_types(s, names) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("logicalType") in names and isinstance(schema.get("type"), str):
        return schema["type"]
    return {
        key: value if key == "default" else without_logical_types(value, names)
        for key, value in schema.items()
    }
