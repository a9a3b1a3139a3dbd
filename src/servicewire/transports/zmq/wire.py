"""What the ZeroMQ transport puts on the wire (its URL: :mod:`.options`).

Frames between peers (a DEALER per peer on the sending side, one ROUTER per node on
the receiving side; ``TAG`` is the sender's 8-byte number for one transmission)::

    sender -> receiver   M  member  TAG  attempt  headers(JSON)  payload
    receiver -> sender   R  TAG*            receipts: the peer holds these messages now
    receiver -> sender   A  TAG*            acks: handled, forget them
    receiver -> sender   X  (TAG attempt)*  returned unhandled: route them elsewhere
"""

from __future__ import annotations

import json
import struct

from servicewire.messaging.message import Headers, Message

MSG = b"M"
RECEIPT = b"R"
ACK = b"A"
RETURN = b"X"

_TAG = struct.Struct(">Q")
_TAG_ATTEMPT = struct.Struct(">QI")


# Frames ----------------------------------------------------------------------------------


def encode_message(member: bytes, tag: int, attempt: int, message: Message) -> list[bytes]:
    headers = json.dumps(message.headers.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return [MSG, member, _TAG.pack(tag), str(attempt).encode(), headers.encode(), message.payload]


def decode_message(frames: list[bytes]) -> tuple[bytes, int, int, Message]:
    """(member, tag, attempt, message) from an ``M`` frame set (without the kind frame)."""
    member, tag, attempt, headers, payload = frames
    data: dict[str, str] = json.loads(headers)
    message = Message(data["id"], Headers.adopt(data), payload)
    return member, _TAG.unpack(tag)[0], int(attempt), message


def pack_tags(tags: list[int]) -> bytes:
    return b"".join(_TAG.pack(t) for t in tags)


def unpack_tags(blob: bytes) -> list[int]:
    return [t for (t,) in _TAG.iter_unpack(blob)]


def pack_returns(items: list[tuple[int, int]]) -> bytes:
    return b"".join(_TAG_ATTEMPT.pack(tag, attempt) for tag, attempt in items)


def unpack_returns(blob: bytes) -> list[tuple[int, int]]:
    return list(_TAG_ATTEMPT.iter_unpack(blob))
