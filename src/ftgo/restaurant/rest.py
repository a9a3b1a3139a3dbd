"""Restaurant Service's REST API (``/v1``): restaurants and their menus.

POST /v1/restaurants               {"name", "menu": [{"menuItemId", "name", "price"}], "postcodes"}
GET  /v1/restaurants/{id}
PUT  /v1/restaurants/{id}/menu     {"menu": [...]}
"""

from __future__ import annotations

from decimal import Decimal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import Field

from ftgo.rest_models import CamelModel
from ftgo.restaurant.service import Restaurant, create_restaurant, get_restaurant, revise_menu
from ftgo.values import MenuItem
from servicewire import Service
from servicewire.exposition import mount_metrics
from servicewire.rest import (
    HalResource,
    Links,
    Problem,
    create_app,
    created,
    problem_responses,
    versioned_router,
)

API_VERSION = "1.0.0"


class MenuItemBody(CamelModel):
    menu_item_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    price: Decimal = Field(ge=0, max_digits=10, decimal_places=2)

    def item(self) -> MenuItem:
        return MenuItem(menu_item_id=self.menu_item_id, name=self.name, price=self.price)


class CreateRestaurantBody(CamelModel):
    name: str = Field(min_length=1, max_length=200)
    menu: list[MenuItemBody] = Field(max_length=500)
    postcodes: list[str] = Field(min_length=1, max_length=200)


class ReviseMenuBody(CamelModel):
    menu: list[MenuItemBody] = Field(max_length=500)


class RestaurantView(HalResource, CamelModel):
    restaurant_id: str
    name: str
    menu: list[MenuItemBody]
    postcodes: list[str]


def restaurant_view(request: Request, restaurant: Restaurant, *, editable: bool) -> RestaurantView:
    links = Links(request).add("self", "get_restaurant", restaurant_id=restaurant.restaurant_id)
    links.when(
        editable,
        "revise-menu",
        "revise_menu",
        method="PUT",
        restaurant_id=restaurant.restaurant_id,
    )
    return RestaurantView(
        restaurant_id=restaurant.restaurant_id,
        name=restaurant.name,
        menu=[MenuItemBody(**m.model_dump()) for m in restaurant.menu],
        postcodes=restaurant.postcodes,
        _links=links.build(),
    )


def build_restaurant_app(service: Service) -> FastAPI:
    app = create_app("FTGO Restaurant Service", API_VERSION, vendor="ftgo")
    v1 = versioned_router(1, tags=["restaurants"])

    @v1.post(
        "/restaurants",
        name="create_restaurant",
        status_code=201,
        response_model=RestaurantView,
        responses=problem_responses(422),
    )
    async def create(request: Request, body: CreateRestaurantBody) -> Response:
        restaurant = await create_restaurant(
            service, name=body.name, menu=[m.item() for m in body.menu], postcodes=body.postcodes
        )
        href = Links(request).href("get_restaurant", restaurant_id=restaurant.restaurant_id)
        return created(restaurant_view(request, restaurant, editable=True), location=href)

    @v1.get("/restaurants/{restaurant_id}", name="get_restaurant", responses=problem_responses(404))
    async def get(request: Request, restaurant_id: str) -> RestaurantView:
        restaurant = await get_restaurant(service, restaurant_id)
        if restaurant is None:
            raise Problem(404, "Restaurant not found", detail=f"no restaurant {restaurant_id!r}")
        return restaurant_view(request, restaurant, editable=True)

    @v1.put(
        "/restaurants/{restaurant_id}/menu",
        name="revise_menu",
        responses=problem_responses(404, 422),
    )
    async def put_menu(
        request: Request, restaurant_id: str, body: ReviseMenuBody
    ) -> RestaurantView:
        if not await revise_menu(service, restaurant_id, [m.item() for m in body.menu]):
            raise Problem(404, "Restaurant not found", detail=f"no restaurant {restaurant_id!r}")
        restaurant = await get_restaurant(service, restaurant_id)
        assert restaurant is not None
        return restaurant_view(request, restaurant, editable=True)

    app.include_router(v1)
    mount_metrics(app, service)  # GET /metrics (not in the OpenAPI document)
    return app
