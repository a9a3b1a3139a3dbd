"""Publish/subscribe of domain events: a channel per aggregate type, key = aggregate id.

Every subscribing service gets every event (a group each); instances of one service
compete for them, and events of one aggregate are handled in order because they share
a partition key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

from servicewire import Context, Event, Service, ServiceOptions


class AccountEvent(
    Event,
    name="example.accounts.AccountEvent",
    version="1.0.0",
    channel="example.accounts",
    key="account_id",
):
    account_id: str
    seq: int


async def main() -> dict[str, object]:
    broker = f"memory://{uuid.uuid4().hex}"
    seen: dict[str, list[int]] = defaultdict(list)
    audit_count = 0

    def statements(instance: str) -> Service:
        service = Service(
            "statements", transport=broker, options=ServiceOptions(instance_id=instance)
        )

        @service.subscribes(AccountEvent)
        async def on_event(evt: AccountEvent, ctx: Context) -> None:
            await asyncio.sleep(0.001)  # some work, so instances really overlap
            seen[evt.account_id].append(evt.seq)

        return service

    audit = Service("audit", transport=broker)

    @audit.subscribes(AccountEvent)
    async def audit_event(evt: AccountEvent, ctx: Context) -> None:
        nonlocal audit_count
        audit_count += 1

    bank = Service("bank", transport=broker)
    instances = [statements("s1"), statements("s2")]
    async with instances[0], instances[1], audit, bank:
        async with bank.transaction() as ctx:
            for seq in range(20):
                for account in ("acc-1", "acc-2", "acc-3"):
                    await ctx.publish(AccountEvent(account_id=account, seq=seq))
        for _ in range(500):
            if audit_count >= 60 and sum(len(v) for v in seen.values()) >= 60:
                break
            await asyncio.sleep(0.01)
    in_order = all(v == sorted(v) and len(v) == 20 for v in seen.values())
    print(f"statements saw each account's 20 events in order: {in_order}; audit saw {audit_count}")
    return {"in_order": in_order, "audit": audit_count}


if __name__ == "__main__":
    asyncio.run(main())
