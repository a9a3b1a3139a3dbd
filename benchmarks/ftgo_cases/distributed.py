"""FTGO distributed, as deployed: three ``ftgo serve`` processes at fixed offered rates.

Each service is ``ftgo serve SERVICE`` exactly as ``ftgo up --no-relays`` starts it: its
own PostgreSQL database, its outbox relay in-process, RabbitMQ between the three. The
run owns everything it touches: three databases and a RabbitMQ node of its own (on free
ports, data in a temporary directory; or, with ``SERVICEWIRE_BENCH_AMQP=amqp://...``, a
virtual host of its own on that broker), so every queue and exchange the services
declare goes with it; all created first and removed after.
``benchmarks/ftgo.py --only distributed`` runs it:

    .venv/bin/python benchmarks/ftgo.py --only distributed                   # 100..400/s
    .venv/bin/python benchmarks/ftgo.py --only distributed --rates 100 --seconds 20
    .venv/bin/python benchmarks/ftgo.py --only distributed --plot docs/ftgo-distributed-latency.png

For each offered rate, orders are POSTed open-loop at that rate (each on its own
schedule, whatever the earlier ones are doing) for ``--seconds``; then the run waits
until every order is VALIDATED. Per rate it reports:

* validated orders/s: orders validated / (last VALIDATED - first POST); at or over
  saturation this is the capacity, below it the offered rate;
* POST latency p50/p99 (the client's send to the 201);
* end-to-end latency p50/p99: the POST's send to the VALIDATED state change the Order
  Service records (its ``ftgo_order_state_changes.at``, written in the committing
  transaction; the benchmark reads that table, so nothing in the services polls for it);
* commits per validated order in each service's database (pg_stat_database);
* CPU ms per validated order of each service process (from /proc), of the three
  databases' PostgreSQL backends ("our pg"), of the load generator ("client"), and
  machine-wide of every PostgreSQL and RabbitMQ process ("postgres*", "rabbitmq*": on a
  shared machine these include other people's work).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
PG = os.environ.get("SERVICEWIRE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
AMQP = os.environ.get("SERVICEWIRE_BENCH_AMQP", "")  # empty: a private RabbitMQ node
SERVICES = ("restaurant", "consumer", "order")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def pids_named(name: str) -> list[int]:
    """Every process whose command name is ``name`` (all users' work, not only ours)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def machine_cpu() -> dict[str, float]:
    """CPU so far of this process (the load generator), of every PostgreSQL process and
    of RabbitMQ's VM: the last two are machine-wide, other engineers' work included."""
    return {
        "client": time.process_time(),
        "postgres*": sum(cpu_seconds(p) for p in pids_named("postgres")),
        "rabbitmq*": sum(cpu_seconds(p) for p in pids_named("beam.smp")),
    }


def ms(values: list[float], q: float) -> float:
    """The q-quantile of ``values`` (seconds), in ms; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * q + 0.5) - 1))] * 1000


class PrivateBroker:
    """A RabbitMQ node of this run's own on free ports (the tests' PrivateRabbit), its
    data in a temporary directory: stopping it and removing that takes every queue the
    services declared, and the shared broker is neither loaded nor left with queues."""

    def __init__(self) -> None:
        from tests.transports.test_amqp import PrivateRabbit

        self.base = Path(tempfile.mkdtemp(prefix="sw-bench-rabbit-"))
        self.node = PrivateRabbit(self.base)
        self.url = self.node.url
        self.name = f"private node on port {self.node.port}"
        self.started = False

    def create(self) -> None:
        self.started = True
        self.node.start(timeout=120)

    def delete(self) -> None:
        if self.started:
            self.node.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class VirtualHost:
    """A RabbitMQ virtual host of this run's own (``rabbitmqctl``), deleted after."""

    def __init__(self, url: str) -> None:
        self.name = f"sw_bench_{uuid.uuid4().hex[:8]}"
        parts = urlsplit(url)
        self.user = parts.username or "guest"
        self.url = urlunsplit((parts.scheme, parts.netloc, f"/{self.name}", parts.query, ""))
        self.ctl = shutil.which("rabbitmqctl")
        self.created = False
        if self.ctl is None:
            raise SystemExit("the distributed run needs rabbitmqctl for a private vhost")

    def _ctl(self, *argv: str) -> None:
        # No timeout: deleting a vhost deletes its quorum queues one Raft cluster at a
        # time (a minute or more on a busy broker), and a killed rabbitmqctl would leave
        # its Erlang node running and the vhost half deleted.
        subprocess.run([self.ctl or "rabbitmqctl", "-q", *argv], check=True)

    def create(self) -> None:
        self.created = True
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, self.user, ".*", ".*", ".*")

    def delete(self) -> None:
        if self.created:
            self._ctl("delete_vhost", self.name)


