"""JSON, the default text format, through Pydantic's Rust JSON parser and serializer.

Tolerant reader: unknown fields are ignored, missing optional fields take defaults::

    codec = JsonCodec()
    codec.decode(b'{"order_id": "o-1", "new_field": 3}', CreateTicket)   # ok
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from servicewire.codecs.base import DEFAULT_MAX_SIZE, C, check_size, validation_error
from servicewire.errors import DecodeError
from servicewire.messaging.contracts import Contract


class JsonCodec:
    """``application/json``: UTF-8 JSON objects whose members are the contract's fields."""

    content_type = "application/json"
    format_name = "json"

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size

    def encode(self, value: Contract) -> bytes:
        return value.__pydantic_serializer__.to_json(value)

    def decode(self, payload: bytes, cls: type[C]) -> C:
        check_size(payload, cls, self.format_name, self.max_size)
        try:
            return cls.__pydantic_validator__.validate_json(payload)  # type: ignore[no-any-return]
        except ValidationError as exc:
            error = validation_error(cls, self.format_name, exc)
            if error.field is None:  # not valid JSON at all: say where parsing stopped
                offset = _json_offset(payload, exc)
                error = DecodeError(error.contract, error.format, error.reason, offset=offset)
            raise error from None
        except (ValueError, TypeError, RecursionError) as exc:
            raise DecodeError(cls.contract_name(), self.format_name, str(exc)) from None


_POSITION = re.compile(r"at line (\d+) column (\d+)")


def _json_offset(payload: bytes, exc: ValidationError) -> int | None:
    """The byte offset where the JSON parser stopped ("line L column C" -> offset)."""
    match = _POSITION.search(str(exc))
    if match is None:
        return None
    line, column = int(match[1]), int(match[2])
    start = 0
    for _ in range(line - 1):
        start = bytes(payload).find(b"\n", start) + 1
        if start == 0:
            return None
    return start + max(column - 1, 0)
