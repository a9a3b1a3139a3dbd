"""Who is in a Redis Streams group, and which shard leases this member holds.

Every member heartbeats into a sorted set ``<prefix>:members:<channel>:<group>`` (score:
when its heartbeat runs out); members whose heartbeat ran out drop out at the next tick
of anyone. From the live set each member deals the shards with
:func:`~servicewire.transports.sharding.deal` and then, in one Lua call, renews the
leases it holds and takes the free leases of the shards it should own. A lease is what
lets a member read a shard: two members never hold one at once, so views of the live
set may disagree for a moment without breaking per-key order::

    members = Membership(link, "orders", "billing")
    owned, desired = await members.tick()   # every heartbeat interval
    await members.release(3)                # hand shard 3 over once settled
    await members.leave()                   # on close: every lease, and the heartbeat
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from servicewire.errors import TransportError
from servicewire.transports.redis.options import RedisOptions
from servicewire.transports.sharding import deal

RETRYABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, TransportError)
"""Errors that mean "Redis is away for now": loops retry them."""

# KEYS[1] = members sorted set. ARGV = member name, lease TTL in ms. Returns live members.
HEARTBEAT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 4)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# KEYS = lease keys of shards 0..n-1. ARGV = member name, lease TTL in ms, then the
# shards the member should own. Renews the leases it holds, takes the free ones it
# should own; returns the shards it holds now.
LEASE_SCRIPT = """
local member = ARGV[1]
local ttl = tonumber(ARGV[2])
local want = {}
for i = 3, #ARGV do want[tonumber(ARGV[i])] = true end
local owned = {}
for s = 0, #KEYS - 1 do
  local key = KEYS[s + 1]
  local holder = redis.call('GET', key)
  if holder == member then
    redis.call('PEXPIRE', key, ttl)
    owned[#owned + 1] = s
  elseif (not holder) and want[s] then
    redis.call('SET', key, member, 'PX', ttl)
    owned[#owned + 1] = s
  end
end
return owned
"""

# KEYS[1] = lease key, KEYS[2] = shard stream. ARGV = member, group.
# Drops the lease if we hold it, and our consumer entry if nothing is pending with it.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[2], '-', '+', 1, ARGV[1])
if ok and #pending == 0 then
  pcall(redis.call, 'XGROUP', 'DELCONSUMER', KEYS[2], ARGV[2], ARGV[1])
end
return 1
"""


def member_name() -> str:
    """A unique, readable consumer name: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class RedisLink(Protocol):
    """What membership needs from the transport: its client and its options."""

    @property
    def client(self) -> Redis: ...

    @property
    def options(self) -> RedisOptions: ...


class Membership:
    """This member's heartbeat in its group and its leases on the group's shards."""

    def __init__(self, link: RedisLink, channel: str, group: str) -> None:
        self._link = link
        self.channel = channel
        self.group = group
        self.member = member_name()
        opts = link.options
        self._members_key = opts.members(channel, group)
        self._shards = opts.shards_of(channel)
        self._lease_keys = [opts.lease(channel, group, s) for s in range(self._shards)]
        client = link.client
        self._heartbeat = client.register_script(HEARTBEAT_SCRIPT)
        self._lease = client.register_script(LEASE_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    async def tick(self) -> tuple[set[int], set[int]]:
        """Heartbeat and renew or take leases: -> (shards held now, shards to own)."""
        opts = self._link.options
        ttl_ms = int(opts.lease_ttl * 1000)
        live = await self._heartbeat(keys=[self._members_key], args=[self.member, ttl_ms])
        names = [m.decode() if isinstance(m, bytes) else str(m) for m in live]
        desired = deal(names, self._shards, self.member)
        owned = await self._lease(
            keys=self._lease_keys, args=[self.member, ttl_ms, *sorted(desired)]
        )
        return {int(s) for s in owned}, desired

    async def release(self, shard: int) -> None:
        """Give up ``shard``'s lease (if ours) so its next owner takes it at once."""
        await self._release(
            keys=[self._lease_keys[shard], self._link.options.stream(self.channel, shard)],
            args=[self.member, self.group],
        )

    async def leave(self, timeout: float = 5.0) -> None:
        """Release every lease we may hold and drop our heartbeat (best effort).

        The script only drops leases that are ours, so the next member takes the
        shards now rather than after the TTL.
        """
        with contextlib.suppress(*RETRYABLE, RedisError, TimeoutError):
            async with asyncio.timeout(timeout):
                client = self._link.client
                pipe = client.pipeline(transaction=False)
                for shard, lease in enumerate(self._lease_keys):
                    stream = self._link.options.stream(self.channel, shard)
                    await self._release(
                        keys=[lease, stream], args=[self.member, self.group], client=pipe
                    )
                await pipe.execute(raise_on_error=False)
                await client.zrem(self._members_key, self.member)
