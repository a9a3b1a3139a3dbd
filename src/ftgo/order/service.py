"""Order Service: orders, created PENDING and validated asynchronously (DESIGN section 8).

Creating an order writes the order and, in the same transaction, ValidateConsumerInfo
(to Consumer Service), ValidateOrderDetails (to Restaurant Service) and OrderCreated to
the outbox, then answers at once. The replies arrive at this service's reply handlers:
both successes move the order to VALIDATED, any failure to REJECTED with the reason.
Order Service also keeps a replica of restaurants and menus, fed by Restaurant
Service's events, to price orders and to refuse unknown restaurants up front::

    service, orders = create_order_service(db="sqlite:///order.db", transport="memory://")
    async with service:
        order_id = await orders.create(CreateOrderRequest(...))
"""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    JSON,
    Column,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    bindparam,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from ftgo.order.sync_validation import SyncValidator

from ftgo.consumer.api import ConsumerValidated, ConsumerValidationFailed, ValidateConsumerInfo
from ftgo.order.api import OrderCancelled, OrderCreated, OrderRejected, OrderValidated
from ftgo.order.state import OrderState
from ftgo.order.watch import OrderWatch
from ftgo.restaurant.api import (
    OrderDetailsRejected,
    OrderDetailsValidated,
    RestaurantCreated,
    RestaurantMenuRevised,
    ValidateOrderDetails,
)
from ftgo.values import Address, LineItem, MenuItem
from servicewire import Context, Service, ServiceOptions, new_id
from servicewire.messaging import TextSafeModel
from servicewire.transports import Transport

NAME = "order-service"

