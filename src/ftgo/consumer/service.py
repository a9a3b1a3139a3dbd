"""Consumer Service: consumers, their order limits, and ValidateConsumerInfo.

service = create_consumer_service(db="sqlite:///consumer.db", transport="memory://")
async with service:
    consumer = await create_consumer(service, name="Ada", order_limit=Decimal("100"))
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Boolean, Column, MetaData, Numeric, String, Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ftgo.consumer.api import (
    ConsumerCreated,
    ConsumerValidated,
    ConsumerValidationFailed,
    ValidateConsumerInfo,
)
from servicewire import Context, Service, ServiceOptions, new_id
from servicewire.transports import Transport

NAME = "consumer-service"

metadata = MetaData()
consumers = Table(
    "ftgo_consumers",
    metadata,
    Column("consumer_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("order_limit", Numeric(12, 2), nullable=False),
)


class Consumer(BaseModel):
    consumer_id: str
    name: str
    active: bool
    order_limit: Decimal


def check_consumer(consumer: Consumer | None, consumer_id: str, total: Decimal) -> str | None:
    """Why this consumer may not place an order of ``total``, or ``None`` if they may."""
    if consumer is None:
        return f"consumer {consumer_id} does not exist"
    if not consumer.active:
        return f"consumer {consumer_id} is not active"
    if total > consumer.order_limit:
        return f"order total {total} exceeds the consumer's limit of {consumer.order_limit}"
    return None


# Built once: every ValidateConsumerInfo runs it, with SQLAlchemy's compiled form reused.
_SELECT_CONSUMER = select(consumers).where(consumers.c.consumer_id == bindparam("key"))


async def load_consumer(conn: Any, consumer_id: str) -> Consumer | None:
    row = (await conn.execute(_SELECT_CONSUMER, {"key": consumer_id})).mappings().first()
    return Consumer(**row) if row is not None else None


def create_consumer_service(
    db: str | AsyncEngine, transport: str | Transport, options: ServiceOptions | None = None
) -> Service:
    """The Consumer Service with its handler registered (not yet started)."""
    base = options or ServiceOptions()
    own = replace(base, tables=(*base.tables, metadata))
    service = Service(NAME, db=db, transport=transport, options=own)
    service.sends(ConsumerValidated, ConsumerValidationFailed, ConsumerCreated)

    @service.handles(ValidateConsumerInfo)
    async def validate_consumer_info(cmd: ValidateConsumerInfo, ctx: Context) -> None:
        consumer = await load_consumer(ctx.connection, cmd.consumer_id)
        reason = check_consumer(consumer, cmd.consumer_id, cmd.order_total)
        if reason is None:
            await ctx.reply(ConsumerValidated(consumer_id=cmd.consumer_id, order_id=cmd.order_id))
        else:
            await ctx.reply(
                ConsumerValidationFailed(
                    consumer_id=cmd.consumer_id, order_id=cmd.order_id, reason=reason
                )
            )

    return service


async def create_consumer(
    service: Service, *, name: str, order_limit: Decimal, active: bool = True
) -> Consumer:
    """Add a consumer and publish ConsumerCreated, in one transaction."""
    consumer = Consumer(consumer_id=new_id(), name=name, active=active, order_limit=order_limit)
    async with service.transaction() as ctx:
        await ctx.connection.execute(consumers.insert().values(**consumer.model_dump()))
        await ctx.publish(ConsumerCreated(consumer_id=consumer.consumer_id, name=name))
    return consumer


async def get_consumer(service: Service, consumer_id: str) -> Consumer | None:
    async with service.transaction() as ctx:
        return await load_consumer(ctx.connection, consumer_id)
