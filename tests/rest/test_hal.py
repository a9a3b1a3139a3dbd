"""HAL links resolve route names once per app and parameter names, then fill values in.

The filled-in path must be exactly what ``url_path_for`` gives, and values a route's
convertor refuses must still be refused the way Starlette refuses them.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from servicewire.rest import Links, versioned_router


def build() -> FastAPI:
    app = FastAPI()
    v1 = versioned_router(1)

    @v1.get("/orders/{order_id}", name="get_order")
    async def get_order(order_id: str) -> None: ...

    @v1.post("/orders/{order_id}/items/{item_id}/cancel", name="cancel_item")
    async def cancel_item(order_id: str, item_id: str) -> None: ...

    @v1.get("/pages/{n:int}", name="page")
    async def page(n: int) -> None: ...

    app.include_router(v1)
    return app


def links(app: FastAPI) -> Links:
    # Links reads the matched route's name from the scope: a v1 handler's request.
    route = SimpleNamespace(name="v1:get_order")
    return Links(Request({"type": "http", "app": app, "route": route}))


def counting(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = app.url_path_for

    def url_path_for(name: str, /, **params: Any) -> Any:
        calls.append(name)
        return original(name, **params)

    monkeypatch.setattr(app, "url_path_for", url_path_for)
    return calls


def test_links_equal_url_path_for_and_resolve_each_route_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = build()
    expected = {
        v: str(app.url_path_for("v1:get_order", order_id=v))
        for v in ["o-1", "ünï cödé", "a b%20c", "x" * 200, "{order_id}"]
    }
    calls = counting(app, monkeypatch)
    for _ in range(3):
        for value, path in expected.items():
            assert links(app).href("get_order", order_id=value) == path
        assert (
            links(app).href("cancel_item", order_id="o-1", item_id="i-2")
            == "/v1/orders/o-1/items/i-2/cancel"
        )
    assert calls == ["v1:get_order", "v1:cancel_item"]  # once each, then from the template


def test_int_convertor_routes_and_refused_values_still_go_through_starlette() -> None:
    app = build()
    assert links(app).href("page", n=3) == "/v1/pages/3"
    assert links(app).href("page", n=4) == "/v1/pages/4"
    assert links(app).href("get_order", order_id="o-1") == "/v1/orders/o-1"
    with pytest.raises(AssertionError):  # Starlette's str convertor: no path separators
        links(app).href("get_order", order_id="a/b")
    with pytest.raises(AssertionError):  # ... and not empty
        links(app).href("get_order", order_id="")