@dataclass
class ServiceProcess:
    name: str
    proc: subprocess.Popen[bytes]
    ready_line: str = ""

    @property
    def url(self) -> str:
        return next(w for w in self.ready_line.split() if w.startswith("http="))[5:]


@dataclass
class Deployment:
    """The three ``ftgo serve`` processes and what they own."""

    dbs: dict[str, str]
    vhost: VirtualHost | PrivateBroker
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def start(self, log_level: str, extra: list[str]) -> None:
        from ftgo.app.web import free_port

        for service in SERVICES:
            argv = [
                sys.executable,
                "-m",
                "ftgo.app.cli",
                "serve",
                service,
                "--db",
                f"{PG}/{self.dbs[service]}",
                "--transport",
                self.vhost.url,
                "--http-port",
                str(free_port()),
                "--grpc-port",
                str(free_port()),
                "--log-level",
                log_level,
                *extra,
            ]
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=None,  # warnings and errors show up in the benchmark's output
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                cwd=ROOT,
            )
            self.processes[service] = ServiceProcess(service, proc)
            self.processes[service].ready_line = self._wait_ready(service, proc)
            print(f"  {self.processes[service].ready_line}", flush=True)

    @staticmethod
    def _wait_ready(name: str, proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        for _ in range(1000):  # bounded; each line is a log line or the ready line
            line = proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"{name} exited with {proc.wait()}")
            if " ready " in line:
                return line.strip()
        raise RuntimeError(f"{name} printed no ready line")

    def stop(self) -> None:
        for service in reversed(SERVICES):
            p = self.processes.get(service)
            if p is not None and p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.processes.values():
            try:
                p.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()

    def cpu(self) -> dict[str, float]:
        return {s: cpu_seconds(p.proc.pid) for s, p in self.processes.items()}


@dataclass
class Phase:
    rate: int
    seconds: float
    posted: dict[str, float] = field(default_factory=dict)  # order id -> POST sent (epoch)
    post_latency: list[float] = field(default_factory=list)
    failed_posts: int = 0
    failures: list[str] = field(default_factory=list)  # why, per failed POST
    validated: dict[str, float] = field(default_factory=dict)  # order id -> VALIDATED at
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU s in the phase
    commits: dict[str, int] = field(default_factory=dict)  # service -> its database's commits
    first_post: float = 0.0

    @property
    def offered(self) -> int:
        return int(self.rate * self.seconds)

    @property
    def end_to_end(self) -> list[float]:
        return [at - self.posted[o] for o, at in self.validated.items() if o in self.posted]

    @property
    def validated_per_second(self) -> float:
        if not self.validated:
            return 0.0
        return len(self.validated) / (max(self.validated.values()) - self.first_post)

    def row(self) -> dict[str, Any]:
        e2e = self.end_to_end
        n = max(1, len(e2e))
        return {
            "rate": self.rate,
            "validated/s": self.validated_per_second,
            "validated": len(e2e),
            "offered": self.offered,
            "failed": self.failed_posts,
            "failures": sorted(set(self.failures)),
            "post p50": ms(self.post_latency, 0.5),
            "post p99": ms(self.post_latency, 0.99),
            "e2e p50": ms(e2e, 0.5),
            "e2e p99": ms(e2e, 0.99),
            "cpu": {k: v * 1000 / n for k, v in self.cpu.items()},
            "commits": {k: v / n for k, v in self.commits.items()},
            "latencies": e2e,
        }


