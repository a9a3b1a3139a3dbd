"""Compare two ``.proto`` files as gRPC APIs, through the protobuf toolchain.

Files are compiled by ``grpc_tools.protoc`` into a ``FileDescriptorSet`` (never parsed
with regular expressions; see :mod:`~.proto_document`), then messages, fields, enums,
services and methods are compared by name and field number. A change is judged by
whether existing clients keep working: new fields, messages and methods are MINOR;
removing or renaming anything, changing a type or label, and reusing or changing a
field number are MAJOR; switching a method between unary and streaming is MAJOR. So are
a changed proto2 ``default`` (a reader of an unset field sees another value), a proto3
``optional`` added to or removed from a scalar field (presence changes the generated
accessors) and a changed ``json_name``. A ``reserved`` number or name added only
constrains later versions (PATCH); dropping one lets a retired number come back (MAJOR).
Options that shape generated code (``go_package``, ``jstype``, ``idempotency_level``...),
the ``syntax`` and proto2 extensions are compared too; the verdicts agree with
``buf breaking``'s FILE rules (tests/evolution/test_buf_agreement.py). An enum value
added to an enum that responses carry follows the policy
(``response-enum-value-added``)::

    old = load_proto(Path("v1/order.proto"))
    new = load_proto(Path("v2/order.proto"))
    compare_proto(old, new, Policy()).bump          # Bump.MAJOR

Requires ``grpcio-tools`` (the ``evolution`` extra).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from google.protobuf import descriptor_pb2 as d

from servicewire.evolution.model import Report, default_change, shown
from servicewire.evolution.policy import Collector, Policy
from servicewire.evolution.proto_document import ProtoDocument, load_proto, text_digest

__all__ = ["ProtoDocument", "compare_proto", "load_proto", "text_digest"]

_MESSAGE = d.FieldDescriptorProto.TYPE_MESSAGE
_HasOptions = (
    d.FileDescriptorProto
    | d.DescriptorProto
    | d.FieldDescriptorProto
    | d.EnumDescriptorProto
    | d.EnumValueDescriptorProto
    | d.ServiceDescriptorProto
    | d.MethodDescriptorProto
)

_STREAMING = {
    (False, False): "unary",
    (False, True): "server streaming",
    (True, False): "client streaming",
    (True, True): "bidirectional streaming",
}


def compare_proto(old: ProtoDocument, new: ProtoDocument, policy: Policy) -> Report:
    """Every difference between two compiled ``.proto`` files, with the bump each needs."""
    diff = _ProtoDiff(old, new, policy)
    diff.run()
    report = diff.out.report
    if not report.changes and old.digest != new.digest:
        report.add(
            "documentation-changed",
            policy.bump("documentation-changed"),
            "/",
            "comments or formatting changed",
        )
    return report


def _walk_messages(
    prefix: str, messages: Sequence[d.DescriptorProto]
) -> Iterator[tuple[str, d.DescriptorProto]]:
    for message in messages:
        name = f"{prefix}{message.name}"
        yield name, message
        yield from _walk_messages(name + ".", message.nested_type)


def _walk_enums(
    prefix: str, messages: Sequence[d.DescriptorProto], enums: Sequence[d.EnumDescriptorProto]
) -> Iterator[tuple[str, d.EnumDescriptorProto]]:
    for enum in enums:
        yield f"{prefix}{enum.name}", enum
    for message in messages:
        yield from _walk_enums(f"{prefix}{message.name}.", message.nested_type, message.enum_type)


class _Side:
    """One version's file, with names relative to its package."""

    def __init__(self, doc: ProtoDocument) -> None:
        self.file = doc.file()
        self.package = self.file.package
        self.messages = dict(_walk_messages("", self.file.message_type))
        self.enums = dict(_walk_enums("", self.file.message_type, self.file.enum_type))
        everything: dict[str, d.DescriptorProto] = {}
        for f in doc.all_files():
            for name, message in _walk_messages(
                f".{f.package}." if f.package else ".", f.message_type
            ):
                everything[name] = message
        self.request_enums = self._reachable(
            everything, [m.input_type for s in self.file.service for m in s.method]
        )
        self.response_enums = self._reachable(
            everything, [m.output_type for s in self.file.service for m in s.method]
        )

    def short(self, type_name: str) -> str:
        """``.ftgo.order.v1.Order`` -> ``Order`` when it lives in this file's package."""
        prefix = f".{self.package}." if self.package else "."
        return type_name[len(prefix) :] if type_name.startswith(prefix) else type_name

    def _reachable(self, everything: dict[str, d.DescriptorProto], roots: list[str]) -> set[str]:
        """Enums (short names) carried, at any depth, by the messages in ``roots``."""
        seen: set[str] = set()
        enums: set[str] = set()
        todo = list(roots)
        while todo:
            name = todo.pop()
            if name in seen or name not in everything:
                continue
            seen.add(name)
            for field in everything[name].field:
                if field.type == d.FieldDescriptorProto.TYPE_MESSAGE:
                    todo.append(field.type_name)
                elif field.type == d.FieldDescriptorProto.TYPE_ENUM:
                    enums.add(self.short(field.type_name))
        return enums


