"""Publish/async responses: one request, replies from several services, until a deadline.

The requester publishes a query event with its reply channel; every quoting service
answers; :meth:`Service.scatter` gathers the replies that arrive before the deadline
(a slow quoter simply misses it).
"""

from __future__ import annotations

import asyncio
import uuid

from servicewire import Context, Event, Service, SuccessReply


class QuoteRequested(
    Event, name="example.quotes.QuoteRequested", version="1.0.0", channel="example.quotes"
):
    item: str


class Quote(SuccessReply, name="example.quotes.Quote", version="1.0.0"):
    vendor: str
    price: float


async def main() -> list[str]:
    broker = f"memory://{uuid.uuid4().hex}"

    def vendor(name: str, price: float, delay: float) -> Service:
        service = Service(name, transport=broker)

        @service.subscribes(QuoteRequested)
        async def quote(evt: QuoteRequested, ctx: Context) -> None:
            await asyncio.sleep(delay)
            await ctx.reply(Quote(vendor=name, price=price))

        return service

    vendors = [vendor("acme", 9.5, 0.0), vendor("globex", 8.75, 0.0), vendor("slowco", 1.0, 3.0)]
    buyer = Service("buyer", transport=broker)
    for v in vendors:
        await v.start()
    async with buyer:
        replies = await buyer.scatter(QuoteRequested(item="widget"), timeout=1.0)
    for v in vendors:
        await v.stop(timeout=0.1)
    quotes = sorted(f"{q.vendor}={q.price}" for q in replies if isinstance(q, Quote))
    print("quotes before the deadline:", quotes)
    return quotes


if __name__ == "__main__":
    asyncio.run(main())
