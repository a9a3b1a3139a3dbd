"""Stream and table names: one Kinesis stream and one DynamoDB table per channel.

Kinesis stream names hold letters, digits, ``_``, ``-`` and ``.`` (128 at most);
DynamoDB table names the same (255 at most). Each name is the readable channel text
cut short plus 8 hex digits of the exact name's SHA-256, so two channels that differ
only in characters replaced here never share a stream::

    stream_name("sw-", "orders.v1")   # 'sw-orders.v1-1b2c3d4e'
    table_name("sw-", "orders.v1")    # 'sw-orders.v1-1b2c3d4e.leases'
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_TEXT = 100
LEASES_SUFFIX = ".leases"


def stream_name(prefix: str, channel: str) -> str:
    """The stream of ``channel`` (at most 120 characters)."""
    digest = hashlib.sha256(channel.encode()).hexdigest()[:8]
    return f"{prefix}{_UNSAFE.sub('_', channel)[:_TEXT]}-{digest}"


def stream_prefix(prefix: str, channel_start: str) -> str:
    """The start of the stream name of every channel starting with ``channel_start``
    (and maybe a few more: callers check the channel tag)."""
    return prefix + _UNSAFE.sub("_", channel_start)[:_TEXT]


def table_name(prefix: str, channel: str) -> str:
    """The lease and checkpoint table of ``channel``'s groups."""
    return stream_name(prefix, channel) + LEASES_SUFFIX
