"""JSON, the default text format, through Pydantic's Rust JSON parser and serializer.

Tolerant reader: unknown fields are ignored, missing optional fields take defaults::

    codec = JsonCodec()
    codec.decode(b'{"order_id": "o-1", "new_field": 3}', CreateTicket)   # ok
"""

from __future__ import annotations

from pydantic import ValidationError

from servicewire.codecs.base import DEFAULT_MAX_SIZE, C, check_size, validation_error
from servicewire.contracts import Contract
from servicewire.errors import DecodeError


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
            return cls.model_validate_json(payload)
        except ValidationError as exc:
            raise validation_error(cls, self.format_name, exc) from None
        except (ValueError, TypeError, RecursionError) as exc:
            raise DecodeError(cls.contract_name(), self.format_name, str(exc)) from None
