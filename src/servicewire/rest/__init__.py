"""REST on FastAPI, to maturity level 3, and a resilient client that follows links.

Server side::

    from servicewire.rest import HalResource, Links, Problem, create_app, versioned_router

    v1 = versioned_router(1)

    @v1.get("/orders/{order_id}", name="get_order")
    async def get_order(request: Request, order_id: str) -> Order: ...

    app = create_app("Order Service", "1.0.0", vendor="ftgo")
    app.include_router(v1)
    export_openapi(app, "docs/api/order-service.json")

Client side::

    async with RestClient(locator) as client:
        order = await client.get("order-service", "/v1/orders/o-1")
        await client.follow(order, "cancel")

Needs ``servicewire[rest]`` (FastAPI, uvicorn, orjson, aiohttp for the client).
"""

from servicewire.rest.app import SERVER_KEEP_ALIVE_SECONDS, create_app
from servicewire.rest.client import LinkNotFoundError, Representation, RestClient
from servicewire.rest.conditional import etag_for
from servicewire.rest.hal import HalResource, Link, Links
from servicewire.rest.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from servicewire.rest.negotiation import HAL_JSON, JSON, XML
from servicewire.rest.openapi import export_openapi, problem_responses, render_openapi
from servicewire.rest.problems import PROBLEM_JSON, InvalidField, Problem, ProblemDetails
from servicewire.rest.request_safety import UnsafeRequestError
from servicewire.rest.responses import created, no_content
from servicewire.rest.routing import MediaTypeVersioning, ResourceRoute, versioned_router
from servicewire.rest.text import TextGuard

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "HAL_JSON",
    "JSON",
    "PROBLEM_JSON",
    "SERVER_KEEP_ALIVE_SECONDS",
    "XML",
    "BodyLimit",
    "HalResource",
    "InvalidField",
    "Link",
    "LinkNotFoundError",
    "Links",
    "MediaTypeVersioning",
    "Problem",
    "ProblemDetails",
    "Representation",
    "ResourceRoute",
    "RestClient",
    "TextGuard",
    "UnsafeRequestError",
    "create_app",
    "created",
    "etag_for",
    "export_openapi",
    "no_content",
    "problem_responses",
    "render_openapi",
    "versioned_router",
]