class ValidatedWatch:
    """Reads VALIDATED state changes from the Order Service's database as they commit.

    It scans ids above (highest seen - a margin): ids are taken at insert but become
    visible at commit, so a lower id can appear a moment after a higher one.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None

    async def start(self) -> None:
        import asyncpg

        self._conn = await asyncpg.connect(self.url)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        high = 0
        while True:
            rows = await self._conn.fetch(
                "select id, order_id, at from ftgo_order_state_changes"
                " where id > $1 and state = 'VALIDATED'",
                max(0, high - 500),
            )
            for row in rows:
                self.seen.setdefault(row["order_id"], row["at"])
                high = max(high, row["id"])
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()


async def commits(admin: Any, dbs: dict[str, str]) -> dict[str, int]:
    """Committed transactions so far per service database (pg_stat_database)."""
    from sqlalchemy import text

    async with admin.connect() as conn:
        rows = await conn.execute(
            text("select datname, xact_commit from pg_stat_database where datname = any(:n)"),
            {"n": list(dbs.values())},
        )
        by_name = {r[0]: int(r[1]) for r in rows}
    return {s: by_name.get(name, 0) for s, name in dbs.items()}


async def postgres_backends(admin: Any, dbs: list[str]) -> list[int]:
    from sqlalchemy import text

    async with admin.connect() as conn:
        rows = await conn.execute(
            text("select pid from pg_stat_activity where datname = any(:names)"), {"names": dbs}
        )
        return [r[0] for r in rows]


async def run_phase(
    session: Any,
    order_url: str,
    body: dict[str, Any],
    phase: Phase,
    watch: ValidatedWatch,
    deployment: Deployment,
    pg_pids: list[int],
    drain: float,
    admin: Any,
) -> None:
    """POST ``phase.rate`` orders/s for ``phase.seconds``, then wait for VALIDATED."""

    async def post() -> None:
        sent = time.time()
        t = time.perf_counter()
        try:
            async with session.post(order_url, json=body) as response:
                data = await response.json()
                if response.status != 201:
                    phase.failed_posts += 1
                    phase.failures.append(f"HTTP {response.status}")
                    return
        except Exception as exc:
            phase.failed_posts += 1
            phase.failures.append(type(exc).__name__)
            return
        phase.post_latency.append(time.perf_counter() - t)
        phase.posted[data["orderId"]] = sent

    commits_before = await commits(admin, deployment.dbs)
    before = deployment.cpu()
    pg_before = {p: cpu_seconds(p) for p in pg_pids}
    machine_before = machine_cpu()
    tasks: list[asyncio.Task[None]] = []
    phase.first_post = time.time()
    start = time.perf_counter()
    for i in range(phase.offered):
        delay = start + i / phase.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post()))
    await asyncio.gather(*tasks)
    deadline = time.perf_counter() + drain
    while time.perf_counter() < deadline:
        if all(o in watch.seen for o in phase.posted):
            break
        await asyncio.sleep(0.05)
    phase.validated = {o: watch.seen[o] for o in phase.posted if o in watch.seen}
    after = deployment.cpu()
    phase.cpu = {s: after[s] - before[s] for s in before}
    # Backends that exited in the phase (pool overflow) are lost: a lower bound.
    pg_after = {p: cpu_seconds(p) for p in pg_pids}
    phase.cpu["our pg"] = sum(
        pg_after[p] - pg_before[p] for p in pg_pids if pg_after[p] >= pg_before[p]
    )
    machine_after = machine_cpu()
    phase.cpu.update({k: machine_after[k] - machine_before[k] for k in machine_before})
    await asyncio.sleep(1.0)  # backends report their counts to pg_stat within a second
    commits_after = await commits(admin, deployment.dbs)
    phase.commits = {s: commits_after[s] - commits_before[s] for s in commits_before}


async def distributed(
    rates: list[int],
    seconds: float,
    *,
    warmup: int = 100,
    drain: float = 120.0,
    log_level: str = "INFO",
    serve_args: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Start the deployment, run one phase per rate, tear everything down.

    Rates run in the order given; once one is saturated (validated below 80 % of what
    was offered) the higher ones are skipped: they would only measure the same capacity
    with a longer queue.
    """
    import aiohttp
    from sqlalchemy import text

    from servicewire.storage.database import create_engine

    suffix = uuid.uuid4().hex[:6]
    dbs = {s: f"sw_bench_{suffix}_{s}" for s in SERVICES}
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    vhost: VirtualHost | PrivateBroker = VirtualHost(AMQP) if AMQP else PrivateBroker()
    deployment = Deployment(dbs, vhost)
    watch = ValidatedWatch(f"{PG}/{dbs['order']}")
    rows: list[dict[str, Any]] = []
    try:
        async with admin.connect() as conn:
            for name in dbs.values():
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        vhost.create()
        deployment.start(log_level, serve_args or [])
        http = {s: p.url for s, p in deployment.processes.items()}
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.post(
                f"{http['restaurant']}/v1/restaurants",
                json={
                    "name": "Bench",
                    "postcodes": ["94619"],
                    "menu": [{"menuItemId": "naan", "name": "Naan", "price": "2.50"}],
                },
            ) as r:
                restaurant = (await r.json())["restaurantId"]
            async with session.post(
                f"{http['consumer']}/v1/consumers", json={"name": "B", "orderLimit": "1000000"}
            ) as r:
                consumer = (await r.json())["consumerId"]
            for _ in range(600):  # the Order Service's replica fills from an event
                async with session.get(f"{http['order']}/v1/restaurants/{restaurant}") as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("the restaurant never reached the Order Service's replica")
            body = {
                "consumerId": consumer,
                "restaurantId": restaurant,
                "lineItems": [{"menuItemId": "naan", "quantity": 1}],
                "deliveryAddress": {"street": "1 Main", "city": "Oakland", "postcode": "94619"},
            }
            await watch.start()
            pg_pids = await postgres_backends(admin, list(dbs.values()))
            order_url = f"{http['order']}/v1/orders"
            if warmup:
                phase = Phase(rate=50, seconds=warmup / 50)
                await run_phase(
                    session, order_url, body, phase, watch, deployment, pg_pids, drain, admin
                )
                print(f"  warm-up: {len(phase.validated)}/{phase.offered} validated", flush=True)
            for rate in rates:
                # Pools grow under load: look for the databases' backends again.
                pg_pids = await postgres_backends(admin, list(dbs.values()))
                phase = Phase(rate=rate, seconds=seconds)
                await run_phase(
                    session, order_url, body, phase, watch, deployment, pg_pids, drain, admin
                )
                row = phase.row()
                rows.append(row)
                print(
                    f"  {rate}/s: {row['validated/s']:.0f} validated/s,"
                    f" {row['validated']}/{row['offered']} validated,"
                    f" e2e p50 {row['e2e p50']:.1f} ms p99 {row['e2e p99']:.1f} ms",
                    flush=True,
                )
                if row["validated/s"] < 0.8 * rate and rate != max(rates):
                    print(f"  saturated at {rate}/s: higher rates skipped", flush=True)
                    break
    finally:
        # Each step on its own: one failing must not leave the others' leftovers.
        await watch.stop()
        deployment.stop()
        try:
            async with admin.connect() as conn:
                for name in dbs.values():
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            await admin.dispose()
            print(f"  removing {vhost.name} and its queues ...", flush=True)
            vhost.delete()
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    processes = list(rows[0]["cpu"]) if rows else []
    print(
        f"{'offered/s':>9} {'validated/s':>11} {'validated':>11} {'POST p50':>9} {'POST p99':>9}"
        f" {'e2e p50':>9} {'e2e p99':>9}  CPU ms per order: "
        + " ".join(f"{p:>10}" for p in processes)
    )
    for r in rows:
        print(
            f"{r['rate']:>9} {r['validated/s']:>11.0f} {r['validated']:>5}/{r['offered']:<5}"
            f" {r['post p50']:>9.1f} {r['post p99']:>9.1f} {r['e2e p50']:>9.1f}"
            f" {r['e2e p99']:>9.1f}                    "
            + " ".join(f"{r['cpu'][p]:>10.2f}" for p in processes)
            + (f"  ({r['failed']} POSTs failed: {', '.join(r['failures'])})" if r["failed"] else "")
        )
    print("database commits per order (all transactions, relays' included):")
    for r in rows:
        print(f"{r['rate']:>9}/s  " + "  ".join(f"{s} {v:.1f}" for s, v in r["commits"].items()))
    if rows:
        best = max(rows, key=lambda r: r["validated/s"])
        print(f"saturation: {best['validated/s']:.0f} validated orders/s (at {best['rate']}/s)")
        print(
            "e2e median over all rates:",
            f"{statistics.median([v for r in rows for v in r['latencies']]) * 1000:.1f} ms",
        )


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Cumulative distribution of POST-to-VALIDATED latency, one line per offered rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    for r in rows:
        ordered = sorted(v * 1000 for v in r["latencies"])
        if not ordered:
            continue
        share = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axes.plot(
            ordered,
            share,
            label=f"{r['rate']}/s offered: p50 {r['e2e p50']:.0f} ms, p99 {r['e2e p99']:.0f} ms",
        )
    axes.axvline(30, color="grey", linestyle=":", linewidth=1)
    axes.axvline(150, color="grey", linestyle="--", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("POST /orders to VALIDATED (ms, log scale); goals at 100/s: p50 30, p99 150")
    axes.set_ylabel("share of orders")
    axes.set_title("FTGO distributed (3 x ftgo serve, PostgreSQL, RabbitMQ)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
