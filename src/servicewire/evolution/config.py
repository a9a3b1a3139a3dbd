"""What a project publishes, read from ``[tool.servicewire.api]`` in ``pyproject.toml``.

.. code-block:: toml

    [tool.servicewire.api]
    lock = "api.lock.json"                       # where the lock lives (default)
    openapi = ["docs/api/*.json", "myapp.rest:app"]   # files/globs, or FastAPI apps
    proto = ["protos/**/*.proto"]                # .proto files/globs
    proto_include = ["protos"]                   # import roots for protoc
    contracts = ["myapp.contracts"]              # modules: each contract -> JSON Schema + Avro
    asyncapi = ["myapp.service:service",         # MODULE:ATTR, as `servicewire docs asyncapi`
                { target = "myapp.billing:service", version = "1.2.0", title = "Billing" }]

    [tool.servicewire.api.policy]
    "response-enum-value-added" = "minor"        # overrides of the change rules

Paths are relative to the project root (the directory holding ``pyproject.toml``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servicewire.evolution.model import DocumentError
from servicewire.evolution.policy import Policy


@dataclass(frozen=True, slots=True)
class AsyncApiTarget:
    """An AsyncAPI document generated from code (``MODULE:ATTR``)."""

    target: str
    version: str | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The ``[tool.servicewire.api]`` table, parsed."""

    root: Path
    lock: Path
    openapi: list[str] = field(default_factory=list)
    proto: list[str] = field(default_factory=list)
    proto_include: list[Path] = field(default_factory=list)
    contracts: list[str] = field(default_factory=list)
    asyncapi: list[AsyncApiTarget] = field(default_factory=list)
    policy: Policy = field(default_factory=Policy)


def find_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding a ``pyproject.toml``."""
    for candidate in [start, *start.parents]:
        if (candidate / "pyproject.toml").is_file():
            return candidate
    raise DocumentError(str(start), "no pyproject.toml here or in any parent directory")


def _strings(table: dict[str, Any], key: str, source: str) -> list[str]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DocumentError(source, f"[tool.servicewire.api] {key} must be a list of strings")
    return list(value)


def load_config(root: Path) -> ApiConfig:
    """Read ``root/pyproject.toml``; a project without the table publishes nothing."""
    path = root / "pyproject.toml"
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DocumentError(source, str(exc)) from None
    table = data.get("tool", {}).get("servicewire", {}).get("api", {})
    if not isinstance(table, dict):
        raise DocumentError(source, "[tool.servicewire.api] must be a table")
    targets: list[AsyncApiTarget] = []
    for item in table.get("asyncapi", []):
        if isinstance(item, str):
            targets.append(AsyncApiTarget(item))
        elif isinstance(item, dict) and isinstance(item.get("target"), str):
            targets.append(AsyncApiTarget(item["target"], item.get("version"), item.get("title")))
        else:
            raise DocumentError(
                source, f"bad asyncapi entry {item!r}: a string or {{target = ...}}"
            )
    try:
        policy = Policy.from_mapping(table.get("policy", {}))
    except ValueError as exc:
        raise DocumentError(source, str(exc)) from None
    return ApiConfig(
        root=root,
        lock=root / str(table.get("lock", "api.lock.json")),
        openapi=_strings(table, "openapi", source),
        proto=_strings(table, "proto", source),
        proto_include=[root / p for p in _strings(table, "proto_include", source)],
        contracts=_strings(table, "contracts", source),
        asyncapi=targets,
        policy=policy,
    )