class _ProtoDiff:
    def __init__(self, old: ProtoDocument, new: ProtoDocument, policy: Policy) -> None:
        self.old = _Side(old)
        self.new = _Side(new)
        self.out = Collector("proto", policy)
        self.declared: tuple[frozenset[str], frozenset[str]] | None = None
        if old.json_names_declared is not None and new.json_names_declared is not None:
            self.declared = (old.json_names_declared, new.json_names_declared)

    def run(self) -> None:
        old, new = self.old, self.new
        if old.package != new.package:
            self.out.add(
                "package-changed",
                "package",
                f"package {old.package or '(none)'} -> {new.package or '(none)'}",
            )
        if old.file.syntax != new.file.syntax:
            # proto2 and proto3 differ in presence, default values and open/closed enums.
            self.out.add(
                "syntax-changed",
                "syntax",
                f"syntax = {shown(old.file.syntax or 'proto2')} -> "
                f"syntax = {shown(new.file.syntax or 'proto2')}",
            )
        self._options("options", "file", old.file, new.file)
        self._names("message", old.messages, new.messages)
        for name in sorted(old.messages.keys() & new.messages.keys()):
            self._message(name, old.messages[name], new.messages[name])
        self._names("enum", old.enums, new.enums)
        for name in sorted(old.enums.keys() & new.enums.keys()):
            self._enum(name, old.enums[name], new.enums[name])
        self._extensions()
        old_services = {s.name: s for s in old.file.service}
        new_services = {s.name: s for s in new.file.service}
        self._names("service", old_services, new_services)
        for name in sorted(old_services.keys() & new_services.keys()):
            self._service(name, old_services[name], new_services[name])

    def _extensions(self) -> None:
        """proto2 ``extend`` fields, keyed by the message they extend and their number."""
        sides = []
        for side in (self.old, self.new):
            found: dict[tuple[str, int], d.FieldDescriptorProto] = {}
            scopes = [side.file.extension, *(m.extension for m in side.messages.values())]
            for scope in scopes:
                for ext in scope:
                    found[(side.short(ext.extendee), ext.number)] = ext
            sides.append(found)
        old, new = sides
        for key in sorted(new.keys() - old.keys()):
            ext = new[key]
            where = self._loc(key[0], ext.name)
            self.out.add(
                "extension-added", where, f"extend {key[0]} {{ {ext.name} = {key[1]} }} added"
            )
        for key in sorted(old.keys() - new.keys()):
            ext = old[key]
            where = self._loc(key[0], ext.name)
            self.out.add(
                "extension-removed", where, f"extend {key[0]} {{ {ext.name} = {key[1]} }} removed"
            )
        for key in sorted(old.keys() & new.keys()):
            a, b = old[key], new[key]
            if a.name != b.name or not self._same_type(a, b) or a.label != b.label:
                self.out.add(
                    "extension-changed",
                    self._loc(key[0], b.name),
                    f"extension {key[0]} {key[1]}: {_keyword(a, self.old.short)} {a.name} -> "
                    f"{_keyword(b, self.new.short)} {b.name}",
                )

    def _names(self, what: str, old: Mapping[str, object], new: Mapping[str, object]) -> None:
        for name in sorted(new.keys() - old.keys()):
            self.out.add(f"{what}-added", self._loc(name), f"{what} {name} added")
        for name in sorted(old.keys() - new.keys()):
            self.out.add(f"{what}-removed", self._loc(name), f"{what} {name} removed")

    def _loc(self, *parts: str) -> str:
        package = self.new.package
        return ".".join([package, *parts] if package else parts)

    def _options(self, where: str, what: str, old: _HasOptions, new: _HasOptions) -> None:
        """Options that shape generated code are MAJOR; the rest (``deprecated``...) PATCH.

        ``java_package``, ``go_package``, ``jstype``, ``idempotency_level``... change the
        code every client compiles against, or how it behaves (``buf breaking``'s FILE
        rules check the same list), so they are compared by effective value: spelling
        out a default changes nothing.
        """
        shaping = _CODE_OPTIONS.get(old.options.DESCRIPTOR.name, ())
        for option in shaping:
            before, after = getattr(old.options, option), getattr(new.options, option)
            if before != after:
                self.out.add(
                    "generated-code-option-changed",
                    where,
                    f"option {option} = {_option_value(old.options, option)} -> "
                    f"option {option} = {_option_value(new.options, option)}",
                )
        # The remaining options, by name (extensions, i.e. custom options, included).
        rest_old = {f.name: v for f, v in old.options.ListFields() if f.name not in shaping}
        rest_new = {f.name: v for f, v in new.options.ListFields() if f.name not in shaping}
        names = sorted(
            n for n in rest_old.keys() | rest_new.keys() if rest_old.get(n) != rest_new.get(n)
        )
        if names:
            listed = ", ".join(names)
            self.out.add("option-changed", where, f"{what} options changed: {listed}")
        elif _without(old.options, shaping) != _without(new.options, shaping):
            # Custom options the compiler kept as unknown fields: no names to show.
            self.out.add("option-changed", where, f"{what} custom options changed")

    def _message(self, name: str, old: d.DescriptorProto, new: d.DescriptorProto) -> None:
        self._options(self._loc(name), "message", old, new)
        self._reserved(name, old, new, end_inclusive=False)
        old_by_name = {f.name: f for f in old.field}
        new_by_name = {f.name: f for f in new.field}
        old_by_number = {f.number: f for f in old.field}
        for field in old.field:
            where = self._loc(name, field.name)
            other = new_by_name.get(field.name)
            if other is not None:
                if other.number != field.number:
                    self.out.add(
                        "field-number-changed",
                        where,
                        f"field {field.name} = {field.number} became {field.name} = {other.number}",
                    )
                else:
                    self._field(f"{name}.{field.name}", old, new, field, other)
                continue
            taker = next((f for f in new.field if f.number == field.number), None)
            if taker is None:
                self.out.add("field-removed", where, f"field {field.name} = {field.number} removed")
            elif taker.name in old_by_name:
                pass  # reported from the new side below: a moved field took this number
            elif self._same_type(field, taker):
                self.out.add(
                    "field-renamed",
                    where,
                    f"field number {field.number} renamed {field.name} -> {taker.name}",
                )
            else:
                self.out.add(
                    "field-number-reused",
                    where,
                    f"field number {field.number} reused by {taker.name} with another type",
                )
        for field in new.field:
            if field.name in old_by_name:
                continue
            where = self._loc(name, field.name)
            previous = old_by_number.get(field.number)
            if previous is not None and previous.name in new_by_name:
                self.out.add(
                    "field-number-reused",
                    where,
                    f"field number {field.number} of {previous.name} reused by {field.name}",
                )
            elif previous is None:
                required = field.label == d.FieldDescriptorProto.LABEL_REQUIRED
                self.out.add(
                    "field-added-required" if required else "field-added",
                    where,
                    f"field {field.name} = {field.number} added",
                )

    def _same_type(self, a: d.FieldDescriptorProto, b: d.FieldDescriptorProto) -> bool:
        return a.type == b.type and self.old.short(a.type_name) == self.new.short(b.type_name)

    def _field(
        self,
        name: str,
        old_msg: d.DescriptorProto,
        new_msg: d.DescriptorProto,
        old: d.FieldDescriptorProto,
        new: d.FieldDescriptorProto,
    ) -> None:
        where = self._loc(name)
        if not self._same_type(old, new):
            old_type = _keyword(old, self.old.short)
            new_type = _keyword(new, self.new.short)
            self.out.add("field-type-changed", where, f"type {old_type} -> {new_type}")
        if old.label != new.label:
            self.out.add(
                "field-label-changed",
                where,
                f"label {_label(old, self.old.file.syntax)} -> {_label(new, self.new.file.syntax)}",
            )
        old_oneof, new_oneof = _oneof(old_msg, old), _oneof(new_msg, new)
        if old_oneof != new_oneof:
            self.out.add("field-oneof-changed", where, _oneof_move(old_oneof, new_oneof))
        old_presence = _explicit_presence(old, self.old.file.syntax)
        new_presence = _explicit_presence(new, self.new.file.syntax)
        if old_presence != new_presence and new.type != _MESSAGE:
            # Wire and JSON readers cope either way, but presence changes the generated
            # API (has_*() accessors, pointer types in Go). Message fields always have
            # presence, so ``optional`` changes nothing for them; a proto2 ``optional``
            # and a proto3 ``optional`` mean the same presence.
            what = "added" if new.proto3_optional else "removed"
            self.out.add("field-presence-changed", where, f"proto3 optional keyword {what}")
        self._json_name(name, where, old, new)
        # Readers of a message without the field see the default: another default
        # means another value for every message the writer left unset.
        default = default_change(_default(old), _default(new), show=_literal(new))
        if default:
            self.out.add("field-default-changed", where, default)
        self._options(where, "field", old, new)

    def _json_name(
        self, name: str, where: str, old: d.FieldDescriptorProto, new: d.FieldDescriptorProto
    ) -> None:
        if old.json_name != new.json_name:
            self.out.add(
                "field-json-name-changed",
                where,
                f"json_name = {shown(old.json_name)} -> json_name = {shown(new.json_name)}",
            )
            return
        if self.declared is None:
            return
        was, now = (name in names for names in self.declared)
        if was != now:
            what = "spelled out" if now else "no longer spelled out"
            self.out.add(
                "field-json-name-declared",
                where,
                f"json_name = {shown(new.json_name)} {what}; "
                "it equals the default, JSON is unchanged",
            )

    def _reserved(
        self,
        name: str,
        old: d.DescriptorProto | d.EnumDescriptorProto,
        new: d.DescriptorProto | d.EnumDescriptorProto,
        *,
        end_inclusive: bool,
    ) -> None:
        """Reserved numbers and names: adding one is PATCH, dropping one is MAJOR."""
        last = 0 if end_inclusive else 1  # message ranges end exclusive, enum ones inclusive
        old_ranges = [(r.start, r.end - last) for r in old.reserved_range]
        new_ranges = [(r.start, r.end - last) for r in new.reserved_range]
        where = self._loc(name)
        for start, end in _uncovered(new_ranges, old_ranges):
            self.out.add("reserved-added", where, f"reserved {_span(start, end)} added")
        for start, end in _uncovered(old_ranges, new_ranges):
            self.out.add("reserved-removed", where, f"reserved {_span(start, end)} removed")
        for word in sorted(set(new.reserved_name) - set(old.reserved_name)):
            self.out.add("reserved-added", where, f"reserved name {shown(word)} added")
        for word in sorted(set(old.reserved_name) - set(new.reserved_name)):
            self.out.add("reserved-removed", where, f"reserved name {shown(word)} removed")

    def _enum(self, name: str, old: d.EnumDescriptorProto, new: d.EnumDescriptorProto) -> None:
        self._options(self._loc(name), "enum", old, new)
        self._reserved(name, old, new, end_inclusive=True)
        old_by_name = {v.name: v for v in old.value}
        new_by_name = {v.name: v for v in new.value}
        old_numbers = {v.number for v in old.value}
        in_response = name in self.old.response_enums or name in self.new.response_enums
        for value in new.value:
            if value.name not in old_by_name and value.number not in old_numbers:
                code = "response-enum-value-added" if in_response else "enum-value-added"
                self.out.add(code, self._loc(name, value.name), f"enum value {value.name} added")
        for value in old.value:
            where = self._loc(name, value.name)
            other = new_by_name.get(value.name)
            if other is not None:
                self._options(where, "enum value", value, other)
                if other.number != value.number:
                    self.out.add(
                        "enum-value-number-changed",
                        where,
                        f"enum value {value.name} number {value.number} -> {other.number}",
                    )
                continue
            taker = next((v for v in new.value if v.number == value.number), None)
            if taker is not None and taker.name not in old_by_name:
                self.out.add(
                    "enum-value-renamed", where, f"enum value {value.name} renamed {taker.name}"
                )
            else:
                self.out.add("enum-value-removed", where, f"enum value {value.name} removed")

    def _service(
        self, name: str, old: d.ServiceDescriptorProto, new: d.ServiceDescriptorProto
    ) -> None:
        self._options(self._loc(name), "service", old, new)
        old_methods = {m.name: m for m in old.method}
        new_methods = {m.name: m for m in new.method}
        for method in sorted(new_methods.keys() - old_methods.keys()):
            self.out.add("method-added", self._loc(name, method), f"method {name}.{method} added")
        for method in sorted(old_methods.keys() - new_methods.keys()):
            self.out.add(
                "method-removed", self._loc(name, method), f"method {name}.{method} removed"
            )
        for method in sorted(old_methods.keys() & new_methods.keys()):
            a, b = old_methods[method], new_methods[method]
            where = self._loc(name, method)
            if (self.old.short(a.input_type), self.old.short(a.output_type)) != (
                self.new.short(b.input_type),
                self.new.short(b.output_type),
            ):
                self.out.add(
                    "method-type-changed",
                    where,
                    f"rpc {method}({self.old.short(a.input_type)}) returns "
                    f"({self.old.short(a.output_type)}) became "
                    f"rpc {method}({self.new.short(b.input_type)}) returns "
                    f"({self.new.short(b.output_type)})",
                )
            before = _STREAMING[(a.client_streaming, a.server_streaming)]
            after = _STREAMING[(b.client_streaming, b.server_streaming)]
            if before != after:
                self.out.add("method-streaming-changed", where, f"{before} became {after}")
            self._options(where, "method", a, b)


