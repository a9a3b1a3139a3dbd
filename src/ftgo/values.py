"""Value types shared by FTGO's published APIs (text-safe: no NUL, no lone surrogate)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import ConfigDict, Field

from servicewire.messaging import TextSafeModel


class LineItem(TextSafeModel):
    """One line of an order: a menu item and how many."""

    model_config = ConfigDict(frozen=True)

    menu_item_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1000)


class MenuItem(TextSafeModel):
    """One dish on a restaurant's menu."""

    model_config = ConfigDict(frozen=True)

    menu_item_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    price: Decimal = Field(ge=0, max_digits=10, decimal_places=2)


class Address(TextSafeModel):
    """A delivery address."""

    model_config = ConfigDict(frozen=True)

    street: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postcode: str = Field(min_length=1, max_length=20)
