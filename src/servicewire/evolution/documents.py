"""Read API documents from files, tell their kind, find their declared version, compare.

    old = load_document(Path("openapi-v1.yaml"))
    new = load_document(Path("openapi-v2.yaml"))
    report = compare(old, new)
    verdict = judge(report.bump, old.version, new.version)
    verdict.ok, verdict.message

Kinds are told apart by content: ``openapi: 3.x``, ``asyncapi: 3.x``, an Avro ``record``
/ ``enum`` / ``fixed`` (or any ``.avsc``), otherwise JSON Schema; ``.proto`` files go
through protoc. ``kind=`` overrides the guess.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servicewire.evolution.model import KINDS, Bump, DocumentError, DocumentKind, Report
from servicewire.evolution.policy import Policy
from servicewire.messaging.versioning import SemVer

_VERSION_MARK = "api-version:"


@dataclass(frozen=True, slots=True)
class ApiDocument:
    """One parsed API document: its kind, where it came from, content and declared version."""

    kind: DocumentKind
    source: str
    content: Any
    version: SemVer | None = None


def parse_text(text: str, source: str) -> Any:
    """JSON, or YAML when PyYAML is installed; :class:`DocumentError` on bad syntax."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")) or source.endswith((".json", ".avsc")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DocumentError(source, f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with the evolution extra
        raise DocumentError(
            source, "YAML needs PyYAML (pip install 'servicewire[evolution]')"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DocumentError(source, f"invalid YAML: {exc}") from None


def guess_kind(content: Any, source: str) -> DocumentKind:
    """The kind of a parsed JSON/YAML document."""
    if isinstance(content, dict):
        if "openapi" in content:
            return "openapi"
        if "asyncapi" in content:
            return "asyncapi"
        if content.get("type") in ("record", "error", "enum", "fixed") and (
            "fields" in content or "symbols" in content or "size" in content
        ):
            return "avro"
        return "jsonschema"
    if source.endswith(".avsc") or isinstance(content, (list, str)):
        return "avro"
    raise DocumentError(source, "not an API document (expected an object)")


def declared_version(kind: DocumentKind, content: Any, text: str = "") -> SemVer | None:
    """``info.version`` (OpenAPI, AsyncAPI), ``x-version``/``version`` (JSON Schema, Avro),
    or an ``// api-version: 1.2.0`` comment line (``.proto``)."""
    raw: Any = None
    if kind in ("openapi", "asyncapi") and isinstance(content, dict):
        raw = (content.get("info") or {}).get("version")
    elif kind in ("jsonschema", "avro") and isinstance(content, dict):
        raw = content.get("x-version") or content.get("version")
    elif kind == "proto":
        for line in text.splitlines():
            body = line.strip().removeprefix("//").strip()
            if line.strip().startswith("//") and body.startswith(_VERSION_MARK):
                raw = body[len(_VERSION_MARK) :].strip()
                break
    if raw is None:
        return None
    try:
        return SemVer.parse(str(raw))
    except ValueError:
        return None


def load_document(
    path: Path, kind: DocumentKind | None = None, include: Sequence[Path] = ()
) -> ApiDocument:
    """Read and parse ``path``; :class:`DocumentError` when it cannot be read."""
    if kind is not None and kind not in KINDS:
        raise DocumentError(str(path), f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError(
            str(path), str(exc.strerror or exc) if isinstance(exc, OSError) else str(exc)
        ) from None
    if kind == "proto" or (kind is None and path.suffix == ".proto"):
        from servicewire.evolution.proto import load_proto

        doc = load_proto(path, include)
        return ApiDocument("proto", str(path), doc, declared_version("proto", None, text))
    content = parse_text(text, str(path))
    found = kind or guess_kind(content, str(path))
    return ApiDocument(found, str(path), content, declared_version(found, content))


def compare(old: ApiDocument, new: ApiDocument, policy: Policy | None = None) -> Report:
    """Every change from ``old`` to ``new`` with the bump it needs."""
    policy = policy or Policy()
    if old.kind != new.kind:
        raise DocumentError(new.source, f"is {new.kind} but {old.source} is {old.kind}")
    source = new.source
    if old.kind == "openapi":
        from servicewire.evolution.openapi import compare_openapi

        return compare_openapi(old.content, new.content, policy, source)
    if old.kind == "asyncapi":
        from servicewire.evolution.asyncapi import compare_asyncapi

        return compare_asyncapi(old.content, new.content, policy, source)
    if old.kind == "avro":
        from servicewire.evolution.avro import compare_avro

        return compare_avro(old.content, new.content, policy, source)
    if old.kind == "proto":
        from servicewire.evolution.proto import compare_proto

        return compare_proto(old.content, new.content, policy)
    from servicewire.evolution.jsonschema import SchemaDiff
    from servicewire.evolution.policy import Collector

    out = Collector("jsonschema", policy)
    if not isinstance(old.content, (dict, bool)) or not isinstance(new.content, (dict, bool)):
        raise DocumentError(source, "a JSON Schema must be an object")
    SchemaDiff(out, old.content, new.content, source).compare(
        old.content, new.content, "", "message"
    )
    return out.report


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a declared version change matches the bump a change needs."""

    required: Bump
    declared: Bump | None
    ok: bool
    message: str


def judge(
    required: Bump, old: SemVer | None, new: SemVer | None, *, exact: bool = False
) -> Verdict:
    """Is going from ``old`` to ``new`` enough for ``required``? (``exact``: and not more.)"""
    if old is None or new is None:
        return Verdict(
            required,
            None,
            True,
            f"no versions declared; {_needs(required)} (give --old-version and "
            "--new-version, or versions in the documents, to check it)",
        )
    try:
        declared = Bump.between(old, new)
    except ValueError as exc:
        return Verdict(required, None, False, str(exc))
    if declared < required:
        need = old.bump(required.name.lower())  # type: ignore[arg-type]
        return Verdict(
            required,
            declared,
            False,
            f"requires a {required.label} bump (to {need}) but {old} -> {new} is {declared.label}",
        )
    if exact and declared > required:
        return Verdict(
            required,
            declared,
            False,
            f"{old} -> {new} is a {declared.label} bump but the change only "
            f"requires {required.label}",
        )
    return Verdict(
        required, declared, True, f"{old} -> {new} ({declared.label}) covers {required.label}"
    )


def _needs(required: Bump) -> str:
    if required is Bump.NONE:
        return "the change needs no version bump"
    return f"the change needs a {required.label} bump"
