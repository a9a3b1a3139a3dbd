"""ETags and conditional GET: answer ``304 Not Modified`` when the client's copy is current.

The ETag is a strong validator over the exact representation bytes (JSON and XML of
one resource have different ETags, as RFC 9110 requires), unless the handler set its
own (for example from a row version)::

    GET /v1/orders/o-1            ->  200, ETag: "5d41402abc4b2a76"
    GET /v1/orders/o-1
    If-None-Match: "5d41402abc4b2a76"  ->  304, no body
"""

from __future__ import annotations

import hashlib

from starlette.responses import Response


def etag_for(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): ``W/"x"`` matches ``"x"``; ``*`` matches all."""
    if if_none_match.strip() == "*":
        return True
    mine = _opaque(etag)
    return any(_opaque(tag) == mine for tag in if_none_match.split(","))


def conditional(method: str, if_none_match: str | None, response: Response) -> Response:
    """Add an ETag to a successful GET/HEAD response; turn it into a 304 when it matches."""
    if method not in ("GET", "HEAD") or response.status_code != 200:
        return response
    etag = response.headers.get("etag")
    if etag is None:
        etag = etag_for(bytes(response.body))
        response.headers["etag"] = etag
    if if_none_match and matches(if_none_match, etag):
        headers = {
            k: v
            for k, v in response.headers.items()
            if k in ("etag", "cache-control", "vary", "content-location", "expires")
        }
        return Response(status_code=304, headers=headers)
    return response
