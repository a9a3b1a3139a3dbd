"""Contracts the codec tests use: together they exercise every supported field type."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from servicewire.messaging.contracts import Command, Document, Event, FailureReply, SuccessReply


class Status(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approval-granted"


class Address(BaseModel):
    street: str
    city: str = "Berlin"
    zip: str | None = None


class LineItem(BaseModel):
    menu_item_id: str
    quantity: int
    price: Decimal
    note: str | None = None


class Everything(Event, name="test.codecs.Everything", version="1.0.0", channel="test-codecs"):
    """One field of every supported type, with and without defaults."""

    text: str
    number: int
    ratio: float
    flag: bool
    amount: Decimal
    at: datetime
    day: date
    ident: UUID
    status: Status
    mode: Literal["fast", "slow"]
    maybe: int | None = None
    maybe_text: str | None = None
    tags: list[str] = []
    scores: dict[str, int] = {}
    address: Address | None = None
    items: list[LineItem] = []
    count: int = 7
    label: str = "default"
    when: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    weights: list[float] = Field(default_factory=lambda: [0.5])


class Containers(Document, name="test.codecs.Containers", version="1.0.0"):
    """Nesting that protobuf must box: lists of lists, nullable items, optional lists."""

    grid: list[list[int]] = []
    sparse: list[int | None] = []
    maybe_list: list[str] | None = None
    groups: dict[str, list[Address]] = {}
    nested_maps: dict[str, dict[str, int]] = {}
    days: list[date] = []
    stamps: dict[str, datetime] = {}
    statuses: list[Status] = []
    lucky: Literal[3, 7] = 7
    expires: datetime | None = None
    maybe_day: date | None = None
    maybe_address: Address | None = None
    stamp_list: list[datetime | None] = []


class CreateThing(
    Command, name="test.codecs.CreateThing", version="1.0.0", channel="things", key="thing_id"
):
    thing_id: str
    address: Address
    items: list[LineItem]


class ThingCreated(SuccessReply, name="test.codecs.ThingCreated", version="1.0.0"):
    thing_id: str


class ThingRejected(FailureReply, name="test.codecs.ThingRejected", version="1.0.0"):
    code: int = 0


class Empty(Event, name="test.codecs.Empty", version="1.0.0", channel="test-codecs"):
    pass


class Pinned(Document, name="test.codecs.Pinned", version="1.0.0"):
    """Protobuf numbers pinned both ways: a Field extra and a ClassVar mapping."""

    __proto_numbers__: ClassVar[dict[str, int]] = {"b": 2}
    a: str = Field("", json_schema_extra={"proto_number": 1})
    b: int = 0
    c: bool = False


# Two MINOR versions of one contract, for evolution tests. 1.0 is the registered reader;
# 1.1 adds a field with a default and stays out of the default registry.
class OrderNoteV1_0(Event, name="test.codecs.OrderNote", version="1.0.0", channel="notes"):
    order_id: str
    note: str = ""
    lines: list[LineItem] = []


class OrderNoteV1_1(
    Event, name="test.codecs.OrderNote", version="1.1.0", channel="notes", register=False
):
    order_id: str
    note: str = ""
    lines: list[LineItem] = []
    priority: int = 5
    courier: Address | None = None


ALL = [
    Everything,
    Containers,
    CreateThing,
    ThingCreated,
    ThingRejected,
    Empty,
    Pinned,
    OrderNoteV1_0,
]
