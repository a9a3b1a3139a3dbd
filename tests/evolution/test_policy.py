"""The rule table: every code documented, policies parsed strictly, bumps compared right."""

from __future__ import annotations

from pathlib import Path

import pytest

from servicewire.evolution import DEFAULT_BUMPS, PRESETS, Bump, Policy, judge
from servicewire.evolution.policy import _OTHER_RULES, _SCHEMA_RULES
from servicewire.messaging.versioning import SemVer

DOC = Path(__file__).resolve().parents[2] / "docs" / "evolution.md"


def test_every_rule_is_documented() -> None:
    text = DOC.read_text()
    missing = [code for code in [*_SCHEMA_RULES, *_OTHER_RULES] if code not in text]
    assert missing == []


def test_presets_only_use_known_codes() -> None:
    for overrides in PRESETS.values():
        assert set(overrides) <= set(DEFAULT_BUMPS)


def test_policy_overrides_and_errors() -> None:
    policy = Policy.from_specs(["tolerant-clients", "default-changed=minor"])
    assert policy.bump("response-enum-value-added") is Bump.MINOR
    assert policy.bump("default-changed") is Bump.MINOR
    assert policy.bump("field-removed") is Bump.MAJOR
    assert Policy().bump("a-code-nobody-knows") is Bump.MAJOR  # fail safe
    with pytest.raises(ValueError, match="not a bump level"):
        Policy.from_specs(["default-changed=huge"])
    with pytest.raises(ValueError, match="unknown change code"):
        Policy.from_specs(["nonsense=minor"])
    with pytest.raises(ValueError, match="not a preset"):
        Policy.from_specs(["lenient"])


@pytest.mark.parametrize(
    ("required", "old", "new", "ok", "exact_ok"),
    [
        (Bump.MINOR, "1.2.3", "1.3.0", True, True),
        (Bump.MINOR, "1.2.3", "2.0.0", True, False),
        (Bump.MAJOR, "1.2.3", "1.3.0", False, False),
        (Bump.PATCH, "1.2.3", "1.2.4", True, True),
        (Bump.NONE, "1.2.3", "1.2.3", True, True),
        (Bump.NONE, "1.2.3", "1.2.4", True, False),
        (Bump.PATCH, "1.2.3", "1.2.2", False, False),
    ],
)
def test_judge(required: Bump, old: str, new: str, ok: bool, exact_ok: bool) -> None:
    assert judge(required, SemVer.parse(old), SemVer.parse(new)).ok is ok
    assert judge(required, SemVer.parse(old), SemVer.parse(new), exact=True).ok is exact_ok
