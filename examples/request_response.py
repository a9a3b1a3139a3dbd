"""Request/response over messaging: ``await service.request(command, timeout=...)``.

The requester sends the command with ``replyto`` = its own instance's reply channel and
a fresh correlation id; the handler answers with ``ctx.reply``, which carries the
correlation id back (Eventuate Tram's scheme). A reply is a success or a failure, and
a failure carries a reason the caller can act on. No reply in time is a clear error.
"""

from __future__ import annotations

import asyncio
import uuid

from servicewire import (
    Command,
    Context,
    FailureReply,
    RequestTimeoutError,
    Service,
    SuccessReply,
)


class CheckCredit(
    Command, name="example.credit.CheckCredit", version="1.0.0", channel="example-credit"
):
    consumer_id: str
    amount: int


class CreditApproved(SuccessReply, name="example.credit.CreditApproved", version="1.0.0"):
    consumer_id: str


class CreditDenied(FailureReply, name="example.credit.CreditDenied", version="1.0.0"):
    consumer_id: str


class Ping(Command, name="example.credit.Ping", version="1.0.0", channel="example-nobody"):
    pass


async def main() -> dict[str, str]:
    broker = f"memory://{uuid.uuid4().hex}"
    credit = Service("credit", transport=broker)

    @credit.handles(CheckCredit)
    async def check(cmd: CheckCredit, ctx: Context) -> None:
        if cmd.amount <= 100:
            await ctx.reply(CreditApproved(consumer_id=cmd.consumer_id))
        else:
            await ctx.reply(
                CreditDenied(consumer_id=cmd.consumer_id, reason=f"{cmd.amount} exceeds 100")
            )

    shop = Service("shop", transport=broker)
    results: dict[str, str] = {}
    async with credit, shop:
        small = await shop.request(CheckCredit(consumer_id="c-1", amount=20), timeout=5)
        results["small"] = type(small).__name__
        big = await shop.request(CheckCredit(consumer_id="c-1", amount=500), timeout=5)
        assert isinstance(big, CreditDenied)
        results["big"] = f"{type(big).__name__}: {big.reason}"
        try:
            await shop.request(Ping(), timeout=0.3)  # nobody handles example-nobody
        except RequestTimeoutError as exc:
            results["nobody"] = str(exc)
    for key, value in results.items():
        print(f"{key}: {value}")
    return results


if __name__ == "__main__":
    asyncio.run(main())
