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
# Random bits come from os.urandom in 4 KiB draws, 10 bytes an id: one system call per
# ~400 ids instead of one or two per id (a message id is made for every message sent).
_POOL_BYTES = 4096
_DRAW = 10  # 62 random bits, and 10 more to start a millisecond's counter
_pool = b""
_taken = 0


def _forget_pool() -> None:
    """In a forked child: never reuse random bits the parent may use too."""
    global _pool, _taken, _last_ms, _counter
    _pool, _taken, _last_ms, _counter = b"", 0, 0, 0


os.register_at_fork(after_in_child=_forget_pool)


def _random_bits() -> int:
    """80 random bits (call holding ``_lock``)."""
    global _pool, _taken
    if _taken + _DRAW > len(_pool):
        _pool, _taken = os.urandom(_POOL_BYTES), 0
    start = _taken
    _taken = start + _DRAW
    return int.from_bytes(_pool[start : start + _DRAW], "big")


def _new_value() -> int:
    """The 128 bits of a new UUIDv7: 48-bit Unix milliseconds, 12-bit counter, 62 random."""
    global _last_ms, _counter
    with _lock:
        bits = _random_bits()
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = (bits >> 64) & 0x3FF  # a random start, with headroom
        counter = _counter
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    return value | (bits & 0x3FFF_FFFF_FFFF_FFFF)


def new_uuid7() -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, 12-bit counter, 62 random bits."""
    return uuid.UUID(int=_new_value())


def new_id() -> str:
    """A new UUIDv7 as its canonical 36-character string."""
    # Formatted here: what str(uuid.UUID(int=...)) gives, without its checks and object.
    x = f"{_new_value():032x}"
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def id_timestamp_ms(message_id: str) -> int:
    """The Unix millisecond timestamp embedded in a UUIDv7 string."""
    return uuid.UUID(message_id).int >> 80
