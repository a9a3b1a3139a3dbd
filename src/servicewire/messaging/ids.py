"""Time-ordered unique ids (UUID version 7, RFC 9562).

Ids sort by creation time, which keeps outbox and inbox indexes compact and makes logs
readable. Within one millisecond a 12-bit counter keeps ids from one process strictly
increasing::

    >>> a, b = new_id(), new_id()
    >>> a < b
    True
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_uuid7() -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, 12-bit counter, 62 random bits."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave headroom
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand
    return uuid.UUID(int=value)


def new_id() -> str:
    """A new UUIDv7 as its canonical 36-character string."""
    return str(new_uuid7())


def id_timestamp_ms(message_id: str) -> int:
    """The Unix millisecond timestamp embedded in a UUIDv7 string."""
    return uuid.UUID(message_id).int >> 80
