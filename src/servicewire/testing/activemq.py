"""A private Apache ActiveMQ 5 broker on loopback ports and its own directory.

Tests and probes never use the system's ActiveMQ service: they start one of their own,
with its data directory and configuration under a temporary directory, only the
connectors they ask for, each bound to 127.0.0.1 on a free port, no JMX and no web
console, and they stop it afterwards::

    async with PrivateActiveMQ(connectors=("stomp",)) as broker:   # needs java + activemq
        url = broker.url("stomp")              # stomp://127.0.0.1:<port>
        await broker.restart()                 # graceful: KahaDB keeps what it accepted

Starting takes one to a few seconds (a JVM), so test suites share one per session.

Which connectors an installation can serve is read from its jars
(:func:`available_connectors`): Debian's ``activemq`` package (5.17) ships OpenWire,
STOMP and MQTT but no AMQP connector (``activemq-amqp`` needs proton-j, which Debian
does not package), and asking for one it lacks fails before the JVM starts, naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self
from xml.sax.saxutils import quoteattr

from servicewire.errors import TransportError
from servicewire.testing.redis_server import free_port
from servicewire.timeouts import within

DEFAULT_HOME = Path("/usr/share/activemq")
"""Where Debian's ``activemq`` package installs the broker (``SERVICEWIRE_ACTIVEMQ_HOME``
overrides it, e.g. for an unpacked Apache distribution)."""

_SERVICES = "META-INF/services/org/apache/activemq/transport/"

# What a client says first on each protocol, and how the broker's answer starts: ready
# means the broker speaks the protocol on the port, not only that the port is open.
_HELLO: dict[str, tuple[bytes, bytes]] = {
    "stomp": (b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\x00", b"CONNECTED"),
    "amqp": (b"AMQP\x00\x01\x00\x00", b"AMQP"),
}


def activemq_home() -> Path:
    """The ActiveMQ installation to run (``SERVICEWIRE_ACTIVEMQ_HOME`` or Debian's)."""
    return Path(os.environ.get("SERVICEWIRE_ACTIVEMQ_HOME") or DEFAULT_HOME)


def available_connectors(home: Path | None = None) -> frozenset[str]:
    """The transport schemes (``tcp``, ``stomp``, ``amqp``, ...) the installation's jars serve.

    A connector is served when some jar registers a transport factory for its scheme
    under ``META-INF/services/org/apache/activemq/transport/``, which is how the broker
    itself looks them up.
    """
    lib = (home or activemq_home()) / "lib"
    schemes: set[str] = set()
    for jar in sorted(lib.glob("**/*.jar")):
        with contextlib.suppress(OSError, zipfile.BadZipFile):
            with zipfile.ZipFile(jar) as archive:
                for name in archive.namelist():
                    if name.startswith(_SERVICES) and not name.endswith("/"):
                        schemes.add(name[len(_SERVICES) :])
    return frozenset(schemes)


def broker_xml(
    data_dir: Path,
    connectors: dict[str, int],
    *,
    name: str = "servicewire",
    reply_gc_ms: int = 60_000,
) -> str:
    """The broker configuration: ``connectors`` (scheme -> port) on 127.0.0.1 only.

    No JMX (``useJmx="false"``) and no web console (nothing imports ``jetty.xml``);
    KahaDB under ``data_dir``; small memory and store limits, so a test broker neither
    takes the machine's memory nor warns about a disk smaller than ActiveMQ's 100 GB
    default; dead letters of each queue go to ``DLQ.<queue>`` rather than one shared DLQ.
    An instance reply channel's queue (``Consumer.*.VirtualTopic.<svc>.replies.<id>``)
    is removed once it has had no consumer and no message for ``reply_gc_ms``: replies
    to it expire (the transport sets ``expires``), so it goes with its instance.
    """
    lines = [
        # tcpNoDelay: ActiveMQ leaves Nagle on by default, and a small frame then waits
        # for the peer's delayed ACK (~40 ms on Linux): one-at-a-time latency 45 ms.
        f'      <transportConnector name="{scheme}"'
        f' uri="{scheme}://127.0.0.1:{port}?transport.tcpNoDelay=true"/>'
        for scheme, port in connectors.items()
    ]
    data = quoteattr(str(data_dir))
    kahadb = quoteattr(str(data_dir / "kahadb"))
    return f"""<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans
    http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
    http://activemq.apache.org/schema/core
    http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName={quoteattr(name)}
          useJmx="false" persistent="true" schedulerSupport="false" dataDirectory={data}
          schedulePeriodForDestinationPurge="{max(1000, reply_gc_ms // 2)}">
    <destinationPolicy>
      <policyMap>
        <policyEntries>
          <policyEntry queue=">">
            <deadLetterStrategy>
              <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
            </deadLetterStrategy>
          </policyEntry>
          <policyEntry queue="Consumer.*.VirtualTopic.*.replies.>"
                       gcInactiveDestinations="true" inactiveTimoutBeforeGC="{reply_gc_ms}">
            <deadLetterStrategy>
              <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
            </deadLetterStrategy>
          </policyEntry>
        </policyEntries>
      </policyMap>
    </destinationPolicy>
    <persistenceAdapter>
      <kahaDB directory={kahadb}/>
    </persistenceAdapter>
    <systemUsage>
      <systemUsage>
        <memoryUsage><memoryUsage limit="64 mb"/></memoryUsage>
        <storeUsage><storeUsage limit="1 gb"/></storeUsage>
        <tempUsage><tempUsage limit="256 mb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <transportConnectors>
{chr(10).join(lines)}
    </transportConnectors>
  </broker>
</beans>
"""


class PrivateActiveMQ:
    """One ActiveMQ JVM this object started and will stop, with its own directory."""

    def __init__(
        self,
        connectors: Iterable[str] = ("stomp",),
        *,
        home: Path | None = None,
        heap: str = "256m",
    ) -> None:
        self.home = home or activemq_home()
        java = shutil.which("java")
        launcher = self.home / "bin" / "activemq.jar"
        if java is None or not launcher.is_file():
            raise TransportError(
                f"ActiveMQ is not installed (java: {java}, {launcher} missing?): "
                "apt-get install activemq (scripts/services/70-activemq.sh)"
            )
        wanted = list(dict.fromkeys(connectors))
        missing = [s for s in wanted if s not in available_connectors(self.home)]
        if missing:
            raise TransportError(
                f"the ActiveMQ in {self.home} has no {', '.join(missing)} connector "
                f"(no transport factory for it in {self.home / 'lib'}); "
                "Debian's activemq package ships tcp (OpenWire), stomp and mqtt only"
            )
        self.java = java
        self.heap = heap
        self.ports = {scheme: free_port() for scheme in wanted}
        self._dir = tempfile.TemporaryDirectory(prefix="servicewire-activemq-")
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def directory(self) -> Path:
        return Path(self._dir.name)

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def url(self, scheme: str) -> str:
        """``<scheme>://127.0.0.1:<port>`` of one of this broker's connectors."""
        return f"{scheme}://127.0.0.1:{self.ports[scheme]}"

    def _write_config(self) -> None:
        conf = self.directory / "conf"
        conf.mkdir()
        (self.directory / "data").mkdir()
        xml = broker_xml(self.directory / "data", self.ports)
        (conf / "activemq.xml").write_text(xml, encoding="utf-8")

    async def start(self, timeout: float = 60.0) -> None:
        base, conf = self.directory, self.directory / "conf"
        args = [
            self.java,
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseSerialGC",  # one GC thread: the test machine's cores are shared
            "-Djava.awt.headless=true",
            f"-Dactivemq.home={self.home}",
            f"-Dactivemq.base={base}",
            f"-Dactivemq.conf={conf}",
            f"-Dactivemq.data={base / 'data'}",
            f"-Dactivemq.classpath={conf}",
            "-jar", str(self.home / "bin" / "activemq.jar"),
            "start", f"xbean:file:{conf / 'activemq.xml'}",
        ]  # fmt: skip
        # A plain Popen, not an asyncio subprocess: the process then belongs to no event
        # loop, so a session-wide broker serves tests that each run their own loop.
        with (base / "activemq.log").open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once)
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=base
            )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = dict(self.ports)
        while pending and loop.time() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                break
            for scheme, port in list(pending.items()):
                if await _answers(scheme, port):
                    del pending[scheme]
            if pending:
                await asyncio.sleep(0.1)
        if pending:
            tail = self.log_tail()
            raise TransportError(
                f"private ActiveMQ did not serve {sorted(pending)} within {timeout:.0f}s: {tail}"
            )

    def log_tail(self, lines: int = 5) -> str:
        """The last lines the broker wrote (for error messages)."""
        path = self.directory / "activemq.log"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    async def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: the broker's shutdown hook closes KahaDB cleanly; SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        if not await _exited(proc, timeout):
            proc.kill()
            await _exited(proc, timeout)

    async def restart(self) -> None:
        """Stop and start on the same ports and data: what was persisted comes back."""
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


async def _answers(scheme: str, port: int) -> bool:
    """Whether the broker speaks ``scheme`` on ``port`` (a bare TCP connect for others)."""
    try:
        reader, writer = await within(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        hello = _HELLO.get(scheme)
        if hello is None:
            return True
        writer.write(hello[0])
        await writer.drain()
        answer = await within(reader.read(len(hello[1])), 2.0)
        return answer == hello[1]
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether ``proc`` exits within ``timeout`` (polled: it belongs to no event loop)."""
    for _ in range(max(1, int(timeout / 0.05))):
        if proc.poll() is not None:
            return True
        await asyncio.sleep(0.05)
    return proc.poll() is not None