metadata = MetaData()
orders = Table(
    "ftgo_orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("consumer_id", String(64), nullable=False),
    Column("restaurant_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("rejection_reason", String(500)),
    Column("order_total", Numeric(12, 2), nullable=False),
    Column("line_items", JSON, nullable=False),
    Column("delivery_address", JSON, nullable=False),
    Column("delivery_time", String(64)),
    Column("consumer_ok", Integer, nullable=False, default=0),
    Column("restaurant_ok", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
state_changes = Table(
    "ftgo_order_state_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("reason", String(500)),
    Column("at", Float, nullable=False),
)
restaurant_replica = Table(
    "ftgo_restaurant_replica",
    metadata,
    Column("restaurant_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("menu", JSON, nullable=False),
    Column("postcodes", JSON, nullable=False),
)

# Statements built once: each execution then reuses SQLAlchemy's compiled form without
# building the statement and its cache key again (the order path runs them per order).
_SELECT_ORDER = select(orders).where(orders.c.order_id == bindparam("key"))
_SELECT_ORDER_FOR_UPDATE = _SELECT_ORDER.with_for_update()
_INSERT_ORDER = orders.insert()
_UPDATE_ORDER = orders.update().where(orders.c.order_id == bindparam("key"))  # SET: the params
_INSERT_STATE_CHANGE = state_changes.insert()
# One reply's part of the validation, where UPDATE ... RETURNING exists (PostgreSQL,
# SQLite 3.35+): set its flag on a PENDING order and read both flags back, one statement
# instead of SELECT ... FOR UPDATE then UPDATE. The row lock it takes orders the two
# replies of one order as the SELECT did; the second sees the first's committed flag.
_APPROVE_PART = (
    orders.update()
    .where(orders.c.order_id == bindparam("key"), orders.c.state == OrderState.PENDING.value)
    .returning(orders.c.consumer_ok, orders.c.restaurant_ok, orders.c.order_total)
)
_SELECT_REPLICA = select(restaurant_replica).where(
    restaurant_replica.c.restaurant_id == bindparam("key")
)


class CreateOrderRequest(TextSafeModel):
    """What a client sends to create an order."""

    consumer_id: str = Field(min_length=1, max_length=64)
    restaurant_id: str = Field(min_length=1, max_length=64)
    line_items: list[LineItem] = Field(min_length=1, max_length=100)
    delivery_address: Address
    delivery_time: str | None = Field(default=None, max_length=64)


class Order(BaseModel):
    order_id: str
    consumer_id: str
    restaurant_id: str
    state: OrderState
    rejection_reason: str | None
    order_total: Decimal
    line_items: list[LineItem]
    delivery_address: Address
    delivery_time: str | None
    created_at: float
    updated_at: float


class StateChange(BaseModel):
    order_id: str
    state: OrderState
    reason: str | None
    at: float


class RestaurantReplica(BaseModel):
    restaurant_id: str
    name: str
    menu: list[MenuItem]
    postcodes: list[str]


def _price(replica: RestaurantReplica, request: CreateOrderRequest) -> Decimal:
    """The order's total by the replica's menu (items it lacks count 0 here: Restaurant
    Service refuses them when it validates the order)."""
    prices = {m.menu_item_id: m.price for m in replica.menu}
    return sum(
        (prices.get(li.menu_item_id, Decimal(0)) * li.quantity for li in request.line_items),
        Decimal("0"),
    )


class UnknownRestaurantError(LookupError):
    """The order names a restaurant the replica does not know."""


class OrderStateError(RuntimeError):
    """The action is not possible in the order's current state."""


def _menu_json(menu: list[MenuItem]) -> list[dict[str, str]]:
    return [{"menu_item_id": m.menu_item_id, "name": m.name, "price": str(m.price)} for m in menu]


async def _load(conn: Any, order_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    stmt = _SELECT_ORDER_FOR_UPDATE if lock else _SELECT_ORDER
    row = (await conn.execute(stmt, {"key": order_id})).mappings().first()
    return dict(row) if row is not None else None


async def _replica(conn: Any, restaurant_id: str) -> RestaurantReplica | None:
    row = (await conn.execute(_SELECT_REPLICA, {"key": restaurant_id})).mappings().first()
    return RestaurantReplica(**row) if row is not None else None


async def _set_state(
    ctx: Context, order_id: str, state: OrderState, reason: str | None = None, **values: Any
) -> None:
    now = time.time()
    await ctx.connection.execute(
        _UPDATE_ORDER,
        {"key": order_id, "state": state, "rejection_reason": reason, "updated_at": now, **values},
    )
    await ctx.connection.execute(
        _INSERT_STATE_CHANGE, {"order_id": order_id, "state": state, "reason": reason, "at": now}
    )


class Orders:
    """The Order Service's operations (used by its REST and gRPC adapters).

    With a ``validator`` (``--validation sync``) an order is validated by calling the
    other services before it is stored, and is created VALIDATED or REJECTED; without
    one it is created PENDING and validated by messages.
    """

    def __init__(
        self, service: Service, watch: OrderWatch, validator: SyncValidator | None = None
    ) -> None:
        self.service = service
        self.watch = watch
        self.validator = validator

    async def restaurant(self, restaurant_id: str) -> RestaurantReplica | None:
        async with self.service.transaction() as ctx:
            return await _replica(ctx.connection, restaurant_id)

    async def create(self, request: CreateOrderRequest) -> Order:
        """Create the order PENDING and send both validations, in one transaction (which
        also reads the restaurant replica that prices it: one round of BEGIN/COMMIT)."""
        order_id = new_id()
        if self.validator is not None:
            replica = await self.restaurant(request.restaurant_id)
            if replica is None:
                raise UnknownRestaurantError(f"restaurant {request.restaurant_id} is not known")
            return await self._create_validated(order_id, request, _price(replica, request))
        async with self.service.transaction() as ctx:
            replica = await _replica(ctx.connection, request.restaurant_id)
            if replica is None:  # raised inside: the transaction rolls back, nothing written
                raise UnknownRestaurantError(f"restaurant {request.restaurant_id} is not known")
            total = _price(replica, request)
            now = time.time()
            await ctx.connection.execute(
                _INSERT_ORDER,
                {
                    "order_id": order_id,
                    "consumer_id": request.consumer_id,
                    "restaurant_id": request.restaurant_id,
                    "state": OrderState.PENDING,
                    "rejection_reason": None,
                    "order_total": total,
                    "line_items": [li.model_dump() for li in request.line_items],
                    "delivery_address": request.delivery_address.model_dump(),
                    "delivery_time": request.delivery_time,
                    "consumer_ok": 0,
                    "restaurant_ok": 0,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            await ctx.connection.execute(
                _INSERT_STATE_CHANGE,
                {"order_id": order_id, "state": OrderState.PENDING, "reason": None, "at": now},
            )
            await ctx.send(
                ValidateConsumerInfo(
                    consumer_id=request.consumer_id, order_id=order_id, order_total=total
                ),
                correlation_id=order_id,
            )
            await ctx.send(
                ValidateOrderDetails(
                    order_id=order_id,
                    restaurant_id=request.restaurant_id,
                    line_items=request.line_items,
                    delivery_postcode=request.delivery_address.postcode,
                ),
                correlation_id=order_id,
            )
            await ctx.publish(
                OrderCreated(
                    order_id=order_id,
                    consumer_id=request.consumer_id,
                    restaurant_id=request.restaurant_id,
                    line_items=request.line_items,
                    order_total=total,
                ),
                headers={"correlationid": order_id},
            )
        self.watch.changed(order_id)
        # The order as created: replies may already have moved it on by now, but the
        # caller is told what it asked for was accepted, PENDING.
        return Order(
            order_id=order_id,
            consumer_id=request.consumer_id,
            restaurant_id=request.restaurant_id,
            state=OrderState.PENDING,
            rejection_reason=None,
            order_total=total,
            line_items=request.line_items,
            delivery_address=request.delivery_address,
            delivery_time=request.delivery_time,
            created_at=now,
            updated_at=now,
        )

    async def _create_validated(
        self, order_id: str, request: CreateOrderRequest, estimate: Decimal
    ) -> Order:
        """Synchronous style: ask both services first, then store the final order."""
        assert self.validator is not None
        total, reason = await self.validator.validate(
            order_id=order_id,
            consumer_id=request.consumer_id,
            restaurant_id=request.restaurant_id,
            line_items=[(li.menu_item_id, li.quantity) for li in request.line_items],
            postcode=request.delivery_address.postcode,
            estimated_total=estimate,
        )
        state = OrderState.VALIDATED if reason is None else OrderState.REJECTED
        now = time.time()
        async with self.service.transaction() as ctx:
            await ctx.connection.execute(
                orders.insert().values(
                    order_id=order_id,
                    consumer_id=request.consumer_id,
                    restaurant_id=request.restaurant_id,
                    state=state,
                    rejection_reason=reason,
                    order_total=total if total is not None else estimate,
                    line_items=[li.model_dump() for li in request.line_items],
                    delivery_address=request.delivery_address.model_dump(),
                    delivery_time=request.delivery_time,
                    consumer_ok=int(reason is None),
                    restaurant_ok=int(reason is None),
                    created_at=now,
                    updated_at=now,
                )
            )
            await ctx.connection.execute(
                state_changes.insert().values(order_id=order_id, state=state, reason=reason, at=now)
            )
            await ctx.publish(
                OrderCreated(
                    order_id=order_id,
                    consumer_id=request.consumer_id,
                    restaurant_id=request.restaurant_id,
                    line_items=request.line_items,
                    order_total=total if total is not None else estimate,
                )
            )
            if reason is None:
                assert total is not None
                await ctx.publish(OrderValidated(order_id=order_id, order_total=total))
            else:
                await ctx.publish(OrderRejected(order_id=order_id, reason=reason))
        self.watch.changed(order_id)
        order = await self.get(order_id)
        assert order is not None
        return order

    async def get(self, order_id: str) -> Order | None:
        async with self.service.transaction() as ctx:
            row = await _load(ctx.connection, order_id)
        return Order(**row) if row is not None else None

    async def history(self, order_id: str) -> list[StateChange]:
        async with self.service.transaction() as ctx:
            stmt = (
                select(state_changes)
                .where(state_changes.c.order_id == order_id)
                .order_by(state_changes.c.id)
            )
            rows = (await ctx.connection.execute(stmt)).mappings().all()
        return [
            StateChange(**{k: r[k] for k in ("order_id", "state", "reason", "at")}) for r in rows
        ]

    async def cancel(self, order_id: str) -> Order:
        """Cancel a PENDING order; raises LookupError or OrderStateError."""
        async with self.service.transaction() as ctx:
            row = await _load(ctx.connection, order_id, lock=True)
            if row is None:
                raise LookupError(f"order {order_id} does not exist")
            if row["state"] != OrderState.PENDING:
                raise OrderStateError(f"order {order_id} is {row['state']}, not PENDING")
            await _set_state(ctx, order_id, OrderState.CANCELLED)
            await ctx.publish(OrderCancelled(order_id=order_id))
        self.watch.changed(order_id)
        order = await self.get(order_id)
        assert order is not None
        return order


def create_order_service(
    db: str | AsyncEngine,
    transport: str | Transport,
    *,
    validator: SyncValidator | None = None,
    options: ServiceOptions | None = None,
) -> tuple[Service, Orders]:
    """The Order Service with its handlers registered (not yet started), and its operations."""
    watch = OrderWatch()
    base = options or ServiceOptions()
    own = replace(base, tables=(*base.tables, metadata))
    service = Service(NAME, db=db, transport=transport, options=own)
    service.sends(
        ValidateConsumerInfo,
        ValidateOrderDetails,
        OrderCreated,
        OrderValidated,
        OrderRejected,
        OrderCancelled,
    )
    operations = Orders(service, watch, validator)

    def notify_after_commit(ctx: Context, order_id: str) -> None:
        # Not now: a reply handler runs inside the delivery's transaction, and a watcher
        # told now could read the order before the change is committed (or rolled back).
        ctx.after_commit(lambda: watch.changed(order_id))

    async def reject(ctx: Context, order_id: str, reason: str) -> None:
        row = await _load(ctx.connection, order_id, lock=True)
        if row is None or row["state"] != OrderState.PENDING:
            return  # already decided (or cancelled): a later reply changes nothing
        await _set_state(ctx, order_id, OrderState.REJECTED, reason)
        await ctx.publish(OrderRejected(order_id=order_id, reason=reason))
        notify_after_commit(ctx, order_id)

    async def approve_part(ctx: Context, order_id: str, **flags: Any) -> None:
        if getattr(ctx.connection.dialect, "update_returning", False):
            result = await ctx.connection.execute(_APPROVE_PART, {"key": order_id, **flags})
            part = result.mappings().first()
            if part is None:
                return  # unknown, or already decided (or cancelled)
            if part["consumer_ok"] and part["restaurant_ok"]:
                await _set_state(ctx, order_id, OrderState.VALIDATED)
                total = part["order_total"]
                await ctx.publish(OrderValidated(order_id=order_id, order_total=total))
            notify_after_commit(ctx, order_id)
            return
        # MariaDB has no UPDATE ... RETURNING: lock, read, then write.
        row = await _load(ctx.connection, order_id, lock=True)
        if row is None or row["state"] != OrderState.PENDING:
            return
        row.update(flags)
        if row["consumer_ok"] and row["restaurant_ok"]:
            await _set_state(ctx, order_id, OrderState.VALIDATED, **flags)
            await ctx.publish(OrderValidated(order_id=order_id, order_total=row["order_total"]))
        else:
            await ctx.connection.execute(_UPDATE_ORDER, {"key": order_id, **flags})
        notify_after_commit(ctx, order_id)

    @service.on_reply(ConsumerValidated)
    async def consumer_validated(reply: ConsumerValidated, ctx: Context) -> None:
        await approve_part(ctx, reply.order_id, consumer_ok=1)

    @service.on_reply(ConsumerValidationFailed)
    async def consumer_rejected(reply: ConsumerValidationFailed, ctx: Context) -> None:
        await reject(ctx, reply.order_id, f"consumer: {reply.reason}")

    @service.on_reply(OrderDetailsValidated)
    async def details_validated(reply: OrderDetailsValidated, ctx: Context) -> None:
        await approve_part(ctx, reply.order_id, restaurant_ok=1, order_total=reply.order_total)

    @service.on_reply(OrderDetailsRejected)
    async def details_rejected(reply: OrderDetailsRejected, ctx: Context) -> None:
        await reject(ctx, reply.order_id, f"restaurant: {reply.reason}")

    async def upsert_replica(ctx: Context, restaurant_id: str, **values: Any) -> None:
        stmt = select(restaurant_replica.c.restaurant_id).where(
            restaurant_replica.c.restaurant_id == restaurant_id
        )
        exists = (await ctx.connection.execute(stmt)).first() is not None
        if exists:
            await ctx.connection.execute(
                restaurant_replica.update()
                .where(restaurant_replica.c.restaurant_id == restaurant_id)
                .values(**values)
            )
        elif "name" in values:
            await ctx.connection.execute(
                restaurant_replica.insert().values(restaurant_id=restaurant_id, **values)
            )

    @service.subscribes(RestaurantCreated)
    async def restaurant_created(evt: RestaurantCreated, ctx: Context) -> None:
        await upsert_replica(
            ctx,
            evt.restaurant_id,
            name=evt.name,
            menu=_menu_json(evt.menu),
            postcodes=list(evt.postcodes),
        )

    @service.subscribes(RestaurantMenuRevised)
    async def menu_revised(evt: RestaurantMenuRevised, ctx: Context) -> None:
        await upsert_replica(ctx, evt.restaurant_id, menu=_menu_json(evt.menu))

    return service, operations
