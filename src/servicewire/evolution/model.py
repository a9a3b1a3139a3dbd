"""The shared vocabulary of the change classifier: bump levels, changes, reports.

Every comparer (OpenAPI, protobuf, Avro, JSON Schema, AsyncAPI) returns a :class:`Report`:
a list of :class:`Change` objects, each with a stable ``code``, the ``bump`` it needs,
its ``location`` in the document and a sentence for people::

    report = compare_documents(old_text, new_text, kind="openapi")
    report.bump                      # Bump.MINOR
    for change in report.changes:
        print(change.bump.label, change.location, change.message)
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from servicewire.errors import ServicewireError
from servicewire.messaging.versioning import SemVer

DocumentKind = Literal["openapi", "proto", "avro", "jsonschema", "asyncapi"]
KINDS: tuple[DocumentKind, ...] = ("openapi", "proto", "avro", "jsonschema", "asyncapi")


class Bump(enum.IntEnum):
    """The semantic-version bump a change needs, ordered: NONE < PATCH < MINOR < MAJOR."""

    NONE = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3

    @property
    def label(self) -> str:
        """``MAJOR``, ``MINOR``, ``PATCH`` or ``none`` (the words the CLI prints)."""
        return "none" if self is Bump.NONE else self.name

    @classmethod
    def parse(cls, text: str) -> Bump:
        """``"major"``/``"MAJOR"`` -> :attr:`MAJOR`; raises ``ValueError`` on anything else."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"not a bump level: {text!r} (major, minor, patch, none)") from None

    @classmethod
    def between(cls, old: SemVer, new: SemVer) -> Bump:
        """The bump that leads from ``old`` to ``new``; ``ValueError`` if ``new`` goes back."""
        if new < old:
            raise ValueError(f"version {new} is lower than {old}")
        if new.major != old.major:
            return cls.MAJOR
        if new.minor != old.minor:
            return cls.MINOR
        if new.patch != old.patch:
            return cls.PATCH
        return cls.NONE


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two documents and the bump it needs.

    ``code`` is stable (tests and policies key on it), ``location`` is a JSON pointer
    (``/paths/~1orders/post/requestBody``) or a dotted protobuf/Avro name. A change
    inside a shared schema (``/components/schemas/Order``) is one change located at the
    schema, with ``used_at`` listing the places that use it.
    """

    code: str
    bump: Bump
    location: str
    message: str
    used_at: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "bump": self.bump.label,
            "location": self.location,
            "message": self.message,
        }
        if self.used_at:
            out["used_at"] = list(self.used_at)
        return out


@dataclass(slots=True)
class Report:
    """The changes between two versions of one document."""

    kind: DocumentKind
    changes: list[Change] = field(default_factory=list)

    @property
    def bump(self) -> Bump:
        """The largest bump any change needs (``NONE`` when nothing changed)."""
        return max((c.bump for c in self.changes), default=Bump.NONE)

    def add(
        self, code: str, bump: Bump, location: str, message: str, used_at: str | None = None
    ) -> None:
        """Record a change; the same change again (a shared schema) only adds ``used_at``."""
        location = location or "/"
        for i, known in enumerate(self.changes):
            if (known.code, known.location, known.message) == (code, location, message):
                if used_at is not None and used_at not in known.used_at:
                    self.changes[i] = replace(known, used_at=(*known.used_at, used_at))
                return
        self.changes.append(Change(code, bump, location, message, (used_at,) if used_at else ()))

    def codes(self) -> list[str]:
        """The distinct change codes, sorted (what the corpus's expected.json lists)."""
        return sorted({c.code for c in self.changes})

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bump": self.bump.label,
            "changes": [c.to_dict() for c in self.changes],
        }


class DocumentError(ServicewireError, ValueError):
    """An API document cannot be read: missing file, bad syntax, wrong kind, bad $ref."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"cannot read API document {source}: {reason}")


def pointer(*parts: object) -> str:
    """A JSON pointer from path parts, escaping ``~`` and ``/`` (RFC 6901)."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(escaped)


def join(base: str, *parts: object) -> str:
    """Extend JSON pointer ``base`` with ``parts``."""
    tail = pointer(*parts)
    return tail if base in ("", "/") else base + tail


def shown(value: object) -> str:
    """A document value exactly as the document spells it: JSON (``"WEB"``, ``10``, ``null``)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def default_change(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    key: str = "default",
    show: Callable[[Any], str] = shown,
) -> str:
    """``default added: 5``, ``default removed (was 5)`` or ``default changed 5 -> 6``.

    ``""`` when both sides say the same (or neither has a default). ``show`` spells a
    value in the document's language (JSON by default).
    """
    if key in old and key not in new:
        return f"{key} removed (was {show(old[key])})"
    if key in new and key not in old:
        return f"{key} added: {show(new[key])}"
    if key in old and show(old[key]) != show(new[key]):
        return f"{key} changed {show(old[key])} -> {show(new[key])}"
    return ""


def logical_type(schema: object) -> str:
    """An Avro type with its logical type as written: ``decimal(10,2)``, ``long``."""
    if not isinstance(schema, Mapping):
        return schema if isinstance(schema, str) else shown(schema)
    logical = schema.get("logicalType")
    if logical is None:
        return str(schema.get("type"))
    if logical == "decimal":
        return f"decimal({schema.get('precision')},{schema.get('scale', 0)})"
    return str(logical)
