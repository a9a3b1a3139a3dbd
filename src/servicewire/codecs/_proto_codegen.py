"""Move values between contract instances and protobuf messages, fast.

Walking a message field by field through generic closures costs more than the protobuf
runtime spends on the bytes. So, once per contract, this module writes the moving code
out as Python source (one small function per message type, the way ``dataclasses``
writes ``__init__``) and compiles it. For a message with fields ``order_id`` and
``lines`` the decoder (message -> dict for validation) reads::

    def _d0(m):
        out = {}
        out['order_id'] = m.order_id
        out['lines'] = [_d1(x) for x in m.lines]
        return out

and the encoder (validated instance -> message)::

    def _e0(v):
        return _C0(order_id=v.order_id, lines=[_e1(y1) for y1 in v.lines])

Field names come from the contract's own identifiers (validated Python names), never
from payload data, so nothing untrusted reaches the generated source.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from servicewire.codecs._proto_schema import TIMESTAMP, ProtoMessage, ProtoSchema, Shape
from servicewire.codecs._types import TypeNode

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _tsd(v: datetime) -> dict[str, int]:
    """A datetime as Timestamp constructor arguments (naive datetimes are taken as UTC)."""
    delta = (v if v.tzinfo is not None else v.replace(tzinfo=UTC)) - _EPOCH
    return {"seconds": delta.days * 86400 + delta.seconds, "nanos": delta.microseconds * 1000}


def _enum_value(v: Any) -> Any:
    return getattr(v, "value", v)


def _ts(t: Any) -> datetime:
    """A Timestamp as an aware UTC datetime (microsecond precision, as Python keeps)."""
    return _EPOCH + timedelta(seconds=t.seconds, microseconds=t.nanos // 1000)


def build_decoder(schema: ProtoSchema) -> Callable[[Any], Any]:
    """The function that reads a root message of ``schema`` into a dict."""
    messages = [schema.root, *schema.nested]
    index = {m.full_name: i for i, m in enumerate(messages)}
    lines: list[str] = []
    for i, msg in enumerate(messages):
        lines += _message_source(i, msg, index)
    namespace: dict[str, Any] = {"_ts": _ts}
    exec(compile("\n".join(lines), f"<protobuf decoder {schema.full_name}>", "exec"), namespace)
    decoder: Callable[[Any], Any] = namespace["_d0"]
    return decoder


def _element(shape: Shape, var: str, index: dict[str, int]) -> str:
    """Expression reading one element held in ``var``."""
    if shape.message == TIMESTAMP:
        return f"_ts({var})"
    if shape.message is not None:
        return f"_d{index[shape.message]}({var})"
    return var


def _value(shape: Shape, var: str, index: dict[str, int]) -> str:
    """Expression reading a value of ``shape`` held in ``var`` (a field, list, map...)."""
    if shape.form in ("element", "box"):
        return _element(shape, var, index)
    assert shape.item is not None
    item = _element(shape.item, "x", index)
    if shape.form == "repeated":
        return f"list({var})" if item == "x" else f"[{item} for x in {var}]"
    return f"dict({var})" if item == "x" else f"{{k: {item} for k, x in {var}.items()}}"


def _message_source(i: int, msg: ProtoMessage, index: dict[str, int]) -> list[str]:
    if msg.cls is None:
        # A box: its single field `value` is the whole value (None when unset and optional).
        (pf,) = msg.fields
        expr = _value(pf.shape, "m.value", index)
        if pf.shape.presence:
            expr = f"({expr} if m.HasField('value') else None)"
        return [f"def _d{i}(m):", f"    return {expr}", ""]
    lines = [f"def _d{i}(m):", "    out = {}"]
    for pf in msg.fields:
        assert pf.spec is not None
        key = repr(pf.spec.name)
        expr = _value(pf.shape, f"m.{pf.name}", index)
        if pf.shape.presence:
            lines.append(f"    if m.HasField({pf.name!r}):")
            lines.append(f"        out[{key}] = {expr}")
            if pf.shape.node.kind == "optional":
                # Unset means None, also for an `X | None` field that has no default.
                lines.append("    else:")
                lines.append(f"        out[{key}] = None")
        else:
            lines.append(f"    out[{key}] = {expr}")
    lines += ["    return out", ""]
    return lines


# Encoding ----------------------------------------------------------------------------------


def build_encoder(schema: ProtoSchema, classes: dict[str, Any]) -> Callable[[Any], Any]:
    """The function that turns a ``schema.root`` model instance into a message.

    ``classes`` maps each message's full name (with the leading dot) to its class.
    """
    messages = [schema.root, *schema.nested]
    index = {m.full_name: i for i, m in enumerate(messages)}
    namespace: dict[str, Any] = {"_tsd": _tsd, "_ev": _enum_value}
    lines: list[str] = []
    for i, msg in enumerate(messages):
        namespace[f"_C{i}"] = classes[msg.full_name]
        lines += _encoder_source(i, msg, index)
    exec(compile("\n".join(lines), f"<protobuf encoder {schema.full_name}>", "exec"), namespace)
    encoder: Callable[[Any], Any] = namespace["_e0"]
    return encoder


class _Names:
    """Fresh comprehension variable names, so nested comprehensions never shadow."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"y{self.n}"


def _leaf_out(node: TypeNode, var: str) -> str:
    kind = node.kind
    if kind in ("decimal", "uuid"):
        return f"str({var})"
    if kind == "date":
        return f"{var}.isoformat()"
    if kind == "enum":
        return f"_ev({var})"
    if kind == "datetime":
        return f"_tsd({var})"
    return var


def _element_out(shape: Shape, var: str, index: dict[str, int]) -> str:
    node = shape.node.inner if shape.node.kind == "optional" else shape.node
    assert node is not None
    if shape.form == "box" or node.kind == "model":
        assert shape.message is not None
        return f"_e{index[shape.message]}({var})"
    return _leaf_out(node, var)


def _out(shape: Shape, var: str, index: dict[str, int], names: _Names) -> str:
    """Expression turning the python value in ``var`` into a constructor argument."""
    if shape.form in ("element", "box"):
        expr = _element_out(shape, var, index)
        nullable = shape.nullable if shape.form == "box" else shape.node.kind == "optional"
        if nullable and expr != var:
            return f"(None if {var} is None else {expr})"
        return expr
    assert shape.item is not None
    y = names()
    item = _out(shape.item, y, index, names)
    if shape.form == "repeated":
        return var if item == y else f"[{item} for {y} in {var}]"
    return var if item == y else f"{{k: {item} for k, {y} in {var}.items()}}"


def _encoder_source(i: int, msg: ProtoMessage, index: dict[str, int]) -> list[str]:
    names = _Names()
    if msg.cls is None:
        (pf,) = msg.fields
        return [
            f"def _e{i}(v):",
            f"    return _C{i}(value={_out(pf.shape, 'v', index, names)})",
            "",
        ]
    args = []
    for pf in msg.fields:
        assert pf.spec is not None
        args.append(f"{pf.name}={_out(pf.shape, f'v.{pf.spec.name}', index, names)}")
    return [f"def _e{i}(v):", f"    return _C{i}({', '.join(args)})", ""]
