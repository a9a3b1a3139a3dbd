"""Every relay mode on every database it supports, as one parametrisation.

@pytest.mark.parametrize("case", CASES, ids=str)
async def test_x(case: Case, tmp_path: Path) -> None:
    async with relay_env(case, tmp_path) as env:
        relay = env.relay(transport)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.messaging.message import Message
from servicewire.outbox import write_messages
from servicewire.relay import Relay, create_relay
from servicewire.relay.postgres_wal import PostgresWalRelay
from servicewire.storage.database import create_engine
from servicewire.transports.base import Transport
from tests.relay.dbs import private_database
from tests.relay.helpers import eventually, unique


@dataclass(frozen=True)
class Case:
    kind: str  # sqlite, postgres, mariadb
    mode: str  # polling, postgres-wal, mysql-binlog

    def __str__(self) -> str:
        return f"{self.mode}-{self.kind}"


CASES = [
    Case("sqlite", "polling"),
    Case("postgres", "polling"),
    Case("mariadb", "polling"),
    Case("postgres", "postgres-wal"),
    Case("mariadb", "mysql-binlog"),
]


@dataclass
class RelayEnv:
    case: Case
    url: str
    engine: AsyncEngine
    name: str
    relays: list[Relay] = field(default_factory=list)

    def relay(self, transport: Transport, **options: Any) -> Relay:
        options.setdefault("name", self.name)
        if self.case.mode == "polling":
            options.setdefault("poll_interval", 0.01)
        relay = create_relay(self.case.mode, self.engine, transport, **options)
        self.relays.append(relay)
        return relay

    async def started(self, transport: Transport, **options: Any) -> Relay:
        """A relay that is running and owns its stream (ready to see new commits)."""
        relay = self.relay(transport, **options)
        await relay.start()
        await eventually(lambda: relay.active, 15, f"{self.case} relay to become active")
        return relay

    async def write(self, messages: Sequence[Message], per_tx: int = 1) -> None:
        for i in range(0, len(messages), per_tx):
            async with self.engine.begin() as conn:
                await write_messages(conn, messages[i : i + per_tx])


@contextlib.asynccontextmanager
async def relay_env(case: Case, tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with private_database(case.kind, tmp_path) as url:
        engine = create_engine(url)
        env = RelayEnv(case, url, engine, unique("r").replace(".", "_"))
        try:
            yield env
        finally:
            for relay in env.relays:
                await relay.stop()
            for relay in env.relays:
                if isinstance(relay, PostgresWalRelay):
                    await relay.drop_slot()
                    break
            await engine.dispose()
