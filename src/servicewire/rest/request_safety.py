"""Checks on what a caller (or a server's link) puts into a request, before it is sent.

A CR or LF in a path or header value would end the request line or the header early,
and what follows would be read by the server as more headers or as a second request on
the same keep-alive connection (request smuggling). NUL and the other control
characters have no place there either. So they are refused with a clear error::

    check_target("/v1/orders/o-1?expand=items")          # fine
    check_target("/v1/x HTTP/1.1\\r\\nHost: evil\\r\\n")  # UnsafeRequestError
    check_headers({"x-trace": "a\\r\\nx-admin: 1"})       # UnsafeRequestError
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from servicewire.errors import ServicewireError

# RFC 9110 token: what a method or a header name may contain.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Controls (C0 and DEL) are refused in a request target; a space or a non-ASCII letter
# is percent-encoded on the way out (yarl), so it cannot split the request line.
_TARGET_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
# A field value may hold tabs and spaces, but no other control character.
_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class UnsafeRequestError(ServicewireError, ValueError):
    """A method, path or header would change the request's framing if it were sent."""


def check_method(method: str) -> None:
    if not _TOKEN.fullmatch(method):
        raise UnsafeRequestError(f"HTTP method {method[:40]!r} is not a token")


def check_target(target: str) -> None:
    """``target`` is an origin-form path (``/...``), optionally with ``?query``."""
    if not target.startswith("/"):
        raise UnsafeRequestError(f"request path {target[:60]!r} does not start with '/'")
    bad = _TARGET_FORBIDDEN.search(target)
    if bad is not None:
        raise UnsafeRequestError(
            f"request path {target[:60]!r} contains {bad.group()!r} at {bad.start()}"
            " (control characters must be percent-encoded)"
        )


def check_headers(headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, not {type(value).__name__}")
        if not _TOKEN.fullmatch(name):
            raise UnsafeRequestError(f"header name {name[:40]!r} is not a token")
        bad = _VALUE_FORBIDDEN.search(value)
        if bad is not None:
            # The value itself is not repeated: headers often carry credentials.
            raise UnsafeRequestError(
                f"header {name!r} contains the control character {bad.group()!r} at {bad.start()}"
            )
