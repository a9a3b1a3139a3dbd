"""Private TLS servers for the security tests (never the shared ones): nats-server, uvicorn.

with TlsNats(pki, mutual=False) as server:
    url = server.url + f"?tls_ca={pki.ca}"
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from tests.security.certs import Pki

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class TlsNats:
    """A nats-server with JetStream that only speaks TLS, on its own port and store."""

    def __init__(self, pki: Pki, *, mutual: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sw-nats-tls-"))
        self.port = free_port()
        self.args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        self.args += ["-sd", str(self.dir / "store"), "--tls"]
        self.args += ["--tlscert", pki.server_cert, "--tlskey", pki.server_key]
        if mutual:
            self.args += ["--tlsverify", "--tlscacert", pki.ca]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def __enter__(self) -> TlsNats:
        log = open(self.dir / "server.log", "ab")  # the server process owns it
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"private nats-server did not start: {self.args}")
            time.sleep(0.05)
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def serve_https(app: ASGIApp, pki: Pki, *, mutual: bool = False, tls: bool = True) -> Iterator[int]:
    """Serve ``app`` on uvicorn (HTTPS with the test CA's server cert) until the block ends."""
    port = free_port()
    extra: dict[str, Any] = {}
    if tls:
        extra = {"ssl_certfile": pki.server_cert, "ssl_keyfile": pki.server_key}
        if mutual:
            extra |= {"ssl_ca_certs": pki.ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **extra
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
