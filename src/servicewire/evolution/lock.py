"""The API lock file: every API a project publishes, its version and a content hash.

``servicewire api lock`` writes ``api.lock.json``; ``servicewire api check`` (run by the
test suite) compares what the code and documents publish now with the lock and fails
when an API changed without the bump it needs, when a version was bumped without a
change that needs it, or when the lock is simply out of date::

    config = load_config(find_root(Path.cwd()))
    current = collect(config)
    findings = check(current, read_lock(config.lock), config.policy)
    if all(f.ok for f in findings):
        write_lock(config.lock, current)

The lock keeps each API's document (for ``.proto`` files, the compiled descriptor
set), so a later check can say *which* bump a change needs, not only that it changed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servicewire.evolution.config import ApiConfig
from servicewire.evolution.documents import ApiDocument, compare, judge, load_document
from servicewire.evolution.model import Change, DocumentError, DocumentKind
from servicewire.evolution.policy import Policy
from servicewire.messaging.versioning import SemVer

LOCK_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One published API: ``openapi:docs/api/x.json``, ``avro:ftgo.order.OrderCreated@1``..."""

    id: str
    kind: DocumentKind
    source: str
    version: str
    sha256: str
    document: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "version": self.version,
            "sha256": self.sha256,
            "document": self.document,
        }

    def api_document(self) -> ApiDocument:
        """The entry as something :func:`~servicewire.evolution.documents.compare` takes."""
        content: Any = self.document
        if self.kind == "proto":
            from servicewire.evolution.proto import ProtoDocument

            content = ProtoDocument(
                base64.b64decode(self.document["descriptor_set"]),
                self.document["digest"],
                self.source,
                _declared_json_names(self.document),
            )
        return ApiDocument(self.kind, self.source, content, SemVer.parse(self.version))


def _declared_json_names(document: dict[str, Any]) -> frozenset[str] | None:
    # Locks written before json_name declarations were recorded do not know them.
    names = document.get("json_names_declared")
    return None if names is None else frozenset(names)


def _digest(document: Any) -> str:
    # The declared version is not content: bumping it alone must leave the hash alone,
    # so that "bumped without a change" can be told from "changed".
    if isinstance(document, dict) and isinstance(document.get("info"), dict):
        info = {k: v for k, v in document["info"].items() if k != "version"}
        document = {**document, "info": info}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(id: str, kind: DocumentKind, source: str, version: str, document: Any) -> Entry:
    # Canonical JSON: the hash must not change when only key order does.
    document = json.loads(json.dumps(document, sort_keys=True))
    return Entry(id, kind, source, version, _digest(document), document)


