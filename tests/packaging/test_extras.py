"""Every import of the shipped code is declared, and every declared library is used.

Reads the source (every import, also the ones inside functions) and pyproject.toml:
an import that no extra declares would break for a user who installed only the
extras they need; a declared library that nothing imports costs every user an install.
"""

from __future__ import annotations

import ast
import sys
import tomllib

from tests.packaging.extras import (
    ROOT,
    declared,
    distributions_of,
    extras_providing,
    import_key,
    runtime_extras,
)

# Declared although no module imports them: SQLAlchemy loads them by URL scheme.
LOADED_BY_URL = {
    "aiosqlite": "sqlite+aiosqlite://",
    "aiomysql": "mysql+aiomysql:// (the dialect our mysql:// URLs select)",
    "pymysql": "aiomysql's own dependency, capped because aiomysql 0.3 breaks on 1.2",
}
FIRST_PARTY = {"servicewire", "ftgo"}


def third_party_imports() -> dict[str, set[str]]:
    """{top-level import name: files importing it} over src/, generated code included."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in FIRST_PARTY:
                    continue
                found.setdefault(import_key(name), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_import_is_declared_by_an_extra() -> None:
    undeclared = {
        name: sorted(files)[:3]
        for name, files in third_party_imports().items()
        if not extras_providing(name)
    }
    assert not undeclared, f"imported but declared by no extra: {undeclared}"


def test_every_declared_library_is_imported_or_loaded_by_url() -> None:
    imported: set[str] = set()
    for name in third_party_imports():
        imported |= distributions_of(name)
    unused = {
        extra: sorted(names - imported - set(LOADED_BY_URL))
        for extra, names in declared().items()
        if extra in runtime_extras() or extra == ""
    }
    unused = {extra: names for extra, names in unused.items() if names}
    assert not unused, f"declared but never imported: {unused}"


def test_all_names_every_runtime_extra() -> None:
    # Other extras may name one too (rest and grpc include security): read `all`'s own.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (line,) = [r for r in project["optional-dependencies"]["all"] if r.startswith("servicewire[")]
    listed = set(line.split("[", 1)[1].split("]", 1)[0].split(","))
    assert listed == set(runtime_extras())


def test_the_checks_see_a_missing_declaration() -> None:
    # The checks above must be able to fail: a library imported but not declared.
    assert extras_providing("yaml") == {"evolution"}
    assert not extras_providing("mypy")  # installed (dev tool), but no runtime extra
    assert extras_providing("google.rpc") == {"grpc"}  # a namespace package, one level deeper
    assert "protobuf" in distributions_of("google.protobuf")
