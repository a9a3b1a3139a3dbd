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

import re
import weakref
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.routing import NoMatchFound

# Resolving a route name walks every route of the app (~35 µs a link on FTGO's Order
# Service, a third of a POST /orders). A name and its parameter names always give the
# same path around the values, so each (app, name, parameter names) is resolved once,
# with marker values, into a template; later links fill it in. Routes whose convertors
# refuse the markers (int, uuid ...) are not templated and resolve every time.
_MARK = "\x00"
_SLOT = re.compile(r"\x00([^\x00]*)\x00")
_Template = tuple[str, ...]  # literal, parameter name, literal, ... (split on _SLOT)
_templates: weakref.WeakKeyDictionary[Any, dict[tuple[str, tuple[str, ...]], _Template | None]]
_templates = weakref.WeakKeyDictionary()


def _template(app: Any, route: str, names: tuple[str, ...]) -> _Template | None:
    cache = _templates.get(app)
    if cache is None:
        cache = _templates[app] = {}
    key = (route, names)
    if key not in cache:
        try:
            path = str(app.url_path_for(route, **{n: f"{_MARK}{n}{_MARK}" for n in names}))
        except NoMatchFound:
            raise
        except Exception:  # a convertor that takes only its own kind of value
            cache[key] = None
        else:
            cache[key] = tuple(_SLOT.split(path))
    return cache[key]


def _fill(template: _Template, values: dict[str, str]) -> str | None:
    """The path, or ``None`` when a value is one the route's str convertor refuses."""
    parts = list(template)
    for i in range(1, len(parts), 2):
        value = values[parts[i]]
        if not value or "/" in value:
            return None  # let url_path_for say why
        parts[i] = value
    return "".join(parts)


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
        values = {k: str(v) for k, v in params.items()}
        names = tuple(sorted(values))
        candidates = [self._version + route, route] if self._version else [route]
        for candidate in candidates:
            try:
                template = _template(app, candidate, names)
            except NoMatchFound:
                continue
            path = _fill(template, values) if template is not None else None
            return path if path is not None else str(app.url_path_for(candidate, **values))
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
