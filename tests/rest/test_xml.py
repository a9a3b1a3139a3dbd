"""The XML renderer never produces markup from data, nor ill-formed documents."""

from __future__ import annotations

from xml.etree import ElementTree

from hypothesis import given, settings
from hypothesis import strategies as st

from servicewire.rest.xml import to_xml

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def test_hostile_keys_and_values_stay_text() -> None:
    doc = to_xml({"</x><evil>": "<script>&", "xmlns": "a", "ok": [1, None, True]})
    root = ElementTree.fromstring(doc)
    entry = root.find("entry")
    assert entry is not None and entry.get("key") == "</x><evil>" and entry.text == "<script>&"
    assert root.find("evil") is None
    assert [i.text for i in root.findall("ok/item")] == ["1", None, "true"]


@settings(max_examples=60, deadline=None)
@given(_json)
def test_any_json_value_renders_well_formed(value: object) -> None:
    document = ElementTree.fromstring(to_xml(value))  # raises on malformed XML
    assert document.tag
