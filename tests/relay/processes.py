"""``servicewire relay`` subprocesses for tests: start, watch their log, SIGKILL or SIGTERM,
SIGSTOP and SIGCONT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

from servicewire.timeouts import within

ROOT = Path(__file__).resolve().parents[2]


class RelayProcess:
    """One relay process; ``active_at`` is when it logged that it owns its stream."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.active_at: float | None = None
        self.started_at: float | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, *, db: str, transport: str, mode: str, name: str, extra: tuple[str, ...] = ()
    ) -> RelayProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.relay.relay_main",
            "relay",
            "--db",
            db,
            "--transport",
            transport,
            "--mode",
            mode,
            "--name",
            name,
            "--lease-ttl",
            "2",
            *extra,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            self.lines.append(text)
            if " -> " in text and self.started_at is None:
                self.started_at = time.monotonic()  # the CLI's first line
            if " active (" in text and self.active_at is None:
                self.active_at = time.monotonic()

    @property
    def stopped(self) -> bool:
        """True while the process is stopped (SIGSTOP): state ``T`` in /proc."""
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rpartition(")")[2].split()[0] in ("T", "t")

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)

    def logged(self, *words: str) -> bool:
        return any(word in line for line in self.lines for word in words)

    @property
    def log(self) -> str:
        return "\n".join(self.lines[-30:])

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()  # a stopped process dies too
        await self.wait(10)

    async def terminate(self, timeout: float = 20) -> int:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def wait(self, timeout: float) -> int:
        try:
            code = await within(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await within(self._reader, 5)
        return code
