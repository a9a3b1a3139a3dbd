"""``ftgo up``: all three services and their relays, each its own process.

    ftgo up --db-base postgresql://postgres@127.0.0.1:5432 \\
        --transport amqp://guest:guest@127.0.0.1:5672/

Each service gets its own database (``ftgo_order``, ``ftgo_consumer``,
``ftgo_restaurant`` under ``--db-base``, created if missing) and its own relay process
(``servicewire relay``). The addresses are printed once everything is up; Ctrl-C (or
SIGTERM) stops every process cleanly, services first, then relays.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from servicewire.urls import redact

SERVICES = ("restaurant", "consumer", "order")
BASE_PORTS = {"restaurant": (8083, 9083), "consumer": (8082, 9082), "order": (8081, 9081)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db-base", required=True, help="server URL without database: postgresql://user@host:port"
    )
    parser.add_argument("--transport", required=True)
    parser.add_argument(
        "--relay-mode", choices=["polling", "postgres-wal", "mysql-binlog"], default="polling"
    )
    parser.add_argument("--port-offset", type=int, default=0, help="added to 8081-8083/9081-9083")
    parser.add_argument("--validation", choices=["async", "sync"], default="async")
    parser.add_argument("--no-relays", action="store_true", help="services relay in-process")
    parser.add_argument(
        "--no-journal",
        action="store_true",
        help="do not record messages for `servicewire trace` (recorded by default)",
    )


def database_url(base: str, service: str) -> str:
    return f"{base.rstrip('/')}/ftgo_{service}"


def ensure_databases(base: str) -> None:
    """Create the three databases if missing (PostgreSQL or MariaDB)."""
    from sqlalchemy import create_engine, text

    from servicewire.storage import sync_url

    scheme = base.split(":", 1)[0]
    admin_db = "postgres" if scheme.startswith("postgres") else ""
    engine = create_engine(sync_url(f"{base.rstrip('/')}/{admin_db}"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for service in SERVICES:
            name = f"ftgo_{service}"
            if scheme.startswith("postgres"):
                exists = conn.execute(
                    text("select 1 from pg_database where datname = :n"), {"n": name}
                ).first()
                if not exists:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
    engine.dispose()


@dataclass
class Supervisor:
    """Starts child processes and stops them all, in reverse order, on the way out."""

    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=None, env=dict(os.environ, PYTHONUNBUFFERED="1")
        )
        self.processes.append((name, proc))
        return proc

    def wait_ready(self, name: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
        """The 'ready' line a service prints when it listens."""
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"{name} exited with {proc.wait()}")
            if " ready " in line:
                return line.strip()
        raise RuntimeError(f"{name} did not become ready in {timeout}s")

    def stop_all(self, timeout: float = 20) -> None:
        for _name, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(self.processes):
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in {timeout}s; killing it", file=sys.stderr)
                proc.kill()
        self.processes.clear()


def main(args: argparse.Namespace) -> int:
    ensure_databases(args.db_base)
    supervisor = Supervisor()
    python = sys.executable
    addresses: dict[str, str] = {}
    try:
        for service in SERVICES:
            http, grpc = (p + args.port_offset for p in BASE_PORTS[service])
            argv = [
                python,
                "-m",
                "ftgo.app.cli",
                "serve",
                service,
                "--db",
                database_url(args.db_base, service),
                "--transport",
                args.transport,
                "--http-port",
                str(http),
                "--grpc-port",
                str(grpc),
            ]
            if not args.no_relays:
                argv.append("--no-relay")
            if not getattr(args, "no_journal", False):
                argv.append("--journal")
            if service == "order" and args.validation == "sync":
                argv += [
                    "--validation",
                    "sync",
                    "--consumer-http",
                    f"127.0.0.1:{BASE_PORTS['consumer'][0] + args.port_offset}",
                    "--restaurant-grpc",
                    f"127.0.0.1:{BASE_PORTS['restaurant'][1] + args.port_offset}",
                ]
            proc = supervisor.start(service, argv)
            addresses[service] = supervisor.wait_ready(service, proc)
        if not args.no_relays:
            for service in SERVICES:
                supervisor.start(
                    f"{service}-relay",
                    [
                        python,
                        "-m",
                        "servicewire.cli.main",
                        "relay",
                        "--db",
                        database_url(args.db_base, service),
                        "--transport",
                        args.transport,
                        "--mode",
                        args.relay_mode,
                        "--name",
                        f"ftgo-{service}",
                    ],
                )
        print("FTGO is up:")
        for line in addresses.values():
            print(f"  {line}")
        print(f"  databases under {redact(args.db_base)}, transport {redact(args.transport)}")
        if not getattr(args, "no_journal", False):
            dbs = " ".join(f"--db {redact(database_url(args.db_base, s))}" for s in SERVICES)
            print(f"  where is an order? servicewire trace ORDER_ID {dbs}")
        print("Ctrl-C stops everything.", flush=True)
        while True:
            for name, proc in supervisor.processes:
                if proc.poll() is not None:
                    print(
                        f"{name} exited with {proc.returncode}; stopping the rest", file=sys.stderr
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            supervisor.stop_all()
