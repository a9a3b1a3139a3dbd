"""gRPC requests obey the text rule: no string field may hold NUL or a lone surrogate.

protobuf's parser already refuses string fields that are not UTF-8 (which is how a
lone surrogate would arrive), but takes NUL; the server's request guard refuses both
with INVALID_ARGUMENT, naming the field, before a handler runs::

    unsafe_field(CreateOrderRequest(restaurant_id="r\\x00"))
    # ("restaurant_id", "text must not contain NUL (U+0000); found at character 1")
"""

from __future__ import annotations

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message as ProtoMessage

from servicewire.messaging.text import find_unsafe_text


def unsafe_field(message: ProtoMessage) -> tuple[str, str] | None:
    """The first string of ``message`` (any depth) that may not cross, and why."""
    # As a dict (bytes fields become base64): the one walk every edge uses.
    return find_unsafe_text(MessageToDict(message, preserving_proto_field_name=True))