def _oneof(message: d.DescriptorProto, field: d.FieldDescriptorProto) -> str | None:
    """The name of the real (not proto3-optional synthetic) oneof holding ``field``."""
    if not field.HasField("oneof_index") or field.proto3_optional:
        return None
    return message.oneof_decl[field.oneof_index].name


def _keyword(field: d.FieldDescriptorProto, short: Callable[[str], str]) -> str:
    """The field's type as ``.proto`` writes it: ``int64``, ``string``, ``Money``."""
    if field.type_name:
        return short(field.type_name)
    return d.FieldDescriptorProto.Type.Name(field.type).removeprefix("TYPE_").lower()


# Options that change the generated code or its behaviour, per options message (the
# ones buf's FILE rule set keeps: FILE_SAME_GO_PACKAGE, FIELD_SAME_JSTYPE, ...).
_CODE_OPTIONS: dict[str, tuple[str, ...]] = {
    "FileOptions": (
        "cc_enable_arenas",
        "cc_generic_services",
        "csharp_namespace",
        "go_package",
        "java_generic_services",
        "java_multiple_files",
        "java_outer_classname",
        "java_package",
        "java_string_check_utf8",
        "objc_class_prefix",
        "optimize_for",
        "php_class_prefix",
        "php_metadata_namespace",
        "php_namespace",
        "py_generic_services",
        "ruby_package",
        "swift_prefix",
    ),
    "MessageOptions": ("message_set_wire_format", "no_standard_descriptor_accessor"),
    "FieldOptions": ("ctype", "jstype"),
    "MethodOptions": ("idempotency_level",),
}


