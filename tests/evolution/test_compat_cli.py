"""`servicewire compat`: the verdict, the JSON output, exit codes and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servicewire.cli.main import main

CASES = Path(__file__).parent / "cases"


def _with_version(src: Path, dst: Path, version: str) -> Path:
    text = src.read_text().replace("version: 1.0.0", f"version: {version}")
    dst.write_text(text)
    return dst


def test_sufficient_bump_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES / "openapi-response-field-added"
    new = _with_version(case / "new.yaml", tmp_path / "new.yaml", "1.1.0")
    assert main(["compat", str(case / "old.yaml"), str(new)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("MINOR")
    assert "response-property-added-optional" in out and "/components" not in out.split()[0]


def test_insufficient_bump_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES / "openapi-required-query-param-added"
    new = _with_version(case / "new.yaml", tmp_path / "new.yaml", "1.1.0")
    assert main(["compat", str(case / "old.yaml"), str(new)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "2.0.0" in out
    assert "/paths/~1v1~1orders/get/parameters/query/consumerId" in out


def test_json_format(capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES / "proto-field-number-reused"
    code = main(
        [
            "compat",
            str(case / "old.proto"),
            str(case / "new.proto"),
            "--format",
            "json",
            "--old-version",
            "1.4.0",
            "--new-version",
            "1.5.0",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["bump"] == "MAJOR" and data["declared"] == "MINOR" and data["ok"] is False
    [change] = data["changes"]
    assert change["code"] == "field-number-reused"
    assert change["location"] == "ftgo.order.v1.Order.rejection_reason"


def test_versions_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES / "avro-field-added-with-default"
    args = ["compat", str(case / "old.avsc"), str(case / "new.avsc")]
    assert main([*args, "--old-version", "1.0.0", "--new-version", "1.1.0"]) == 0
    assert main([*args, "--old-version", "1.0.0", "--new-version", "1.0.1"]) == 1
    assert main([*args, "--old-version", "1.2.0", "--new-version", "1.1.0"]) == 1  # going back
    assert main(args) == 0  # nothing declared: report only
    assert "no versions declared" in capsys.readouterr().out


def test_policy_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES / "openapi-response-enum-value-added"
    new = _with_version(case / "new.yaml", tmp_path / "new.yaml", "1.1.0")
    old = str(case / "old.yaml")
    assert main(["compat", old, str(new)]) == 1
    assert main(["compat", old, str(new), "--policy", "tolerant-clients"]) == 0
    assert main(["compat", old, str(new), "--policy", "response-enum-value-added=minor"]) == 0
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('"response-enum-value-added" = "minor"\n')
    assert main(["compat", old, str(new), "--policy", str(policy_file)]) == 0
    assert main(["compat", old, str(new), "--policy", "no-such-code=minor"]) == 2
    assert "unknown change code" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", '{"openapi": "3.0.0", ', "invalid JSON"),
        ("bad.yaml", "openapi: [3.0\n  - x: :", "invalid YAML"),
        ("bad.proto", 'syntax = "proto3";\nmessage {', "bad.proto:2"),
        (
            "ref.json",
            '{"openapi": "3.0.0", "paths": {"/a": {"$ref": "#/nowhere"}}}',
            "points at nothing",
        ),
        (
            "ext.json",
            '{"type": "object", "properties": {"a": {"$ref": "other.json#/A"}}}',
            "external $ref",
        ),
    ],
)
def test_unreadable_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, message: str
) -> None:
    bad = tmp_path / name
    bad.write_text(content)
    assert main(["compat", str(bad), str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_file_and_kind_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compat", str(tmp_path / "nope.yaml"), str(tmp_path / "nope.yaml")]) == 2
    case = CASES
    assert (
        main(
            [
                "compat",
                str(case / "openapi-no-change" / "old.yaml"),
                str(case / "asyncapi-no-change" / "old.yaml"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "No such file" in err and "not an OpenAPI 3.0/3.1 document" in err


def test_kind_option_forces_the_reader(capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES / "openapi-no-change"
    assert (
        main(["compat", str(case / "old.yaml"), str(case / "new.yaml"), "--kind", "asyncapi"]) == 2
    )
    assert "not an AsyncAPI 3.x document" in capsys.readouterr().err
