"""Our Avro verdicts against Apache Avro's own checker, in both directions.

For every Avro case in the corpus, Apache's ``ReaderWriterCompatibilityChecker`` is asked
twice: can a consumer on the old schema read what a producer on the new one writes (old
reader, new writer), and can a consumer on the new schema read old messages (new reader,
old writer)? Message schemas need both, so:

* a change we call PATCH or MINOR must be compatible both ways for Apache;
* a change Apache rejects in either direction must be MAJOR for us;
* where we say MAJOR and Apache accepts both ways we are stricter on purpose, and the
  case must be listed in :data:`STRICTER` with the reason (the list is checked both ways
  too: a listed case that Apache starts rejecting, or that we stop calling MAJOR, fails).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import avro.compatibility as avro_compat
import avro.schema as avro_schema
import pytest
import yaml

from servicewire.evolution import Bump, Policy, compare, load_document

CASES = Path(__file__).parent / "cases"
AVRO = sorted(p.name for p in CASES.iterdir() if p.name.startswith("avro-"))

STRICTER = {
    # Apache ignores logical types: an int read as a date is still an int to it, but
    # generated code and every consumer that interprets the value see another type.
    "avro-logical-type-added": "logical-type-changed: Apache compares only the base type",
    # The same for a decimal's scale: the bytes read fine, but 1234 unscaled is 12.34 at
    # scale 2 and 0.1234 at scale 4, so every amount changes by powers of ten.
    "avro-decimal-scale-changed": "decimal scale changed: Apache compares only the base type",
    # Both sides still decode (the old reader fills in its default), but every consumer
    # on the old schema now reads the default instead of the value: the data is gone.
    "avro-optional-field-removed": "field-removed with a default: decodes, but loses data",
}


def _apache_reads(reader: Path, writer: Path) -> bool:
    checker = avro_compat.ReaderWriterCompatibilityChecker()
    result = checker.get_compatibility(
        avro_schema.parse(reader.read_text()), avro_schema.parse(writer.read_text())
    )
    return bool(result.compatibility is avro_compat.SchemaCompatibilityType.compatible)


def _verdicts(name: str) -> tuple[Bump, bool, bool]:
    old, new = CASES / name / "old.avsc", CASES / name / "new.avsc"
    ours = compare(load_document(old), load_document(new), Policy()).bump
    return ours, _apache_reads(old, new), _apache_reads(new, old)


@pytest.mark.parametrize("name", AVRO)
def test_avro_case_agrees_with_apache(name: str) -> None:
    ours, old_reads_new, new_reads_old = _verdicts(name)
    both = old_reads_new and new_reads_old
    where = (
        f"ours {ours.label}, old reader/new writer {old_reads_new}, "
        f"new reader/old writer {new_reads_old}"
    )
    if ours < Bump.MAJOR:
        assert both, f"we call it compatible, Apache does not: {where}"
    elif both:
        assert name in STRICTER, f"stricter than Apache without a stated reason: {where}"
    else:
        assert name not in STRICTER, f"listed as stricter but Apache rejects it too: {where}"


def test_union_reorder_reads_both_ways_with_apache() -> None:
    """A reordered union resolves by branch type; only the encoding and fingerprint move."""
    case = CASES / "avro-union-branches-reordered"
    assert _apache_reads(case / "old.avsc", case / "new.avsc")
    assert _apache_reads(case / "new.avsc", case / "old.avsc")
    old = avro_schema.parse((case / "old.avsc").read_text())
    new = avro_schema.parse((case / "new.avsc").read_text())
    assert old.fingerprint() != new.fingerprint()


def test_corpus_has_both_kinds_of_verdict() -> None:
    verdicts = {name: _verdicts(name) for name in AVRO}
    assert any(bump < Bump.MAJOR for bump, _, _ in verdicts.values())
    assert any(not (a and b) for _, a, b in verdicts.values())
    assert json.loads((CASES / "avro-union-branches-reordered" / "expected.json").read_text())


RECEIVE = sorted(p.name for p in CASES.iterdir() if p.name.startswith("asyncapi-receive-avro-"))


def _payload_schema(path: Path) -> Any:
    """The Avro schema of the one message in an AsyncAPI corpus document."""
    doc = yaml.safe_load(path.read_text())
    (message,) = doc["components"]["messages"].values()
    return message["payload"]["schema"]


@pytest.mark.parametrize("name", RECEIVE)
def test_receive_channel_avro_agrees_with_apache(name: str) -> None:
    """On a channel the application only receives on, only its new schema reads.

    So the one direction that matters is new reader, old writer: what we call MINOR
    there Apache accepts, and what Apache rejects we call MAJOR.
    """
    case = CASES / name
    old_doc, new_doc = case / "old.yaml", case / "new.yaml"
    checker = avro_compat.ReaderWriterCompatibilityChecker()
    result = checker.get_compatibility(
        avro_schema.parse(json.dumps(_payload_schema(new_doc))),
        avro_schema.parse(json.dumps(_payload_schema(old_doc))),
    )
    reads = result.compatibility is avro_compat.SchemaCompatibilityType.compatible
    ours = compare(load_document(old_doc), load_document(new_doc), Policy()).bump
    assert (ours < Bump.MAJOR) == reads, f"ours {ours.label}, new reader/old writer {reads}"


def test_receive_cases_exist() -> None:
    assert len(RECEIVE) >= 4
