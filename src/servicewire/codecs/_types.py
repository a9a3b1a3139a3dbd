"""The field types contracts use, reduced to a small tree the binary and XML codecs share.

Pydantic knows how to validate a contract; the XML, Protobuf and Avro codecs also need
to know its *shape* (which fields are lists, which are optional, what a leaf is) to
derive a schema and to walk values without reflecting on every call. :func:`model_info`
computes that shape once per class and caches it::

    info = model_info(CreateOrder)
    for f in info.fields:
        print(f.name, f.node.kind, f.required)

Supported annotations: ``str``, ``int``, ``float``, ``bool``, ``Decimal``, ``datetime``,
``date``, ``UUID``, an ``Enum`` whose values are strings, ``Literal`` of strings (or of
ints), ``X | None``, ``list[X]``, ``dict[str, X]`` and nested pydantic models. Anything
else raises :class:`TypeError` when a codec first meets the class, naming the field.
"""

from __future__ import annotations

import enum
import threading
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

Kind = Literal[
    "str",
    "int",
    "float",
    "bool",
    "decimal",
    "datetime",
    "date",
    "uuid",
    "enum",
    "literal",
    "optional",
    "list",
    "dict",
    "model",
]

LEAF_KINDS: frozenset[str] = frozenset(
    {"str", "int", "float", "bool", "decimal", "datetime", "date", "uuid", "enum", "literal"}
)

MAX_DEPTH = 32
"""How deeply values may nest (models in lists in models ...) before decoding refuses them."""

_SCALARS: dict[Any, Kind] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    Decimal: "decimal",
    datetime: "datetime",
    date: "date",
    UUID: "uuid",
}


@dataclass(frozen=True, eq=False)
class TypeNode:
    """One node of a field's type: a leaf, a container of ``inner``, or a nested model."""

    kind: Kind
    inner: TypeNode | None = None
    model: type[BaseModel] | None = None
    values: tuple[Any, ...] = ()
    """Enum or Literal values, in declaration order."""
    enum_cls: type[enum.Enum] | None = None
    literal_kind: Kind = "str"
    """For ``literal``: whether the values are ``str`` or ``int``."""

    @property
    def is_leaf(self) -> bool:
        return self.kind in LEAF_KINDS

    def label(self) -> str:
        """A stable CamelCase name for this type, used to name wrapper messages."""
        if self.kind == "optional":
            assert self.inner is not None
            return "Optional" + self.inner.label()
        if self.kind == "list":
            assert self.inner is not None
            return self.inner.label() + "List"
        if self.kind == "dict":
            assert self.inner is not None
            return self.inner.label() + "Map"
        if self.kind == "model":
            assert self.model is not None
            return self.model.__name__
        if self.kind == "literal":
            return "Int" if self.literal_kind == "int" else "String"
        if self.kind == "enum":
            return "String"
        return self.kind.capitalize()


@dataclass(eq=False)
class FieldSpec:
    """One model field: its name, type tree, whether it is required, and its default."""

    name: str
    node: TypeNode
    required: bool
    default: Any = None
    proto_number: int | None = None
    """A number pinned with ``json_schema_extra={"proto_number": N}`` or ``__proto_numbers__``."""


@dataclass(eq=False)
class ModelInfo:
    """The fields of one model class (filled after creation, so recursive models work)."""

    cls: type[BaseModel]
    fields: list[FieldSpec] = field(default_factory=list)


_cache: dict[type[BaseModel], ModelInfo] = {}
_lock = threading.RLock()


def model_info(cls: type[BaseModel]) -> ModelInfo:
    """The cached :class:`ModelInfo` of ``cls``; raises :class:`TypeError` on unsupported fields."""
    info = _cache.get(cls)
    if info is not None:
        return info
    with _lock:
        info = _cache.get(cls)
        if info is not None:
            return info
        info = ModelInfo(cls)
        # Published before the fields are analysed so a recursive reference finds it.
        _cache[cls] = info
        try:
            info.fields = _analyse_fields(cls)
        except BaseException:
            del _cache[cls]
            raise
        return info


def _analyse_fields(cls: type[BaseModel]) -> list[FieldSpec]:
    pinned: dict[str, int] = dict(getattr(cls, "__proto_numbers__", None) or {})
    specs: list[FieldSpec] = []
    for name, finfo in cls.model_fields.items():
        try:
            node = type_node(finfo.annotation)
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}.{name}: {exc}") from None
        required = finfo.is_required()
        default = None if required else finfo.get_default(call_default_factory=True)
        extra = finfo.json_schema_extra
        number = pinned.get(name)
        if isinstance(extra, dict) and "proto_number" in extra:
            raw = extra["proto_number"]
            if not isinstance(raw, int) or isinstance(raw, bool):
                raise TypeError(f"{cls.__name__}.{name}: proto_number must be an int")
            number = raw
        specs.append(FieldSpec(name, node, required, default, number))
    return specs


def type_node(annotation: Any) -> TypeNode:
    """The :class:`TypeNode` of one annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return type_node(typing.get_args(annotation)[0])
    if annotation in _SCALARS:
        return TypeNode(_SCALARS[annotation])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1 and len(typing.get_args(annotation)) == 2:
            inner = type_node(members[0])
            return inner if inner.kind == "optional" else TypeNode("optional", inner)
        raise TypeError(f"unions other than X | None are not supported: {annotation!r}")
    if origin is list:
        (item,) = typing.get_args(annotation) or (None,)
        if item is None:
            raise TypeError("list needs an item type, e.g. list[str]")
        return TypeNode("list", type_node(item))
    if origin is dict:
        args = typing.get_args(annotation)
        if len(args) != 2 or type_node(args[0]).kind != "str":
            raise TypeError(f"only dict[str, X] is supported: {annotation!r}")
        return TypeNode("dict", type_node(args[1]))
    if origin is Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return TypeNode("literal", values=values, literal_kind="str")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return TypeNode("literal", values=values, literal_kind="int")
        raise TypeError(f"Literal values must be all str or all int: {annotation!r}")
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            values = tuple(m.value for m in annotation)
            if not all(isinstance(v, str) for v in values):
                raise TypeError(f"enum {annotation.__name__} must have str values")
            return TypeNode("enum", values=values, enum_cls=annotation)
        if issubclass(annotation, BaseModel):
            return TypeNode("model", model=annotation)
        # bool/int/str subclasses that are not enums (rare): treat as their base.
        for base, kind in _SCALARS.items():
            if issubclass(annotation, base):
                return TypeNode(kind)
    raise TypeError(f"unsupported field type {annotation!r}")
