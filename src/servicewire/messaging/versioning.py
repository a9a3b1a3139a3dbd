"""Semantic versions ``MAJOR.MINOR.PATCH`` (https://semver.org), small and typed.

>>> v = SemVer.parse("1.4.2")
>>> (v.major, v.minor, v.patch)
(1, 4, 2)
>>> v.bump("minor")
SemVer(major=1, minor=5, patch=0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$"
)

BumpLevel = Literal["major", "minor", "patch"]


@dataclass(frozen=True, order=True, slots=True)
class SemVer:
    """A parsed semantic version; ordering ignores pre-release and build metadata."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """Parse ``MAJOR.MINOR.PATCH`` (pre-release and build suffixes are accepted and dropped).

        A bare ``MAJOR`` or ``MAJOR.MINOR`` is accepted too and padded with zeros.
        """
        text = text.strip().removeprefix("v")
        match = _SEMVER.match(text)
        if match is None:
            parts = text.split(".")
            if 1 <= len(parts) <= 2 and all(p.isdigit() for p in parts):
                nums = [int(p) for p in parts] + [0] * (3 - len(parts))
                return cls(nums[0], nums[1], nums[2])
            raise ValueError(f"not a semantic version: {text!r}")
        return cls(int(match[1]), int(match[2]), int(match[3]))

    def bump(self, level: BumpLevel) -> SemVer:
        """The next version at ``level``."""
        if level == "major":
            return SemVer(self.major + 1, 0, 0)
        if level == "minor":
            return SemVer(self.major, self.minor + 1, 0)
        return SemVer(self.major, self.minor, self.patch + 1)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"
