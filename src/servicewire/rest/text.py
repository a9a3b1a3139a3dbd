"""Paths, query parameters and headers obey the text rule: no NUL, no lone surrogate.

Bodies are checked by their models (:class:`~servicewire.messaging.TextSafeModel`);
what arrives outside a body is checked here, before routing, so no handler (and no
database) ever sees it. A request carrying one is answered 422, naming it::

    GET /v1/orders/o%00x      ->  422  {"errors": [{"field": "path.order_id",
                                         "code": "unsafe_text", "message": "text must
                                         not contain NUL (U+0000); found at character 1"}]}

A URL cannot carry a surrogate: servers percent-decode paths and query strings as
UTF-8 with replacement, and headers are bytes (Latin-1). So the one character that
can arrive this way is NUL, raw (``\\x00``) or escaped (``%00``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from servicewire.messaging.text import UNSAFE_TEXT, text_problem
from servicewire.rest.problems import validation_problem


class TextGuard:
    """ASGI middleware: refuse unsafe text in the path, the query or a header (422)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = _unsafe_parameter(scope)
            if found is not None:
                field, problem = found
                errors = [{"field": field, "message": problem, "code": UNSAFE_TEXT}]
                await validation_problem(errors, scope.get("path"))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _unsafe_parameter(scope: Scope) -> tuple[str, str] | None:
    """``("path.<name>" | "query.<name>" | "header.<name>", problem)`` or ``None``."""
    problem = text_problem(scope["path"])
    if problem is not None:
        field = _path_parameter(scope)
        return field, f"{problem} of the path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:  # the only way NUL arrives in a query
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            problem = _first_problem(name, value)
            if problem is not None:
                return f"query.{ascii(name)[1:-1]}", problem
    for raw_name, raw_value in scope["headers"]:
        if b"\x00" in raw_name or b"\x00" in raw_value:
            name = raw_name.decode("latin-1")
            problem = _first_problem(name, raw_value.decode("latin-1"))
            if problem is not None:
                return f"header.{ascii(name)[1:-1]}", problem
    return None


def _first_problem(*texts: str) -> str | None:
    for text in texts:
        problem = text_problem(text)
        if problem is not None:
            return problem
    return None


def _path_parameter(scope: Scope) -> str:
    """``path.<parameter>`` when a route's pattern matches the path, else ``path``.

    Only on the refusal path, so a valid request never pays for it. Routers included
    into others are searched through (Starlette's ``routes``, FastAPI's
    ``original_router``); a route the search cannot see leaves the answer ``path``.
    """
    path = scope["path"]
    pending = list(getattr(getattr(scope.get("app"), "router", None), "routes", ()))
    for _ in range(10_000):  # bounded: an app has far fewer routes
        if not pending:
            break
        route = pending.pop(0)
        pattern = getattr(route, "path_regex", None)
        match = pattern.match(path) if pattern is not None else None
        if match is not None:
            for name, value in match.groupdict().items():
                if text_problem(value) is not None:
                    return f"path.{name}"
        inner = getattr(route, "original_router", route)
        pending.extend(getattr(inner, "routes", ()))
    return "path"
