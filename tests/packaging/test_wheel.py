"""The wheel, installed into a clean venv per extra set, imports and runs.

- core only: `import servicewire`, the public API, the in-memory tour (an example) and
  `ftgo demo`; every other module imports or names a library of an extra not installed;
- postgres + amqp: FTGO places an order on PostgreSQL and RabbitMQ and sees it VALIDATED;
- all: every module of both packages imports.

Versions come from uv.lock (exported as constraints), so the venvs match `make test`'s.
Each venv lives in a temporary folder, run from outside the source tree, so what is
tested is the installed wheel and nothing of src/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests.packaging.extras import ROOT, declared, distributions_of, import_key, normalise

HERE = Path(__file__).resolve().parent


def _uv() -> str:
    candidates = [os.environ.get("SERVICEWIRE_UV", ""), str(ROOT / ".tools/bin/uv")]
    for candidate in [*candidates, shutil.which("uv") or ""]:
        if candidate and Path(candidate).is_file():
            return candidate
    if services.services_required():
        pytest.fail("uv not found (make installs it into .tools/)")
    pytest.skip("uv not found (make installs it into .tools/)")


def _run(*args: str, cwd: Path, timeout: float = 600) -> str:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the wheel, constraints from uv.lock)."""
    uv = _uv()
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the tracked files: a build writes egg-info next to the source.
    _run(uv, "build", "--wheel", "--out-dir", str(out), str(ROOT), cwd=out)
    wheel = next(out.glob("servicewire-*.whl"))
    constraints = out / "constraints.txt"
    _run(
        uv,
        "export",
        "--frozen",
        "--all-extras",
        "--no-emit-project",
        "--no-hashes",
        "--format",
        "requirements.txt",
        "--output-file",
        str(constraints),
        "--project",
        str(ROOT),
        cwd=out,
    )
    yield wheel, constraints


def _venv(built: tuple[Path, Path], extras: str, where: Path) -> Path:
    uv = _uv()
    wheel, constraints = built
    venv = where / "venv"
    _run(uv, "venv", "-q", "--python", sys.executable, str(venv), cwd=where)
    python = venv / "bin" / "python"
    target = f"servicewire[{extras}] @ {wheel.as_uri()}" if extras else str(wheel)
    _run(
        uv,
        "pip",
        "install",
        "-q",
        "--python",
        str(python),
        "-c",
        str(constraints),
        target,
        cwd=where,
    )
    return python


def _import_failures(python: Path, cwd: Path) -> dict[str, str]:
    return json.loads(_run(str(python), str(HERE / "import_all.py"), cwd=cwd))


def _allowed_missing(installed_extras: set[str]) -> set[str]:
    """Distributions of the extras not installed: what a module may fail to find."""
    missing: set[str] = set()
    for extra, names in declared().items():
        if extra and extra not in installed_extras | {"dev", "all"}:
            missing |= names
    return (
        missing
        - declared()[""]
        - {name for extra in installed_extras for name in declared()[extra]}
    )


def _check_failures(failures: dict[str, str], installed_extras: set[str]) -> None:
    allowed = _allowed_missing(installed_extras)
    wrong = {
        module: name
        for module, name in failures.items()
        if not distributions_of(import_key(name)) & allowed
    }
    assert not wrong, f"modules missing a library no uninstalled extra declares: {wrong}"


def test_core_only_imports_and_runs_the_in_memory_tour(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    python = _venv(built, "", tmp_path)
    names = _run(
        str(python),
        "-c",
        "import servicewire; print(len([getattr(servicewire, n) for n in servicewire.__all__]))",
        cwd=tmp_path,
    )
    assert int(names) > 0
    failures = _import_failures(python, tmp_path)
    assert "servicewire" not in failures
    assert "servicewire.transports.memory" not in failures
    _check_failures(failures, set())
    tour = _run(str(python), str(ROOT / "examples" / "request_response.py"), cwd=tmp_path)
    assert "CreditApproved" in tour
    demo = _run(str(python.parent / "ftgo"), "demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert "VALIDATED" in demo
    refused = subprocess.run(
        [
            str(python.parent / "ftgo"),
            "serve",
            "order",
            "--db",
            "sqlite://",
            "--transport",
            "memory://",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "pip install" in refused.stderr, refused.stderr


def test_postgres_and_amqp_run_ftgo_on_the_servers(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    services.require("postgres")
    services.require("rabbitmq")
    python = _venv(built, "postgres,amqp", tmp_path)
    _check_failures(_import_failures(python, tmp_path), {"postgres", "amqp"})
    pg_base = services.URLS["postgres"].rsplit("/", 1)[0]
    state = _run(
        str(python),
        str(HERE / "ftgo_on_servers.py"),
        pg_base,
        services.URLS["rabbitmq"],
        cwd=tmp_path,
    )
    assert state.strip().endswith("VALIDATED"), state


def test_all_extras_import_every_module(built: tuple[Path, Path], tmp_path: Path) -> None:
    python = _venv(built, "all", tmp_path)
    assert _import_failures(python, tmp_path) == {}
    assert "compat" in _run(str(python.parent / "servicewire"), "--help", cwd=tmp_path)


def test_the_wheel_ships_the_code_and_declares_each_extra(built: tuple[Path, Path]) -> None:
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    assert "ftgo/generated/order/v1/order_pb2.py" in names
    assert "servicewire/py.typed" in names
    assert not any(n.startswith("tests/") for n in names)
    provided = {
        normalise(line.split(":", 1)[1].strip())
        for line in text.splitlines()
        if line.startswith("Provides-Extra:")
    }
    assert provided == {extra for extra in declared() if extra}
