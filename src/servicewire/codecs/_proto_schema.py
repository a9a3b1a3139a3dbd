"""Derive a proto3 schema from a contract: one self-contained file per contract.

The same description yields both the ``FileDescriptorProto`` the codec loads at run time
(no compiler needed) and the ``.proto`` text a user checks in or compiles for another
language; a test compiles the text with grpcio-tools and compares the descriptors::

    schema = proto_schema(CreateOrder)
    schema.file_proto        # descriptor_pb2.FileDescriptorProto
    schema.source()          # 'syntax = "proto3"; package ftgo.order.v1; message CreateOrder {...'

Field numbers (see docs/codecs.md): a number pinned on the field
(``Field(json_schema_extra={"proto_number": N})``) or in a ``__proto_numbers__`` ClassVar
mapping wins; any other field's number is derived from its *name* alone,
``1 + crc32(name) mod 262143`` (skipping the reserved 19000-19999), so adding, removing
or reordering fields never renumbers another field. Two fields of one message that
derive the same number are reported when the class is first used: pin one of them.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Literal

from google.protobuf import descriptor_pb2
from pydantic import BaseModel

from servicewire.codecs._types import FieldSpec, TypeNode, model_info

_F = descriptor_pb2.FieldDescriptorProto
TIMESTAMP = ".google.protobuf.Timestamp"
TIMESTAMP_FILE = "google/protobuf/timestamp.proto"

_NUMBER_SPACE = (1 << 18) - 1  # numbers below 2**18 keep every tag within 3 bytes
_RESERVED = range(19000, 20000)
_MAX_NUMBER = (1 << 29) - 1
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")

ScalarName = Literal["string", "sint64", "double", "bool"]
_SCALAR_TYPES: dict[str, int] = {
    "string": _F.TYPE_STRING,
    "sint64": _F.TYPE_SINT64,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
}


def derived_number(name: str) -> int:
    """The field number a field called ``name`` gets unless it pins one."""
    number = 1 + zlib.crc32(name.encode("utf-8")) % _NUMBER_SPACE
    return number + 1000 if number in _RESERVED else number


def ident(part: str) -> str:
    """``part`` made a valid proto identifier."""
    name = _NOT_IDENT.sub("_", part) or "_"
    return "_" + name if name[0].isdigit() else name


@dataclass(eq=False)
class Shape:
    """How one value is laid out in protobuf.

    ``element``: a scalar (``scalar`` set) or a message (``message`` = full name with a
    leading dot). ``repeated`` and ``map`` hold ``item`` elements. A ``box`` is an element
    that is a wrapper message whose single field ``value = 1`` holds ``item`` (used where
    proto3 cannot nest directly: lists of lists, optional lists, map values that are
    lists, list items that may be null, lists with a non-empty default).
    """

    form: Literal["element", "repeated", "map", "box"]
    node: TypeNode
    scalar: ScalarName | None = None
    message: str | None = None
    presence: bool = False
    item: Shape | None = None
    nullable: bool = False
    """For a box standing for an ``X | None`` field: ``None`` leaves the field unset."""


@dataclass(eq=False)
class ProtoField:
    name: str
    number: int
    shape: Shape
    spec: FieldSpec | None = None


@dataclass(eq=False)
class ProtoMessage:
    name: str
    full_name: str
    fields: list[ProtoField] = field(default_factory=list)
    cls: type[BaseModel] | None = None


@dataclass(eq=False)
class ProtoSchema:
    """The proto3 description of one contract."""

    package: str
    file_name: str
    root: ProtoMessage
    nested: list[ProtoMessage]
    """Messages nested in the root: one per nested model class, one per box type."""
    uses_timestamp: bool
    contract: str
    version: str
    messages: dict[type[BaseModel], ProtoMessage]
    """The message of each model class, the contract's own included."""

    @property
    def full_name(self) -> str:
        return self.root.full_name

    @property
    def file_proto(self) -> descriptor_pb2.FileDescriptorProto:
        return _file_proto(self)

    def source(self) -> str:
        return _source(self)


def proto_schema(cls: type[BaseModel]) -> ProtoSchema:
    """Build the :class:`ProtoSchema` of ``cls``; :class:`TypeError` names a bad field."""
    wire = getattr(cls, "__contract_name__", "") or cls.__name__
    parts = [ident(p) for p in wire.split(".") if p]
    version = getattr(cls, "__contract_version__", None)
    major = version.major if version is not None else 1
    package = ".".join([*parts[:-1], f"v{major}"])
    builder = _Builder(package, parts[-1])
    root = builder.message(cls, parts[-1], f".{package}.{parts[-1]}")
    file_name = "/".join([*package.split("."), f"{parts[-1]}.proto"])
    return ProtoSchema(
        package=package,
        file_name=file_name,
        root=root,
        nested=builder.nested,
        uses_timestamp=builder.uses_timestamp,
        contract=wire,
        version=str(version) if version is not None else "",
        messages=builder.by_class,
    )


