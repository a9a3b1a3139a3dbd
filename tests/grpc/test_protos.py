"""The checked-in generated code means what protos/ compiles to today.

The check compares descriptors, methods, imports and stub types, not the generator's
text, so a newer grpcio-tools (another version banner, other templates) cannot turn
main red, while a ``.proto`` edited without ``make protos`` still does.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]


def _compile_protos() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compile_protos", ROOT / "scripts" / "compile_protos.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compiler() -> ModuleType:
    return _compile_protos()


@pytest.fixture(scope="module")
def generated(compiler: ModuleType) -> dict[Path, str]:
    return {path: text for path, (text, _) in compiler.generate().items()}


def _one(generated: dict[Path, str], suffix: str) -> tuple[Path, str]:
    path = next(p for p in sorted(generated) if p.name.endswith(suffix))
    return path, generated[path]


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compile_protos.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_another_generator_version_is_not_a_change(
    compiler: ModuleType, generated: dict[Path, str]
) -> None:
    for path, text in generated.items():
        banner = re.sub(
            r"GRPC_GENERATED_VERSION = '[^']*'", "GRPC_GENERATED_VERSION = '9.9.9'", text
        )
        banner = re.sub(r"Protobuf Python Version: \S+", "Protobuf Python Version: 99.0.0", banner)
        banner = banner.replace('"""Missing associated documentation', '"""Other wording')
        assert compiler.fingerprint(path, banner) == compiler.fingerprint(path, text), path


def test_a_changed_streaming_kind_is_a_change(
    compiler: ModuleType, generated: dict[Path, str]
) -> None:
    path, text = _one(generated, "echo_pb2_grpc.py")
    changed = text.replace("channel.unary_stream(", "channel.unary_unary(", 1)
    assert changed != text
    assert compiler.fingerprint(path, changed) != compiler.fingerprint(path, text)


def test_an_added_field_is_a_change(compiler: ModuleType, generated: dict[Path, str]) -> None:
    path, text = _one(generated, "order_pb2.py")
    match = re.search(r"AddSerializedFile\((b'.*?')\)", text, flags=re.S)
    assert match
    proto = descriptor_pb2.FileDescriptorProto.FromString(ast.literal_eval(match.group(1)))
    proto.message_type[0].field.add(
        name="note", number=99, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    )
    changed = text.replace(match.group(1), repr(proto.SerializeToString()))
    assert compiler.fingerprint(path, changed) != compiler.fingerprint(path, text)


def test_a_changed_stub_attribute_is_a_change(
    compiler: ModuleType, generated: dict[Path, str]
) -> None:
    path, text = _one(generated, "order_pb2.pyi")
    changed = text.replace("    quantity: int\n", "    amount: int\n", 1)
    assert changed != text
    assert compiler.fingerprint(path, changed) != compiler.fingerprint(path, text)


def _floor(requirements: list[str], name: str) -> tuple[int, ...]:
    for requirement in requirements:
        match = re.fullmatch(rf"{re.escape(name)}>=([\d.]+)", requirement.replace(" ", ""))
        if match:
            return tuple(int(part) for part in match.group(1).split("."))
    raise AssertionError(f"{name} has no >= floor in {requirements}")


def test_declared_floors_admit_no_runtime_the_generated_code_refuses() -> None:
    # *_pb2_grpc.py raises at import on grpcio older than the generator; *_pb2.py does the
    # same on an older protobuf runtime. A floor below them would be a false promise.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    grpc_needed: set[tuple[int, ...]] = set()
    protobuf_needed: set[tuple[int, ...]] = set()
    for path in (ROOT / "src").rglob("*_pb2*.py"):
        text = path.read_text()
        for version in re.findall(r"GRPC_GENERATED_VERSION = '([\d.]+)'", text):
            grpc_needed.add(tuple(int(p) for p in version.split(".")))
        for parts in re.findall(
            r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+)",
            text,
        ):
            protobuf_needed.add(tuple(int(p) for p in parts))
    assert grpc_needed and protobuf_needed
    for extra in ("grpc",):
        assert _floor(extras[extra], "grpcio") >= max(grpc_needed)
        assert _floor(extras[extra], "protobuf") >= max(protobuf_needed)
    assert _floor(extras["evolution"], "grpcio-tools") >= max(grpc_needed)
