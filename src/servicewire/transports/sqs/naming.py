"""Queue names: one SQS queue per (channel, group), found again by a name prefix.

SQS queue names hold letters, digits, ``-`` and ``_`` (80 at most, ``.fifo`` included),
so a channel such as ``orders.v1`` cannot be used as is. Each name part is the
readable text cut short plus 8 hex digits of the exact name's SHA-256, so ``a.b`` and
``a_b`` never share a queue, and every group queue of a channel starts with the same
prefix, which is what ``ListQueues(QueueNamePrefix=...)`` finds::

    queue_name("sw-", "orders.v1", "billing", fifo=True)
    # 'sw-orders_v1-1b2c3d4e__billing-5f6a7b8c.fifo'
    channel_prefix("sw-", "orders.v1")
    # 'sw-orders_v1-1b2c3d4e__'
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_CHANNEL_TEXT = 26
_GROUP_TEXT = 19


def _part(name: str, keep: int) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', name)[:keep]}-{digest}"


def channel_prefix(prefix: str, channel: str) -> str:
    """The start shared by every group queue of ``channel``, and by no other channel's."""
    return f"{prefix}{_part(channel, _CHANNEL_TEXT)}__"


def queue_name(prefix: str, channel: str, group: str, *, fifo: bool) -> str:
    """The queue of ``group`` on ``channel`` (at most 80 characters)."""
    name = channel_prefix(prefix, channel) + _part(group, _GROUP_TEXT)
    return name + ".fifo" if fifo else name


def search_prefix(prefix: str, channel_start: str) -> str:
    """A ``QueueNamePrefix`` that lists the queues of every channel starting with
    ``channel_start`` (and maybe a few more: callers check the tags)."""
    return prefix + _UNSAFE.sub("_", channel_start)[:_CHANNEL_TEXT]
