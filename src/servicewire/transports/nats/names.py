"""How Servicewire names map onto NATS JetStream streams, subjects, consumers and keys.

Channel and group names allow ``A-Z a-z 0-9 . _ : -``; stream and consumer names may
not hold ``.`` and KV keys may not hold ``:``. Every name is therefore *encoded* into the
character set all of them accept (``A-Z a-z 0-9 -`` plus ``_XX`` hex escapes), which is
reversible, so two channels never share a stream::

    encode_name("ftgo.order:v1")          # -> 'ftgo_2Eorder_3Av1'
    stream_name("ftgo.orders")            # -> 'SW_ftgo_2Eorders'
    shard_subject("ftgo.orders", 3)       # -> 'sw.ftgo_2Eorders.3'
    consumer_name("billing", 3)           # -> 'billing_s3'

Instance reply channels (``svc.replies.3f2a``, see
:func:`~servicewire.messaging.channels.is_instance_reply_channel`) share one stream,
:data:`REPLY_STREAM`, under subjects ``swr.<channel>.0``, so that nothing of a crashed
instance stays: its consumer goes after an inactive threshold, its replies after the
stream's max age (:data:`REPLY_MAX_AGE`), and no per-instance stream is left behind::

    stream_name("svc.replies.3f2a")                 # -> 'SW_-replies'
    shard_subject("svc.replies.3f2a", 0)            # -> 'swr.svc_2Ereplies_2E3f2a.0'
    durable_name("svc.replies.3f2a", "3f2a", 0)     # -> 'svc_2Ereplies_2E3f2a_g3f2a_s0'
"""

from __future__ import annotations

import hashlib
import re

from servicewire.messaging.channels import is_instance_reply_channel

SUBJECT_PREFIX = "sw"
"""First token of every subject Servicewire publishes to: ``sw.<channel>.<shard>``."""

STREAM_PREFIX = "SW_"
REPLY_STREAM = "SW_-replies"
"""The stream every instance reply channel shares (``-`` never starts an encoded name)."""
REPLY_MAX_AGE = 600.0
"""Seconds a reply waits in :data:`REPLY_STREAM`: one value for every client, since the
first to create the shared stream sets it (a reply nobody read in 10 minutes has no
caller left)."""
REPLY_SUBJECT_PREFIX = "swr"
"""First token of instance reply subjects: ``swr.<channel>.0``."""
MEMBERS_BUCKET = "servicewire_members"
"""The KV bucket where group members keep their leases (one key per live member)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9-]")
_MAX_TOKEN = 120  # stream names become directory names; stay well inside filesystem limits


def encode_name(name: str) -> str:
    """``name`` with every character outside ``A-Z a-z 0-9 -`` written as ``_XX`` (hex)."""
    token = _UNSAFE.sub(lambda m: "".join(f"_{b:02X}" for b in m.group().encode()), name)
    if len(token) > _MAX_TOKEN:
        # '_h' cannot come out of the escaping above ('h' is not a hex digit), so a
        # hashed long name never collides with an escaped short one.
        digest = hashlib.sha256(name.encode()).hexdigest()[:20]
        token = f"{token[:80]}_h{digest}"
    return token


def stream_name(channel: str) -> str:
    """The JetStream stream holding ``channel``."""
    if is_instance_reply_channel(channel):
        return REPLY_STREAM
    return STREAM_PREFIX + encode_name(channel)


def subject_prefix(channel: str) -> str:
    """``sw.<encoded channel>.``: append the shard number to get a subject."""
    first = REPLY_SUBJECT_PREFIX if is_instance_reply_channel(channel) else SUBJECT_PREFIX
    return f"{first}.{encode_name(channel)}."


def shard_subject(channel: str, shard: int) -> str:
    """The subject of one shard of ``channel``."""
    return f"{subject_prefix(channel)}{shard}"


def stream_subjects(channel: str) -> str:
    """The subject filter of ``channel``'s stream: every shard (every reply channel)."""
    if is_instance_reply_channel(channel):
        return f"{REPLY_SUBJECT_PREFIX}.>"
    return f"{subject_prefix(channel)}*"


def consumer_name(group: str, shard: int) -> str:
    """The durable consumer of ``group`` on one shard (unique within the channel's stream)."""
    return f"{encode_name(group)}_s{shard}"


def durable_name(channel: str, group: str, shard: int) -> str:
    """The durable consumer of ``group`` on one shard of ``channel``: unique within its
    stream, which for instance reply channels holds many channels."""
    if is_instance_reply_channel(channel):
        return f"{encode_name(channel)}_g{consumer_name(group, shard)}"
    return consumer_name(group, shard)


def members_prefix(channel: str, group: str) -> str:
    """The KV key prefix under which the members of ``group`` on ``channel`` register."""
    return f"{encode_name(channel)}.{encode_name(group)}"
