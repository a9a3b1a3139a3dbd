"""HAL links (level 3): a representation names the actions possible on it right now.

Build links from route names, never from hand-written URLs, and add an action's link
only when the action is currently allowed, so a client discovers what it may do::

    class Order(HalResource):
        id: str
        state: str

    def order_view(request: Request, order: OrderRow) -> Order:
        links = (
            Links(request)
            .add("self", "get_order", order_id=order.id)
            .when(order.state == "PENDING", "cancel", "cancel_order",
                  method="POST", order_id=order.id)
        )
        return Order(id=order.id, state=order.state, _links=links.build())

    {"id": "o-1", "state": "PENDING",
     "_links": {"self": {"href": "/v1/orders/o-1", "method": "GET"},
                "cancel": {"href": "/v1/orders/o-1/cancel", "method": "POST"}}}

Inside a versioned router a route name resolves within the same major first
(``get_order`` in a ``/v2`` handler means ``v2:get_order``). ``method`` is our one
addition to HAL's link object: it tells a generic client how to perform the action.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.routing import NoMatchFound


class Link(BaseModel):
    """A HAL link object."""

    href: str
    method: str = "GET"


class HalResource(BaseModel):
    """Base of representations that carry ``_links``."""

    model_config = ConfigDict(populate_by_name=True)

    links: dict[str, Link] = Field(default_factory=dict, alias="_links")


class Links:
    """A builder of the ``_links`` of one representation."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self._links: dict[str, Link] = {}
        route = request.scope.get("route")
        name = getattr(route, "name", "") or ""
        self._version = name.split(":", 1)[0] + ":" if ":" in name else ""

    def href(self, route: str, **params: Any) -> str:
        """The path of route ``route`` with ``params``, resolved within this version."""
        app = self._request.app
        candidates = [self._version + route, route] if self._version else [route]
        for candidate in candidates:
            try:
                return str(app.url_path_for(candidate, **{k: str(v) for k, v in params.items()}))
            except NoMatchFound:
                continue
        raise NoMatchFound(route, params)

    def add(self, rel: str, route: str, *, method: str = "GET", **params: Any) -> Links:
        self._links[rel] = Link(href=self.href(route, **params), method=method)
        return self

    def when(
        self, condition: bool, rel: str, route: str, *, method: str = "GET", **params: Any
    ) -> Links:
        """Add the link only when ``condition`` holds (the action is possible now)."""
        if condition:
            self.add(rel, route, method=method, **params)
        return self

    def build(self) -> dict[str, Link]:
        return dict(self._links)