def _without(options: object, names: Sequence[str]) -> bytes:
    """``options`` serialized without the options ``names`` (compared on their own)."""
    rest: Any = type(options)()
    rest.CopyFrom(options)
    for name in names:
        rest.ClearField(name)
    return bytes(rest.SerializeToString(deterministic=True))


def _option_value(options: object, name: str) -> str:
    """An option's effective value as a .proto file writes it: ``"x"``, ``true``, ``JS_STRING``."""
    value = getattr(options, name)
    field = options.DESCRIPTOR.fields_by_name[name]  # type: ignore[attr-defined]
    if field.enum_type is not None:
        return str(field.enum_type.values_by_number[value].name)
    if isinstance(value, bool):
        return "true" if value else "false"
    return shown(value)


def _explicit_presence(field: d.FieldDescriptorProto, syntax: str) -> bool:
    """Whether the field tracks presence (``has_*``): proto2 singular, proto3 ``optional``."""
    if field.proto3_optional:
        return True
    proto2 = syntax in ("", "proto2")
    return proto2 and field.label != d.FieldDescriptorProto.LABEL_REPEATED


def _label(field: d.FieldDescriptorProto, syntax: str) -> str:
    """``optional``, ``required`` or ``repeated``; a proto3 field with no label is ``singular``."""
    optional = field.label == d.FieldDescriptorProto.LABEL_OPTIONAL
    if optional and syntax == "proto3" and not field.proto3_optional:
        return "singular"
    return d.FieldDescriptorProto.Label.Name(field.label).removeprefix("LABEL_").lower()


