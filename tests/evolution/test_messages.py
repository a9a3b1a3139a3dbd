"""What `servicewire compat` says: one finding per change, in the document's language.

Each test is a small before/after pair that once printed something untrue or unhelpful
(issue 20): ``ok`` with nothing checked, a Python ``None``, descriptor names instead of
``.proto`` keywords, a hidden decimal scale, "default changed" for an added default, a
``const`` change filed as a type change, one shared schema's change repeated per use.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from servicewire.cli.main import main
from servicewire.evolution import Policy, compare, load_document

CASES = Path(__file__).parent / "cases"


def _compat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, old: str, new: str, *args: str
) -> tuple[int, str]:
    (tmp_path / "old").mkdir(exist_ok=True)
    (tmp_path / "new").mkdir(exist_ok=True)
    (tmp_path / "old" / name).write_text(old)
    (tmp_path / "new" / name).write_text(new)
    code = main(["compat", str(tmp_path / "old" / name), str(tmp_path / "new" / name), *args])
    return code, capsys.readouterr().out


def _proto(body: str, syntax: str = "proto3") -> str:
    return f'syntax = "{syntax}";\npackage shop.v1;\n{body}\n'


def _record(field: dict[str, object]) -> str:
    return json.dumps({"type": "record", "name": "Paid", "fields": [field]})


def test_no_versions_declared_reports_the_bump_without_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _proto("message Order { string id = 1; int32 total = 2; }")
    new = _proto("message Order { string id = 1; }")
    code, out = _compat(tmp_path, capsys, "order.proto", old, new)
    assert code == 0
    last = out.splitlines()[-1]
    assert last.startswith("no versions declared; the change needs a MAJOR bump"), last
    assert "ok" not in last.split(";")[0]
    assert not any(line.startswith("ok") for line in out.splitlines())
    code, out = _compat(tmp_path, capsys, "order.proto", old, new, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is None and data["declared"] is None


def test_oneof_moves_never_print_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _proto("message Pay { string card = 1; string iban = 2; }")
    new = _proto("message Pay { oneof method { string card = 1; } string iban = 2; }")
    _, out = _compat(tmp_path, capsys, "pay.proto", old, new)
    assert "moved into oneof method" in out and "None" not in out
    _, out = _compat(tmp_path, capsys, "pay.proto", new, old)
    assert "moved out of oneof method" in out and "None" not in out


def test_proto_types_and_labels_are_proto_keywords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _proto("message Money { int64 cents = 1; }\nmessage Order { int32 total = 1; }")
    new = _proto("message Money { int64 cents = 1; }\nmessage Order { int64 total = 1; }")
    _, out = _compat(tmp_path, capsys, "order.proto", old, new)
    assert "type int32 -> int64" in out and "TYPE_" not in out
    new = _proto("message Money { int64 cents = 1; }\nmessage Order { Money total = 1; }")
    _, out = _compat(tmp_path, capsys, "order.proto", old, new)
    assert "type int32 -> Money" in out
    new = _proto("message Money { int64 cents = 1; }\nmessage Order { repeated int32 total = 1; }")
    _, out = _compat(tmp_path, capsys, "order.proto", old, new)
    assert "label singular -> repeated" in out and "LABEL_" not in out


def test_proto_method_messages_are_short_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = "message Get { string id = 1; }\nmessage Order {}\nmessage View {}\n"
    old = _proto(messages + "service Orders { rpc Fetch(Get) returns (Order); }")
    new = _proto(messages + "service Orders { rpc Fetch(Get) returns (View); }")
    _, out = _compat(tmp_path, capsys, "order.proto", old, new)
    assert "rpc Fetch(Get) returns (Order) became rpc Fetch(Get) returns (View)" in out


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ("", " [default = 5]", "default added: 5"),
        (" [default = 5]", "", "default removed (was 5)"),
        (" [default = 5]", " [default = 7]", "default changed 5 -> 7"),
    ],
)
def test_proto2_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], before: str, after: str, message: str
) -> None:
    old = _proto(f"message Order {{ optional int32 total = 1{before}; }}", "proto2")
    new = _proto(f"message Order {{ optional int32 total = 1{after}; }}", "proto2")
    _, out = _compat(tmp_path, capsys, "order.proto", old, new)
    assert message in out


def test_avro_decimal_shows_precision_and_scale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def decimal(scale: int) -> dict[str, object]:
        return {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": scale}

    old = _record({"name": "amount", "type": decimal(2)})
    new = _record({"name": "amount", "type": decimal(4)})
    _, out = _compat(tmp_path, capsys, "paid.avsc", old, new)
    assert "decimal(10,2) -> decimal(10,4)" in out and "decimal -> decimal" not in out


def test_avro_union_change_shows_both_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _record({"name": "note", "type": "string"})
    new = _record({"name": "note", "type": ["null", "string"], "default": None})
    _, out = _compat(tmp_path, capsys, "paid.avsc", old, new)
    assert 'type string changed to union ["null", "string"]' in out, out


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ({}, {"default": "WEB"}, 'default added: "WEB"'),
        ({"default": "WEB"}, {}, 'default removed (was "WEB")'),
        ({"default": "WEB"}, {"default": "APP"}, 'default changed "WEB" -> "APP"'),
    ],
)
def test_avro_and_json_schema_defaults(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    before: dict[str, str],
    after: dict[str, str],
    message: str,
) -> None:
    old = _record({"name": "channel", "type": "string", **before})
    new = _record({"name": "channel", "type": "string", **after})
    _, out = _compat(tmp_path, capsys, "paid.avsc", old, new)
    assert message in out, out
    schema = {"type": "object", "properties": {"channel": {"type": "string"}}}
    old_schema = json.loads(json.dumps(schema))
    old_schema["properties"]["channel"].update(before)
    schema["properties"]["channel"].update(after)
    _, out = _compat(
        tmp_path, capsys, "paid.schema.json", json.dumps(old_schema), json.dumps(schema)
    )
    assert message in out and "/properties/channel/default" in out, out


def test_const_change_is_its_own_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def schema(const: str) -> str:
        return json.dumps({"type": "object", "properties": {"kind": {"const": const}}})

    _, out = _compat(tmp_path, capsys, "e.schema.json", schema("v1"), schema("v2"))
    assert "message-const-changed" in out and 'const changed "v1" -> "v2"' in out
    assert "type-changed" not in out


_SHARED = """
openapi: 3.0.3
info: {title: Shop, version: 1.0.0}
paths:
  /orders:
    get:
      responses:
        '200':
          description: ok
          content:
            application/json: {schema: {$ref: '#/components/schemas/Order'}}
            application/xml: {schema: {$ref: '#/components/schemas/Order'}}
  /orders/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses:
        '200':
          description: ok
          content:
            application/json: {schema: {$ref: '#/components/schemas/Order'}}
