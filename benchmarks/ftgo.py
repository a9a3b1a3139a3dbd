"""FTGO end to end: orders per second validated, and create-to-VALIDATED latency.

Two deployments, measured in the same run:

* embedded: the three services in this process, SQLite files, the in-memory transport;
* distributed: ``ftgo up`` style, each service and each relay its own process, one
  PostgreSQL database per service, RabbitMQ between them; driven over REST, watched
  over gRPC (WatchOrder streams the state changes, so nothing polls).

For each: (1) throughput: N orders created by 32 concurrent clients, until the last one
is VALIDATED; (2) latency p50/p99 from POST to VALIDATED at a steady 100 orders/s.

    .venv/bin/python benchmarks/ftgo.py                    # both
    .venv/bin/python benchmarks/ftgo.py --only embedded --n 500
    .venv/bin/python benchmarks/ftgo.py --only embedded,embedded-aiosqlite --n 300 --rate 20
    .venv/bin/python benchmarks/ftgo.py --plot docs/ftgo-latency.png
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

PG = os.environ.get("SERVICEWIRE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
AMQP = os.environ.get("SERVICEWIRE_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q) - 1)] * 1000


async def embedded(n: int, rate: int, seconds: float, driver: str = "inline") -> dict[str, Any]:
    from ftgo.app.system import FtgoSystem
    from ftgo.consumer.service import create_consumer
    from ftgo.order.service import CreateOrderRequest
    from ftgo.restaurant.service import create_restaurant
    from ftgo.values import Address, LineItem, MenuItem

    workdir = Path(tempfile.mkdtemp(prefix="ftgo-bench-"))
    system = FtgoSystem.create(
        order_db=f"sqlite+{driver}:///{workdir / 'order.db'}",
        consumer_db=f"sqlite+{driver}:///{workdir / 'consumer.db'}",
        restaurant_db=f"sqlite+{driver}:///{workdir / 'restaurant.db'}",
        transport=f"memory://{uuid.uuid4().hex}",
    )
    done: dict[str, float] = {}
    created: dict[str, float] = {}

    async with system:
        restaurant = await create_restaurant(
            system.restaurant_service,
            name="Bench",
            postcodes=["94619"],
            menu=[MenuItem(menu_item_id="naan", name="Naan", price=Decimal("2.50"))],
        )
        consumer = await create_consumer(
            system.consumer_service, name="B", order_limit=Decimal("1e6")
        )
        while await system.orders.restaurant(restaurant.restaurant_id) is None:
            await asyncio.sleep(0.02)

        def changed(order_id: str) -> None:
            if order_id in created and order_id not in done:
                asyncio.get_running_loop().create_task(check(order_id))

        async def check(order_id: str) -> None:
            order = await system.orders.get(order_id)
            if order is not None and order.state == "VALIDATED" and order_id not in done:
                done[order_id] = time.perf_counter()

        system.orders.watch.listen(changed)
        request = CreateOrderRequest(
            consumer_id=consumer.consumer_id,
            restaurant_id=restaurant.restaurant_id,
            line_items=[LineItem(menu_item_id="naan", quantity=1)],
            delivery_address=Address(street="1 Main", city="Oakland", postcode="94619"),
        )

        async def create_one() -> None:
            t = time.perf_counter()
            order = await system.orders.create(request)
            created[order.order_id] = t

        # throughput
        start = time.perf_counter()
        sem = asyncio.Semaphore(32)

        async def bounded() -> None:
            async with sem:
                await create_one()

        await asyncio.gather(*(bounded() for _ in range(n)))
        while len(done) < n and time.perf_counter() - start < 120:
            await asyncio.sleep(0.01)
        throughput = len(done) / (time.perf_counter() - start)
        # latency at a steady rate
        created.clear()
        done.clear()
        total = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(create_one()))
        await asyncio.gather(*tasks)
        deadline = time.perf_counter() + 30
        while len(done) < total and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        latencies = [done[o] - created[o] for o in done]
    shutil.rmtree(workdir, ignore_errors=True)
    return summary(throughput, latencies, total)


def summary(throughput: float, latencies: list[float], offered: int) -> dict[str, Any]:
    return {
        "throughput": throughput,
        "p50": statistics.median(latencies) * 1000,
        "p99": percentile(latencies, 0.99),
        "max": max(latencies) * 1000,
        "validated": len(latencies),
        "offered": offered,
        "latencies": latencies,
    }


class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], wait_ready: bool) -> None:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            cwd=ROOT,
        )
        self.procs.append(proc)
        if wait_ready:
            assert proc.stdout is not None
            while True:
                line = proc.stdout.readline().decode()
                if not line:
                    raise RuntimeError(f"{argv[3:5]} exited")
                if " ready " in line:
                    return

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def distributed(n: int, rate: int, seconds: float) -> dict[str, Any]:
    import grpc
    import httpx
    from sqlalchemy import text

    from ftgo.app.web import free_port
    from ftgo.generated.order.v1 import order_pb2, order_pb2_grpc
    from servicewire.storage.database import create_engine

    suffix = uuid.uuid4().hex[:6]
    dbs = {s: f"sw_bench_{suffix}_{s}" for s in ("order", "consumer", "restaurant")}
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        for name in dbs.values():
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    ports = {s: (free_port(), free_port()) for s in dbs}
    procs = Processes()
    try:
        for s in ("restaurant", "consumer", "order"):
            procs.start(
                [
                    sys.executable,
                    "-m",
                    "ftgo.app.cli",
                    "serve",
                    s,
                    "--db",
                    f"{PG}/{dbs[s]}",
                    "--transport",
                    AMQP,
                    "--http-port",
                    str(ports[s][0]),
                    "--grpc-port",
                    str(ports[s][1]),
                    "--no-relay",
                    "--log-level",
                    "WARNING",
                ],
                wait_ready=True,
            )
            procs.start(
                [
                    sys.executable,
                    "-m",
                    "servicewire.cli.main",
                    "relay",
                    "--db",
                    f"{PG}/{dbs[s]}",
                    "--transport",
                    AMQP,
                    "--name",
                    f"bench-{s}",
                    "--log-level",
                    "WARNING",
                ],
                wait_ready=False,
            )
        http = {s: f"http://127.0.0.1:{p[0]}" for s, p in ports.items()}
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
            r = await client.post(
                f"{http['restaurant']}/v1/restaurants",
                json={
                    "name": "Bench",
                    "postcodes": ["94619"],
                    "menu": [{"menuItemId": "naan", "name": "Naan", "price": "2.50"}],
                },
            )
            restaurant = r.json()["restaurantId"]
            r = await client.post(
                f"{http['consumer']}/v1/consumers", json={"name": "B", "orderLimit": "1000000"}
            )
            consumer = r.json()["consumerId"]
            while (
                await client.get(f"{http['order']}/v1/restaurants/{restaurant}")
            ).status_code != 200:
                await asyncio.sleep(0.05)
            body = {
                "consumerId": consumer,
                "restaurantId": restaurant,
                "lineItems": [{"menuItemId": "naan", "quantity": 1}],
                "deliveryAddress": {"street": "1 Main", "city": "Oakland", "postcode": "94619"},
            }
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['order'][1]}")
            stub = order_pb2_grpc.OrderServiceStub(channel)

            async def one() -> float:
                t = time.perf_counter()
                r = await client.post(f"{http['order']}/v1/orders", json=body)
                order_id = r.json()["orderId"]
                async for change in stub.WatchOrder(
                    order_pb2.WatchOrderRequest(order_id=order_id), timeout=60
                ):
                    if change.state == "VALIDATED":
                        return time.perf_counter() - t
                raise RuntimeError(f"order {order_id} not validated")

            sem = asyncio.Semaphore(32)

            async def bounded() -> float:
                async with sem:
                    return await one()

            start = time.perf_counter()
            await asyncio.gather(*(bounded() for _ in range(n)))
            throughput = n / (time.perf_counter() - start)
            tasks = []
            start = time.perf_counter()
            for i in range(int(rate * seconds)):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one()))
            latencies = await asyncio.gather(*tasks)
            await channel.close()
    finally:
        procs.stop()
        async with admin.connect() as conn:
            for name in dbs.values():
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
    return summary(throughput, list(latencies), len(latencies))


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="orders for the throughput run")
    parser.add_argument("--rate", type=int, default=100, help="orders/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", default="embedded,distributed")
    parser.add_argument("--plot", type=Path, help="write the latency distribution to this PNG")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    load = os.getloadavg()[0]
    for mode in args.only.split(","):
        print(f"== {mode}: {args.n} orders, then {args.rate}/s for {args.seconds:g}s", flush=True)
        started = time.process_time()
        if mode == "distributed":
            results[mode] = await distributed(args.n, args.rate, args.seconds)
        else:  # embedded (inline SQLite driver) or embedded-aiosqlite (the old default)
            driver = mode.partition("-")[2] or "inline"
            results[mode] = await embedded(args.n, args.rate, args.seconds, driver)
        # Only the embedded deployment runs in this process; the distributed one's CPU
        # is in its service and relay processes.
        results[mode]["cpu"] = time.process_time() - started
    print()
    print(f"load average at start {load:.1f}, at end {os.getloadavg()[0]:.1f} (2 cores)")
    print(
        f"{'deployment':<20} {'validated orders/s':>19} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8}  validated/offered at {args.rate}/s, CPU s in this process"
    )
    for mode, r in results.items():
        print(
            f"{mode:<20} {r['throughput']:>19.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
            f"{r['max']:>8.1f}  {r['validated']}/{r['offered']}, {r['cpu']:.1f}"
        )
    if args.plot is not None:
        plot(results, args.rate, args.plot)
        print(f"latency distribution written to {args.plot}")


def plot(results: dict[str, dict[str, Any]], rate: int, path: Path) -> None:
    """Cumulative distribution of create-to-VALIDATED latency, one line per deployment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    for mode, r in results.items():
        ordered = sorted(v * 1000 for v in r["latencies"])
        share = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axes.plot(ordered, share, label=f"{mode}: p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms")
    axes.axvline(30, color="grey", linestyle=":", linewidth=1)
    axes.axvline(150, color="grey", linestyle="--", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("POST /orders to VALIDATED (ms, log scale); goals: p50 30, p99 150")
    axes.set_ylabel("share of orders")
    axes.set_title(f"FTGO create-to-VALIDATED latency at {rate} orders/s")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    asyncio.run(main())
