"""Dealing a channel's shards to the live members of a group, the same way on every member.

Members that see the same live set compute the same owners without talking to each
other, so the transports that deal shards themselves (AMQP, NATS, Redis, ZeroMQ and the
in-memory broker) all call this one function::

    deal(["b-2", "a-1", "c-3"], 16, "a-1")      # -> {2, 12, 13, 14, 15}: what "a-1" reads
    owners(["a-1", "b-2"], 4)                   # -> ["a-1", "b-2", "b-2", "a-1"] (shard -> member)

The rule is *rendezvous hashing with bounded loads*. Every (shard, member) pair gets a
score from a stable hash of both names; pairs are taken from the highest score down,
and a shard goes to the member of its pair unless that member already holds its fair
share: ``shards // n``, or one more for the first ``shards % n`` members to reach it.

Why this rule rather than round-robin over the sorted ids (``shard % n``, what the
transports used before) or contiguous ranges:

* Deterministic on every member: the hash is BLAKE2b over the names (not Python's
  salted ``hash``), and ties fall back to comparing the names.
* Every shard has exactly one owner, and loads differ by at most one: the caps add up
  to exactly ``shards``, and a member's room only ever shrinks while dealing, so no
  shard is left without a member that has room for it.
* Few shards move when a member joins or leaves. Under round-robin almost every shard
  changes owner when the count changes (``s % n`` and ``s % (n + 1)`` rarely agree);
  under rendezvous hashing a shard keeps its owner unless that owner left or the
  newcomer scores highest for it, so about ``shards / n`` move, plus the few the caps
  push along. Each move costs a hand-over (settle, release, claim), so this matters.
* It needs no state and no history: members that just restarted, or that missed a
  change, reach the same answer as soon as they see the same live set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _score(shard: int, member: str) -> int:
    digest = hashlib.blake2b(f"{shard}\x00{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owners(members: Iterable[str], shards: int) -> list[str]:
    """The owner of each shard (index = shard) among the live ``members``.

    Returns an empty list when there is no member: nobody owns anything.
    """
    live = sorted(set(members))
    if not live or shards <= 0:
        return []
    fair, extra = divmod(shards, len(live))
    pairs = sorted(
        ((_score(shard, member), shard, member) for shard in range(shards) for member in live),
        key=lambda pair: (-pair[0], pair[1], pair[2]),
    )
    owner: list[str | None] = [None] * shards
    load = dict.fromkeys(live, 0)
    left = shards
    for _, shard, member in pairs:
        if owner[shard] is not None:
            continue
        held = load[member]
        if held < fair:
            pass
        elif held == fair and extra > 0:
            extra -= 1
        else:
            continue
        owner[shard] = member
        load[member] = held + 1
        left -= 1
        if left == 0:
            break
    return [member for member in owner if member is not None]


def deal(members: Iterable[str], shards: int, me: str) -> set[int]:
    """The shards ``me`` owns when ``members`` are live (``me`` counts as live too).

    ``me`` is added to the live set: a member always counts itself, even before the
    others have heard of it, so it never computes that it owns nothing.
    """
    return {shard for shard, owner in enumerate(owners({*members, me}, shards)) if owner == me}
