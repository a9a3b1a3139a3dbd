"""gRPC requests obey the text rule: no string field may hold NUL or a lone surrogate.

protobuf's parser already refuses string fields that are not UTF-8 (which is how a
lone surrogate would arrive), but takes NUL; the server's request guard refuses both
with INVALID_ARGUMENT, naming the field, before a handler runs::

    unsafe_field(CreateOrderRequest(restaurant_id="r\\x00"))
    # ("restaurant_id", "text must not contain NUL (U+0000); found at character 1")
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message as ProtoMessage

from servicewire.messaging.text import text_problem

_SCALARS = (bytes, int, float, bool)


def unsafe_field(message: ProtoMessage) -> tuple[str, str] | None:
    """The first string of ``message`` (any depth) that may not cross, and why."""
    stack: list[tuple[str, Any]] = [("", message)]
    for _ in range(100_000):  # bounded: protobuf nests at most 100 deep
        if not stack:
            return None
        where, value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                return where, problem
        elif isinstance(value, ProtoMessage):
            for field, inner in value.ListFields():
                stack.append((f"{where}.{field.name}" if where else field.name, inner))
        elif isinstance(value, _SCALARS):
            continue
        elif hasattr(value, "items"):  # a map field
            for key, inner in value.items():
                stack.append((f"{where}[key]", key))
                stack.append((f"{where}[{key!a}]", inner))
        else:  # a repeated field
            stack.extend((f"{where}[{i}]", inner) for i, inner in enumerate(value))
    return None
