"""Self-registration in Redis with TTL heartbeats.

Each instance writes its own entry with a time-to-live and refreshes it every
``ttl / 3`` seconds; on a clean shutdown it deletes the entry, and if it dies the entry
expires by itself, so a resolver never returns an instance that stopped heartbeating
more than ``ttl`` seconds ago (Redis expires the key, not a clock of ours)::

    registry = RedisRegistry("redis://127.0.0.1:6379/0")
    async with registry.register(Instance("orders", "127.0.0.1", 8001), ttl=10.0):
        ...                                          # serving; heartbeats run in the background
    await registry.resolve("orders")                 # live instances only
    await registry.close()

Keys (``prefix`` defaults to ``servicewire:discovery``):
``{prefix}:{service}:members`` is a set of instance ids, ``{prefix}:{service}:i:{id}`` the
instance as JSON with a PX expiry. The set only indexes; an id whose key has expired
is dead and is removed from the set the next time anyone resolves the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from servicewire.discovery.base import DiscoveryError, Instance
from servicewire.timeouts import stop_task
from servicewire.urls import redact, redact_text

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


class RedisRegistry:
    """A service registry in Redis: register instances, resolve live ones."""

    def __init__(self, url: str, *, prefix: str = "servicewire:discovery") -> None:
        from redis.asyncio import Redis  # optional dependency: servicewire[redis]

        self.url = url
        self.prefix = prefix
        self._redis: Redis = Redis.from_url(url)

    def _members(self, service: str) -> str:
        return f"{self.prefix}:{service}:members"

    def _entry(self, service: str, instance_id: str) -> str:
        return f"{self.prefix}:{service}:i:{instance_id}"

    async def close(self) -> None:
        await self._redis.aclose()

    def register(
        self, instance: Instance, *, ttl: float = 10.0, heartbeat: float | None = None
    ) -> Registration:
        """A registration of ``instance``; start it with ``async with`` or ``start()``."""
        if not instance.id:
            instance = Instance(
                instance.service, instance.host, instance.port, uuid.uuid4().hex, instance.metadata
            )
        return Registration(self, instance, ttl=ttl, heartbeat=heartbeat or ttl / 3)

    async def _write(self, instance: Instance, ttl: float) -> None:
        body = json.dumps(
            {"host": instance.host, "port": instance.port, "metadata": instance.metadata}
        )
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._entry(instance.service, instance.id), body, px=int(ttl * 1000))
                pipe.sadd(self._members(instance.service), instance.id)
                await pipe.execute()
        except Exception as exc:
            reason = redact_text(str(exc))
            raise DiscoveryError(f"cannot register in {redact(self.url)}: {reason}") from exc

    async def _remove(self, instance: Instance) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._entry(instance.service, instance.id))
            pipe.srem(self._members(instance.service), instance.id)
            await pipe.execute()

    async def resolve(self, service: str) -> Sequence[Instance]:
        try:
            raw_ids = await self._redis.smembers(self._members(service))
            ids = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids)
            if not ids:
                return ()
            keys = [self._entry(service, i) for i in ids]
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.mget(keys)
                for key in keys:
                    pipe.pttl(key)
                replies = await pipe.execute()
            now = time.monotonic()
            bodies, ttls = replies[0], replies[1:]
        except Exception as exc:
            raise DiscoveryError(
                f"cannot resolve {service!r} in {redact(self.url)}: {exc}"
            ) from exc
        live: list[Instance] = []
        dead: list[str] = []
        for instance_id, body, ttl in zip(ids, bodies, ttls, strict=True):
            if body is None or ttl == -2:
                dead.append(instance_id)
                continue
            data = json.loads(body)
            expires_at = now + ttl / 1000 if ttl >= 0 else None
            live.append(
                Instance(
                    service,
                    data["host"],
                    int(data["port"]),
                    instance_id,
                    data["metadata"],
                    expires_at,
                )
            )
        if dead:
            # Index cleanup only; correctness never depends on it.
            with contextlib.suppress(Exception):
                await self._redis.srem(self._members(service), *dead)
        return tuple(live)


class Registration:
    """One instance's entry in the registry, kept alive by a heartbeat task."""

    def __init__(
        self, registry: RedisRegistry, instance: Instance, *, ttl: float, heartbeat: float
    ) -> None:
        if heartbeat >= ttl:
            raise ValueError("the heartbeat must be shorter than the TTL")
        self.registry = registry
        self.instance = instance
        self.ttl = ttl
        self.heartbeat = heartbeat
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.registry._write(self.instance, self.ttl)
        self._task = asyncio.create_task(self._beat(), name=f"heartbeat {self.instance.key}")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.registry._write(self.instance, self.ttl)
            except DiscoveryError as exc:
                # Keep trying: a registry blip must not take a healthy instance out for good.
                log.warning("heartbeat of %s failed: %s", self.instance.key, exc)

    async def stop(self) -> None:
        """Stop heartbeating and deregister at once (clean shutdown)."""
        if self._task is not None:
            # Cancelled again if a cancel is lost in redis-py's send (see stop_task):
            # the loop has no stop flag and would otherwise heartbeat on forever.
            await stop_task(self._task)
            self._task = None
        with contextlib.suppress(Exception):
            await self.registry._remove(self.instance)

    def abandon(self) -> None:
        """Stop heartbeating WITHOUT deregistering, as a crashed process would (tests)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def __aenter__(self) -> Registration:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
