"""Trimming shard streams without losing anything a group still needs.

Redis keeps an acked entry in the stream (other groups may not have read it yet), so a
stream grows until someone trims it. A trim is safe when it removes only entries every
consumer group of the stream is done with. For one group that is everything below

- its oldest *pending* entry (delivered to a member, not acked yet), and
- the entry after its *last-delivered-id* (nothing after it was delivered yet),

so the stream is trimmed with ``XTRIM MINID`` at the lowest such id over all its groups::

    trimmed = await trim_streams(client, ["sw:{orders}:s:0", "sw:{orders}:s:1"])
    trimmed                      # {'sw:{orders}:s:0': 120, 'sw:{orders}:s:1': 0}

Three pipelined round trips for any number of streams (``XINFO GROUPS``, ``XPENDING``
for the first pending id of each group that has any, ``XTRIM``), so a member runs it
every ``trim_interval`` seconds, not per message. Racing with consumers is safe: a
group's oldest pending id and last-delivered id only move forward, so a trim point
computed a moment ago is at most too low (it keeps a few entries more). A group created
meanwhile starts at ``$`` (the end), which lies above every trim point. A stream with
no group is left alone: nobody declared who reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    """``b"1700000000000-5"`` -> ``(1700000000000, 5)`` (stream ids order as these pairs)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def after(entry_id: tuple[int, int]) -> tuple[int, int]:
    """The smallest stream id above ``entry_id``."""
    ms, seq = entry_id
    return (ms, seq + 1) if seq < 2**64 - 1 else (ms + 1, 0)


def trim_point(
    groups: Sequence[Mapping[str, Any]], oldest_pending: Mapping[str, tuple[int, int]]
) -> tuple[int, int] | None:
    """The id below which no group needs anything (``None``: do not trim).

    ``groups`` is the ``XINFO GROUPS`` reply; ``oldest_pending`` the first pending id of
    each group that has pending entries::

        trim_point([{"name": b"a", "last-delivered-id": b"9-0"}], {"a": (4, 0)})   # (4, 0)
        trim_point([{"name": b"a", "last-delivered-id": b"9-0"}], {})              # (9, 1)
    """
    if not groups:
        return None
    point: tuple[int, int] | None = None
    for info in groups:
        name = _text(info["name"])
        needed = oldest_pending.get(name) or after(parse_id(info["last-delivered-id"]))
        point = needed if point is None else min(point, needed)
    return point


async def trim_streams(client: Redis, keys: Sequence[str]) -> dict[str, int]:
    """Trim each stream in ``keys`` below what its groups still need; entries removed per key."""
    if not keys:
        return {}
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.xinfo_groups(key)
    infos: list[Any] = await pipe.execute(raise_on_error=False)
    groups = {
        key: info for key, info in zip(keys, infos, strict=True) if isinstance(info, list) and info
    }
    # The first pending id of every group that has pending entries.
    asks = [
        (key, _text(g["name"])) for key, info in groups.items() for g in info if int(g["pending"])
    ]
    oldest: dict[str, dict[str, tuple[int, int]]] = {key: {} for key in groups}
    if asks:
        pipe = client.pipeline(transaction=False)
        for key, group in asks:
            pipe.xpending_range(key, group, "-", "+", 1)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        for (key, group), reply in zip(asks, replies, strict=True):
            if isinstance(reply, Exception):
                groups.pop(key, None)  # a group we cannot read: leave the stream alone
            elif reply:
                oldest[key][group] = parse_id(reply[0]["message_id"])
    points = {key: trim_point(info, oldest[key]) for key, info in groups.items()}
    todo = [(key, point) for key, point in points.items() if point is not None]
    if not todo:
        return {}
    pipe = client.pipeline(transaction=False)
    for key, (ms, seq) in todo:
        # Exact, not ``~``: a trim runs seldom, and an exact one keeps the bound tight.
        pipe.xtrim(key, minid=f"{ms}-{seq}", approximate=False)
    removed: list[Any] = await pipe.execute(raise_on_error=False)
    return {
        key: count for (key, _), count in zip(todo, removed, strict=True) if isinstance(count, int)
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
