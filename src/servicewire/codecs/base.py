"""The codec contract: turn a contract value into bytes of one format and back.

A codec is selected by the message's content type. Every codec raises exactly one
error on bad input, :class:`~servicewire.errors.DecodeError`, naming the contract, the
format and the field or byte offset; no other exception escapes ``decode``::

    codec = JsonCodec(max_size=64 * 1024)
    data = codec.encode(CreateTicket(order_id="o-1"))
    assert codec.decode(data, CreateTicket).order_id == "o-1"
"""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

from pydantic import ValidationError

from servicewire.errors import DecodeError
from servicewire.messaging.contracts import Contract

C = TypeVar("C", bound=Contract)

DEFAULT_MAX_SIZE = 1024 * 1024
"""Default payload size limit for decoding: 1 MiB."""


@runtime_checkable
class Codec(Protocol):
    """One message format."""

    content_type: str
    """The media type this codec reads and writes, e.g. ``application/json``."""
    format_name: str
    """Short name used in errors and docs: ``json``, ``xml``, ``protobuf``, ``avro``."""
    max_size: int
    """Payloads larger than this many bytes are refused by ``decode``."""

    def encode(self, value: Contract) -> bytes:
        """Serialize ``value``."""
        ...

    def decode(self, payload: bytes, cls: type[C]) -> C:
        """Parse ``payload`` as ``cls``; raise :class:`DecodeError` on any bad input."""
        ...


def check_size(payload: bytes, cls: type[Contract], fmt: str, max_size: int) -> None:
    """Refuse oversized or non-bytes payloads before any parsing work."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise DecodeError(cls.contract_name() or cls.__name__, fmt, "payload is not bytes")
    if len(payload) > max_size:
        raise DecodeError(
            cls.contract_name() or cls.__name__,
            fmt,
            f"payload of {len(payload)} bytes exceeds the limit of {max_size} bytes",
        )


def validation_error(cls: type[Contract], fmt: str, exc: ValidationError) -> DecodeError:
    """Turn Pydantic's error into our :class:`DecodeError`, naming the first bad field."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else None
    field = ".".join(str(p) for p in first["loc"]) if first and first["loc"] else None
    reason = first["msg"] if first else str(exc)
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more)"
    return DecodeError(cls.contract_name() or cls.__name__, fmt, reason, field=field)


def normalize_content_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return content_type.split(";", 1)[0].strip().lower()
