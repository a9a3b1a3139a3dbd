"""XML, a text format: one element per field, parsed safely with defusedxml.

    codec = XmlCodec()
    codec.encode(CreateOrder(order_id="o-1", items=["a", "b"], note=None))
    # <CreateOrder><order_id>o-1</order_id><items><item>a</item><item>b</item></items>
    #   <note nil="true"/></CreateOrder>

The layout (see docs/codecs.md): the root element is the last part of the contract's
wire name; each field is a child element named after the field; list items are
``<item>`` children; ``dict[str, X]`` entries are ``<entry key="...">`` children; a nested
model's fields are children of its element; ``None`` is an empty element with
``nil="true"``. Text that XML 1.0 cannot carry (control characters) travels as base64
with ``enc="base64"``.

Safety: documents with a DTD are refused outright, so there is no entity expansion
(billion laughs) and no external entity or DTD retrieval. Tolerant reader: unknown
elements and attributes are ignored; a missing element takes the field's default.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET
from pydantic import BaseModel, ValidationError

from servicewire.codecs._types import MAX_DEPTH, TypeNode, model_info
from servicewire.codecs.base import DEFAULT_MAX_SIZE, C, check_size, validation_error
from servicewire.errors import DecodeError, EncodeError
from servicewire.messaging.contracts import Contract

__all__ = ["XmlCodec", "root_element_name"]

# Characters XML 1.0 cannot represent at all, even as character references.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
_TEXT_SPECIAL = re.compile("[&<>\r]")
_ATTR_SPECIAL = re.compile('[&<>"\r\n\t]')
_TEXT_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
_ATTR_ESCAPES = {**_TEXT_ESCAPES, '"': "&quot;", "\n": "&#10;", "\t": "&#9;"}

Writer = Callable[[Any, str, str, list[str]], None]
Reader = Callable[[Element, int], Any]


class _TooDeep(Exception):
    pass


def root_element_name(cls: type[BaseModel]) -> str:
    """The root element of ``cls``: the last part of its wire name (or its class name)."""
    wire = getattr(cls, "__contract_name__", "") or cls.__name__
    name = _NOT_NAME.sub("_", wire.rsplit(".", 1)[-1]) or "_"
    return name if (name[0].isalpha() or name[0] == "_") else "_" + name


def _escape_text(text: str) -> str:
    if _TEXT_SPECIAL.search(text) is None:
        return text
    return _TEXT_SPECIAL.sub(lambda m: _TEXT_ESCAPES[m.group()], text)


def _escape_attr(text: str) -> str:
    if _ATTR_SPECIAL.search(text) is None:
        return text
    return _ATTR_SPECIAL.sub(lambda m: _ATTR_ESCAPES[m.group()], text)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")


def _unb64(text: str) -> str:
    return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")


def _key_attr(key: str) -> str:
    if _NOT_XML.search(key) is not None:
        return f' key64="{_b64(key)}"'
    return f' key="{_escape_attr(key)}"'


# Leaf text ---------------------------------------------------------------------------------


def _text_fn(node: TypeNode) -> Callable[[Any], str]:
    kind = node.kind
    if kind == "bool":
        return lambda v: "true" if v else "false"
    if kind == "float":
        return repr
    if kind == "enum":
        return lambda v: str(getattr(v, "value", v))
    if kind in ("datetime", "date"):
        return lambda v: v.isoformat()
    if kind in ("str",) or (kind == "literal" and node.literal_kind == "str"):
        return lambda v: v
    return str  # int, decimal, uuid, int literals


class _Plan:
    """The writer and reader of one class, built once from its type tree."""

    def __init__(self, cls: type[BaseModel]) -> None:
        self.root = root_element_name(cls)
        self.writers: dict[type[BaseModel], list[Writer | None]] = {}
        self.readers: dict[type[BaseModel], list[Reader | None]] = {}
        self.write = self.writer(TypeNode("model", model=cls))
        self.read = self.reader(TypeNode("model", model=cls))

    # Writing: dumped python value -> text pieces ----------------------------------------

    def writer(self, node: TypeNode) -> Writer:
        kind = node.kind
        if node.is_leaf:
            to_text = _text_fn(node)
            is_text = kind in ("str", "enum", "literal")

            def write_leaf(v: Any, tag: str, attrs: str, out: list[str]) -> None:
                text = to_text(v)
                if not text:
                    out.append(f"<{tag}{attrs}/>")
                elif is_text and _NOT_XML.search(text) is not None:
                    out.append(f'<{tag}{attrs} enc="base64">{_b64(text)}</{tag}>')
                else:
                    out.append(f"<{tag}{attrs}>{_escape_text(text)}</{tag}>")

            return write_leaf
        if kind == "optional":
            assert node.inner is not None
            inner = self.writer(node.inner)

            def write_optional(v: Any, tag: str, attrs: str, out: list[str]) -> None:
                if v is None:
                    out.append(f'<{tag}{attrs} nil="true"/>')
                else:
                    inner(v, tag, attrs, out)

            return write_optional
        if kind == "list":
            assert node.inner is not None
            item = self.writer(node.inner)

            def write_list(v: Any, tag: str, attrs: str, out: list[str]) -> None:
                out.append(f"<{tag}{attrs}>")
                for x in v:
                    item(x, "item", "", out)
                out.append(f"</{tag}>")

            return write_list
        if kind == "dict":
            assert node.inner is not None
            value = self.writer(node.inner)

            def write_dict(v: Any, tag: str, attrs: str, out: list[str]) -> None:
                out.append(f"<{tag}{attrs}>")
                for k, x in v.items():
                    value(x, "entry", _key_attr(k), out)
                out.append(f"</{tag}>")

            return write_dict
        assert node.model is not None
        return self.model_writer(node.model)

    def model_writer(self, cls: type[BaseModel]) -> Writer:
        cell = self.writers.get(cls)
        if cell is not None:
            pending = cell
            return lambda v, tag, attrs, out: pending[0](v, tag, attrs, out)  # type: ignore[misc]
        cell = [None]
        self.writers[cls] = cell
        fields = [(spec.name, self.writer(spec.node)) for spec in model_info(cls).fields]

        def write_model(v: Any, tag: str, attrs: str, out: list[str]) -> None:
            out.append(f"<{tag}{attrs}>")
            for name, write in fields:
                write(v[name], name, "", out)
            out.append(f"</{tag}>")

        cell[0] = write_model
        return write_model

    # Reading: element -> python value for model_validate --------------------------------

    def reader(self, node: TypeNode) -> Reader:
        kind = node.kind
        if node.is_leaf:
            as_int = kind == "literal" and node.literal_kind == "int"

            def read_leaf(e: Element, depth: int) -> Any:
                if e.get("nil") == "true":
                    return None
                text = e.text or ""
                if e.get("enc") == "base64":
                    text = _unb64(text)
                return int(text) if as_int else text

            return read_leaf
        if kind == "optional":
            assert node.inner is not None
            return self.reader(node.inner)  # nil="true" is honoured by every reader
        if kind == "list":
            assert node.inner is not None
            item = self.reader(node.inner)

            def read_list(e: Element, depth: int) -> Any:
                if e.get("nil") == "true":
                    return None
                if depth > MAX_DEPTH:
                    raise _TooDeep
                return [item(c, depth + 1) for c in e if c.tag == "item"]

            return read_list
        if kind == "dict":
            assert node.inner is not None
            value = self.reader(node.inner)

            def read_dict(e: Element, depth: int) -> Any:
                if e.get("nil") == "true":
                    return None
                if depth > MAX_DEPTH:
                    raise _TooDeep
                out = {}
                for c in e:
                    if c.tag != "entry":
                        continue
                    key = c.get("key")
                    if key is None:
                        key = _unb64(c.get("key64", ""))
                    out[key] = value(c, depth + 1)
                return out

            return read_dict
        assert node.model is not None
        return self.model_reader(node.model)

    def model_reader(self, cls: type[BaseModel]) -> Reader:
        cell = self.readers.get(cls)
        if cell is not None:
            pending = cell
            return lambda e, depth: pending[0](e, depth)  # type: ignore[misc]
        cell = [None]
        self.readers[cls] = cell
        fields: dict[str, Reader] = {}
        for spec in model_info(cls).fields:
            fields[spec.name] = self.reader(spec.node)

        def read_model(e: Element, depth: int) -> Any:
            if e.get("nil") == "true":
                return None
            if depth > MAX_DEPTH:
                raise _TooDeep
            out = {}
            for c in e:
                read = fields.get(c.tag)
                if read is not None:  # unknown elements are ignored (tolerant reader)
                    out[c.tag] = read(c, depth + 1)
            return out

        cell[0] = read_model
        return read_model


_plans: dict[type[BaseModel], _Plan] = {}
_plans_lock = threading.Lock()


def _plan(cls: type[BaseModel]) -> _Plan:
    plan = _plans.get(cls)
    if plan is None:
        with _plans_lock:
            plan = _plans.get(cls)
            if plan is None:
                plan = _Plan(cls)
                _plans[cls] = plan
    return plan


class XmlCodec:
    """``application/xml``: the contract as elements, read with entity expansion off."""

    content_type = "application/xml"
    format_name = "xml"

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size

    def encode(self, value: Contract) -> bytes:
        plan = _plan(type(value))
        out: list[str] = []
        try:
            plan.write(value.model_dump(mode="python"), plan.root, "", out)
            return "".join(out).encode("utf-8")
        except Exception as exc:
            raise EncodeError(
                f"cannot encode {type(value).contract_name()} as xml: {exc}"
            ) from None

    def decode(self, payload: bytes, cls: type[C]) -> C:
        check_size(payload, cls, self.format_name, self.max_size)
        name = cls.contract_name() or cls.__name__
        try:
            plan = _plan(cls)
        except TypeError as exc:
            raise DecodeError(name, self.format_name, f"unsupported contract: {exc}") from None
        try:
            root = SafeET.fromstring(
                bytes(payload), forbid_dtd=True, forbid_entities=True, forbid_external=True
            )
        except Exception as exc:
            position = getattr(exc, "position", None)
            offset = None
            if isinstance(position, tuple) and len(position) == 2:
                offset = _offset(payload, position)
            raise DecodeError(
                name, self.format_name, f"{type(exc).__name__}: {exc}", offset=offset
            ) from None
        if root.tag != plan.root:
            raise DecodeError(
                name,
                self.format_name,
                f"root element is <{root.tag}>, expected <{plan.root}>",
                field=plan.root,
            )
        try:
            data = plan.read(root, 0)
        except _TooDeep:
            raise DecodeError(
                name, self.format_name, f"nesting deeper than {MAX_DEPTH} levels"
            ) from None
        except Exception as exc:
            raise DecodeError(name, self.format_name, f"{type(exc).__name__}: {exc}") from None
        if data is None:
            raise DecodeError(name, self.format_name, "the root element is nil")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise validation_error(cls, self.format_name, exc) from None
        except Exception as exc:
            raise DecodeError(name, self.format_name, str(exc)) from None


def _offset(payload: bytes, position: tuple[int, int]) -> int | None:
    """Byte offset of expat's (line, column) in ``payload``."""
    line, column = position
    try:
        start = 0
        for _ in range(line - 1):
            start = bytes(payload).index(b"\n", start) + 1
        return start + column
    except ValueError:
        return None
