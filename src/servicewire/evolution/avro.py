"""Compare two Avro schemas as message schemas: both directions must keep reading.

Avro resolves a writer's schema against a reader's schema, field by field by name.
A change is MINOR only when consumers on the old schema read new messages *and*
consumers on the new schema read old ones, which in practice means: a field added
with a default, or an enum symbol added to an enum that has a default. Everything
else that changes the data (a removed, renamed or default-less field, a promoted or
changed type, a new union branch) is MAJOR; ``doc``, defaults and order (of fields,
enum symbols, union branches: Avro resolves them by name) are PATCH::

    report = compare_avro(json.loads(old_text), json.loads(new_text), Policy())

Locations are dotted paths: ``ftgo.order.OrderCreated.lines[].quantity``.
"""

from __future__ import annotations

from typing import Any

from servicewire.evolution.jsonschema import canonical
from servicewire.evolution.model import (
    DocumentError,
    Report,
    default_change,
    logical_type,
    shown,
)
from servicewire.evolution.policy import Collector, Policy

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_COMPLEX = frozenset({"record", "error", "enum", "fixed", "array", "map"})
# Writer type -> reader types it may be promoted to (Avro specification, "Schema Resolution").
_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def compare_avro(old: Any, new: Any, policy: Policy, source: str = "schema.avsc") -> Report:
    """Every difference between two Avro schemas, with the bump each needs."""
    diff = _AvroDiff(policy, source)
    old_names = _collect(old, None, {}, source)
    new_names = _collect(new, None, {}, source)
    diff.compare(old, new, old_names, new_names, None, None, _name_of(old, None) or "schema")
    return diff.out.report


def _fullname(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _name_of(schema: Any, namespace: str | None) -> str | None:
    if isinstance(schema, dict) and isinstance(schema.get("name"), str):
        return _fullname(schema["name"], schema.get("namespace", namespace))
    return None


def _collect(
    schema: Any, namespace: str | None, names: dict[str, Any], source: str
) -> dict[str, Any]:
    """Every named type (record, enum, fixed) in ``schema`` by full name."""
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, names, source)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            full = _name_of(schema, namespace)
            if full is None:
                raise DocumentError(source, f"a {kind} needs a name")
            names[full] = schema
            inner_ns = full.rpartition(".")[0] or None
            for field in schema.get("fields", []) if kind in ("record", "error") else []:
                if not isinstance(field, dict) or "name" not in field or "type" not in field:
                    raise DocumentError(source, f"bad field in {full}: {field!r}")
                _collect(field["type"], inner_ns, names, source)
        elif kind == "array":
            _collect(schema.get("items"), namespace, names, source)
        elif kind == "map":
            _collect(schema.get("values"), namespace, names, source)
        elif isinstance(kind, (dict, list)):
            _collect(kind, namespace, names, source)
        elif not isinstance(kind, str):
            raise DocumentError(source, f"unknown Avro type {kind!r}")
    elif isinstance(schema, str):
        pass
    else:
        raise DocumentError(source, f"not an Avro schema: {schema!r}")
    return names


