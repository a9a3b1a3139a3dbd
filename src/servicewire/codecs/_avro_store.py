"""Avro schema fingerprints and the store that maps them back to writer schemas.

A single-object encoded Avro payload names its writer schema only by a 64-bit
fingerprint (CRC-64-AVRO of the schema's Parsing Canonical Form). A reader needs the
full writer schema to decode it, so it looks the fingerprint up here::

    store = SchemaStore()                      # knows every registered contract's schema
    store.add_contract(CreateOrderV1_0)        # an older MINOR kept out of the registry
    store.load_directory("schemas/")           # *.avsc files from other producers
    writer = store.get(fingerprint)            # parsed schema, or None if unknown
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint as schema_fingerprint
from fastavro.schema import to_parsing_canonical_form
from pydantic import BaseModel

from servicewire.codecs._avro_schema import avro_schema
from servicewire.messaging.contracts import ContractRegistry, default_registry

_CRC64 = "CRC-64-AVRO"


def fingerprint(schema: dict[str, Any] | str) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of ``schema``'s canonical form.

    fastavro computes it (``fastavro.schema.fingerprint`` gives the bytes as hex)::

        fingerprint('"int"') == bytes.fromhex("8f5c393f1ad57572")
    """
    canonical = to_parsing_canonical_form(_as_dict(schema))
    return bytes.fromhex(schema_fingerprint(canonical, _CRC64))


def _as_dict(schema: dict[str, Any] | str) -> Any:
    return json.loads(schema) if isinstance(schema, str) else schema


def is_recursive(schema: Any) -> bool:
    """Whether a named type refers to itself (directly or through others) in ``schema``.

    Data of a recursive schema can nest as deep as its payload allows, and fastavro's
    compiled reader recurses on the C stack; such schemas are read with Apache Avro's
    pure-Python reader instead, where deep nesting ends in a RecursionError rather than
    a crash.
    """
    return _refers_back(schema, [], "")


def _refers_back(schema: Any, path: list[str], namespace: str) -> bool:
    if isinstance(schema, str):
        short = schema.rsplit(".", 1)[-1]
        return schema in path or short in path
    if isinstance(schema, list):
        return any(_refers_back(s, path, namespace) for s in schema)
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind in ("record", "error"):
        ns = schema.get("namespace", namespace)
        name = str(schema.get("name", ""))
        full = name if "." in name or not ns else f"{ns}.{name}"
        inner = [*path, full, name.rsplit(".", 1)[-1]]
        return any(_refers_back(f.get("type"), inner, ns) for f in schema.get("fields", []))
    if kind == "array":
        return _refers_back(schema.get("items"), path, namespace)
    if kind == "map":
        return _refers_back(schema.get("values"), path, namespace)
    return _refers_back(kind, path, namespace) if isinstance(kind, (dict, list)) else False


class SchemaStore:
    """Fingerprint -> writer schema, for every contract in ``registry`` plus any added.

    Lookups of an unknown fingerprint first re-scan the registry (contracts defined since
    the last scan), so a producer and consumer in one process need no setup at all.
    """

    def __init__(self, registry: ContractRegistry | None = None) -> None:
        self._registry = registry if registry is not None else default_registry
        self._parsed: dict[bytes, Any] = {}
        self._raw: dict[bytes, dict[str, Any]] = {}
        self._classes: set[type[BaseModel]] = set()
        self._recursive: set[bytes] = set()
        self._lock = threading.Lock()

    def add(self, schema: dict[str, Any] | str) -> bytes:
        """Register a writer schema (dict or JSON text); returns its fingerprint."""
        raw = _as_dict(schema)
        fp = fingerprint(raw)
        if fp not in self._parsed:
            # Each schema parses with its own named-type table: two versions of one
            # record (same name, different fields) must not overwrite each other.
            parsed = parse_schema(raw, named_schemas={})
            with self._lock:
                self._raw[fp] = raw
                self._parsed[fp] = parsed
                if is_recursive(raw):
                    self._recursive.add(fp)
        return fp

    def add_contract(self, cls: type[BaseModel]) -> bytes:
        """Register the schema derived from ``cls``; returns its fingerprint."""
        fp = self.add(avro_schema(cls))
        with self._lock:
            self._classes.add(cls)
        return fp

    def load_directory(self, path: str | Path) -> list[bytes]:
        """Register every ``*.avsc`` file in ``path``; returns their fingerprints."""
        return [self.add(p.read_text("utf-8")) for p in sorted(Path(path).glob("*.avsc"))]

    def get(self, fp: bytes) -> Any | None:
        """The parsed writer schema with fingerprint ``fp``, or ``None`` when unknown."""
        parsed = self._parsed.get(fp)
        if parsed is None and self._scan_registry():
            parsed = self._parsed.get(fp)
        return parsed

    def schema(self, fp: bytes) -> dict[str, Any] | None:
        """The schema (as JSON-ready dict) with fingerprint ``fp``, or ``None``."""
        if fp not in self._raw:
            self._scan_registry()
        return self._raw.get(fp)

    def recursive(self, fp: bytes) -> bool:
        """Whether the schema with fingerprint ``fp`` is recursive (see :func:`is_recursive`)."""
        return fp in self._recursive

    def fingerprints(self) -> list[bytes]:
        self._scan_registry()
        return list(self._raw)

    def __contains__(self, fp: object) -> bool:
        return isinstance(fp, bytes) and self.get(fp) is not None

    def _scan_registry(self) -> bool:
        """Add schemas of registry contracts not seen yet; True if any were added."""
        added = False
        for cls in self._registry:
            if cls not in self._classes:
                try:
                    self.add_contract(cls)
                except TypeError:
                    # A contract with a field type Avro cannot express: it simply has
                    # no Avro schema; encoding it with AvroCodec reports the field.
                    with self._lock:
                        self._classes.add(cls)
                    continue
                added = True
        return added


default_schema_store = SchemaStore()
"""The store :class:`~servicewire.codecs.avro.AvroCodec` uses unless given another."""
