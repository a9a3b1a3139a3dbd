"""Tolerant readers across MINOR versions, the same in every format."""

from __future__ import annotations

from decimal import Decimal

import pytest

from servicewire.codecs import Codec
from servicewire.codecs.avro import AvroCodec, SchemaStore
from tests.codecs.contracts import Address, LineItem, OrderNoteV1_0, OrderNoteV1_1
from tests.codecs.roundtrip import CODECS

LINES = [LineItem(menu_item_id="m", quantity=1, price=Decimal("2.50"), note=None)]


def _codec(codec: Codec) -> Codec:
    if isinstance(codec, AvroCodec):
        # A store that knows the newer version, as a reader configured with its schema.
        store = SchemaStore()
        store.add_contract(OrderNoteV1_1)
        return AvroCodec(store=store)
    return codec


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.format_name)
def test_older_reader_ignores_fields_it_does_not_know(codec: Codec) -> None:
    codec = _codec(codec)
    newer = OrderNoteV1_1(
        order_id="o-1", note="n", lines=LINES, priority=1, courier=Address(street="s")
    )
    assert codec.decode(codec.encode(newer), OrderNoteV1_0) == OrderNoteV1_0(
        order_id="o-1", note="n", lines=LINES
    )


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.format_name)
def test_newer_reader_fills_defaults_for_fields_the_writer_lacked(codec: Codec) -> None:
    codec = _codec(codec)
    older = OrderNoteV1_0(order_id="o-1", lines=LINES)
    newer = codec.decode(codec.encode(older), OrderNoteV1_1)
    assert newer == OrderNoteV1_1(order_id="o-1", lines=LINES)
    assert newer.priority == 5 and newer.courier is None
