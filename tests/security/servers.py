"""Private TLS servers for the security tests (never the shared ones): nats-server.

with TlsNats(pki, mutual=False) as server:
    url = server.url + f"?tls_ca={pki.ca}"
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

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
