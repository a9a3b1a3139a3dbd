"""Restaurant Service: restaurants, menus, delivery areas, and ValidateOrderDetails.

service = create_restaurant_service(db="sqlite:///restaurant.db", transport="memory://")
async with service:
    r = await create_restaurant(service, name="Ajanta", menu=[...], postcodes=["94619"])
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, MetaData, String, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ftgo.restaurant.api import (
    OrderDetailsRejected,
    OrderDetailsValidated,
    RestaurantCreated,
    RestaurantMenuRevised,
    ValidateOrderDetails,
)
from ftgo.values import LineItem, MenuItem
from servicewire import Context, Service, ServiceOptions, new_id
from servicewire.transports import Transport

NAME = "restaurant-service"

metadata = MetaData()
restaurants = Table(
    "ftgo_restaurants",
    metadata,
    Column("restaurant_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("menu", JSON, nullable=False),
    Column("postcodes", JSON, nullable=False),
)


class Restaurant(BaseModel):
    restaurant_id: str
    name: str
    menu: list[MenuItem]
    postcodes: list[str]


def price_order(
    restaurant: Restaurant | None,
    restaurant_id: str,
    line_items: list[LineItem],
    postcode: str,
) -> tuple[Decimal | None, str | None]:
    """(priced total, None) when the details are valid, else (None, the reason)."""
    if restaurant is None:
        return None, f"restaurant {restaurant_id} does not exist"
    if postcode not in restaurant.postcodes:
        return None, f"restaurant {restaurant.name} does not deliver to postcode {postcode}"
    menu = {item.menu_item_id: item for item in restaurant.menu}
    missing = [li.menu_item_id for li in line_items if li.menu_item_id not in menu]
    if missing:
        return None, f"not on the menu of {restaurant.name}: {', '.join(missing)}"
    total = sum((menu[li.menu_item_id].price * li.quantity for li in line_items), Decimal("0"))
    return total, None


def _menu_json(menu: list[MenuItem]) -> list[dict[str, str]]:
    return [{"menu_item_id": m.menu_item_id, "name": m.name, "price": str(m.price)} for m in menu]


# Built once: every ValidateOrderDetails runs it, with SQLAlchemy's compiled form reused.
_SELECT_RESTAURANT = select(restaurants).where(restaurants.c.restaurant_id == bindparam("key"))


async def load_restaurant(conn: Any, restaurant_id: str) -> Restaurant | None:
    row = (await conn.execute(_SELECT_RESTAURANT, {"key": restaurant_id})).mappings().first()
    return Restaurant(**row) if row is not None else None


def create_restaurant_service(
    db: str | AsyncEngine, transport: str | Transport, options: ServiceOptions | None = None
) -> Service:
    """The Restaurant Service with its handler registered (not yet started)."""
    base = options or ServiceOptions()
    own = replace(base, tables=(*base.tables, metadata))
    service = Service(NAME, db=db, transport=transport, options=own)
    service.sends(
        OrderDetailsValidated, OrderDetailsRejected, RestaurantCreated, RestaurantMenuRevised
    )

    @service.handles(ValidateOrderDetails)
    async def validate_order_details(cmd: ValidateOrderDetails, ctx: Context) -> None:
        restaurant = await load_restaurant(ctx.connection, cmd.restaurant_id)
        total, reason = price_order(
            restaurant, cmd.restaurant_id, cmd.line_items, cmd.delivery_postcode
        )
        if total is not None:
            await ctx.reply(
                OrderDetailsValidated(
                    order_id=cmd.order_id, restaurant_id=cmd.restaurant_id, order_total=total
                )
            )
        else:
            await ctx.reply(
                OrderDetailsRejected(
                    order_id=cmd.order_id, restaurant_id=cmd.restaurant_id, reason=reason or ""
                )
            )

    return service


async def create_restaurant(
    service: Service, *, name: str, menu: list[MenuItem], postcodes: list[str]
) -> Restaurant:
    """Add a restaurant and publish RestaurantCreated, in one transaction."""
    restaurant = Restaurant(restaurant_id=new_id(), name=name, menu=menu, postcodes=postcodes)
    async with service.transaction() as ctx:
        await ctx.connection.execute(
            restaurants.insert().values(
                restaurant_id=restaurant.restaurant_id,
                name=name,
                menu=_menu_json(menu),
                postcodes=list(postcodes),
            )
        )
        await ctx.publish(
            RestaurantCreated(
                restaurant_id=restaurant.restaurant_id, name=name, menu=menu, postcodes=postcodes
            )
        )
    return restaurant


async def revise_menu(service: Service, restaurant_id: str, menu: list[MenuItem]) -> bool:
    """Replace a restaurant's menu and publish RestaurantMenuRevised; False if unknown."""
    async with service.transaction() as ctx:
        result = await ctx.connection.execute(
            update(restaurants)
            .where(restaurants.c.restaurant_id == restaurant_id)
            .values(menu=_menu_json(menu))
        )
        if not result.rowcount:
            return False
        await ctx.publish(RestaurantMenuRevised(restaurant_id=restaurant_id, menu=menu))
    return True


async def get_restaurant(service: Service, restaurant_id: str) -> Restaurant | None:
    async with service.transaction() as ctx:
        return await load_restaurant(ctx.connection, restaurant_id)
