"""A private ``moto_server``: an in-memory emulator of AWS APIs (SQS, Kinesis, ...).

Tests, benchmarks and ``servicewire brokers`` start one on a free loopback port and
stop it; it keeps everything in memory, so a restart is a new, empty server::

    with PrivateMoto() as moto:                # needs moto[server] (the dev extra)
        transport = await connect_transport(moto.sqs_url)
        moto.restart()                         # every queue and message is gone

``moto`` is an emulator, not AWS: docs/transports/sqs.md says which behaviours the
tests checked on it and which against AWS's documentation. The server runs with its
SQS calls taken one at a time (:mod:`.moto_serial`: moto's FIFO receive is not safe
between its request threads).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from servicewire.errors import TransportError
from servicewire.testing.tansu import _wait_port, free_port, moto_binary


class PrivateMoto:
    """One ``moto_server`` process this object started and will stop."""

    def __init__(self, port: int | None = None) -> None:
        if moto_binary() is None:
            raise TransportError("moto_server is not installed (pip install 'moto[server]')")
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="servicewire-moto-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sqs_url(self, **options: str) -> str:
        """An ``sqs://`` URL for this server (in-memory: declared not persistent)."""
        query = "&".join(
            f"{k}={v}" for k, v in {"https": "no", "persistent": "no", **options}.items()
        )
        return f"sqs://test:test@127.0.0.1:{self.port}/?{query}"

    def kinesis_url(self, **options: str) -> str:
        """A ``kinesis://`` URL for this server (in-memory: declared not persistent)."""
        query = "&".join(
            f"{k}={v}" for k, v in {"https": "no", "persistent": "no", **options}.items()
        )
        return f"kinesis://test:test@127.0.0.1:{self.port}/?{query}"

    @property
    def log(self) -> Path:
        return Path(self._dir.name) / "moto.log"

    def start(self) -> Self:
        # moto's server with its SQS calls serialized (see .moto_serial for why)
        command = [sys.executable, "-m", "servicewire.testing.moto_serial"]
        command += ["-H", "127.0.0.1", "-p", str(self.port)]
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_port(self.port, 30, self._proc, "moto_server")
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self) -> None:
        """Stop and start again on the same port: an empty server (moto keeps no state)."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self._dir.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
