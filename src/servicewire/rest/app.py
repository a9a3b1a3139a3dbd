"""The app factory: a FastAPI app with every Servicewire REST convention installed.

    app = create_app("Order Service", "1.2.0", vendor="ftgo")
    app.include_router(v1)          # versioned_router(1)
    app.include_router(v2)          # versioned_router(2)

Installed: problem details for every error (including 404, 405 and unhandled
exceptions), a request body cap answered with 413 before the body is read, a 422 for
a path, query parameter or header holding NUL (:mod:`servicewire.rest.text`), the
OpenAPI post-processing of :mod:`servicewire.rest.openapi`, and, with ``vendor``,
media-type versioning (``Accept: application/vnd.ftgo.v2+json`` on ``/orders``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from servicewire.rest.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from servicewire.rest.openapi import install_openapi
from servicewire.rest.problems import UnhandledErrorGuard, install_problem_handlers
from servicewire.rest.routing import VENDOR_STATE_KEY, MediaTypeVersioning
from servicewire.rest.text import TextGuard
from servicewire.telemetry.rest_spans import TracingMiddleware

SERVER_KEEP_ALIVE_SECONDS = 75
"""How long a server keeps an idle connection open (uvicorn's ``timeout_keep_alive``).
Longer than clients' own idle expiry (httpx 5 s, aiohttp 15 s, RestClient 4 s), so it is
always the client that closes an idle connection: if the server closed first (uvicorn's
default is 5 s), a request written at that moment would meet a closed socket::

    uvicorn.Config(app, timeout_keep_alive=SERVER_KEEP_ALIVE_SECONDS)
"""


def create_app(
    title: str,
    version: str,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    vendor: str | None = None,
    default_major: int = 1,
    description: str = "",
    **fastapi_options: Any,
) -> FastAPI:
    """A FastAPI app for a service API; ``version`` is the API's semantic version."""
    app = FastAPI(title=title, version=version, description=description, **fastapi_options)
    install_problem_handlers(app)
    install_openapi(app)
    # add_middleware wraps outside-in in reverse order: the guard ends up outermost,
    # the text guard innermost (it names path parameters by the versioned path).
    app.add_middleware(TextGuard)
    if vendor:
        setattr(app.state, VENDOR_STATE_KEY, vendor)
        app.add_middleware(MediaTypeVersioning, vendor=vendor, default_major=default_major)
    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)
    app.add_middleware(UnhandledErrorGuard)
    app.add_middleware(TracingMiddleware)  # outermost: the span covers everything
    return app
