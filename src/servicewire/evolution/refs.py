"""Local ``$ref`` resolution for JSON documents (OpenAPI, JSON Schema, AsyncAPI).

Only references inside the same document (``#/components/schemas/Order``,
``#/$defs/Item``) are followed; an external or dangling reference is a
:class:`~servicewire.evolution.model.DocumentError`, because comparing what we cannot
see would hide a change::

    root = {"$defs": {"Id": {"type": "string"}}, "properties": {"id": {"$ref": "#/$defs/Id"}}}
    resolve(root, root["properties"]["id"], "schema.json")   # -> {"type": "string"}
"""

from __future__ import annotations

from typing import Any

from servicewire.evolution.model import DocumentError

_MAX_HOPS = 64


def lookup(root: Any, ref: str, source: str) -> Any:
    """The value the local reference ``ref`` points at in ``root``."""
    if not ref.startswith("#"):
        raise DocumentError(source, f"external $ref {ref!r} is not supported; inline or bundle it")
    node = root
    fragment = ref[1:]
    if fragment in ("", "/"):
        return root
    for raw in fragment.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise DocumentError(source, f"$ref {ref!r} points at nothing")
    return node


def resolve(root: Any, node: Any, source: str) -> Any:
    """Follow ``$ref`` chains from ``node`` until a value without ``$ref``.

    Sibling keys next to a ``$ref`` (allowed in JSON Schema 2019+ and OpenAPI 3.1) are
    merged over the target, so a ``description`` beside a ``$ref`` is not lost.
    """
    hops = 0
    extra: dict[str, Any] = {}
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        hops += 1
        if hops > _MAX_HOPS:
            raise DocumentError(source, f"$ref chain too long or circular at {node['$ref']!r}")
        for key, value in node.items():
            if key != "$ref":
                extra.setdefault(key, value)
        node = lookup(root, node["$ref"], source)
    if extra and isinstance(node, dict):
        merged = dict(node)
        merged.update(extra)
        return merged
    return node
