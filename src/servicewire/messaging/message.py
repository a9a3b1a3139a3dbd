"""The message envelope: an immutable id, string headers and a payload of bytes.

A :class:`Message` is what crosses every transport. Its headers are CloudEvents 1.0
context attributes (see :mod:`servicewire.messaging.headers`), so any CloudEvents SDK can read it.
Build one with :meth:`Message.create`; derive a changed copy with :meth:`Message.with_headers`::

    msg = Message.create(
        b'{"orderId": "o-1"}',
        destination="order-service",
        kind=MessageKind.COMMAND,
        type="ftgo.order.ApproveOrder",
        version="1.0.0",
        content_type="application/json",
        partition_key="o-1",
    )
    assert msg.destination == "order-service"
    retried = msg.with_headers(deliveryattempt="2")   # msg itself is unchanged
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar, overload

from servicewire.messaging import headers as h
from servicewire.messaging.ids import new_id

_T = TypeVar("_T")


class MessageKind(enum.StrEnum):
    """The four kinds of message the pattern literature names."""

    DOCUMENT = "document"
    COMMAND = "command"
    EVENT = "event"
    REPLY = "reply"


_second: tuple[int, str] = (-1, "")  # the last second formatted, up to its "."


def utc_now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with microseconds, e.g. ``2026-11-28T07:31:09.123456Z``."""
    # Every message carries one: the date and time are formatted once a second, and only
    # the microseconds per call (a quarter of datetime.strftime's cost).
    global _second
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)
    known, prefix = _second
    if second != known:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _second = (second, prefix)
    return f"{prefix}{micros:06d}Z"


class Headers(Mapping[str, str]):
    """A read-only mapping of header names to string values."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data: dict[str, str] = dict(data) if data else {}

    @classmethod
    def adopt(cls, data: dict[str, str]) -> Headers:
        """Headers over ``data`` itself, not a copy: for a dict the caller has just built
        and hands over, never one it keeps changing. Every decoder and
        :meth:`Message.create` build their headers this way (a copy per message saved)::

            headers = Headers.adopt({"id": "m-1", "type": "ftgo.order.OrderCreated"})
        """
        headers = cls.__new__(cls)
        headers._data = data
        return headers

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    # get and `in` straight from the dict: Mapping's versions go through __getitem__ and
    # an exception per missing name, and a message's accessors call get many times each.
    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | _T) -> str | _T: ...
    def get(self, key: str, /, default: object = None) -> object:
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Headers({self._data!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def to_dict(self) -> dict[str, str]:
        """A new mutable copy."""
        return dict(self._data)

    def view(self) -> MappingProxyType[str, str]:
        """A zero-copy read-only view."""
        return MappingProxyType(self._data)


@dataclass(frozen=True, slots=True)
class Message:
    """One message: ``id``, ``headers`` (CloudEvents attributes and extensions), ``payload``.

    ``headers[ID]`` always equals ``id``. Instances are immutable and hashable by id.
    """

    id: str
    headers: Headers
    payload: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))
        if self.headers.get(h.ID) != self.id:
            data = self.headers.to_dict()
            data[h.ID] = self.id
            object.__setattr__(self, "headers", Headers.adopt(data))
        if not isinstance(self.payload, bytes):
            object.__setattr__(self, "payload", bytes(self.payload))

    def __hash__(self) -> int:
        return hash(self.id)

    @classmethod
    def create(
        cls,
        payload: bytes,
        *,
        destination: str,
        kind: MessageKind | str = MessageKind.DOCUMENT,
        type: str = "",
        version: str = "",
        content_type: str = "application/json",
        source: str = "servicewire",
        partition_key: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        reply_to: str | None = None,
        id: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Message:
        """Build a message with every required CloudEvents attribute filled in."""
        message_id = id or new_id()
        data: dict[str, str] = {
            h.ID: message_id,
            h.SPEC_VERSION: h.CLOUDEVENTS_SPEC_VERSION,
            h.SOURCE: source,
            h.TYPE: type,
            h.CONTENT_TYPE: content_type,
            h.TIME: utc_now_rfc3339(),
            h.DESTINATION: destination,
            h.KIND: str(kind),
        }
        if version:
            data[h.VERSION] = version
        if partition_key is not None:
            data[h.PARTITION_KEY] = partition_key
        if correlation_id is not None:
            data[h.CORRELATION_ID] = correlation_id
        if causation_id is not None:
            data[h.CAUSATION_ID] = causation_id
        if reply_to is not None:
            data[h.REPLY_TO] = reply_to
        if extra:
            data.update(extra)
        return cls(message_id, Headers.adopt(data), payload)

    def with_headers(self, **changes: str | None) -> Message:
        """A copy with headers set (a value of ``None`` removes the header)."""
        data = self.headers.to_dict()
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        return Message(self.id, Headers.adopt(data), self.payload)

    def with_header_map(self, changes: Mapping[str, str | None]) -> Message:
        """Like :meth:`with_headers` for names that are not Python identifiers."""
        return self.with_headers(**dict(changes))

    # Convenience accessors for the standard headers -------------------------------------

    @property
    def destination(self) -> str:
        """The channel this message is addressed to (empty when not set)."""
        return self.headers.get(h.DESTINATION, "")

    @property
    def kind(self) -> str:
        return self.headers.get(h.KIND, str(MessageKind.DOCUMENT))

    @property
    def type(self) -> str:
        return self.headers.get(h.TYPE, "")

    @property
    def version(self) -> str:
        return self.headers.get(h.VERSION, "")

    @property
    def content_type(self) -> str:
        return self.headers.get(h.CONTENT_TYPE, "application/json")

    @property
    def partition_key(self) -> str | None:
        return self.headers.get(h.PARTITION_KEY)

    @property
    def correlation_id(self) -> str | None:
        return self.headers.get(h.CORRELATION_ID)

    @property
    def causation_id(self) -> str | None:
        return self.headers.get(h.CAUSATION_ID)

    @property
    def reply_to(self) -> str | None:
        return self.headers.get(h.REPLY_TO)

    @property
    def size(self) -> int:
        """Approximate wire size: payload plus header names and values."""
        return len(self.payload) + sum(len(k) + len(v) for k, v in self.headers.items())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (payload as latin-1 text is lossless) for journals and DLQ tools."""
        return {"id": self.id, "headers": self.headers.to_dict(), "payload": self.payload}
