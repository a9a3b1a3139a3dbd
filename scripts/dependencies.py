"""What pyproject.toml declares, what uv.lock pins, and what a venv has installed.

    python scripts/dependencies.py dev-pins    # name==version of each dev tool (uv.lock)
    python scripts/dependencies.py report .venv-minimum/bin/python

``make test-minimum`` installs the library's own requirements at their declared floors
and the test tools at their locked versions (a floor of pytest says nothing about the
library); ``report`` then shows, per requirement, the floor, the lock and what was
installed, so a floor that a tool's own requirement lifted is visible, not hidden.
Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELF = "servicewire"


def _name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared() -> dict[str, list[tuple[str, str]]]:
    """{group: [(name, requirement)]} for the core ("") and each extra, self-references left out."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    groups: dict[str, list[tuple[str, str]]] = {
        "": [(_name(r), r) for r in project["dependencies"]]
    }
    for extra, requirements in project["optional-dependencies"].items():
        groups[extra] = [(_name(r), r) for r in requirements if _name(r) != SELF]
    return groups


def locked() -> dict[str, str]:
    """{name: version} of every package uv.lock pins."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {_name(p["name"]): p["version"] for p in lock["package"] if "version" in p}


def dev_pins() -> list[str]:
    versions = locked()
    pins = []
    for name, requirement in declared()["dev"]:
        extras = re.search(r"\[[^\]]*\]", requirement.split(";")[0])  # faststream[rabbit]
        pins.append(f"{name}{extras.group(0) if extras else ''}=={versions[name]}")
    return pins


def report(python: str) -> str:
    script = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    raw = subprocess.run([python, "-c", script], capture_output=True, text=True, check=True)
    installed = {_name(k): v for k, v in json.loads(raw.stdout).items()}
    versions = locked()
    rows = [("extra", "requirement", "locked", "installed")]
    for group, requirements in declared().items():
        if group == "dev":
            continue
        for name, requirement in requirements:
            rows.append(
                (group or "core", requirement, versions.get(name, "-"), installed.get(name, "-"))
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main(argv: list[str]) -> int:
    if argv[:1] == ["dev-pins"]:
        print("\n".join(dev_pins()))
        return 0
    if argv[:1] == ["report"] and len(argv) == 2:
        print(report(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
