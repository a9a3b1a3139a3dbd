"""XML: layout, tolerant reading, and hostile documents refused with DecodeError."""

from __future__ import annotations

import pytest

from servicewire.codecs.xml import XmlCodec, root_element_name
from servicewire.errors import DecodeError
from tests.codecs.contracts import Containers, Everything, OrderNoteV1_0
from tests.codecs.test_roundtrip import EVERYTHING

codec = XmlCodec()


def test_layout_root_fields_items_entries_and_nil() -> None:
    note = OrderNoteV1_0(order_id="o-1", note="a<b")
    assert (
        codec.encode(note)
        == b"<OrderNote><order_id>o-1</order_id><note>a&lt;b</note><lines></lines></OrderNote>"
    )
    text = codec.encode(Containers(sparse=[None, 1], nested_maps={"k": {"x": 1}})).decode()
    assert '<sparse><item nil="true"/><item>1</item></sparse>' in text
    assert '<nested_maps><entry key="k"><entry key="x">1</entry></entry></nested_maps>' in text
    assert '<maybe_list nil="true"/>' in text
    assert root_element_name(Everything) == "Everything"


def test_text_xml_cannot_carry_travels_as_base64() -> None:
    text = codec.encode(EVERYTHING).decode()
    assert '<text enc="base64">' in text
    assert codec.decode(codec.encode(EVERYTHING), Everything) == EVERYTHING


def test_tolerant_reader_ignores_unknown_and_defaults_missing() -> None:
    payload = (
        b'<OrderNote version="9"><surprise><deep>1</deep></surprise>'
        b"<order_id>o-2</order_id><lines><item><menu_item_id>m</menu_item_id>"
        b"<quantity>1</quantity><price>2.50</price><colour>red</colour></item>"
        b"<bogus/></lines></OrderNote>"
    )
    note = codec.decode(payload, OrderNoteV1_0)
    assert note.order_id == "o-2" and note.note == ""
    assert len(note.lines) == 1 and str(note.lines[0].price) == "2.50"


def test_xml_declaration_and_whitespace_text_are_accepted() -> None:
    payload = (
        b'<?xml version="1.0" encoding="utf-8"?>\n<OrderNote><order_id> o </order_id></OrderNote>'
    )
    assert codec.decode(payload, OrderNoteV1_0).order_id == " o "


def test_missing_required_field_names_it() -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(b"<OrderNote><note>x</note></OrderNote>", OrderNoteV1_0)
    assert info.value.field == "order_id"


def test_wrong_root_element_is_refused() -> None:
    with pytest.raises(DecodeError, match="expected <OrderNote>"):
        codec.decode(b"<Other><order_id>o</order_id></Other>", OrderNoteV1_0)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<OrderNote><order_id>&lol9;</order_id></OrderNote>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<OrderNote><order_id>&xxe;</order_id></OrderNote>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE OrderNote SYSTEM "http://127.0.0.1:9/evil.dtd">
<OrderNote><order_id>o</order_id></OrderNote>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY % pe SYSTEM "file:///etc/passwd"> %pe;]>
<OrderNote><order_id>o</order_id></OrderNote>"""

UNDEFINED_ENTITY = b"<OrderNote><order_id>&nope;</order_id></OrderNote>"


@pytest.mark.parametrize(
    "payload",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY, UNDEFINED_ENTITY],
    ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "undefined"],
)
def test_hostile_documents_are_refused(payload: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(payload, OrderNoteV1_0)
    assert info.value.format == "xml"
    assert "passwd" not in str(info.value) or "root:" not in str(info.value)


def test_deep_nesting_inside_the_document_is_harmless() -> None:
    depth = 100_000
    payload = b"<OrderNote><order_id>o</order_id><junk>" + b"<a>" * depth + b"</a>" * depth
    payload += b"</junk></OrderNote>"
    assert len(payload) < codec.max_size
    assert codec.decode(payload, OrderNoteV1_0).order_id == "o"


def test_deep_nesting_along_the_schema_is_refused() -> None:
    depth = 200
    payload = (
        b"<Containers><grid>"
        + b"<item>" * depth
        + b"1"
        + b"</item>" * depth
        + b"</grid></Containers>"
    )
    with pytest.raises(DecodeError):
        codec.decode(payload, Containers)


def test_malformed_document_reports_an_offset() -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(b"<OrderNote>\n<order_id>o</order_id", OrderNoteV1_0)
    assert info.value.offset is not None


def test_bad_base64_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        codec.decode(b'<OrderNote><order_id enc="base64">!!</order_id></OrderNote>', OrderNoteV1_0)
