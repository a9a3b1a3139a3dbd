"""A private key prefix on the shared Redis, for tests that start services on it.

async with redis_prefix_url("test-dlq") as url:   # redis://...?prefix=test-dlq-<hex>
    ...                                            # every key under it deleted after
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from tests.services import URLS, require


@contextlib.asynccontextmanager
async def redis_prefix_url(tag: str) -> AsyncIterator[str]:
    require("redis")
    prefix = f"{tag}-{uuid.uuid4().hex[:10]}"
    try:
        yield f"{URLS['redis']}?prefix={prefix}"
    finally:
        client = Redis.from_url(URLS["redis"])
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
