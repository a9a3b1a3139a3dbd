"""Request body cap: refuse oversized bodies with a 413 problem, before reading them.

A declared ``Content-Length`` above the cap is refused before a byte of the body is
read; a chunked body is counted as it streams and refused the moment it crosses the
cap, so a client cannot make the server buffer more than ``max_body_bytes``::

    app.add_middleware(BodyLimit, max_body_bytes=1024 * 1024)
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicewire.rest.problems import problem_response

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware enforcing ``max_body_bytes`` on every HTTP request body."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _refusal(self, scope: Scope, size: int | None) -> Response:
        detail = (
            f"request body of {size} bytes exceeds the limit of {self.max_body_bytes} bytes"
            if size is not None
            else f"request body exceeds the limit of {self.max_body_bytes} bytes"
        )
        return problem_response(
            413,
            "Content Too Large",
            detail=detail,
            instance=scope.get("path"),
            headers={"connection": "close"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_body_bytes:
                    await self._refusal(scope, declared)(scope, receive, send)
                    return
                break

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # The app caught our error and answered (e.g. "cannot parse body");
                # the 413 below replaces that answer.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            pass
        if exceeded and not started:
            await self._refusal(scope, None)(scope, receive, send)
