"""Problem details (RFC 9457): every error an app returns is ``application/problem+json``.

Handlers raise :class:`Problem` (or FastAPI's ``HTTPException``) and the handlers
installed by :func:`install_problem_handlers` turn it, validation errors, unknown
routes, wrong methods and unhandled exceptions into one shape::

    raise Problem(409, "Order cannot be cancelled", detail="order o-1 is DELIVERED",
                  type="https://ftgo.example/problems/order-state")

    HTTP/1.1 409 Conflict
    Content-Type: application/problem+json

    {"type": "https://ftgo.example/problems/order-state", "title": "Order cannot be
     cancelled", "status": 409, "detail": "order o-1 is DELIVERED", "instance": "/v1/..."}

Unhandled exceptions become a 500 with a generic detail: the stack trace goes to the
server log, never to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicewire.messaging.text import UNSAFE_TEXT, text_problem

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
BLANK: Final = "about:blank"


class InvalidField(BaseModel):
    """One invalid request field, as listed in a 422 problem's ``errors``."""

    field: str = Field(description="Dotted location, e.g. body.items.0.quantity")
    message: str
    code: str = Field(description="Machine-readable error kind, e.g. missing, int_parsing")


class ProblemDetails(BaseModel):
    """The RFC 9457 problem details object (documented in every OpenAPI document)."""

    type: str = BLANK
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[InvalidField] | None = None


class Problem(Exception):
    """Raise inside a handler to answer with a problem details response."""

    def __init__(
        self,
        status: int,
        title: str | None = None,
        *,
        detail: str | None = None,
        type: str = BLANK,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title or _phrase(status)
        self.detail = detail
        self.type = type
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})
        super().__init__(f"{status} {self.title}" + (f": {detail}" if detail else ""))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int,
    title: str | None = None,
    *,
    detail: str | None = None,
    type: str = BLANK,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": type, "title": title or _phrase(status), "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if extensions:
        body.update({k: v for k, v in extensions.items() if k not in body})
    return Response(
        orjson.dumps(body), status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def _invalid_fields(errors: Sequence[Any]) -> list[dict[str, str]]:
    fields = []
    for error in errors:
        location = ".".join(_printable(part) for part in error.get("loc", ()))
        message, code = str(error.get("msg", "")), str(error["type"])
        given = error.get("input")
        if code == "string_unicode" and isinstance(given, str):
            # Pydantic refuses a lone surrogate with a vague "unable to parse raw data
            # as a unicode string": say which character, as the text rule does.
            message, code = text_problem(given) or message, UNSAFE_TEXT
        fields.append({"field": location, "message": message, "code": code})
    return fields


def _printable(part: object) -> str:
    # A location can be a dict key the client sent: one holding a lone surrogate
    # cannot be written as UTF-8 JSON, so such a key is shown escaped.
    text = str(part)
    return text if text_problem(text) is None else ascii(text)


def validation_problem(fields: list[dict[str, str]], instance: str | None) -> Response:
    """The 422 problem listing ``fields`` (``field``, ``message``, ``code`` each)."""
    names = ", ".join(f["field"] for f in fields[:5])
    return problem_response(
        422,
        "Request validation failed",
        detail=f"invalid fields: {names}" if names else None,
        type="https://servicewire.dev/problems/validation",
        instance=instance,
        extensions={"errors": fields},
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status,
        exc.title,
        detail=exc.detail,
        type=exc.type,
        instance=request.url.path,
        headers=exc.headers,
        extensions=exc.extensions,
    )


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == _phrase(exc.status_code):
        detail = None
    if exc.status_code == 404 and detail is None:
        detail = f"no resource at {request.url.path}"
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(
        exc.status_code, detail=detail, instance=request.url.path, headers=exc.headers
    )


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return validation_problem(_invalid_fields(exc.errors()), request.url.path)


class UnhandledErrorGuard:
    """ASGI middleware: any exception that escapes the app becomes a 500 problem.

    Starlette's own last-resort handler re-raises after answering, which makes the
    server print the error twice; this guard answers, logs once, and swallows it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = problem_response(
                500,
                detail="the server failed to handle the request; it has been logged",
                instance=scope.get("path"),
            )
            await response(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error of ``app`` through problem details."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
