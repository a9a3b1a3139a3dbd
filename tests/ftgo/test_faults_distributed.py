"""FTGO under faults, as separate processes: Restaurant Service and its relay killed with
SIGKILL and restarted mid-run, and the broker restarted once. No order is left PENDING
and none changes state twice.

Each service runs as ``ftgo serve --no-relay`` with its own PostgreSQL database and a
``servicewire relay`` process; the broker is a private Redis (append-only file on) this
test starts, so restarting it disturbs nobody else.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from ftgo.app.web import free_port
from ftgo.order.service import state_changes
from servicewire.storage.database import create_engine
from servicewire.testing.redis_server import PrivateRedis
from tests import services

ROOT = Path(__file__).resolve().parents[2]
PG_BASE = services.URLS["postgres"].rsplit("/", 1)[0]


class Proc:
    """One service process; its stderr goes to ``<log_dir>/<name>.log`` (appended across
    restarts), whose tail a failing test prints."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as stderr:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} stderr ---\n" + "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise AssertionError(f"{self.name} exited with {self.proc.wait()}")
            if " ready " in line:
                return
        raise AssertionError(f"{self.name} not ready")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
async def databases() -> AsyncIterator[dict[str, str]]:
    services.require("postgres")
    suffix = uuid.uuid4().hex[:8]
    names = {s: f"sw_ftgof_{suffix}_{s}" for s in ("order", "consumer", "restaurant")}
    admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        for name in names.values():
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield {s: f"{PG_BASE}/{n}" for s, n in names.items()}
    finally:
        async with admin.connect() as conn:
            for name in names.values():
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def order_body(consumer: str, restaurant: str, postcode: str = "94619") -> dict[str, Any]:
    return {
        "consumerId": consumer,
        "restaurantId": restaurant,
        "lineItems": [{"menuItemId": "naan", "quantity": 2}],
        "deliveryAddress": {"street": "1 Main", "city": "Oakland", "postcode": postcode},
    }


async def test_kills_and_a_broker_restart_leave_no_order_stuck_or_doubled(
    databases: dict[str, str], tmp_path: Path
) -> None:
    async with PrivateRedis() as broker:
        ports = {s: free_port() for s in ("order", "consumer", "restaurant")}
        python = sys.executable
        procs: dict[str, Proc] = {}
        for service in ("restaurant", "consumer", "order"):
            procs[service] = Proc(
                service,
                [
                    python,
                    "-m",
                    "ftgo.app.cli",
                    "serve",
                    service,
                    "--db",
                    databases[service],
                    "--transport",
                    broker.url,
                    "--http-port",
                    str(ports[service]),
                    "--no-relay",
                ],
                tmp_path,
            )
            procs[f"{service}-relay"] = Proc(
                f"{service}-relay",
                [
                    python,
                    "-m",
                    "servicewire.cli.main",
                    "relay",
                    "--db",
                    databases[service],
                    "--transport",
                    broker.url,
                    "--name",
                    f"ftgo-{service}",
                ],
                tmp_path,
            )
        try:
            for service in ("restaurant", "consumer", "order"):
                procs[service].start()
                procs[service].wait_ready()
                procs[f"{service}-relay"].start()
            async with httpx.AsyncClient(timeout=10) as client:
                base = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
                r = await client.post(
                    f"{base['restaurant']}/v1/restaurants",
                    json={
                        "name": "Ajanta",
                        "postcodes": ["94619"],
                        "menu": [{"menuItemId": "naan", "name": "Naan", "price": "2.50"}],
                    },
                )
                restaurant = r.json()["restaurantId"]
                r = await client.post(
                    f"{base['consumer']}/v1/consumers", json={"name": "Ada", "orderLimit": "1000"}
                )
                consumer = r.json()["consumerId"]
                deadline = time.monotonic() + 30
                while (
                    await client.get(f"{base['order']}/v1/restaurants/{restaurant}")
                ).status_code != 200:
                    assert time.monotonic() < deadline, "replica never filled"
                    await asyncio.sleep(0.1)

                created: list[tuple[str, str]] = []

                async def place(n: int) -> None:
                    for i in range(n):
                        postcode = "10001" if i % 5 == 0 else "94619"
                        r = await client.post(
                            f"{base['order']}/v1/orders",
                            json=order_body(consumer, restaurant, postcode),
                        )
                        assert r.status_code == 201, r.text
                        expected = "REJECTED" if postcode == "10001" else "VALIDATED"
                        created.append((r.json()["orderId"], expected))
                        await asyncio.sleep(0.01)

                await place(20)
                procs["restaurant"].kill()  # mid-run: SIGKILL the service ...
                procs["restaurant-relay"].kill()  # ... and its relay
                await place(20)  # orders still accepted
                procs["restaurant"].start()
                procs["restaurant"].wait_ready()
                procs["restaurant-relay"].start()
                await place(10)
                await broker.restart()  # the broker restarts once
                await place(20)

                deadline = time.monotonic() + 120
                for order_id, expected in created:
                    while True:
                        state = (await client.get(f"{base['order']}/v1/orders/{order_id}")).json()[
                            "state"
                        ]
                        if state != "PENDING":
                            break
                        assert time.monotonic() < deadline, f"order {order_id} stuck PENDING"
                        await asyncio.sleep(0.1)
                    assert state == expected, order_id
            engine = create_engine(databases["order"])
            async with engine.connect() as conn:
                counts = (
                    await conn.execute(
                        select(state_changes.c.order_id, func.count()).group_by(
                            state_changes.c.order_id
                        )
                    )
                ).all()
            await engine.dispose()
            assert len(counts) == len(created) == 70
            assert all(c == 2 for _o, c in counts), "an order was validated twice"
        except BaseException:
            print("\n".join(proc.tail() for proc in procs.values()))  # shown on failure
            raise
        finally:
            for proc in procs.values():
                proc.stop()
