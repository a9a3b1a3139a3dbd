"""A small, safe XML renderer for JSON-shaped data (the XML representation of a resource).

Objects become elements named by their keys, lists repeat an ``<item>`` element, and
every text is escaped, so no input can inject markup::

    >>> to_xml({"id": "o-1", "items": [{"qty": 2}]})[38:]
    b'<resource><id>o-1</id><items><item><qty>2</qty></item></items></resource>'

A key that is not a valid XML name (``"1st"``, ``"a b"``) is written as
``<entry key="1st">``. Only rendering lives here: request bodies are JSON.
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape, quoteattr

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
# Characters XML 1.0 forbids even escaped (most C0 controls, surrogates, U+FFFE/FFFF).
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _INVALID.sub("\ufffd", text)


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return escape(_clean(str(value)))


def _element(name: str, value: Any, out: list[str]) -> None:
    if _NAME.match(name) and not name.lower().startswith("xml"):
        open_tag, close_tag = f"<{name}", f"</{name}>"
    else:
        open_tag, close_tag = f"<entry key={quoteattr(_clean(name))}", "</entry>"
    if value is None:
        out.append(open_tag + ' nil="true"/>')
        return
    out.append(open_tag + ">")
    if isinstance(value, dict):
        for key, item in value.items():
            _element(str(key), item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _element("item", item, out)
    else:
        out.append(_text(value))
    out.append(close_tag)


def to_xml(data: Any, root: str = "resource") -> bytes:
    """Render ``data`` (decoded JSON) as a UTF-8 XML document under ``<root>``."""
    out = ['<?xml version="1.0" encoding="utf-8"?>']
    _element(root, data, out)
    return "".join(out).encode()
