"""Message ids (UUIDv7) and the CloudEvents ``time`` attribute, made on every send."""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import UTC, datetime

import pytest

from servicewire.messaging import ids
from servicewire.messaging.ids import id_timestamp_ms, new_id, new_uuid7
from servicewire.messaging.message import Headers, utc_now_rfc3339

RANDOM_BITS = (1 << 62) - 1


def test_an_id_is_a_canonical_version_7_uuid_of_now() -> None:
    before = time.time_ns() // 1_000_000
    made = [new_id() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower-case, dashed, 36 characters
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        # The counter may borrow a few milliseconds ahead when ids come faster than 4,096/ms.
        assert before <= id_timestamp_ms(text) <= after + 5
    assert new_uuid7().version == 7


def test_ids_of_one_process_strictly_increase() -> None:
    made = [new_id() for _ in range(50_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_a_stopped_clock_still_gives_increasing_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    # Past the 4,096 ids one millisecond's counter holds, ids borrow the next millisecond.
    frozen = time.time_ns()
    monkeypatch.setattr(ids.time, "time_ns", lambda: frozen)
    made = [new_id() for _ in range(10_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_random_bits_are_never_shared_with_a_forked_child() -> None:
    new_id()  # the parent holds a pool of random bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids' random parts, then out without cleanup
        try:
            os.write(write, " ".join(new_id() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent = [new_id() for _ in range(50)]
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode().split()
    os.waitpid(pid, 0)
    assert len(child) == 50

    def randoms(made: list[str]) -> set[int]:
        return {uuid.UUID(text).int & RANDOM_BITS for text in made}

    assert not randoms(parent) & randoms(child)


def test_time_is_rfc_3339_utc_with_microseconds() -> None:
    text = utc_now_rfc3339()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 1


def test_time_is_right_across_a_second_and_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    # The date and time are formatted once a second: each new second must be seen.
    instants = [
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 0, 0, 0, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 0, 1, 500_000, tzinfo=UTC),
    ]
    for instant in instants:
        micros = int(instant.timestamp()) * 1_000_000 + instant.microsecond
        monkeypatch.setattr(time, "time_ns", lambda m=micros: m * 1000 + 999)
        assert utc_now_rfc3339() == instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_headers_get_and_membership() -> None:
    headers = Headers({"type": "ftgo.Order", "empty": ""})
    assert headers.get("type") == "ftgo.Order"
    assert headers.get("empty") == ""
    assert headers.get("missing") is None
    assert headers.get("missing", "fallback") == "fallback"
    assert "type" in headers and "missing" not in headers and 3 not in headers