class _Builder:
    def __init__(self, package: str, root: str) -> None:
        self.scope = f".{package}.{root}"
        self.by_class: dict[type[BaseModel], ProtoMessage] = {}
        self.boxes: dict[str, ProtoMessage] = {}
        self.taken: set[str] = {root}
        self.nested: list[ProtoMessage] = []
        self.uses_timestamp = False

    def unique(self, name: str) -> str:
        base, n = ident(name), 2
        name = base
        while name in self.taken:
            name, n = f"{base}_{n}", n + 1
        self.taken.add(name)
        return name

    def message(self, cls: type[BaseModel], name: str, full: str) -> ProtoMessage:
        msg = ProtoMessage(name, full, cls=cls)
        self.by_class[cls] = msg
        numbers: dict[int, str] = {}
        for spec in model_info(cls).fields:
            number = spec.proto_number if spec.proto_number is not None else None
            if number is None:
                number = derived_number(spec.name)
            elif not (1 <= number <= _MAX_NUMBER) or number in _RESERVED:
                raise TypeError(
                    f"{cls.__name__}.{spec.name}: proto_number {number} is outside "
                    f"1..{_MAX_NUMBER} or in the reserved 19000-19999"
                )
            if number in numbers:
                raise TypeError(
                    f"{cls.__name__}: fields {numbers[number]!r} and {spec.name!r} both have "
                    f"protobuf field number {number}; pin one with "
                    'Field(json_schema_extra={"proto_number": N})'
                )
            numbers[number] = spec.name
            has_default = not spec.required
            nonempty_default = has_default and bool(spec.default)
            shape = self.shape(spec.node, presence=has_default, box_containers=nonempty_default)
            msg.fields.append(ProtoField(ident(spec.name), number, shape, spec))
        return msg

    def model_ref(self, cls: type[BaseModel]) -> str:
        known = self.by_class.get(cls)
        if known is not None:
            return known.full_name
        name = self.unique(cls.__name__)
        # Appended before its fields are built, so recursion resolves to this message.
        placeholder = ProtoMessage(name, f"{self.scope}.{name}", cls=cls)
        self.by_class[cls] = placeholder
        self.nested.append(placeholder)
        built = self.message(cls, name, placeholder.full_name)
        placeholder.fields = built.fields
        self.by_class[cls] = placeholder
        return placeholder.full_name

    def element(self, node: TypeNode, presence: bool) -> Shape | None:
        """A scalar or message element for ``node``, or ``None`` if it needs a box."""
        kind = node.kind
        if kind in ("str", "enum", "decimal", "uuid", "date"):
            return Shape("element", node, scalar="string", presence=presence)
        if kind == "literal":
            scalar: ScalarName = "sint64" if node.literal_kind == "int" else "string"
            return Shape("element", node, scalar=scalar, presence=presence)
        if kind == "int":
            return Shape("element", node, scalar="sint64", presence=presence)
        if kind == "float":
            return Shape("element", node, scalar="double", presence=presence)
        if kind == "bool":
            return Shape("element", node, scalar="bool", presence=presence)
        if kind == "datetime":
            self.uses_timestamp = True
            return Shape("element", node, message=TIMESTAMP, presence=True)
        if kind == "model":
            assert node.model is not None
            return Shape("element", node, message=self.model_ref(node.model), presence=True)
        return None

    def shape(self, node: TypeNode, *, presence: bool, box_containers: bool = False) -> Shape:
        if node.kind == "optional":
            assert node.inner is not None
            inner = node.inner
            elem = self.element(inner, presence=True)
            if elem is not None:
                elem.node = node
                return elem
            return self.box(node, inner, nullable=True)
        elem = self.element(node, presence)
        if elem is not None:
            return elem
        assert node.inner is not None
        if box_containers:
            return self.box(node, node)
        item = self.element(node.inner, presence=False)
        if item is None:
            item = self.box(node.inner, node.inner)
        if node.kind == "list":
            return Shape("repeated", node, item=item)
        return Shape("map", node, item=item)

    def box(self, outer: TypeNode, inner: TypeNode, *, nullable: bool = False) -> Shape:
        """A wrapper message with one field ``value = 1`` holding ``inner``."""
        value = self.shape(inner, presence=inner.kind == "optional")
        label = _label(value) + "Box"
        msg = self.boxes.get(label)
        if msg is None:
            name = self.unique(label)
            msg = ProtoMessage(name, f"{self.scope}.{name}")
            msg.fields.append(ProtoField("value", 1, value))
            self.boxes[label] = msg
            self.nested.append(msg)
        return Shape(
            "box", outer, message=msg.full_name, presence=True, item=value, nullable=nullable
        )


