"""Asynchronous request/response: the reply is handled by a reply handler, later.

The requester does not wait: it records what it asked for, sends the command in the
same transaction, and a reply handler finishes the job when the answer arrives (even
after a restart of the requester). FTGO's order validation works this way.
"""

from __future__ import annotations

import asyncio
import uuid

from servicewire import Command, Context, FailureReply, Service, SuccessReply


class ReserveTable(
    Command,
    name="example.booking.ReserveTable",
    version="1.0.0",
    channel="example-tables",
    key="booking_id",
):
    booking_id: str
    guests: int


class TableReserved(SuccessReply, name="example.booking.TableReserved", version="1.0.0"):
    booking_id: str
    table: int


class NoTableFree(FailureReply, name="example.booking.NoTableFree", version="1.0.0"):
    booking_id: str


async def main() -> dict[str, str]:
    broker = f"memory://{uuid.uuid4().hex}"
    bookings: dict[str, str] = {}

    restaurant = Service("tables", transport=broker)

    @restaurant.handles(ReserveTable)
    async def reserve(cmd: ReserveTable, ctx: Context) -> None:
        if cmd.guests <= 6:
            await ctx.reply(TableReserved(booking_id=cmd.booking_id, table=cmd.guests + 10))
        else:
            await ctx.reply(NoTableFree(booking_id=cmd.booking_id, reason="no table for 7+"))

    front_desk = Service("front-desk", transport=broker)

    @front_desk.on_reply(TableReserved)
    async def reserved(reply: TableReserved, ctx: Context) -> None:
        bookings[reply.booking_id] = f"table {reply.table}"

    @front_desk.on_reply(NoTableFree)
    async def refused(reply: NoTableFree, ctx: Context) -> None:
        bookings[reply.booking_id] = f"refused: {reply.reason}"

    async with restaurant, front_desk:
        for booking, guests in (("b-1", 2), ("b-2", 9)):
            async with front_desk.transaction() as ctx:
                bookings[booking] = "pending"  # a real service would insert a row here
                await ctx.send(ReserveTable(booking_id=booking, guests=guests))
        for _ in range(300):
            if "pending" not in bookings.values():
                break
            await asyncio.sleep(0.01)
    print(bookings)
    return bookings


if __name__ == "__main__":
    asyncio.run(main())