class _AvroDiff:
    def __init__(self, policy: Policy, source: str) -> None:
        self.out = Collector("avro", policy)
        self.source = source
        self._active: set[tuple[str, str]] = set()

    def _resolve(self, schema: Any, names: dict[str, Any], ns: str | None) -> Any:
        """A type name becomes its definition; ``{"type": "int"}`` becomes ``"int"``."""
        if isinstance(schema, str) and schema not in PRIMITIVES:
            full = _fullname(schema, ns)
            if full in names:
                return names[full]
            if schema in names:
                return names[schema]
            raise DocumentError(self.source, f"unknown Avro type name {schema!r}")
        if isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
            return schema["type"]
        if isinstance(schema, dict) and isinstance(schema.get("type"), str):
            if schema["type"] not in PRIMITIVES and schema["type"] not in _COMPLEX:
                return self._resolve(schema["type"], names, ns)
        if (
            isinstance(schema, dict)
            and schema.get("type") in PRIMITIVES
            and "logicalType" not in schema
        ):
            return schema["type"]
        return schema

    def _label(self, schema: Any, ns: str | None) -> str:
        """What identifies a union branch: a primitive, a full name, ``array`` or ``map``."""
        if isinstance(schema, str):
            return schema if schema in PRIMITIVES else _fullname(schema, ns)
        if isinstance(schema, dict):
            return _name_of(schema, ns) or str(schema.get("type"))
        return "union"

    def _shape(self, schema: Any, ns: str | None) -> str:
        """A type as the schema writes it: ``string``, union ``["null", "string"]``."""
        if isinstance(schema, list):
            return "union [" + ", ".join(f'"{self._label(b, ns)}"' for b in schema) + "]"
        return self._label(schema, ns)

    def compare(
        self,
        old: Any,
        new: Any,
        old_names: dict[str, Any],
        new_names: dict[str, Any],
        old_ns: str | None,
        new_ns: str | None,
        loc: str,
    ) -> None:
        pair = (self._label(old, old_ns), self._label(new, new_ns))
        named = (isinstance(old, str) and old not in PRIMITIVES) or (
            isinstance(old, dict) and old.get("type") in ("record", "error", "enum", "fixed")
        )
        if named:
            if pair in self._active:  # a recursive type, already being compared
                return
            self._active.add(pair)
        try:
            self._compare(
                self._resolve(old, old_names, old_ns),
                self._resolve(new, new_names, new_ns),
                old_names,
                new_names,
                old_ns,
                new_ns,
                loc,
            )
        finally:
            if named:
                self._active.discard(pair)

    def _compare(
        self,
        old: Any,
        new: Any,
        old_names: dict[str, Any],
        new_names: dict[str, Any],
        old_ns: str | None,
        new_ns: str | None,
        loc: str,
    ) -> None:
        if isinstance(old, list) or isinstance(new, list):
            self._union(old, new, old_names, new_names, old_ns, new_ns, loc)
            return
        old_kind = old if isinstance(old, str) else old.get("type")
        new_kind = new if isinstance(new, str) else new.get("type")
        if old_kind != new_kind:
            if new_kind in _PROMOTIONS.get(str(old_kind), ()):
                self.out.add("type-promoted", loc, f"type {old_kind} promoted to {new_kind}")
            else:
                self.out.add("type-changed", loc, f"type {old_kind} changed to {new_kind}")
            return
        if isinstance(old, str) or isinstance(new, str):
            old_logical = None if isinstance(old, str) else old.get("logicalType")
            new_logical = None if isinstance(new, str) else new.get("logicalType")
            if old_logical != new_logical:
                self.out.add(
                    "logical-type-changed", loc, f"{logical_type(old)} -> {logical_type(new)}"
                )
            return
        if old.get("logicalType") != new.get("logicalType") or (
            old.get("logicalType") is not None
            and (old.get("precision"), old.get("scale")) != (new.get("precision"), new.get("scale"))
        ):
            self.out.add(
                "logical-type-changed",
                loc,
                f"{logical_type(old)} -> {logical_type(new)}",
            )
        if canonical(old.get("doc")) != canonical(new.get("doc")):
            self.out.add("documentation-changed", loc + ".doc", "doc changed")
        if old_kind in ("record", "error", "enum", "fixed"):
            old_full = _name_of(old, old_ns) or ""
            new_full = _name_of(new, new_ns) or ""
            if old_full != new_full:
                self.out.add(
                    f"{'record' if old_kind == 'error' else old_kind}-renamed",
                    loc,
                    f"{old_kind} {old_full} renamed to {new_full}",
                )
            elif sorted(old.get("aliases", [])) != sorted(new.get("aliases", [])):
                self.out.add("aliases-changed", loc + ".aliases", "aliases changed")
            old_ns = old_full.rpartition(".")[0] or None
            new_ns = new_full.rpartition(".")[0] or None
        if old_kind in ("record", "error"):
            self._record(old, new, old_names, new_names, old_ns, new_ns, loc)
        elif old_kind == "enum":
            self._enum(old, new, loc)
        elif old_kind == "fixed":
            if old.get("size") != new.get("size"):
                self.out.add(
                    "fixed-size-changed", loc, f"size {old.get('size')} -> {new.get('size')}"
                )
        elif old_kind == "array":
            self.compare(
                old.get("items"), new.get("items"), old_names, new_names, old_ns, new_ns, loc + "[]"
            )
        elif old_kind == "map":
            self.compare(
                old.get("values"),
                new.get("values"),
                old_names,
                new_names,
                old_ns,
                new_ns,
                loc + "{}",
            )

    def _union(
        self,
        old: Any,
        new: Any,
        old_names: dict[str, Any],
        new_names: dict[str, Any],
        old_ns: str | None,
        new_ns: str | None,
        loc: str,
    ) -> None:
        if not isinstance(old, list) or not isinstance(new, list):
            before, after = self._shape(old, old_ns), self._shape(new, new_ns)
            self.out.add("type-changed", loc, f"type {before} changed to {after}")
            return
        old_map = {self._label(b, old_ns): b for b in old}
        new_map = {self._label(b, new_ns): b for b in new}
        for label in new_map.keys() - old_map.keys():
            self.out.add("union-branch-added", loc, f"union branch {label} added")
        for label in old_map.keys() - new_map.keys():
            self.out.add("union-branch-removed", loc, f"union branch {label} removed")
        kept_old = [label for label in old_map if label in new_map]
        kept_new = [label for label in new_map if label in old_map]
        if kept_old != kept_new:
            # Resolution picks the reader's branch by type or name, not by position, so
            # both directions still read; the branch index on the wire and the schema
            # fingerprint change, so a decoder must be given the writer's schema.
            self.out.add(
                "union-branches-reordered",
                loc,
                f"union branches reordered: {', '.join(kept_old)} -> {', '.join(kept_new)}",
            )
        for label in sorted(old_map.keys() & new_map.keys()):
            self.compare(old_map[label], new_map[label], old_names, new_names, old_ns, new_ns, loc)

    def _record(
        self,
        old: dict[str, Any],
        new: dict[str, Any],
        old_names: dict[str, Any],
        new_names: dict[str, Any],
        old_ns: str | None,
        new_ns: str | None,
        loc: str,
    ) -> None:
        old_fields = {f["name"]: f for f in old.get("fields", [])}
        new_fields = {f["name"]: f for f in new.get("fields", [])}
        renamed: set[str] = set()
        for name, field in new_fields.items():
            if name in old_fields:
                continue
            where = f"{loc}.{name}"
            previous = [
                a for a in field.get("aliases", []) if a in old_fields and a not in new_fields
            ]
            if previous:
                renamed.update(previous)
                self.out.add("field-renamed", where, f"field {previous[0]} renamed to {name}")
            elif "default" in field:
                self.out.add(
                    "field-added-with-default", where, f"field {name} added with a default"
                )
            else:
                self.out.add(
                    "field-added-without-default", where, f"field {name} added without a default"
                )
        for name, field in old_fields.items():
            where = f"{loc}.{name}"
            if name not in new_fields:
                if name not in renamed:
                    self.out.add("field-removed", where, f"field {name} removed")
                continue
            other = new_fields[name]
            if canonical(field.get("doc")) != canonical(other.get("doc")):
                self.out.add("documentation-changed", where + ".doc", "doc changed")
            if sorted(field.get("aliases", [])) != sorted(other.get("aliases", [])):
                # Aliases only help a reader find a writer's older field name.
                self.out.add(
                    "aliases-changed",
                    where + ".aliases",
                    f"aliases of field {name} changed: "
                    f"{shown(sorted(field.get('aliases', [])))} -> "
                    f"{shown(sorted(other.get('aliases', [])))}",
                )
            default = default_change(field, other)
            if default:
                self.out.add("default-changed", where, default)
            self.compare(field["type"], other["type"], old_names, new_names, old_ns, new_ns, where)
        common_old = [n for n in old_fields if n in new_fields]
        common_new = [n for n in new_fields if n in old_fields]
        if common_old != common_new:
            self.out.add("field-order-changed", loc, "fields were reordered")

    def _enum(self, old: dict[str, Any], new: dict[str, Any], loc: str) -> None:
        old_symbols: list[str] = list(old.get("symbols", []))
        new_symbols: list[str] = list(new.get("symbols", []))
        added = [s for s in new_symbols if s not in old_symbols]
        removed = [s for s in old_symbols if s not in new_symbols]
        for symbol in added:
            # Old readers resolve an unknown symbol to their enum's default, if it has one.
            code = "enum-symbol-added-with-default" if "default" in old else "enum-symbol-added"
            self.out.add(code, loc, f"enum symbol {symbol} added")
        for symbol in removed:
            self.out.add("enum-symbol-removed", loc, f"enum symbol {symbol} removed")
        kept_old = [s for s in old_symbols if s in new_symbols]
        kept_new = [s for s in new_symbols if s in old_symbols]
        if kept_old != kept_new:
            self.out.add("enum-symbols-reordered", loc, "enum symbols were reordered")
        default = default_change(old, new)
        if default:
            self.out.add("default-changed", loc, f"enum {default}")
