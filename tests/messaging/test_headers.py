"""Headers: a read-only mapping; adopt() wraps a dict without copying it."""

from __future__ import annotations

import pytest

from servicewire.messaging.message import Headers, Message


def test_headers_copy_what_they_are_given() -> None:
    data = {"id": "m-1", "type": "t"}
    headers = Headers(data)
    data["type"] = "changed"
    assert headers["type"] == "t"


def test_adopted_headers_are_the_dict_they_were_given() -> None:
    data = {"id": "m-1", "type": "t"}
    headers = Headers.adopt(data)
    assert headers == {"id": "m-1", "type": "t"}
    assert headers.get("type") == "t"
    assert "id" in headers
    assert len(headers) == 2
    assert headers.to_dict() is not data  # a copy out, as from any Headers
    with pytest.raises(TypeError):
        headers["type"] = "x"  # type: ignore[index]


def test_a_message_over_adopted_headers_keeps_its_id_rule() -> None:
    # Message still puts its id into headers that lack it (or carry another one).
    message = Message("m-2", Headers.adopt({"type": "t"}), b"")
    assert message.headers["id"] == "m-2"
    other = Message("m-3", Headers.adopt({"id": "m-9"}), b"")
    assert other.headers["id"] == "m-3"
