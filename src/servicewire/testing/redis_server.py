"""A private ``redis-server`` on its own port and directory, for restart tests and probes.

Restarting a shared Redis would break everyone using it, so tests and ``servicewire
brokers`` start one of their own (append-only file on, so it keeps what it accepted),
restart it, and stop it::

    async with PrivateRedis() as server:          # needs redis-server on PATH
        transport = await connect_transport(server.url)
        await server.restart()                    # graceful: the AOF is flushed first
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from servicewire.errors import TransportError
from servicewire.timeouts import within


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """One ``redis-server`` process this object started and will stop."""

    def __init__(self, *, appendonly: bool = True, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise TransportError("redis-server is not installed (needed for a private Redis)")
        self.binary = binary
        self.appendonly = appendonly
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="servicewire-redis-")
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def directory(self) -> Path:
        return Path(self._dir.name)

    async def start(self, timeout: float = 10.0) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self._dir.name,
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self._proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await self._wait_ready(timeout)

    async def _wait_ready(self, timeout: float) -> None:
        # Ready means answering PING with PONG, not just listening: while it loads the
        # AOF after a restart Redis answers -LOADING.
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if self._proc is not None and self._proc.returncode is not None:
                break
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    writer.write(b"PING\r\n")
                    await writer.drain()
                    line = await within(reader.readline(), 1.0)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                if line.startswith(b"+PONG"):
                    return
            await asyncio.sleep(0.05)
        raise TransportError(f"private redis-server on port {self.port} did not start")

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Redis flushes its append-only file and exits."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await within(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def close(self) -> None:
        await self.stop()
        self._dir.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
