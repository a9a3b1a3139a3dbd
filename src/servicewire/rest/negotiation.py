"""Content negotiation: pick the representation from ``Accept``; check ``Content-Type``.

The server offers JSON (``application/json``, ``application/hal+json``) and XML
(``application/xml``), plus vendor types when media-type versioning is on
(``application/vnd.ftgo.v2+json``)::

    >>> choose(["application/json", "application/xml"], "application/xml;q=0.9, */*;q=0.1")
    'application/xml'
    >>> choose(["application/json"], "text/html") is None
    True

No ``Accept`` header means ``*/*``. Ties go to the server's order of preference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

JSON: Final = "application/json"
HAL_JSON: Final = "application/hal+json"
XML: Final = "application/xml"

_VENDOR = re.compile(
    r"^application/vnd\.(?P<name>[a-z0-9][a-z0-9.-]*)\.v(?P<major>\d+)\+(?P<fmt>json|xml)$"
)


def parse_accept(header: str | None) -> list[tuple[str, float]]:
    """``[(media_range, q), ...]`` in header order; malformed parts are skipped."""
    if not header:
        return [("*/*", 1.0)]
    ranges: list[tuple[str, float]] = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if "/" not in media:
            continue
        q = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        ranges.append((media, q))
    return ranges


def _quality(offer: str, ranges: Sequence[tuple[str, float]]) -> float:
    """The q of the most specific range matching ``offer`` (0 when none does)."""
    otype = offer.partition("/")[0]
    best_specificity, best_q = -1, 0.0
    for media, q in ranges:
        rtype, _, rsub = media.partition("/")
        if media == offer:
            specificity = 2
        elif rtype == otype and rsub == "*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
    return best_q


def choose(offers: Sequence[str], accept: str | None) -> str | None:
    """The best offer for ``accept``, or ``None`` when nothing offered is acceptable."""
    ranges = parse_accept(accept)
    best, best_q = None, 0.0
    for offer in offers:
        q = _quality(offer, ranges)
        if q > best_q:
            best, best_q = offer, q
    return best


def vendor_type(media: str) -> tuple[str, int, str] | None:
    """``(name, major, "json"|"xml")`` of a vendor media type, else ``None``."""
    match = _VENDOR.match(media)
    if match is None:
        return None
    return match["name"], int(match["major"]), match["fmt"]


def requested_vendor_major(accept: str | None, name: str) -> int | None:
    """The major version a client asks for through ``application/vnd.<name>.vN+json``."""
    for media, q in parse_accept(accept):
        parsed = vendor_type(media)
        if parsed is not None and parsed[0] == name and q > 0:
            return parsed[1]
    return None


def is_json(content_type: str | None) -> bool:
    """True for ``application/json`` and every ``application/*+json``."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))
