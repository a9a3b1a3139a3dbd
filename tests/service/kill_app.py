"""A consumer process for the SIGKILL test: applies Increment commands to PostgreSQL.

Run as ``python -m tests.service.kill_app`` with SW_DB, SW_TRANSPORT and SW_CHANNEL set.
The handler sleeps after its insert, so a kill often lands mid-handler.
"""

from __future__ import annotations

import asyncio
import os
import random

from sqlalchemy import Column, Integer, MetaData, String, Table

from servicewire import Command, Context, Service, ServiceOptions

app = MetaData()
applied = Table(
    "kill_applied",
    app,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
)


class Increment(Command, name="test.kill.Increment", version="1.0.0", channel="test-kill"):
    n: int


def build() -> Service:
    service = Service(
        "kill-consumer",
        db=os.environ["SW_DB"],
        transport=os.environ["SW_TRANSPORT"],
        options=ServiceOptions(tables=[app], relay=False, concurrency=8),
    )

    @service.handles(Increment, channel=os.environ.get("SW_CHANNEL", "test-kill"))
    async def increment(cmd: Increment, ctx: Context) -> None:
        assert ctx.message is not None
        await ctx.session.execute(applied.insert().values(message_id=ctx.message.id))
        await asyncio.sleep(random.random() * 0.02)

    return service


if __name__ == "__main__":
    asyncio.run(build().run())