def _label(shape: Shape) -> str:
    """A structural name: equal labels mean equal layouts, so boxes are shared."""
    if shape.form == "repeated":
        assert shape.item is not None
        return _label(shape.item) + "List"
    if shape.form == "map":
        assert shape.item is not None
        return _label(shape.item) + "Map"
    base = shape.scalar.capitalize() if shape.scalar else (shape.message or "").rsplit(".", 1)[1]
    if shape.form == "box":
        base = base.removesuffix("Box")
    optional = shape.presence and shape.form == "element" and shape.scalar is not None
    return ("Optional" if optional else "") + base


def map_entry_name(field_name: str) -> str:
    """The entry message protoc generates for a map field: ``line_items`` -> ``LineItemsEntry``."""
    out: list[str] = []
    cap = True
    for ch in field_name:
        if ch == "_":
            cap = True
        elif cap:
            out.append(ch.upper() if "a" <= ch <= "z" else ch)
            cap = False
        else:
            out.append(ch)
    return "".join(out) + "Entry"


# Descriptor ----------------------------------------------------------------------------


def _set_element(fp: descriptor_pb2.FieldDescriptorProto, shape: Shape) -> None:
    if shape.scalar is not None:
        fp.type = _SCALAR_TYPES[shape.scalar]  # type: ignore[assignment]
    else:
        fp.type = _F.TYPE_MESSAGE
        fp.type_name = shape.message or ""


def _message_proto(msg: ProtoMessage, nested: list[ProtoMessage]) -> descriptor_pb2.DescriptorProto:
    out = descriptor_pb2.DescriptorProto(name=msg.name)
    for sub in nested:
        out.nested_type.append(_message_proto(sub, []))
    for pf in msg.fields:
        shape = pf.shape
        fp = out.field.add(name=pf.name, number=pf.number)
        if shape.form == "repeated":
            assert shape.item is not None
            fp.label = _F.LABEL_REPEATED
            _set_element(fp, shape.item)
        elif shape.form == "map":
            assert shape.item is not None
            entry = out.nested_type.add(name=map_entry_name(pf.name))
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, label=_F.LABEL_OPTIONAL, type=_F.TYPE_STRING)
            value = entry.field.add(name="value", number=2, label=_F.LABEL_OPTIONAL)
            _set_element(value, shape.item)
            fp.label = _F.LABEL_REPEATED
            fp.type = _F.TYPE_MESSAGE
            fp.type_name = f"{msg.full_name}.{entry.name}"
        else:
            fp.label = _F.LABEL_OPTIONAL
            _set_element(fp, shape)
            if shape.presence and shape.scalar is not None:
                # proto3 `optional`: explicit presence through a synthetic oneof.
                fp.proto3_optional = True
                fp.oneof_index = len(out.oneof_decl)
                out.oneof_decl.add(name=f"_{pf.name}")
    return out


def _file_proto(schema: ProtoSchema) -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name=schema.file_name, package=schema.package, syntax="proto3"
    )
    if schema.uses_timestamp:
        fd.dependency.append(TIMESTAMP_FILE)
    fd.message_type.append(_message_proto(schema.root, schema.nested))
    return fd


# .proto text -----------------------------------------------------------------------------


def _type_text(shape: Shape) -> str:
    return shape.scalar if shape.scalar is not None else (shape.message or "")


def _field_lines(msg: ProtoMessage, indent: str) -> list[str]:
    lines = []
    for pf in msg.fields:
        shape = pf.shape
        if shape.form == "repeated":
            assert shape.item is not None
            text = f"repeated {_type_text(shape.item)} {pf.name} = {pf.number};"
        elif shape.form == "map":
            assert shape.item is not None
            text = f"map<string, {_type_text(shape.item)}> {pf.name} = {pf.number};"
        else:
            optional = "optional " if shape.presence and shape.scalar is not None else ""
            text = f"{optional}{_type_text(shape)} {pf.name} = {pf.number};"
        lines.append(indent + text)
    return lines


def _source(schema: ProtoSchema) -> str:
    lines = [
        f"// Generated by Servicewire from contract {schema.contract} {schema.version}.",
        "// Field numbers are derived from field names (or pinned); see docs/codecs.md.",
        'syntax = "proto3";',
        "",
        f"package {schema.package};",
        "",
    ]
    if schema.uses_timestamp:
        lines += [f'import "{TIMESTAMP_FILE}";', ""]
    lines.append(f"message {schema.root.name} {{")
    for sub in schema.nested:
        lines.append(f"  message {sub.name} {{")
        lines += _field_lines(sub, "    ")
        lines.append("  }")
    lines += _field_lines(schema.root, "  ")
    lines.append("}")
    return "\n".join(lines) + "\n"
