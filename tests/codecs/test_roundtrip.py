"""Every test contract, and every contract in the default registry, through every codec."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis.errors import Unsatisfiable

from servicewire.codecs._types import model_info
from servicewire.messaging.contracts import Contract, default_registry
from tests.codecs.contracts import (
    ALL,
    Address,
    Containers,
    CreateThing,
    Empty,
    Everything,
    LineItem,
    Pinned,
    Status,
    ThingCreated,
    ThingRejected,
)
from tests.codecs.roundtrip import CODECS, assert_roundtrips, assert_roundtrips_all_codecs
from tests.codecs.strategies import FUZZ, SMALL, values_of

EVERYTHING = Everything(
    text="héllo <&> \x01\r\n",  # \x01: XML 1.0 cannot carry it (NUL no contract may)
    number=-(2**63),
    ratio=-0.0,
    flag=True,
    amount=Decimal("-1234.5600"),
    at=datetime(2026, 11, 28, 7, 31, 9, 123456, tzinfo=UTC),
    day=date(1969, 12, 31),
    ident=UUID("01938a6e-7b1c-7def-8123-456789abcdef"),
    status=Status.APPROVED,
    mode="slow",
    maybe=0,
    maybe_text="",
    tags=["", "a", "b c"],
    scores={"": 0, "x": 2**63 - 1},
    address=Address(street="Main St 1", zip=None),
    items=[LineItem(menu_item_id="m1", quantity=2, price=Decimal("9.99"), note="spicy")],
    count=0,
    label="",
    weights=[],
)

EXAMPLES: list[Contract] = [
    EVERYTHING,
    Everything(
        text="",
        number=1,
        ratio=1e300,
        flag=False,
        amount=Decimal("1E+5"),
        at=datetime(1, 1, 2, tzinfo=UTC),
        day=date(9999, 12, 31),
        ident=UUID(int=0),
        status=Status.PENDING,
        mode="fast",
    ),
    Containers(),
    Containers(
        grid=[[1, 2], [], [3]],
        sparse=[None, 0, None, -5],
        maybe_list=[],
        groups={"a": [Address(street="s")], "b": []},
        nested_maps={"x": {"y": 1}, "z": {}},
        days=[date(2020, 2, 29)],
        stamps={"t": datetime(2000, 1, 1, tzinfo=UTC)},
        statuses=[Status.PENDING, Status.APPROVED],
        lucky=3,
        expires=datetime(2030, 5, 6, 7, 8, 9, 10, tzinfo=UTC),
        maybe_day=date(2000, 1, 1),
        maybe_address=Address(street="q"),
        stamp_list=[None, datetime(1960, 1, 1, tzinfo=UTC)],
    ),
    Containers(maybe_list=["only"]),
    CreateThing(thing_id="t-1", address=Address(street="x", city="y", zip="z"), items=[]),
    ThingCreated(thing_id="t-1"),
    ThingRejected(reason="no stock", code=3),
    Empty(),
    Pinned(a="a", b=-1, c=True),
]


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda v: type(v).__name__)
def test_examples_round_trip_every_codec(value: Contract) -> None:
    assert_roundtrips_all_codecs(value)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_generated_values_round_trip_every_codec(cls: type[Contract]) -> None:
    @FUZZ
    @given(values_of(cls))
    def check(value: Contract) -> None:
        for codec in CODECS:
            assert_roundtrips(value, codec)

    check()


def _round_trip_property(cls: type[Contract]) -> Callable[[], None]:
    @SMALL
    @given(values_of(cls))
    def check(value: Contract) -> None:
        for codec in CODECS:
            assert_roundtrips(value, codec)

    return check  # type: ignore[no-any-return]


def test_every_registered_contract_round_trips() -> None:
    """Whatever is in the default registry when the suite runs (FTGO's contracts too)."""
    import importlib

    # FTGO's contract modules, when they exist, so their contracts are covered here.
    for name in ("ftgo.app.openapi", "ftgo.order.api", "ftgo.consumer.api", "ftgo.restaurant.api"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    classes = list(default_registry)
    assert len(classes) >= len(ALL)
    checked = []
    for cls in classes:
        try:
            model_info(cls)
        except TypeError as exc:  # pragma: no cover - a contract with an unsupported type
            pytest.fail(f"{cls.contract_name()} uses a type the codecs do not support: {exc}")

        try:
            _round_trip_property(cls)()
        except Unsatisfiable:
            # Constraints the strategies do not model rejected every generated value.
            continue
        checked.append(cls.contract_name())
    assert "test.codecs.Everything" in checked
