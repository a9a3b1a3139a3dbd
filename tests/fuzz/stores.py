"""FTGO's three services on private databases of one store, for the fuzz suites.

async with ftgo_on("postgres", tmp_path) as system:   # three new databases, dropped after
    ...
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from ftgo.app.system import FtgoSystem
from tests.relay.dbs import private_database


@contextlib.asynccontextmanager
async def ftgo_on(store: str, directory: Path | None = None) -> AsyncIterator[FtgoSystem]:
    """FTGO, started, each service on its own new database of ``store`` (SQLite: files
    in ``directory``)."""
    async with contextlib.AsyncExitStack() as stack:
        dbs = {
            s: await stack.enter_async_context(private_database(store, directory))
            for s in ("order", "consumer", "restaurant")
        }
        system = FtgoSystem.create(
            order_db=dbs["order"],
            consumer_db=dbs["consumer"],
            restaurant_db=dbs["restaurant"],
            transport=f"memory://{uuid.uuid4().hex}",
        )
        async with system:
            yield system
