"""Static, DNS and Redis self-registration discovery, with the client-side balancer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from servicewire.discovery import (
    DiscoveryError,
    DnsResolver,
    Instance,
    Locator,
    NoInstancesError,
    RedisRegistry,
    StaticResolver,
)
from tests.services import URLS, require


async def test_static_resolver_and_round_robin() -> None:
    locator = Locator(StaticResolver({"orders": ["127.0.0.1:8001", "http://127.0.0.1:8002"]}))
    picks = [(await locator.pick("orders")).port for _ in range(4)]
    assert picks == [8001, 8002, 8001, 8002]
    with pytest.raises(NoInstancesError, match="'kitchen'"):
        await locator.pick("kitchen")


async def test_locator_skips_failed_instances_while_others_are_healthy() -> None:
    locator = Locator(StaticResolver({"orders": ["127.0.0.1:8001", "127.0.0.1:8002"]}))
    first = await locator.pick("orders")
    locator.mark_failed(first)
    assert {(await locator.pick("orders")).port for _ in range(4)} == {
        8002 if first.port == 8001 else 8001
    }


def test_bad_static_address_is_a_clear_error() -> None:
    with pytest.raises(DiscoveryError, match="not host:port"):
        StaticResolver({"orders": ["localhost"]})


async def test_dns_resolver_uses_the_system_resolver() -> None:
    resolver = DnsResolver(port=9000, hosts={"orders": "localhost"})
    found = await resolver.resolve("orders")
    assert found and all(i.port == 9000 for i in found)
    assert {i.host for i in found} & {"127.0.0.1", "::1"}
    assert await resolver.resolve(f"no-such-{uuid.uuid4().hex}.invalid") == ()


@pytest.fixture
async def registry() -> AsyncIterator[RedisRegistry]:
    require("redis")
    registry = RedisRegistry(URLS["redis"], prefix=f"test-discovery-{uuid.uuid4().hex}")
    yield registry
    await registry.close()


async def test_registered_instance_resolves_and_deregisters_on_shutdown(
    registry: RedisRegistry,
) -> None:
    async with registry.register(Instance("orders", "127.0.0.1", 8001), ttl=5.0) as reg:
        found = await registry.resolve("orders")
        assert [i.port for i in found] == [8001]
        assert found[0].id == reg.instance.id
    assert await registry.resolve("orders") == ()


async def test_heartbeat_keeps_an_instance_alive_beyond_its_ttl(registry: RedisRegistry) -> None:
    async with registry.register(Instance("orders", "127.0.0.1", 8001), ttl=0.9):
        await asyncio.sleep(1.8)  # two TTLs: only the heartbeats keep it
        assert len(await registry.resolve("orders")) == 1


async def test_dead_instance_is_never_returned_after_its_ttl(registry: RedisRegistry) -> None:
    alive = registry.register(Instance("orders", "127.0.0.1", 8001), ttl=5.0)
    dead = registry.register(Instance("orders", "127.0.0.1", 8002), ttl=0.5)
    await alive.start()
    await dead.start()
    try:
        # A long cache on purpose: the TTL, not the refresh, decides what is returned.
        locator = Locator(registry, refresh=60.0)
        await locator.pick("orders")
        assert {i.port for i in await registry.resolve("orders")} == {8001, 8002}
        dead.abandon()  # crashes: no heartbeat, no deregistration
        await asyncio.sleep(0.6)
        for _ in range(20):
            assert (await locator.pick("orders")).port == 8001
            assert [i.port for i in await registry.resolve("orders")] == [8001]
    finally:
        await alive.stop()
        await dead.stop()


async def test_unreachable_registry_is_a_discovery_error() -> None:
    registry = RedisRegistry("redis://user:secret@127.0.0.1:1/0")
    try:
        with pytest.raises(DiscoveryError) as info:
            await registry.resolve("orders")
        assert "secret" not in str(info.value)
    finally:
        await registry.close()
