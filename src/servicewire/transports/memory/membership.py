"""Who owns which shard of an in-memory group: the live members, dealt the shards.

The broker knows its members directly (no heartbeats, no leases), so a change is dealt
at once with :func:`~servicewire.transports.sharding.owners`, the rule every transport
uses::

    members = Membership[MemorySubscription](16)
    members.join(sub)                 # the shards are dealt again
    members.owner[3]                  # -> the member that reads shard 3 now (or None)
    members.leave(sub)                # -> True if it was a member
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from servicewire.transports.sharding import owners


class Member(Protocol):
    """A member is known by its id; the deal is over ids, so it is the same everywhere."""

    @property
    def member_id(self) -> str: ...


M = TypeVar("M", bound=Member)


class Membership(Generic[M]):
    """The live members of one group, and the owner of each of its shards."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.members: dict[str, M] = {}
        self.owner: list[M | None] = [None] * shards

    def join(self, member: M) -> None:
        self.members[member.member_id] = member
        self._deal()

    def leave(self, member: M) -> bool:
        """Forget ``member``; False if it was not (or no longer) a member."""
        if self.members.pop(member.member_id, None) is None:
            return False
        self._deal()
        return True

    def _deal(self) -> None:
        dealt = owners(self.members, self.shards)
        self.owner = [self.members[member_id] for member_id in dealt] or [None] * self.shards
