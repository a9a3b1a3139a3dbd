"""Channels, groups and shards (DESIGN section 3).

A *channel* is a named stream of messages. A *group* is a set of competing members
reading a channel: each message goes to one member of each group, and every group
gets every message. A channel is split into *shards* by the hash of the partition key;
within a group a shard has at most one active member at a time, which is how messages
with the same key are handled in order even while members compete::

    shard_for("order-17", 16)      # -> stable number in [0, 16), same in every process
    validate_name("ftgo.order.events", "channel")
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from servicewire.errors import InvalidNameError

if TYPE_CHECKING:
    from servicewire.messaging.contracts import Contract

DEFAULT_SHARDS = 16
"""Shards per channel unless a transport or deployment says otherwise."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


def validate_name(name: str, what: str = "channel") -> str:
    """Return ``name`` if it is a safe channel/group name, else raise :class:`InvalidNameError`.

    Allowed: letters, digits, ``.``, ``_``, ``:``, ``-``; 1 to 200 characters, starting
    with a letter or digit. Names reach broker APIs and SQL identifiers, so the rule is
    an allow-list rather than an escape.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidNameError(
            f"invalid {what} name {name!r}: use 1-200 of A-Z a-z 0-9 . _ : - "
            "starting with a letter or digit"
        )
    return name


def shard_for(key: str | None, shards: int, fallback: str = "") -> int:
    """The shard of ``key`` among ``shards``: CRC-32 of the UTF-8 key, modulo ``shards``.

    CRC-32 rather than ``hash()`` because it is stable across processes and languages.
    Messages without a key are spread by ``fallback`` (normally the message id).
    """
    if shards <= 1:
        return 0
    data = (key if key is not None else fallback).encode()
    return zlib.crc32(data) % shards


def dead_letter_channel(channel: str) -> str:
    """The dead-letter channel paired with ``channel``: ``<channel>.dlq``."""
    return f"{channel}.dlq"


def reply_channel(service: str, instance: str) -> str:
    """A per-instance reply channel for request/response: ``<service>.replies.<instance>``."""
    return f"{service}.replies.{instance}"


_INSTANCE_REPLIES = re.compile(r"^.+\.replies\.[^.]+$")


def is_instance_reply_channel(channel: str) -> bool:
    """Whether ``channel`` is named like one instance's reply channel (:func:`reply_channel`).

    Such a channel lives as long as its instance: transports give it one shard and
    let the broker remove it once its reader is gone (RabbitMQ ``x-expires``, NATS
    inactive thresholds), and a sender never creates it. The name pattern
    ``<anything>.replies.<one segment>`` is therefore reserved::

        is_instance_reply_channel("order-service.replies.3f2a")   # True
        is_instance_reply_channel("order-service.replies")        # False: shared, durable
    """
    # The substring test first: this runs on every publish, and almost always says no.
    return ".replies." in channel and _INSTANCE_REPLIES.match(channel) is not None


def shards_of(channel: str, shards: int) -> int:
    """Shards of ``channel`` when the transport is configured for ``shards``: one for an
    instance reply channel (one reader, nothing to spread), else ``shards``."""
    return 1 if is_instance_reply_channel(channel) else shards


@dataclass(frozen=True)
class ChannelUse:
    """What a service does on one channel: it *sends* (or *receives*) these contracts.

    The input of the AsyncAPI generator (:mod:`servicewire.evolution.generate`).
    :meth:`servicewire.Service.channel_uses` derives them from a service's handlers and
    declared sends; a plain list works as well::

        uses = [
            ChannelUse("order-service", "receive", [CreateOrder, ApproveOrder]),
            ChannelUse("ftgo.order.events", "send", [OrderCreated], description="Order events"),
        ]
    """

    channel: str
    action: Literal["send", "receive"]
    contracts: Sequence[type[Contract]]
    description: str = ""
