"""Which member of a group reads which shard: live members, eligible shards, assignment.

Pure decisions over what :class:`~.leases.LeaseTable` holds; the subscription acts on
them. Liveness is judged on this member's monotonic clock: a member (or lease) whose
``beat`` has not moved for ``lease_time`` is silent (crashed, paused or partitioned)::

    seen = Observed(lease_time=10)
    live = seen.live_members(state.members, me)            # sorted, me included
    shards = eligible(listing, state.shards)               # parents done, not finished
    mine = assign(shards, live, me)                        # an even, stable split

A shard is *eligible* when it is not finished and each of its parents (split or
merge) is finished for the group, or no longer listed (trimmed): Kinesis' rule that a
child's records come after every record of its parents, as the KCL applies it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from servicewire.transports.kinesis.leases import SHARD_END, LeaseState


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One entry of ListShards."""

    shard: str
    parents: tuple[str, ...]
    ending: str | None
    """The shard's last sequence number once it is closed (``None`` while open)."""

    @classmethod
    def from_listing(cls, raw: dict[str, Any]) -> ShardInfo:
        parents = tuple(
            p for p in (raw.get("ParentShardId"), raw.get("AdjacentParentShardId")) if p
        )
        ending = (raw.get("SequenceNumberRange") or {}).get("EndingSequenceNumber")
        return cls(str(raw["ShardId"]), parents, ending)


class Observed:
    """When this member last saw each beat move (no clock is compared across machines)."""

    def __init__(self, lease_time: float) -> None:
        self.lease_time = lease_time
        self._seen: dict[str, tuple[Any, float]] = {}

    def silent(self, name: str, value: Any) -> bool:
        """Record ``value`` (a beat) of ``name``; whether it has not moved for lease_time."""
        now = time.monotonic()
        before = self._seen.get(name)
        if before is None or before[0] != value:
            self._seen[name] = (value, now)
            return False
        return now - before[1] >= self.lease_time

    def forget(self, keep: set[str]) -> None:
        for name in list(self._seen):
            if name not in keep:
                del self._seen[name]

    def live_members(self, members: dict[str, int], me: str) -> list[str]:
        """Members whose beat moved within lease_time, ``me`` included, sorted."""
        live = {me}
        for member, beat in members.items():
            if not self.silent("member#" + member, beat):
                live.add(member)
        self.forget({"member#" + m for m in members} | {k for k in self._seen if k[:6] == "shard#"})
        return sorted(live)

    def takeable(self, lease: LeaseState | None) -> bool:
        """Whether a lease may be taken: none yet, released, or silent for lease_time."""
        if lease is None or not lease.owner:
            return True
        return self.silent("shard#" + lease.shard, (lease.owner, lease.epoch, lease.beat))


def eligible(listing: list[ShardInfo], leases: dict[str, LeaseState]) -> list[str]:
    """The shards the group may read now, sorted."""
    listed = {info.shard for info in listing}

    def finished(shard: str) -> bool:
        lease = leases.get(shard)
        return lease is not None and lease.checkpoint == SHARD_END

    return sorted(
        info.shard
        for info in listing
        if not finished(info.shard) and all(finished(p) or p not in listed for p in info.parents)
    )


def assign(shards: list[str], members: list[str], me: str) -> set[str]:
    """The shards ``me`` should read: shard ``i`` goes to member ``i mod len(members)``."""
    if me not in members:
        return set()
    index = members.index(me)
    return {s for i, s in enumerate(sorted(shards)) if i % len(members) == index}
