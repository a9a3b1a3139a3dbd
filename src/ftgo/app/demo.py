"""``ftgo demo``: the whole FTGO order flow in one process, explained as it runs.

All three services run embedded (a SQLite file each and the in-memory transport). The
demo creates restaurants and consumers, places orders that are valid and orders that
each break one rule, prints every order's state as it changes, then prints the message
sequence of one order and draws it as an SVG sequence diagram.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from ftgo.app.system import FtgoSystem
from ftgo.consumer.service import Consumer, create_consumer
from ftgo.order.service import CreateOrderRequest, Order
from ftgo.order.state import OrderState
from ftgo.restaurant.service import Restaurant, create_restaurant
from ftgo.values import Address, LineItem, MenuItem
from servicewire import ServiceOptions
from servicewire.telemetry import (
    MemoryJournal,
    render_mermaid,
    render_svg,
    render_text,
    sequence_steps,
)


@dataclass(frozen=True)
class DemoOrder:
    label: str
    request: CreateOrderRequest
    expect: OrderState


def sample_menu() -> list[MenuItem]:
    return [
        MenuItem(menu_item_id="vindaloo", name="Chicken Vindaloo", price=Decimal("12.34")),
        MenuItem(menu_item_id="naan", name="Garlic Naan", price=Decimal("2.50")),
        MenuItem(menu_item_id="lassi", name="Mango Lassi", price=Decimal("4.00")),
    ]


def sample_orders(
    restaurant: Restaurant, ada: Consumer, bob: Consumer, idle: Consumer
) -> list[DemoOrder]:
    home = Address(street="1 Main St", city="Oakland", postcode="94619")
    away = Address(street="5 Broadway", city="New York", postcode="10001")

    def order(consumer: str, items: dict[str, int], to: Address = home) -> CreateOrderRequest:
        return CreateOrderRequest(
            consumer_id=consumer,
            restaurant_id=restaurant.restaurant_id,
            line_items=[LineItem(menu_item_id=k, quantity=v) for k, v in items.items()],
            delivery_address=to,
            delivery_time="19:30",
        )

    return [
        DemoOrder(
            "Ada: vindaloo x2, naan",
            order(ada.consumer_id, {"vindaloo": 2, "naan": 1}),
            OrderState.VALIDATED,
        ),
        DemoOrder("Bob: lassi x3", order(bob.consumer_id, {"lassi": 3}), OrderState.VALIDATED),
        DemoOrder("unknown consumer", order("c-nobody", {"naan": 1}), OrderState.REJECTED),
        DemoOrder("inactive consumer", order(idle.consumer_id, {"naan": 1}), OrderState.REJECTED),
        DemoOrder("over Bob's limit", order(bob.consumer_id, {"vindaloo": 5}), OrderState.REJECTED),
        DemoOrder("not on the menu", order(ada.consumer_id, {"sushi": 1}), OrderState.REJECTED),
        DemoOrder(
            "outside delivery area", order(ada.consumer_id, {"naan": 2}, away), OrderState.REJECTED
        ),
    ]


class StatePrinter:
    """Prints each order's state the moment it changes."""

    def __init__(self, system: FtgoSystem, labels: dict[str, str]) -> None:
        self.system = system
        self.labels = labels
        self.last: dict[str, OrderState] = {}
        self.start = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()

    def changed(self, order_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._show(order_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _show(self, order_id: str) -> None:
        order = await self.system.orders.get(order_id)
        if order is None or self.last.get(order_id) == order.state:
            return
        self.last[order_id] = order.state
        elapsed = (time.monotonic() - self.start) * 1000
        label = self.labels.get(order_id, order_id[-8:])
        reason = f"  ({order.rejection_reason})" if order.rejection_reason else ""
        print(f"  {elapsed:7.1f} ms  {label:<28} {order.state}{reason}", flush=True)


async def _wait_for(predicate_coro, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate_coro():
            return True
        await asyncio.sleep(0.02)
    return False


class Endpoints:
    """The REST and gRPC servers of the three embedded services, on localhost."""

    def __init__(self, system: FtgoSystem, port_base: int) -> None:
        from ftgo.app.web import HttpServer
        from ftgo.consumer.rest import build_consumer_app
        from ftgo.generated.order.v1 import order_pb2_grpc
        from ftgo.generated.restaurant.v1 import restaurant_pb2_grpc
        from ftgo.order.grpc import SERVICE as ORDER_SERVICE
        from ftgo.order.grpc import OrderServicer
        from ftgo.order.rest import build_order_app
        from ftgo.restaurant.grpc import SERVICE as RESTAURANT_SERVICE
        from ftgo.restaurant.grpc import RestaurantServicer
        from ftgo.restaurant.rest import build_restaurant_app
        from servicewire.grpc import Server

        def port(offset: int) -> int:
            return port_base + offset if port_base else 0

        self.http = {
            "order": HttpServer(build_order_app(system.orders), port=port(1)),
            "consumer": HttpServer(build_consumer_app(system.consumer_service), port=port(2)),
            "restaurant": HttpServer(build_restaurant_app(system.restaurant_service), port=port(3)),
        }
        self.grpc = Server(port=port(1001))
        self.grpc.add_service(
            order_pb2_grpc.add_OrderServiceServicer_to_server,
            OrderServicer(system.orders),
            ORDER_SERVICE,
        )
        self.grpc.add_service(
            restaurant_pb2_grpc.add_RestaurantServiceServicer_to_server,
            RestaurantServicer(system.restaurant_service),
            RESTAURANT_SERVICE,
        )
        self.grpc_port = 0

    async def start(self) -> None:
        for server in self.http.values():
            await server.start()
        self.grpc_port = await self.grpc.start()

    async def stop(self) -> None:
        await self.grpc.stop(1.0)
        for server in self.http.values():
            await server.stop()

    def describe(self) -> str:
        lines = [
            f"  {name:<10} REST {server.url}  (OpenAPI docs: {server.url}/docs)"
            for name, server in self.http.items()
        ]
        lines.append(
            f"  gRPC       127.0.0.1:{self.grpc_port}  (ftgo.order.v1.OrderService, "
            "ftgo.restaurant.v1.RestaurantService; reflection on)"
        )
        return "\n".join(lines)


async def run_demo(
    workdir: Path, *, serve: bool = False, svg: Path | None = None, port_base: int = 8080
) -> int:
    """Run the demo; returns a process exit code (0 when every order ended as expected).

    ``port_base`` 8080 puts REST on 8081-8083 and gRPC on 9081; 0 picks free ports.
    """
    if workdir.exists():
        shutil.rmtree(workdir)
    journal = MemoryJournal()
    system = FtgoSystem.embedded(
        workdir, transport="memory://ftgo-demo", options=ServiceOptions(journal=journal)
    )
    print("FTGO demo: Order, Consumer and Restaurant services, each with its own SQLite")
    print(f"database in {workdir}, talking through the in-memory transport.\n")
    async with system:
        endpoints = _endpoints(system, port_base, needed=serve)
        if endpoints is None:
            return await _tour(system, journal, workdir, serve=False, svg=svg, endpoints=None)
        await endpoints.start()
        print("REST and gRPC on localhost:")
        print(endpoints.describe() + "\n")
        try:
            return await _tour(system, journal, workdir, serve=serve, svg=svg, endpoints=endpoints)
        finally:
            await endpoints.stop()


def _endpoints(system: FtgoSystem, port_base: int, *, needed: bool) -> Endpoints | None:
    """The REST and gRPC servers, or None on an install without the rest and grpc extras.

    The order flow itself needs only the core; the servers are shown when they can be.
    """
    try:
        return Endpoints(system, port_base)
    except ModuleNotFoundError as exc:
        if needed or (exc.name or "").split(".")[0] in {"ftgo", "servicewire"}:
            raise
        print(
            f"(REST and gRPC endpoints left out: {exc.name} is not installed; "
            "pip install 'servicewire[rest,grpc]' adds them)\n"
        )
        return None


async def _tour(
    system: FtgoSystem,
    journal: MemoryJournal,
    workdir: Path,
    *,
    serve: bool,
    svg: Path | None,
    endpoints: Endpoints | None,
) -> int:
    restaurant = await create_restaurant(
        system.restaurant_service, name="Ajanta", menu=sample_menu(), postcodes=["94619", "94611"]
    )
    ada = await create_consumer(system.consumer_service, name="Ada", order_limit=Decimal("100"))
    bob = await create_consumer(system.consumer_service, name="Bob", order_limit=Decimal("40"))
    idle = await create_consumer(
        system.consumer_service, name="Idle", order_limit=Decimal("100"), active=False
    )
    print(f"Restaurant {restaurant.name} ({restaurant.restaurant_id}) delivers to 94619, 94611")
    print("Consumers: Ada (limit 100), Bob (limit 40), Idle (inactive)\n")

    async def replica_ready() -> bool:
        return await system.orders.restaurant(restaurant.restaurant_id) is not None

    if not await _wait_for(replica_ready, 10):
        print("the Order Service never received RestaurantCreated")
        return 1
    print("Order Service's replica of the restaurant is up to date (RestaurantCreated).\n")

    demo_orders = sample_orders(restaurant, ada, bob, idle)
    labels: dict[str, str] = {}
    printer = StatePrinter(system, labels)
    system.orders.watch.listen(printer.changed)
    print("Placing orders; each returns PENDING at once and finishes asynchronously:")
    placed: list[tuple[DemoOrder, Order]] = []
    for demo in demo_orders:
        order = await system.orders.create(demo.request)
        labels[order.order_id] = demo.label
        placed.append((demo, order))

    async def all_final() -> bool:
        for _demo, order in placed:
            current = await system.orders.get(order.order_id)
            if current is None or current.state is OrderState.PENDING:
                return False
        return True

    await _wait_for(all_final, 20)
    await asyncio.sleep(0.1)
    failures = 0
    print("\nResults:")
    for demo, order in placed:
        final = await system.orders.get(order.order_id)
        assert final is not None
        ok = final.state is demo.expect
        failures += not ok
        mark = "ok " if ok else "BAD"
        detail = (
            f"total {final.order_total}"
            if final.state is OrderState.VALIDATED
            else final.rejection_reason or ""
        )
        print(f"  [{mark}] {demo.label:<28} {final.state:<10} {detail}")

    first = placed[0][1].order_id
    steps = sequence_steps(journal.conversation(first))
    print(f"\nMessage sequence of order {first} ({placed[0][0].label}):")
    print(render_text(steps))
    target = svg or workdir / "order-sequence.svg"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_svg(steps, title=f"FTGO order {first}"))
    target.with_suffix(".mmd").write_text(render_mermaid(steps) + "\n")
    print(f"\nSequence diagram written to {target} (Mermaid text: {target.with_suffix('.mmd')})")

    if serve and endpoints is not None:
        order_url = endpoints.http["order"].url
        print(f"\nServing until Ctrl-C. Try: curl {order_url}/v1/orders/{first}")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    if failures:
        print(f"\n{failures} order(s) did not end as expected")
        return 1
    print("\nEvery order reached the state its data dictates.")
    return 0