components:
  schemas:
    Order:
      type: object
      properties:
        total: {type: TOTAL}
"""


def test_a_shared_schema_change_is_one_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _SHARED.replace("TOTAL", "integer")
    new = _SHARED.replace("TOTAL", "string")
    _, out = _compat(tmp_path, capsys, "api.yaml", old, new, "--format", "json")
    [change] = json.loads(out)["changes"]
    assert change["location"] == "/components/schemas/Order/properties/total"
    assert change["message"] == "type integer became string"
    assert len(change["used_at"]) == 3
    assert (
        "/paths/~1orders/get/responses/200/content/application~1xml/schema" in (change["used_at"])
    )
    _, out = _compat(tmp_path, capsys, "api.yaml", old, new)
    assert out.count("type integer became string") == 1 and "used at /paths" in out


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_no_corpus_message_leaks_python(name: str) -> None:
    old = load_document(next((CASES / name).glob("old.*")))
    new = load_document(next((CASES / name).glob("new.*")))
    for change in compare(old, new, Policy()).changes:
        # A bare None (not If-None-Match) or a descriptor enum name is Python showing.
        assert not re.search(r"(?<![\w-])None(?![\w-])|TYPE_|LABEL_", change.message), (
            name,
            change.message,
        )


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ("int32 total = 2;", "", "field total = 2 removed"),
        ("", "int32 total = 2;", "field total = 2 added"),
        ("int32 total = 2;", "int32 sum = 2;", "field number 2 renamed total -> sum"),
        ("int32 total = 2;", "int32 total = 3;", "field total = 2 became total = 3"),
        ("", "reserved 5 to 9;", "reserved 5 to 9 added"),
        ('reserved "legacy";', "", 'reserved name "legacy" removed'),
        ("", 'int32 total = 2 [json_name = "sum"];', None),
        ("int32 total = 2;", 'int32 total = 2 [json_name = "sum"];', 'json_name = "total" ->'),
    ],
)
def test_proto_findings_read_as_proto(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    before: str,
    after: str,
    message: str | None,
) -> None:
    """Names appear as a .proto file spells them: no Python quotes, ``name = number``."""
    old = _proto(f"message Order {{ string id = 1; {before} }}")
    new = _proto(f"message Order {{ string id = 1; {after} }}")
    _, out = _compat(tmp_path, capsys, "order.proto", old, new)
    findings = [line for line in out.splitlines() if line.startswith(" ")]
    assert findings, out
    assert not re.search(r"'[A-Za-z_]", "\n".join(findings)), out
    if message is not None:
        assert message in out, out


@pytest.mark.parametrize(
    ("old_fields", "new_fields", "message"),
    [
        ([{"name": "a", "type": "int"}], [], "field a removed"),
        ([], [{"name": "b", "type": "int", "default": 0}], "field b added with a default"),
        ([], [{"name": "b", "type": "int"}], "field b added without a default"),
        (
            [{"name": "a", "type": "int"}],
            [{"name": "b", "type": "int", "aliases": ["a"]}],
            "field a renamed to b",
        ),
        (
            [{"name": "a", "type": "int"}],
            [{"name": "a", "type": "int", "aliases": ["old_a"]}],
            'aliases of field a changed: [] -> ["old_a"]',
        ),
        (
            [{"name": "s", "type": {"type": "enum", "name": "S", "symbols": ["X"]}}],
            [{"name": "s", "type": {"type": "enum", "name": "S", "symbols": ["X", "Y"]}}],
            "enum symbol Y added",
        ),
    ],
)
def test_avro_findings_use_avro_names(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old_fields: list[dict[str, object]],
    new_fields: list[dict[str, object]],
    message: str,
) -> None:
    base = [{"name": "id", "type": "string"}]
    old = json.dumps({"type": "record", "name": "Paid", "fields": base + old_fields})
    new = json.dumps({"type": "record", "name": "Paid", "fields": base + new_fields})
    _, out = _compat(tmp_path, capsys, "paid.avsc", old, new)
    assert message in out, out
    assert "'" not in out, out


def test_json_schema_names_are_json_strings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = json.dumps({"type": "object", "properties": {"id": {"type": "string"}}})
    new = json.dumps(
        {"type": "object", "properties": {"id": {"type": "string"}, "note": {"type": "string"}}}
    )
    _, out = _compat(tmp_path, capsys, "order.schema.json", old, new)
    assert 'optional property "note" added' in out and "/properties/note" in out, out
    assert "'" not in out, out


def test_no_finding_in_the_corpus_speaks_python() -> None:
    """Every message of every corpus case is free of Python spellings.

    No ``None``/``True``/``False``, no repr quotes around names, no descriptor enum
    names: values are JSON, names as the document writes them.
    """
    python = re.compile(r"(?<![\w-])(None|True|False)(?![\w-])|'|\bTYPE_|\bLABEL_")
    seen = 0
    for case in sorted(p for p in CASES.iterdir() if p.is_dir()):
        expected = json.loads((case / "expected.json").read_text())
        old = load_document(next(case.glob("old.*")))
        new = load_document(next(case.glob("new.*")))
        report = compare(old, new, Policy.from_specs(expected.get("policy", [])))
        for change in report.changes:
            seen += 1
            assert not python.search(change.message), (case.name, change.message)
    assert seen > 200
