"""FTGO end to end: orders per second validated, and create-to-VALIDATED latency.

Two deployments:

* embedded: the three services in this process, SQLite files, the in-memory transport;
  (1) throughput: N orders created by 32 concurrent clients, until the last one is
  VALIDATED; (2) latency p50/p99 from create to VALIDATED at a steady ``--rate``;
* distributed: three ``ftgo serve`` processes as deployed (each its own PostgreSQL
  database, its relay in-process, RabbitMQ between them), orders POSTed over REST at
  each of ``--rates`` in turn; validated orders/s, POST and end-to-end latency, CPU per
  order per process (see benchmarks/ftgo_cases/distributed.py).

    .venv/bin/python benchmarks/ftgo.py --only distributed      # 100,200,300,400/s, 10 s each
    .venv/bin/python benchmarks/ftgo.py --only distributed --rates 100 --seconds 20 \
        --plot docs/ftgo-distributed-latency.png
    .venv/bin/python benchmarks/ftgo.py --only embedded --n 500
    .venv/bin/python benchmarks/ftgo.py --only embedded --n 300 --rate 20
    .venv/bin/python benchmarks/ftgo.py --only embedded --plot docs/ftgo-latency.png
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
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


async def embedded(n: int, rate: int, seconds: float) -> dict[str, Any]:
    from ftgo.app.system import FtgoSystem
    from ftgo.consumer.service import create_consumer
    from ftgo.order.service import CreateOrderRequest
    from ftgo.restaurant.service import create_restaurant
    from ftgo.values import Address, LineItem, MenuItem

    workdir = Path(tempfile.mkdtemp(prefix="ftgo-bench-"))
    system = FtgoSystem.create(
        order_db=f"sqlite:///{workdir / 'order.db'}",
        consumer_db=f"sqlite:///{workdir / 'consumer.db'}",
        restaurant_db=f"sqlite:///{workdir / 'restaurant.db'}",
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


async def main(args: argparse.Namespace) -> None:
    # SIGINT/SIGTERM cancel the run, so that the finally blocks stop the services and
    # drop the databases and the vhost (a background job may have SIGINT ignored).
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    modes = args.only.split(",")
    load = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average {load[0]:.2f} {load[1]:.2f}")
    results: dict[str, dict[str, Any]] = {}
    for mode in modes:
        if mode == "distributed":
            await run_distributed(args)
            continue
        print(f"== {mode}: {args.n} orders, then {args.rate}/s for {args.seconds:g}s", flush=True)
        started = time.process_time()
        results[mode] = await embedded(args.n, args.rate, args.seconds)
        results[mode]["cpu"] = time.process_time() - started
    if not results:
        return
    print()
    print(f"load average at start {load[0]:.1f}, at end {os.getloadavg()[0]:.1f} (2 cores)")
    print(
        f"{'deployment':<20} {'validated orders/s':>19} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8}  validated/offered at {args.rate}/s, CPU s in this process"
    )
    for mode, r in results.items():
        print(
            f"{mode:<20} {r['throughput']:>19.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
            f"{r['max']:>8.1f}  {r['validated']}/{r['offered']}, {r['cpu']:.1f}"
        )
    if args.plot:  # "--plot=" as well as no option: no plot (Path("") would be ".png")
        plot(results, args.rate, Path(args.plot))
        print(f"latency distribution written to {args.plot}")


async def run_distributed(args: argparse.Namespace) -> None:
    from benchmarks.ftgo_cases import distributed as ftgo_distributed

    rates = [int(r) for r in args.rates.split(",")]
    print(
        f"== distributed: {'/s, '.join(map(str, rates))}/s offered for {args.seconds:g}s each"
        f" (3 x ftgo serve, PostgreSQL, RabbitMQ)",
        flush=True,
    )
    load = os.getloadavg()
    rows = await ftgo_distributed.distributed(
        rates,
        args.seconds,
        warmup=args.warmup,
        log_level=args.log_level,
        serve_args=args.serve_args.split(),
    )
    end = os.getloadavg()
    print()
    print(
        f"load average at start {load[0]:.2f} {load[1]:.2f}, at end {end[0]:.2f} {end[1]:.2f}"
        f" ({os.cpu_count()} cores)"
    )
    ftgo_distributed.print_table(rows)
    if args.plot:
        ftgo_distributed.plot(rows, Path(args.plot))
        print(f"latency distribution written to {args.plot}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="embedded: orders for throughput")
    parser.add_argument("--rate", type=int, default=100, help="embedded: orders/s for latency")
    parser.add_argument("--rates", default="100,200,300,400", help="distributed: orders/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate")
    parser.add_argument("--warmup", type=int, default=100, help="distributed: orders at 50/s")
    parser.add_argument("--log-level", default="INFO", help="distributed: ftgo serve's")
    parser.add_argument(
        "--serve-args", default="", help="distributed: more ftgo serve options, one string"
    )
    parser.add_argument("--only", default="embedded,distributed")
    parser.add_argument(
        "--plot",
        default="",
        help='write the latency distribution to this PNG (empty or "none": no plot)',
    )
    args = parser.parse_args()
    if args.plot.lower() == "none":  # as the help says, not a file called none.png
        args.plot = ""
    return args


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
    arguments = parse_args()
    if arguments.only == "distributed":
        # The load generator on the same fast loop as the services it drives.
        from ftgo.app.web import run

        run(main(arguments))
    else:
        asyncio.run(main(arguments))
