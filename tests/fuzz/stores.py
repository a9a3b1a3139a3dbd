"""FTGO's three services on private databases of one store, for the fuzz suites.

async with ftgo_on("postgres", tmp_path) as system:   # three new databases, dropped after
    ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from ftgo.app.system import FtgoSystem
from tests.relay.dbs import private_database

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def ftgo_on(store: str, directory: Path | None = None) -> AsyncIterator[FtgoSystem]:
    """FTGO, started, each service on its own new database of ``store`` (SQLite: files
    in ``directory``)."""
    async with contextlib.AsyncExitStack() as stack:
        dbs = {
            s: await stack.enter_async_context(private_database(store, directory))
            for s in ("order", "consumer", "restaurant")
        }
        system = FtgoSystem.create(
            order_db=dbs["order"],
            consumer_db=dbs["consumer"],
            restaurant_db=dbs["restaurant"],
            transport=f"memory://{uuid.uuid4().hex}",
        )
        async with system:
            yield system


class ServeProcess:
    """``ftgo serve <service>`` as a process of its own, until :meth:`stop`.

    procs = [ServeProcess(name, db_url, transport_url, log_dir) for ...]  # start together
    urls = [proc.ready() for proc in procs]      # http://127.0.0.1:<port>, from the ready line
    for proc in procs: proc.terminate()          # stop together
    for proc in procs: proc.stop()
    """

    def __init__(self, service: str, db: str, transport: str, log_dir: Path) -> None:
        self.log = log_dir / f"{service}.log"
        command = [sys.executable, "-m", "ftgo.app.cli", "serve", service, "--db", db]
        command += ["--transport", transport, "--log-level", "WARNING"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )

    def ready(self) -> str:
        """The HTTP address from the process's ready line (it fails if none comes)."""
        assert self.proc.stdout is not None
        for _ in range(50):  # bounded: log lines before the ready line
            line = self.proc.stdout.readline().decode()
            if " ready " in line:
                return next(w for w in line.split() if w.startswith("http="))[5:]
            if not line:
                break
        raise AssertionError(f"ftgo serve never got ready: {self.log.read_text()[-2000:]}")

    def terminate(self) -> None:
        """SIGTERM: the process finishes what is in flight and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """:meth:`terminate`, then wait; SIGKILL after 15 s."""
        self.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
