"""Every before/after pair in tests/evolution/cases/ is classified as its expected.json says.

A case is a directory with ``old.<ext>``, ``new.<ext>`` and ``expected.json``:
``{"bump": "MINOR", "codes": ["field-added"], "description": "...", "policy": [...]}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servicewire.evolution import Bump, Policy, compare, load_document

CASES = Path(__file__).parent / "cases"
ALL = sorted(p.name for p in CASES.iterdir() if p.is_dir())


def _pair(case: Path) -> tuple[Path, Path]:
    old = next(case.glob("old.*"))
    new = next(case.glob("new.*"))
    return old, new


@pytest.mark.parametrize("name", ALL)
def test_case(name: str) -> None:
    case = CASES / name
    expected = json.loads((case / "expected.json").read_text())
    policy = Policy.from_specs(expected.get("policy", []))
    old_path, new_path = _pair(case)
    report = compare(load_document(old_path), load_document(new_path), policy)
    got = {"bump": report.bump.label, "codes": report.codes()}
    want = {"bump": expected["bump"], "codes": sorted(expected["codes"])}
    assert got == want, "\n".join(f"{c.bump.label} {c.code} {c.location}" for c in report.changes)
    for change in report.changes:
        assert change.location and change.message


def test_corpus_is_large_and_covers_every_kind() -> None:
    kinds = {name.split("-", 1)[0] for name in ALL}
    assert kinds == {"openapi", "proto", "avro", "jsonschema", "asyncapi"}
    assert len(ALL) >= 80
    per_kind = {k: sum(1 for n in ALL if n.startswith(k + "-")) for k in kinds}
    assert min(per_kind.values()) >= 10, per_kind
    levels = {json.loads((CASES / n / "expected.json").read_text())["bump"] for n in ALL}
    assert levels == {b.label for b in Bump}


def test_corpus_documents_are_valid() -> None:
    """The pairs are real documents: OpenAPI validates, Avro parses, protos compile."""
    import fastavro
    import openapi_spec_validator as validator

    checked: dict[str, int] = {}
    for name in ALL:
        for path in _pair(CASES / name):
            doc = load_document(path)
            if doc.kind == "openapi":
                validator.validate(doc.content)  # raises on an invalid document
            elif doc.kind == "avro":
                fastavro.parse_schema(doc.content)  # raises on an invalid schema
            checked[doc.kind] = checked.get(doc.kind, 0) + 1
    assert checked.get("openapi") and checked.get("avro"), checked
