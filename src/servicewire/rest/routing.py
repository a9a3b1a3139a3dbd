"""Versioned routers whose routes negotiate content, check bodies and answer conditionally.

Each major version is a router with its own prefix; several majors live side by side
in one app, each route named ``v<major>:<name>`` so links resolve within a version::

    v1 = versioned_router(1)
    v2 = versioned_router(2)

    @v1.get("/orders/{order_id}", name="get_order")
    async def get_order_v1(order_id: str) -> OrderV1: ...

    app.include_router(v1)       # /v1/orders/{order_id}
    app.include_router(v2)       # /v2/orders/{order_id}

Every route of such a router (a :class:`ResourceRoute`):

* answers ``415`` when a request body is not JSON, before the handler runs;
* answers ``406`` when nothing it offers (JSON, HAL+JSON, XML, the vendor type of its
  major) is acceptable, before the handler runs;
* renders XML when the client prefers it, and echoes the vendor type it was asked for;
* adds an ETag to GET responses and answers ``304`` to a matching ``If-None-Match``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from servicewire.rest.conditional import conditional
from servicewire.rest.negotiation import (
    HAL_JSON,
    JSON,
    XML,
    choose,
    is_json,
    requested_vendor_major,
    vendor_type,
)
from servicewire.rest.problems import Problem
from servicewire.rest.xml import to_xml

VENDOR_STATE_KEY = "servicewire_vendor"
"""``app.state`` attribute holding the vendor name for media-type versioning."""


def _major_of(path: str) -> int | None:
    head = path.lstrip("/").split("/", 1)[0]
    if len(head) > 1 and head[0] == "v" and head[1:].isdigit():
        return int(head[1:])
    return None


class ResourceRoute(APIRoute):
    """An APIRoute with negotiation, body content-type check and conditional GET."""

    def _offers(self, request: Request) -> list[str]:
        offers = [JSON, HAL_JSON, XML]
        vendor = getattr(request.app.state, VENDOR_STATE_KEY, None)
        major = _major_of(self.path_format)
        if vendor and major is not None:
            offers += [f"application/vnd.{vendor}.v{major}+json"]
            offers += [f"application/vnd.{vendor}.v{major}+xml"]
        return offers

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        has_body = self.body_field is not None

        async def negotiated(request: Request) -> Response:
            if (
                has_body
                and _sends_body(request)
                and not is_json(request.headers.get("content-type"))
            ):
                raise Problem(
                    415,
                    detail=f"request bodies must be application/json, not "
                    f"{request.headers.get('content-type') or 'unspecified'}",
                    headers={"accept-post": JSON} if request.method == "POST" else None,
                )
            offers = self._offers(request)
            accept = request.headers.get("accept")
            media = choose(offers, accept)
            if media is None:
                raise Problem(
                    406, detail=f"cannot produce {accept!r}; available: {', '.join(offers)}"
                )
            response = await handler(request)
            response = _render(response, media)
            if response.status_code == 200:
                response.headers["vary"] = "Accept"
            return conditional(request.method, request.headers.get("if-none-match"), response)

        return negotiated


def _sends_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _render(response: Response, media: str) -> Response:
    """Re-render a JSON response for the chosen media type (no-op for plain JSON)."""
    content_type = response.headers.get("content-type", "")
    if media == JSON or not content_type.startswith(JSON) or not response.body:
        return response
    parsed = vendor_type(media)
    fmt = parsed[2] if parsed is not None else ("xml" if media == XML else "json")
    if fmt == "json":
        # Same bytes, another name (HAL+JSON, a vendor type): relabel in place.
        response.headers["content-type"] = media
        return response
    headers = {
        k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")
    }
    body = to_xml(orjson.loads(response.body))
    return Response(body, response.status_code, headers, media_type=media)


def versioned_router(major: int, **options: Any) -> APIRouter:
    """An ``APIRouter`` for ``/v<major>`` whose routes are :class:`ResourceRoute` s."""
    router = APIRouter(prefix=f"/v{major}", route_class=ResourceRoute, **options)
    original = router.add_api_route

    def add_api_route(path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        name = kwargs.get("name") or endpoint.__name__
        kwargs["name"] = f"v{major}:{name}"
        if not kwargs.get("summary"):
            kwargs["summary"] = name.replace("_", " ").capitalize()
        original(path, endpoint, **kwargs)

    router.add_api_route = add_api_route  # type: ignore[method-assign]
    return router


class MediaTypeVersioning:
    """ASGI middleware: ``Accept: application/vnd.<name>.vN+json`` selects major N.

    A request to an unversioned path (``/orders/o-1``) is routed to ``/vN/orders/o-1``,
    N from the vendor media type or ``default_major`` without one; versioned paths pass
    through untouched, so both styles work side by side.
    """

    def __init__(self, app: ASGIApp, vendor: str, default_major: int) -> None:
        self.app = app
        self.vendor = vendor
        self.default_major = default_major

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _major_of(scope["path"]) is None:
            path = scope["path"]
            if not path.startswith(("/openapi", "/docs", "/redoc")):
                accept = None
                for name, value in scope["headers"]:
                    if name == b"accept":
                        accept = value.decode("latin-1")
                        break
                major = requested_vendor_major(accept, self.vendor) or self.default_major
                scope = dict(scope)
                scope["path"] = f"/v{major}{path if path != '/' else '/'}"
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)
