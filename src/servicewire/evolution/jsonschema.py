"""Compare two JSON Schemas, judged by who writes and who reads the data they describe.

The same schema change means different things in different places, so every comparison
names a *context*:

* ``request``: old clients write, the new server reads. Widening is compatible (MINOR),
  narrowing breaks clients (MAJOR).
* ``response``: the new server writes, old clients read (tolerantly, ignoring unknown
  properties). New properties are MINOR, narrowing is harmless (PATCH), widening breaks
  clients (MAJOR).
* ``message``: producers and consumers on either version must read each other's
  messages, so only additive optional properties are MINOR; any other change to what
  is valid is MAJOR.
* ``receive``: an AsyncAPI channel the application only consumes. Other parties write
  with the old schema and the new application reads, exactly like ``request``: widening
  (a new enum value, a looser bound) is MINOR, narrowing is MAJOR.

OpenAPI's ``readOnly`` and ``writeOnly`` say which side a property travels on: a
``readOnly`` property is not part of a request, a ``writeOnly`` one not part of a
response, so each is judged only where it is seen (``request-property-became-read-only``
when clients may no longer send a property, ``response-property-became-write-only``
when they no longer receive it).

Codes are the context plus a base code, e.g. ``request-property-added-required``::

    collector = Collector("jsonschema", Policy())
    SchemaDiff(collector, old_doc, new_doc, "schema.json").compare(old_doc, new_doc, "", "message")
    collector.report.bump      # Bump.MINOR for an added optional property
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

from servicewire.evolution.model import DocumentError, default_change, join, shown
from servicewire.evolution.policy import Collector
from servicewire.evolution.refs import resolve

Context = Literal["request", "response", "message", "receive"]

# The contexts in which the side that owns the document reads what others wrote.
READING: frozenset[str] = frozenset({"request", "receive"})
# The keyword that hides a property from a context (OpenAPI 3.0 and JSON Schema 2019+).
_HIDDEN_BY: dict[str, str] = {"request": "readOnly", "response": "writeOnly"}

_DOC_KEYS = ("title", "description", "examples", "example", "$comment", "deprecated")
# Lower bounds: raising them (or adding one) rejects values that were valid.
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
# Upper bounds: lowering them (or adding one) rejects values that were valid.
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")
# Subschemas that only add constraints where present: one appearing tightens, one
# disappearing loosens, one on both sides is compared (or, when it cannot be ordered,
# reported as changed).
_APPLICATORS = ("not", "contains", "propertyNames")
_CONDITIONAL = ("if", "then", "else")
# OpenAPI 3.0 formats and the 3.1 (JSON Schema 2020-12) keywords that replace them.
_CONTENT_FORMATS = {
    "binary": ("contentMediaType", "application/octet-stream"),
    "byte": ("contentEncoding", "base64"),
    "base64": ("contentEncoding", "base64"),
}
_ALL_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})


def canonical(value: Any) -> str:
    """A stable text form used to compare enum values, consts and defaults."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class SchemaDiff:
    """Walks an old and a new schema side by side and reports each difference."""

    def __init__(self, out: Collector, old_root: Any, new_root: Any, source: str) -> None:
        self.out = out
        self.old_root = old_root
        self.new_root = new_root
        self.source = source
        self._active: set[tuple[str, str]] = set()
        # $refs being expanded by _nullable_variant (a union that contains itself).
        self._expanding: set[str] = set()

    # Entry point --------------------------------------------------------------------------

    def compare(self, old: Any, new: Any, loc: str, ctx: Context) -> None:
        """Report every difference between schema ``old`` and ``new`` at ``loc``."""
        old_ref = old.get("$ref") if isinstance(old, dict) else None
        new_ref = new.get("$ref") if isinstance(new, dict) else None
        # A nullable reference (``anyOf: [{$ref: T}, {type: null}]``) is normalised into
        # T itself, so it is tracked under T's reference too.
        pair = (str(old_ref or _wrapped_ref(old)), str(new_ref or _wrapped_ref(new)))
        if pair[0] != "None" and pair[1] != "None":
            # Recursive schemas (a tree of categories) would recurse for ever.
            if pair in self._active:
                return
            self._active.add(pair)
        outer_use = self.out.used_at
        if old_ref == new_ref and isinstance(old_ref, str) and old_ref.startswith("#/"):
            # A shared schema: its changes are located in it, once, whoever uses it.
            if outer_use is None:
                self.out.used_at = loc
            loc = old_ref[1:]
        try:
            self._compare(
                self._flatten(old, self.old_root), self._flatten(new, self.new_root), loc, ctx
            )
        finally:
            self._active.discard(pair)
            self.out.used_at = outer_use

    # Normalisation ------------------------------------------------------------------------

    def _flatten(self, node: Any, root: Any) -> dict[str, Any]:
        """Resolve ``$ref`` and merge ``allOf`` members, so equal meanings compare equal."""
        node = resolve(root, node, self.source)
        if node is True or node is None:
            return {}
        if node is False:
            return {"not": {}}
        if not isinstance(node, dict):
            raise DocumentError(self.source, f"a schema must be an object, got {shown(node)}")
        spelled: dict[str, Any] = self._nullable_variant(_spelled_31(node), root)
        if "allOf" not in spelled:
            return spelled
        node = spelled
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        props: dict[str, Any] = dict(merged.get("properties", {}))
        required: list[str] = list(merged.get("required", []))
        for part in node["allOf"]:
            flat = self._flatten(part, root)
            props.update(flat.get("properties", {}))
            required.extend(r for r in flat.get("required", []) if r not in required)
            for key, value in flat.items():
                if key not in ("properties", "required"):
                    merged.setdefault(key, value)
        if props:
            merged["properties"] = props
        if required:
            merged["required"] = required
        return merged

    def _nullable_variant(self, node: dict[str, Any], root: Any) -> dict[str, Any]:
        """``anyOf: [X, {type: "null"}]`` -> X with ``null`` added to its type.

        OpenAPI 3.1 (and Pydantic) spell "X or null" as a two-way union; OpenAPI 3.0
        spells it ``nullable: true`` (often ``allOf: [X]`` beside it). Both mean the same
        values, so both are reduced to X with ``null`` allowed before comparing.
        """
        for key in ("anyOf", "oneOf"):
            options = node.get(key)
            if not isinstance(options, list) or len(options) < 2:
                continue
            refs = {str(o["$ref"]) for o in options if isinstance(o, dict) and "$ref" in o}
            if refs & self._expanding:
                return node  # a schema that is a union with itself: leave it as written
            self._expanding |= refs
            try:
                flat = [self._flatten(option, root) for option in options]
            finally:
                self._expanding -= refs
            rest = [f for f in flat if not _is_null(f)]
            if len(rest) != 1:
                continue
            merged = {k: v for k, v in node.items() if k != key}
            for name, value in rest[0].items():
                merged.setdefault(name, value)
            return _with_null(merged)
        return node

    def _types(self, schema: dict[str, Any], root: Any) -> frozenset[str] | None:
        """The set of JSON types a schema admits, or ``None`` when it does not say."""
        raw = schema.get("type")
        types: set[str]
        if isinstance(raw, str):
            types = {raw}
        elif isinstance(raw, list):
            types = {str(t) for t in raw}
        else:
            variants = self._simple_variants(schema, root)
            if variants is not None:
                types = variants
            elif "properties" in schema:
                types = {"object"}
            elif "items" in schema:
                types = {"array"}
            else:
                return None
        if schema.get("nullable") is True:  # OpenAPI 3.0 spelling of "or null"
            types.add("null")
        return frozenset(types)

    def _real_variants(self, schema: dict[str, Any], root: Any) -> bool:
        """Has ``anyOf``/``oneOf`` members that are more than a list of plain types."""
        has = any(isinstance(schema.get(key), list) for key in ("anyOf", "oneOf"))
        return has and self._simple_variants(schema, root) is None

    def _simple_variants(self, schema: dict[str, Any], root: Any) -> set[str] | None:
        """``anyOf: [{type: integer}, {type: null}]`` (Pydantic's Optional) as a type set."""
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if not isinstance(options, list):
                continue
            types: set[str] = set()
            for option in options:
                flat = self._flatten(option, root)
                if set(flat) - {"type", *_DOC_KEYS} or not isinstance(flat.get("type"), str):
                    return None
                types.add(flat["type"])
            return types
        return None

    # The comparison -----------------------------------------------------------------------

    def _emit(self, ctx: Context, base: str, loc: str, message: str) -> None:
        self.out.add(f"{ctx}-{base}", loc, message)

    def _compare(self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: Context) -> None:
        self._compare_docs(old, new, loc)
        old_types = self._types(old, self.old_root)
        new_types = self._types(new, self.new_root)
        self._compare_types(old_types, new_types, loc, ctx)
        self._compare_enum(old, new, loc, ctx)
        self._compare_constraints(old, new, loc, ctx)
        default = default_change(old, new)
        if default:
            self.out.add("default-changed", join(loc, "default"), default)
        if _is_object(old, old_types) or _is_object(new, new_types):
            self._compare_object(old, new, loc, ctx)
        if "items" in old or "items" in new:
            self.compare(old.get("items", {}), new.get("items", {}), join(loc, "items"), ctx)
        if self._real_variants(old, self.old_root) or self._real_variants(new, self.new_root):
            self._compare_variants(old, new, loc, ctx)
        if "discriminator" in old or "discriminator" in new:
            self._compare_discriminator(old, new, join(loc, "discriminator"), ctx)
        if any(key in old or key in new for key in _CONDITIONAL):
            self._compare_conditional(old, new, loc, ctx)
        self._compare_applicators(old, new, loc, ctx)

    def _compare_applicators(
        self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: Context
    ) -> None:
        """2020-12 keywords beyond properties/items: each adds constraints where present.

        ``not``, ``contains`` and ``propertyNames`` (added: tightened, removed:
        loosened; ``propertyNames`` on both sides compared as a schema of strings, the
        others reported changed), ``prefixItems`` (position by position),
        ``patternProperties`` and ``dependentSchemas`` (key by key),
        ``dependentRequired`` (name by name), ``contentMediaType``/``contentEncoding``.
        """
        for key in _APPLICATORS:
            if key not in old and key not in new:
                continue
            where = join(loc, key)
            if key not in old:
                self._emit(ctx, "constraint-tightened", where, f"{key} added")
            elif key not in new:
                self._emit(ctx, "constraint-loosened", where, f"{key} removed")
            elif key == "propertyNames":
                self.compare(old[key], new[key], where, ctx)
            elif canonical(old[key]) != canonical(new[key]):
                self._emit(ctx, "constraint-changed", where, f"{key} changed")
        old_prefix: list[Any] = old.get("prefixItems") or []
        new_prefix: list[Any] = new.get("prefixItems") or []
        for index in range(max(len(old_prefix), len(new_prefix))):
            where = join(loc, "prefixItems", index)
            if index >= len(old_prefix):
                self._emit(ctx, "constraint-tightened", where, f"prefixItems[{index}] added")
            elif index >= len(new_prefix):
                self._emit(ctx, "constraint-loosened", where, f"prefixItems[{index}] removed")
            else:
                self.compare(old_prefix[index], new_prefix[index], where, ctx)
        for key in ("patternProperties", "dependentSchemas"):
            old_map: dict[str, Any] = old.get(key) or {}
            new_map: dict[str, Any] = new.get(key) or {}
            for name in sorted(new_map.keys() - old_map.keys()):
                what = f"{key} {shown(name)} added"
                self._emit(ctx, "constraint-tightened", join(loc, key, name), what)
            for name in sorted(old_map.keys() - new_map.keys()):
                what = f"{key} {shown(name)} removed"
                self._emit(ctx, "constraint-loosened", join(loc, key, name), what)
            for name in sorted(old_map.keys() & new_map.keys()):
                if key == "patternProperties":
                    self.compare(old_map[name], new_map[name], join(loc, key, name), ctx)
                elif canonical(old_map[name]) != canonical(new_map[name]):
                    what = f"{key} {shown(name)} changed"
                    self._emit(ctx, "conditional-changed", join(loc, key, name), what)
        old_dep: dict[str, Any] = old.get("dependentRequired") or {}
        new_dep: dict[str, Any] = new.get("dependentRequired") or {}
        for name in sorted(old_dep.keys() | new_dep.keys()):
            before, after = set(old_dep.get(name, [])), set(new_dep.get(name, []))
            where = join(loc, "dependentRequired", name)
            for needed in sorted(after - before):
                what = f"{shown(needed)} required when {shown(name)} is present"
                self._emit(ctx, "constraint-tightened", where, what)
            for needed in sorted(before - after):
                what = f"{shown(needed)} no longer required when {shown(name)} is present"
                self._emit(ctx, "constraint-loosened", where, what)
        for key in ("contentMediaType", "contentEncoding"):
            if old.get(key) != new.get(key):
                what = f"{key} {shown(old.get(key))} -> {shown(new.get(key))}"
                self._emit(ctx, "constraint-changed", join(loc, key), what)

    def _compare_docs(self, old: dict[str, Any], new: dict[str, Any], loc: str) -> None:
        for key in _DOC_KEYS:
            if canonical(old.get(key)) != canonical(new.get(key)):
                self.out.add("documentation-changed", join(loc, key), f"{key} changed")

    def _compare_types(
        self, old: frozenset[str] | None, new: frozenset[str] | None, loc: str, ctx: Context
    ) -> None:
        if old == new:
            return
        old_set = _expand(old)
        new_set = _expand(new)
        shown_old = "any" if old is None else "|".join(sorted(old))
        shown_new = "any" if new is None else "|".join(sorted(new))
        what = f"type {shown_old} became {shown_new}"
        if old_set == new_set:
            return
        if old_set < new_set:
            self._emit(ctx, "type-widened", loc, what)
        elif new_set < old_set:
            self._emit(ctx, "type-narrowed", loc, what)
        else:
            self._emit(ctx, "type-changed", loc, what)

    def _compare_enum(
        self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: Context
    ) -> None:
        if "const" in old or "const" in new:
            if canonical(old.get("const")) != canonical(new.get("const")):
                base = "const-changed"
                if "const" not in old:
                    base = "constraint-tightened"
                elif "const" not in new:
                    base = "constraint-loosened"
                self._emit(ctx, base, join(loc, "const"), default_change(old, new, "const"))
        if "enum" not in old and "enum" not in new:
            return
        if "enum" not in new:
            self._emit(ctx, "constraint-loosened", join(loc, "enum"), "the enum was removed")
            return
        if "enum" not in old:
            self._emit(ctx, "constraint-tightened", join(loc, "enum"), "an enum was added")
            return
        old_values = {canonical(v): v for v in old["enum"]}
        new_values = {canonical(v): v for v in new["enum"]}
        for key in sorted(new_values.keys() - old_values.keys()):
            self._emit(ctx, "enum-value-added", join(loc, "enum"), f"enum value {key} added")
        for key in sorted(old_values.keys() - new_values.keys()):
            self._emit(ctx, "enum-value-removed", join(loc, "enum"), f"enum value {key} removed")

    def _compare_constraints(
        self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: Context
    ) -> None:
        for key, tighter in [(k, True) for k in _LOWER] + [(k, False) for k in _UPPER]:
            a, b = old.get(key), new.get(key)
            if a == b or isinstance(a, bool) or isinstance(b, bool):
                continue
            where = join(loc, key)
            if a is None:
                self._emit(ctx, "constraint-tightened", where, f"{key} {b} added")
            elif b is None:
                self._emit(ctx, "constraint-loosened", where, f"{key} {a} removed")
            elif (b > a) == tighter:
                self._emit(ctx, "constraint-tightened", where, f"{key} {a} -> {b}")
            else:
                self._emit(ctx, "constraint-loosened", where, f"{key} {a} -> {b}")
        for key in ("pattern", "format", "multipleOf"):
            a, b = old.get(key), new.get(key)
            if a == b:
                continue
            where = join(loc, key)
            if a is None:
                self._emit(ctx, "constraint-tightened", where, f"{key} {shown(b)} added")
            elif b is None:
                self._emit(ctx, "constraint-loosened", where, f"{key} {shown(a)} removed")
            else:
                self._emit(ctx, "constraint-changed", where, f"{key} {shown(a)} -> {shown(b)}")
        if bool(old.get("uniqueItems")) != bool(new.get("uniqueItems")):
            base = "constraint-tightened" if new.get("uniqueItems") else "constraint-loosened"
            self._emit(ctx, base, join(loc, "uniqueItems"), "uniqueItems changed")

    def _compare_object(
        self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: Context
    ) -> None:
        old_props: dict[str, Any] = old.get("properties") or {}
        new_props: dict[str, Any] = new.get("properties") or {}
        old_req = set(old.get("required") or [])
        new_req = set(new.get("required") or [])
        # unevaluatedProperties: false (2019-09+) closes a schema as additionalProperties does.
        old_closed = False in (old.get("additionalProperties"), old.get("unevaluatedProperties"))
        new_closed = False in (new.get("additionalProperties"), new.get("unevaluatedProperties"))
        old_props, new_props = self._visible(old_props, new_props, new_req, loc, ctx)
        for name in new_props:
            where = join(loc, "properties", name)
            if name in old_props:
                continue
            if old_closed and ctx not in READING:
                # Readers of the old, closed schema reject any unknown property.
                self._emit(
                    ctx,
                    "property-added-closed",
                    where,
                    f"property {shown(name)} added to a closed schema",
                )
            elif name in new_req:
                self._emit(
                    ctx, "property-added-required", where, f"required property {shown(name)} added"
                )
            else:
                self._emit(
                    ctx, "property-added-optional", where, f"optional property {shown(name)} added"
                )
        for name in old_props:
            where = join(loc, "properties", name)
            if name not in new_props:
                self._emit(ctx, "property-removed", where, f"property {shown(name)} removed")
                continue
            if name in new_req and name not in old_req:
                self._emit(
                    ctx,
                    "property-became-required",
                    where,
                    f"property {shown(name)} became required",
                )
            elif name in old_req and name not in new_req:
                self._emit(
                    ctx,
                    "property-became-optional",
                    where,
                    f"property {shown(name)} became optional",
                )
            self.compare(old_props[name], new_props[name], where, ctx)
        if old_closed != new_closed:
            base = "closed-to-extension" if new_closed else "opened-to-extension"
            self._emit(ctx, base, join(loc, "additionalProperties"), "additionalProperties changed")
        old_extra = old.get("additionalProperties")
        new_extra = new.get("additionalProperties")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            self.compare(old_extra, new_extra, join(loc, "additionalProperties"), ctx)

    def _visible(
        self, old: dict[str, Any], new: dict[str, Any], required: set[str], loc: str, ctx: Context
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The properties seen in ``ctx``; reports what ``readOnly``/``writeOnly`` changed.

        A ``readOnly`` property is not sent in requests and a ``writeOnly`` one not in
        responses, so in that context it is left out of the comparison: a required
        ``readOnly`` property added to a schema only matters to the clients that read
        it. A property that becomes hidden is gone for that side (MAJOR); one that stops
        being hidden appears, like an added property.
        """
        hide = _HIDDEN_BY.get(ctx)
        old_flags = {n: self._access(v, self.old_root) for n, v in old.items()}
        new_flags = {n: self._access(v, self.new_root) for n, v in new.items()}
        for name in sorted(old.keys() & new.keys()):
            before, after = old_flags[name], new_flags[name]
            if before == after:
                continue
            what = f"property {shown(name)} was {_access_words(before)}, is {_access_words(after)}"
            base = "property-access-changed"
            if hide is not None and hide in after and hide not in before:
                base = f"property-became-{'read' if hide == 'readOnly' else 'write'}-only"
            elif hide is not None and hide in before and hide not in after:
                # It appears on this side: reported below as an added property.
                continue
            self._emit(ctx, base, join(loc, "properties", name), what)
        if hide is None:
            return old, new
        old_seen = {n: v for n, v in old.items() if hide not in old_flags[n]}
        new_seen = {n: v for n, v in new.items() if hide not in new_flags[n]}
        for name in sorted(new.keys() - old.keys() - new_seen.keys()):
            where = join(loc, "properties", name)
            what = f"{hide} property {shown(name)} added; it is not part of a {ctx}"
            self._emit(ctx, "hidden-property-added", where, what)
        for name in sorted(old.keys() - new.keys() - old_seen.keys()):
            where = join(loc, "properties", name)
            what = f"{hide} property {shown(name)} removed; it was not part of a {ctx}"
            self._emit(ctx, "hidden-property-removed", where, what)
        for name in sorted(new_seen.keys() & (old.keys() - old_seen.keys())):
            side = "clients may now send it" if hide == "readOnly" else "clients now receive it"
            kind = "required" if name in required else "optional"
            what = f"{kind} property {shown(name)} is no longer {hide}; {side}"
            base = f"property-added-{kind}"
            self._emit(ctx, base, join(loc, "properties", name), what)
        # A property seen on one side only because its flag changed is reported above;
        # drop it from both sides so it is not reported again as added or removed.
        old_seen = {n: v for n, v in old_seen.items() if n not in new or n in new_seen}
        new_seen = {n: v for n, v in new_seen.items() if n not in old or n in old_seen}
        return old_seen, new_seen

    def _access(self, prop: Any, root: Any) -> frozenset[str]:
        """Which of ``readOnly``/``writeOnly`` a property schema sets, ``$ref`` followed."""
        flat = self._flatten(prop, root)
        return frozenset(k for k in ("readOnly", "writeOnly") if flat.get(k) is True)

    def _compare_variants(
        self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: Context
    ) -> None:
        for key in ("anyOf", "oneOf"):
            old_list = old.get(key)
            new_list = new.get(key)
            if old_list is None and new_list is None:
                continue
            old_map = dict(self._keyed(old_list or [], self.old_root))
            new_map = dict(self._keyed(new_list or [], self.new_root))
            for name in new_map.keys() - old_map.keys():
                self._emit(ctx, "variant-added", join(loc, key), f"{key} variant {name} added")
            for name in old_map.keys() - new_map.keys():
                self._emit(ctx, "variant-removed", join(loc, key), f"{key} variant {name} removed")
            for name in sorted(old_map.keys() & new_map.keys()):
                index = (new_list or []).index(new_map[name])
                self.compare(old_map[name], new_map[name], join(loc, key, index), ctx)

    def _compare_discriminator(
        self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: Context
    ) -> None:
        """OpenAPI's ``discriminator``: readers on both sides dispatch on its values."""
        old_d = old.get("discriminator") or {}
        new_d = new.get("discriminator") or {}
        old_name, new_name = old_d.get("propertyName"), new_d.get("propertyName")
        if old_name != new_name:
            what = f"discriminator property {shown(old_name)} became {shown(new_name)}"
            self._emit(ctx, "discriminator-property-changed", join(loc, "propertyName"), what)
            return
        old_map = _mapping(old_d, old)
        new_map = _mapping(new_d, new)
        where = join(loc, "mapping")
        for value in sorted(new_map.keys() - old_map.keys()):
            self._emit(ctx, "discriminator-mapping-added", where, f"value {shown(value)} added")
        for value in sorted(old_map.keys() - new_map.keys()):
            self._emit(ctx, "discriminator-mapping-changed", where, f"value {shown(value)} removed")
        for value in sorted(old_map.keys() & new_map.keys()):
            if old_map[value] != new_map[value]:
                what = f"value {shown(value)} now selects {new_map[value]} (was {old_map[value]})"
                self._emit(ctx, "discriminator-mapping-changed", where, what)

    def _compare_conditional(
        self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: Context
    ) -> None:
        """``if``/``then``/``else``: a constraint that applies to some instances only.

        A changed ``if`` moves the line between instances, so it is judged as changed both
        ways. An added ``then``/``else`` tightens, a removed one loosens; one on both
        sides is compared constraint by constraint (a property a branch now mentions, or
        now requires, tightens it).
        """
        if canonical(old.get("if")) != canonical(new.get("if")):
            what = {
                (False, True): "an if condition was added",
                (True, False): "the if condition was removed",
            }.get(("if" in old, "if" in new), "the if condition changed")
            self._emit(ctx, "conditional-changed", join(loc, "if"), what)
        for key in ("then", "else"):
            where = join(loc, key)
            if key not in old and key not in new:
                continue
            if key not in old:
                self._emit(ctx, "constraint-tightened", where, f"a conditional {key} was added")
                continue
            if key not in new:
                self._emit(ctx, "constraint-loosened", where, f"the conditional {key} was removed")
                continue
            before = len(self.out.report.changes)
            self._compare_branch(
                self._flatten(old[key], self.old_root),
                self._flatten(new[key], self.new_root),
                where,
                ctx,
            )
            if len(self.out.report.changes) == before and (
                canonical(old[key]) != canonical(new[key])
            ):
                self._emit(ctx, "conditional-changed", where, f"the conditional {key} changed")

    def _compare_branch(
        self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: Context
    ) -> None:
        # A branch adds constraints to an instance the outer schema already accepted, so
        # a property or a requirement it gains is a constraint, not a new field.
        self._compare_docs(old, new, loc)
        self._compare_types(
            self._types(old, self.old_root), self._types(new, self.new_root), loc, ctx
        )
        self._compare_enum(old, new, loc, ctx)
        self._compare_constraints(old, new, loc, ctx)
        old_props: dict[str, Any] = old.get("properties") or {}
        new_props: dict[str, Any] = new.get("properties") or {}
        for name in sorted(new_props.keys() - old_props.keys()):
            where = join(loc, "properties", name)
            self._emit(
                ctx, "constraint-tightened", where, f"a constraint on {shown(name)} was added"
            )
        for name in sorted(old_props.keys() - new_props.keys()):
            where = join(loc, "properties", name)
            self._emit(
                ctx, "constraint-loosened", where, f"the constraint on {shown(name)} was removed"
            )
        for name in sorted(old_props.keys() & new_props.keys()):
            self.compare(old_props[name], new_props[name], join(loc, "properties", name), ctx)
        old_req = set(old.get("required") or [])
        new_req = set(new.get("required") or [])
        for name in sorted(new_req - old_req):
            self._emit(
                ctx, "constraint-tightened", join(loc, "required"), f"{shown(name)} required"
            )
        for name in sorted(old_req - new_req):
            self._emit(ctx, "constraint-loosened", join(loc, "required"), f"{shown(name)} optional")

    def _keyed(self, options: list[Any], root: Any) -> Iterator[tuple[str, Any]]:
        """Name each variant: by its ``$ref`` when it has one, else by type or content."""
        for option in options:
            if isinstance(option, dict) and isinstance(option.get("$ref"), str):
                yield option["$ref"].rsplit("/", 1)[-1], option
                continue
            flat = self._flatten(option, root)
            if isinstance(flat.get("title"), str):
                yield flat["title"], option
            elif isinstance(flat.get("type"), str):
                yield flat["type"], option
            else:
                yield canonical(flat), option


def _mapping(discriminator: dict[str, Any], schema: dict[str, Any]) -> dict[str, str]:
    """Discriminator value -> schema reference, explicit ``mapping`` plus implicit names.

    Without a mapping entry, a ``oneOf``/``anyOf`` member ``$ref: '#/.../Dog'`` is
    selected by the value ``Dog`` (OpenAPI's implicit mapping).
    """
    found: dict[str, str] = {}
    for value, target in (discriminator.get("mapping") or {}).items():
        ref = str(target)
        found[str(value)] = ref if "/" in ref else f"#/components/schemas/{ref}"
    for key in ("oneOf", "anyOf"):
        for option in schema.get(key) or []:
            member = option.get("$ref") if isinstance(option, dict) else None
            if isinstance(member, str) and member not in found.values():
                found.setdefault(member.rsplit("/", 1)[-1], member)
    return found


def _wrapped_ref(node: Any) -> str | None:
    """The one ``$ref`` of ``anyOf``/``oneOf: [{$ref}, {type: null}]`` or ``allOf: [{$ref}]``."""
    if not isinstance(node, dict):
        return None
    for key in ("anyOf", "oneOf", "allOf"):
        options = node.get(key)
        if not isinstance(options, list):
            continue
        refs = [
            o["$ref"] for o in options if isinstance(o, dict) and isinstance(o.get("$ref"), str)
        ]
        others = [o for o in options if not (isinstance(o, dict) and "$ref" in o)]
        if len(refs) == 1 and all(isinstance(o, dict) and _is_null(o) for o in others):
            return str(refs[0])
    return None


def _spelled_31(node: dict[str, Any]) -> dict[str, Any]:
    """A schema in OpenAPI 3.1 / JSON Schema 2020-12 spelling, so 3.0 and 3.1 compare equal.

    * ``exclusiveMinimum: true`` + ``minimum: 5`` (OpenAPI 3.0, draft 4) is
      ``exclusiveMinimum: 5``; ``exclusiveMinimum: false`` says nothing. Same for maximum.
    * ``nullable: true`` is ``null`` in the type list.
    * ``example: x`` is ``examples: [x]``.
    * ``format: binary`` is ``contentMediaType: application/octet-stream``, ``format:
      byte`` (or ``base64``) is ``contentEncoding: base64``.
    """
    out = dict(node)
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        flag = out.get(exclusive)
        if flag is True and bound in out:
            out[exclusive] = out.pop(bound)
        elif flag is False:
            del out[exclusive]
    if out.pop("nullable", False) is True:
        out = _with_null(out)
    if "example" in out and "examples" not in out:
        out["examples"] = [out.pop("example")]
    # OpenAPI 3.0 described file contents with formats that 3.1 moved to keywords.
    content = _CONTENT_FORMATS.get(str(out.get("format")))
    if content is not None and content[0] not in out:
        del out["format"]
        out[content[0]] = content[1]
    return out


def _with_null(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` that also admits ``null`` (``type`` list, or ``nullable`` with no type)."""
    raw = node.get("type")
    if raw is None:
        return {**node, "nullable": True}
    types = [raw] if isinstance(raw, str) else list(raw)
    if "null" not in types:
        types.append("null")
    return {**node, "type": sorted(types)}


def _is_null(schema: dict[str, Any]) -> bool:
    """``{type: "null"}`` (with only documentation beside it)."""
    rest = set(schema) - {"type", *_DOC_KEYS}
    return not rest and schema.get("type") in ("null", ["null"])


def _access_words(flags: frozenset[str]) -> str:
    """``readOnly``, ``writeOnly``, both, or ``read-write`` (neither flag)."""
    return " and ".join(sorted(flags)) or "read-write"


def _is_object(schema: dict[str, Any], types: frozenset[str] | None) -> bool:
    return "properties" in schema or (types is not None and "object" in types)


def _expand(types: frozenset[str] | None) -> frozenset[str]:
    """Every type the set admits; a ``number`` also admits every ``integer``."""
    if types is None:
        return _ALL_TYPES
    if "number" in types:
        return types | {"integer"}
    return types
