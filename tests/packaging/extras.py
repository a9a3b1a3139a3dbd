"""What pyproject.toml declares, per extra, as the tests in this folder read it."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib.metadata import distributions, packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Extras that are tooling for this repository, not part of what the library needs.
NOT_RUNTIME = {"dev", "all"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return normalise(match.group(1))


@cache
def declared() -> dict[str, frozenset[str]]:
    """{extra: distributions} with "" for the core dependencies; self-references left out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"": frozenset(requirement_name(r) for r in project["dependencies"])}
    for extra, requirements in project["optional-dependencies"].items():
        names = {requirement_name(r) for r in requirements} - {"servicewire"}
        groups[extra] = frozenset(names)
    return groups


def runtime_extras() -> list[str]:
    return sorted(e for e in declared() if e and e not in NOT_RUNTIME)


# Namespace packages shared by several distributions: judged one level deeper.
NAMESPACES = {"google"}


def import_key(module: str) -> str:
    """``google.rpc.status_pb2`` -> ``google.rpc``; ``aio_pika.abc`` -> ``aio_pika``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] in NAMESPACES and len(parts) > 1 else parts[0]


@cache
def _namespace_owners() -> dict[str, frozenset[str]]:
    owners: dict[str, set[str]] = {}
    for dist in distributions():
        for file in dist.files or []:
            parts = file.parts
            if len(parts) > 2 and parts[0] in NAMESPACES:
                owners.setdefault(f"{parts[0]}.{parts[1]}", set()).add(
                    normalise(dist.metadata["Name"])
                )
    return {key: frozenset(names) for key, names in owners.items()}


@cache
def distributions_of(key: str) -> frozenset[str]:
    """The installed distributions that provide module ``key`` (see :func:`import_key`)."""
    if "." in key:
        return _namespace_owners().get(key, frozenset())
    return frozenset(normalise(d) for d in packages_distributions().get(key, []))


def extras_providing(import_name: str) -> set[str]:
    """The runtime extras (or "" for core) that declare a distribution providing it."""
    providers = distributions_of(import_name)
    return {
        extra
        for extra, names in declared().items()
        if extra not in NOT_RUNTIME and names & providers
    }