def _oneof_move(old: str | None, new: str | None) -> str:
    if old is None:
        return f"moved into oneof {new}"
    if new is None:
        return f"moved out of oneof {old}"
    return f"oneof {old} -> {new}"


def _default(field: d.FieldDescriptorProto) -> dict[str, str]:
    return {"default": field.default_value} if field.HasField("default_value") else {}


def _literal(field: d.FieldDescriptorProto) -> Callable[[object], str]:
    """How ``[default = ...]`` spells a value of the field's type (strings quoted)."""
    quoted = field.type in (d.FieldDescriptorProto.TYPE_STRING, d.FieldDescriptorProto.TYPE_BYTES)
    return (lambda v: f'"{v}"') if quoted else str


def _uncovered(
    ranges: Sequence[tuple[int, int]], cover: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The parts of inclusive ``ranges`` that no range in ``cover`` contains."""
    left: list[tuple[int, int]] = []
    merged = sorted(cover)
    for start, end in sorted(ranges):
        for low, high in merged:
            if high < start or low > end:
                continue
            if low > start:
                left.append((start, low - 1))
            start = high + 1
            if start > end:
                break
        if start <= end:
            left.append((start, end))
    return left


def _span(start: int, end: int) -> str:
    return f"{start}" if start == end else f"{start} to {end}"