def _import(spec: str, source: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if sep else []:
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise DocumentError(source, f"cannot load {spec!r}: {exc}") from None
    return obj


def _paths(config: ApiConfig, patterns: list[str]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(config.root.glob(pattern))
        if not matches:
            raise DocumentError(pattern, "matches no file (fix [tool.servicewire.api])")
        found.extend(m for m in matches if m not in found)
    return found


def collect(config: ApiConfig) -> dict[str, Entry]:
    """Everything the project publishes now, by entry id.

    The project root and its ``src`` directory are importable while collecting (so
    ``module:attr`` targets resolve without installing the project), then removed.
    """
    saved = list(sys.path)
    for extra in (config.root / "src", config.root):
        if extra.is_dir() and str(extra) not in sys.path:
            sys.path.insert(0, str(extra))
    try:
        return _collect(config)
    finally:
        sys.path[:] = saved


def _collect(config: ApiConfig) -> dict[str, Entry]:
    entries: list[Entry] = []
    for spec in config.openapi:
        if ":" in spec and not Path(config.root, spec).exists():
            doc = _import(spec, spec).openapi()
            version = str((doc.get("info") or {}).get("version", ""))
            entries.append(_entry(f"openapi:{spec}", "openapi", spec, _version(version, spec), doc))
            continue
        for path in _paths(config, [spec]):
            loaded = load_document(path, "openapi")
            rel = path.relative_to(config.root).as_posix()
            entries.append(
                _entry(f"openapi:{rel}", "openapi", rel, _declared(loaded), loaded.content)
            )
    for path in _paths(config, config.proto):
        loaded = load_document(path, "proto", config.proto_include)
        rel = path.relative_to(config.root).as_posix()
        proto = loaded.content
        document = {
            "descriptor_set": base64.b64encode(proto.descriptor_set).decode(),
            "digest": proto.digest,
        }
        if proto.json_names_declared is not None:
            document["json_names_declared"] = sorted(proto.json_names_declared)
        entries.append(
            Entry(f"proto:{rel}", "proto", rel, _declared(loaded), proto.digest, document)
        )
    entries.extend(_contract_entries(config))
    for target in config.asyncapi:
        from servicewire.evolution.generate.asyncapi import build_asyncapi
        from servicewire.evolution.generate.targets import TargetError, load_uses

        try:
            uses, title, own_version = load_uses(target.target)
        except TargetError as exc:
            raise DocumentError(target.target, str(exc)) from None
        final = target.version or own_version or "1.0.0"
        doc = build_asyncapi(target.title or title, final, uses)
        entries.append(_entry(f"asyncapi:{target.target}", "asyncapi", target.target, final, doc))
    return {e.id: e for e in entries}


def _version(raw: str, source: str) -> str:
    try:
        return str(SemVer.parse(raw))
    except ValueError:
        raise DocumentError(source, f"declares no semantic version (got {raw!r})") from None


def _declared(doc: ApiDocument) -> str:
    if doc.version is None:
        hint = "an '// api-version: 1.0.0' line" if doc.kind == "proto" else "info.version"
        raise DocumentError(doc.source, f"declares no version; add {hint}")
    return str(doc.version)


def _contract_entries(config: ApiConfig) -> list[Entry]:
    from servicewire.messaging.contracts import Contract

    try:
        from servicewire.codecs.avro import avro_schema
    except ImportError:  # without fastavro the Avro entries are skipped, not reported removed
        avro_schema = None  # type: ignore[assignment]
    seen: dict[tuple[str, int], type[Contract]] = {}
    for module_name in config.contracts:
        module = _import(module_name, module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Contract)
                and not value.__contract_abstract__
            ):
                seen.setdefault((value.contract_name(), value.contract_version().major), value)
    entries: list[Entry] = []
    for (name, major), cls in sorted(seen.items()):
        version = str(cls.contract_version())
        source = f"{cls.__module__}.{cls.__qualname__}"
        entries.append(
            _entry(
                f"jsonschema:{name}@{major}", "jsonschema", source, version, cls.model_json_schema()
            )
        )
        if avro_schema is not None:
            entries.append(
                _entry(f"avro:{name}@{major}", "avro", source, version, avro_schema(cls))
            )
    return entries


def read_lock(path: Path) -> dict[str, Entry]:
    """The entries of a lock file; an absent file is an empty lock."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        apis = data["apis"]
        return {
            key: Entry(key, v["kind"], v["source"], v["version"], v["sha256"], v["document"])
            for key, v in apis.items()
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DocumentError(str(path), f"not a valid API lock file: {exc}") from None


def write_lock(path: Path, entries: Mapping[str, Entry]) -> None:
    """Write ``entries`` sorted by id, so the file diffs well in review."""
    data = {
        "format": LOCK_FORMAT,
        "generated_by": "servicewire api lock",
        "apis": {key: entries[key].to_json() for key in sorted(entries)},
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclass(slots=True)
class Finding:
    """The verdict on one API: ``ok`` means the lock may record the current state."""

    api: str
    ok: bool
    message: str
    stale: bool = False
    changes: list[Change] = field(default_factory=list)


def check(
    current: Mapping[str, Entry], locked: Mapping[str, Entry], policy: Policy
) -> list[Finding]:
    """One finding per API that differs from the lock (nothing for unchanged APIs).

    ``ok=False``: the version does not match the change (or an API disappeared).
    ``ok=True, stale=True``: correctly versioned, but the lock needs rewriting.
    """
    findings: list[Finding] = []
    for key, entry in current.items():
        problem = package_major_problem(entry)
        if problem is not None:
            findings.append(Finding(key, False, problem))
        old = locked.get(key)
        if old is None:
            findings.append(Finding(key, True, f"new API at version {entry.version}", stale=True))
            continue
        if old.sha256 == entry.sha256:
            if old.version != entry.version:
                findings.append(
                    Finding(
                        key,
                        False,
                        f"version bumped {old.version} -> {entry.version} without any change",
                    )
                )
            continue
        report = compare(old.api_document(), entry.api_document(), policy)
        verdict = judge(
            report.bump, SemVer.parse(old.version), SemVer.parse(entry.version), exact=True
        )
        findings.append(
            Finding(key, verdict.ok, verdict.message, stale=True, changes=list(report.changes))
        )
    for key, old in locked.items():
        if key not in current:
            findings.append(
                Finding(
                    key,
                    False,
                    f"API at version {old.version} is no longer published (removing an API is a "
                    "MAJOR change for its clients; use 'servicewire api lock --force' to accept)",
                    stale=True,
                )
            )
    return findings


def package_major_problem(entry: Entry) -> str | None:
    """A ``.proto`` whose package names a major (``ftgo.order.v1``) must declare that major.

    gRPC clients bind to the package, so a new major is a new package
    (``ftgo.order.v2``) served side by side with the old one, never an edit of it.
    """
    if entry.kind != "proto":
        return None
    package = entry.api_document().content.file().package
    last = package.rsplit(".", 1)[-1]
    if len(last) < 2 or last[0] != "v" or not last[1:].isdigit():
        return None
    major = SemVer.parse(entry.version).major
    if int(last[1:]) == major:
        return None
    return (
        f"package {package} carries major {last[1:]} but the declared version is "
        f"{entry.version}; a new major is a new package ({package.rsplit('.', 1)[0]}.v{major})"
    )
