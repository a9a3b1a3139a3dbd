"""Our protobuf rules agree with ``buf breaking`` (FILE rule set) on every proto case.

Each ``proto-*`` case in tests/evolution/cases/ is checked twice: by
:func:`servicewire.evolution.compare` and by the buf CLI (``buf breaking NEW --against
OLD`` with ``breaking: use: [FILE]``), installed pinned from the npm registry by
``scripts/services/50-buf.sh`` (``make services``, which ``make test`` runs). A change
we call MAJOR must be one buf reports, and a change buf reports must be MAJOR for us,
except for the deliberate disagreements in :data:`DISAGREEMENTS`, which must still
disagree (so the list cannot go stale). The cases are our own, one or more per FILE rule
in the spirit of buf's fixtures (bufbuild/buf, private/bufpkg/bufcheck/testdata/breaking);
:data:`RULES_COVERED` lists the rules they must trigger.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from servicewire.evolution import Bump, compare, load_document

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "cases"
PROTO_CASES = sorted(p.name for p in CASES.iterdir() if p.name.startswith("proto-"))
INSTALLER = ROOT / "scripts" / "services" / "50-buf.sh"
BUF_MODULES = ROOT / ".tools" / "buf" / "node_modules"
BUF_YAML = "version: v2\nbreaking:\n  use:\n    - FILE\n"

# case -> why we deliberately judge it differently from buf's FILE rules.
DISAGREEMENTS: dict[str, str] = {
    # buf checks wire, JSON and generated-code compatibility only. A new value in an
    # enum that responses carry reaches clients whose switch statements do not know it,
    # so by default we call it MAJOR (MINOR under the tolerant-clients policy).
    "proto-response-enum-value-added": "response enum value added: MAJOR for us, fine for buf",
}

# The FILE rules our cases trigger between them (checked, so a case edit that stops
# exercising a rule is noticed).
RULES_COVERED = frozenset(
    {
        "ENUM_NO_DELETE",
        "ENUM_VALUE_NO_DELETE",
        "ENUM_VALUE_SAME_NAME",
        "EXTENSION_NO_DELETE",
        "FIELD_NO_DELETE",
        "FIELD_SAME_CARDINALITY",
        "FIELD_SAME_DEFAULT",
        "FIELD_SAME_JSON_NAME",
        "FIELD_SAME_JSTYPE",
        "FIELD_SAME_NAME",
        "FIELD_SAME_ONEOF",
        "FIELD_SAME_TYPE",
        "FILE_SAME_GO_PACKAGE",
        "FILE_SAME_JAVA_MULTIPLE_FILES",
        "FILE_SAME_PACKAGE",
        "FILE_SAME_SYNTAX",
        "MESSAGE_NO_DELETE",
        "MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR",
        "MESSAGE_SAME_REQUIRED_FIELDS",
        "ONEOF_NO_DELETE",
        "RESERVED_ENUM_NO_DELETE",
        "RESERVED_MESSAGE_NO_DELETE",
        "RPC_NO_DELETE",
        "RPC_SAME_CLIENT_STREAMING",
        "RPC_SAME_IDEMPOTENCY_LEVEL",
        "RPC_SAME_REQUEST_TYPE",
        "RPC_SAME_RESPONSE_TYPE",
        "RPC_SAME_SERVER_STREAMING",
        "SERVICE_NO_DELETE",
    }
)


def _pinned_version() -> str:
    found = re.search(r"^BUF_VERSION=(\S+)$", INSTALLER.read_text(), re.MULTILINE)
    assert found, f"no BUF_VERSION= line in {INSTALLER}"
    return found.group(1)


@pytest.fixture(scope="module")
def buf() -> Path:
    """The pinned buf binary; fails (never skips) when it is missing."""
    # npm puts the real binary in a per-platform package (@bufbuild/buf-linux-x64...);
    # calling it directly saves starting node for each of the many runs.
    found = sorted(BUF_MODULES.glob("@bufbuild/buf-*/bin/buf"))
    assert found, f"buf is not installed; run: bash {INSTALLER.relative_to(ROOT)}"
    version = subprocess.run(
        [str(found[0]), "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert version == _pinned_version(), f"buf {version} is not the pinned {_pinned_version()}"
    return found[0]


@pytest.fixture(scope="module")
def verdicts(buf: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Every proto case's buf rules, computed once (two at a time: buf is a process)."""
    root = tmp_path_factory.mktemp("buf")

    def run(name: str) -> tuple[str, set[str]]:
        work = root / name
        work.mkdir()
        return name, buf_rules(buf, CASES / name, work)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, PROTO_CASES))


def buf_rules(buf: Path, case: Path, tmp: Path) -> set[str]:
    """The FILE rules ``buf breaking`` reports for a case's old -> new ``.proto``."""
    for side in ("old", "new"):
        module = tmp / side
        module.mkdir()
        (module / "buf.yaml").write_text(BUF_YAML)
        # The same file name on both sides, as in a repository's history.
        shutil.copy(case / f"{side}.proto", module / "api.proto")
    command = [str(buf), "breaking", str(tmp / "new"), "--against", str(tmp / "old")]
    result = subprocess.run(
        [*command, "--error-format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # 0: nothing breaking; 100: file annotations (breaking changes) on stdout.
    assert result.returncode in (0, 100), result.stderr
    return {json.loads(line)["type"] for line in result.stdout.splitlines() if line.strip()}


@pytest.mark.parametrize("name", PROTO_CASES)
def test_agrees_with_buf_breaking(verdicts: dict[str, set[str]], name: str) -> None:
    case = CASES / name
    rules = verdicts[name]
    report = compare(load_document(case / "old.proto"), load_document(case / "new.proto"))
    ours = report.bump is Bump.MAJOR
    theirs = bool(rules)
    summary = f"ours: {report.bump.label} {report.codes()}; buf: {sorted(rules)}"
    if name in DISAGREEMENTS:
        assert ours != theirs, f"{name} now agrees with buf; drop it from DISAGREEMENTS ({summary})"
    else:
        assert ours == theirs, summary


def test_cases_cover_the_file_rules(verdicts: dict[str, set[str]]) -> None:
    seen = set().union(*verdicts.values())
    assert sorted(RULES_COVERED - seen) == []


def test_disagreements_are_documented() -> None:
    text = (ROOT / "docs" / "evolution.md").read_text()
    assert all(name in PROTO_CASES for name in DISAGREEMENTS)
    assert all(name in text for name in DISAGREEMENTS), "list each one in docs/evolution.md"
