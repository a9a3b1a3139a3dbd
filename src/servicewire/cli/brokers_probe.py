"""Measure, rather than assert, what each reachable transport gives.

The literature picks a broker (or none) by ordering, delivery guarantee, persistence,
durability, competing consumers, throughput and latency. :func:`probe` measures each
of them against a live transport, with small sizes so a full run takes a minute or
two; ``servicewire brokers`` prints and records the results::

    results = await probe_all(["memory://", "redis://127.0.0.1:6379/0"], messages=500)
    for r in results:
        print(r.name, r.ordering, r.publish_rate, r.latency_p50_ms)

What each probe does (every wait is bounded):

* **ordering / competing**: 3 members of one group, messages over 6 partition keys,
  handlers that take a random 0-2 ms; counts keys whose first-seen order differs from
  the publish order, and how many members received work.
* **delivery**: every reception in every probe, counted against what was published:
  lost messages and duplicates seen.
* **durability**: a declared group with no member connected; messages published;
  then a member joins — how many arrive.
* **persistence**: only where the probe can restart a broker it started itself (a
  private ``redis-server`` mirroring the target's ``appendonly``; a private tansu on
  its S3 storage for Kafka): publish, restart, count. Shared brokers are never
  restarted; the cell says why it was not measured.
* **throughput**: ``publish_batch`` of 500-byte messages, confirmed by the broker.
* **latency**: one message at a time, publish to handler, p50 and p99, after one
  warm-up message (so a consumer group's join is not counted as latency).

``kafka://`` without a host probes a private tansu (:mod:`servicewire.testing.tansu`)
that the probe starts and stops, the way ``memory://`` gets a broker of its own: there
is no shared Kafka on a development host, and stopping it removes everything made.
``stomp://`` without a host does the same with a private Apache ActiveMQ
(:mod:`servicewire.testing.activemq`), which its persistence probe restarts.
``sqs://`` and ``kinesis://`` without a host likewise probe a private ``moto_server``
(:mod:`servicewire.testing.moto_server`): an in-memory emulator of the SQS, Kinesis and
DynamoDB APIs, so their figures say how the transports behave against the APIs, not
how fast AWS is.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from servicewire.errors import ServicewireError
from servicewire.messaging.message import Message
from servicewire.transports import connect_transport
from servicewire.transports.base import Delivery, Subscription, Transport
from servicewire.urls import redact

Progress = Callable[[str], None]

LOCAL_DEFAULTS: dict[str, str] = {
    "memory": "memory://",
    "amqp": "amqp://guest:guest@127.0.0.1:5672/",
    "nats": "nats://127.0.0.1:4222",
    "redis": "redis://127.0.0.1:6379/0",
    "zmq": "zmq+tcp://127.0.0.1:{port}",
    "kafka": "kafka://",
    "stomp": "stomp://",
    "sqs": "sqs://",
    "kinesis": "kinesis://",
}
"""What ``servicewire brokers`` probes when given no URL (``kafka://``: a private tansu;
``stomp://``: a private ActiveMQ; ``sqs://`` and ``kinesis://``: a private moto server,
an emulator of SQS, Kinesis and DynamoDB)."""

# The private broker the probe started for this run, restartable by the persistence
# probe (a shared broker is never restarted).
_restartable: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar(
    "restartable", default=None
)

# Long polls of 1 s: a closing member waits for its poll, and the probe closes many.
MOTO_TUNING = {"wait_time": "1", "visibility_timeout": "10"}
# Kinesis on moto: idle shards polled every 50 ms (AWS allows 5 reads a second per shard,
# hence the transport's 1 s default), members' leases renewed every second.
MOTO_KINESIS_TUNING = {
    "poll_interval": "0.05",
    "lease_time": "3",
    "checkpoint_interval": "0.5",
    "shard_refresh": "5",
}

# Group timings for the private tansu: members notice a rebalance within 100 ms (the
# transport's defaults suit a production cluster, where a join may take longer).
TANSU_TUNING = (
    "session_timeout_ms=6000&heartbeat_interval_ms=100&rebalance_timeout_ms=5000"
    "&revoke_grace_ms=300&request_timeout_ms=15000&connect_timeout_ms=5000"
)
# On its S3 storage (the persistence probe) every batch and commit is an S3 request.
TANSU_RESTART_TUNING = (
    "&partitions=4&heartbeat_interval_ms=1000&linger_ms=20&commit_interval_ms=500"
)


def join_time(name: str) -> float:
    """How long a new member may take before it receives anything.

    A Kafka member joins its consumer group first; tansu's coordinator waits about
    3-4 s for more members before it assigns partitions (Kafka's
    ``group.initial.rebalance.delay.ms`` does the same). The other transports deliver
    within milliseconds of subscribing.
    """
    return 20.0 if name == "kafka" else 3.0


KEYS = 6
MEMBERS = 3
PAYLOAD = 500


@dataclass
class ProbeResult:
    """The measured selection factors of one transport (text cells, numbers for charts)."""

    name: str
    url: str
    reachable: bool = True
    error: str = ""
    declared: dict[str, bool] = field(default_factory=dict)
    ordering: str = "not measured"
    delivery: str = "not measured"
    persistence: str = "not measured"
    durability: str = "not measured"
    competing: str = "not measured"
    publish_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    notes: list[str] = field(default_factory=list)
    received: int = 0
    duplicates: int = 0
    lost: int = 0


def default_urls() -> list[str]:
    from servicewire.testing.redis_server import free_port

    return [u.format(port=free_port()) for u in LOCAL_DEFAULTS.values()]


def transport_name(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    return {"amqps": "amqp", "rediss": "redis", "tls": "nats", "kafka+ssl": "kafka"}.get(
        scheme, scheme.replace("zmq+tcp", "zmq").replace("zmq+ipc", "zmq")
    )


def _message(channel: str, n: int, key: str | None = None) -> Message:
    body = f'{{"n":{n},"pad":"'.encode()
    payload = body + b"x" * max(0, PAYLOAD - len(body) - 2) + b'"}'
    return Message.create(
        payload,
        destination=channel,
        kind="event",
        type="servicewire.probe.Tick",
        version="1.0.0",
        partition_key=key,
        extra={"seq": str(n), "sentns": str(time.perf_counter_ns())},
    )


# The channels the running probe made, so that it can delete them when it is done.
_made: ContextVar[set[str] | None] = ContextVar("servicewire_probe_channels", default=None)


def _name(what: str) -> str:
    name = f"probe.{what}.{uuid.uuid4().hex[:10]}"
    made = _made.get()
    if made is not None:
        made.add(name)
    return name


async def _remove_channels(transport: Transport, channels: set[str]) -> None:
    """Delete what the probe declared (RabbitMQ queues and exchanges, NATS streams, Redis
    streams, Kafka topics): a probe leaves the broker as it found it."""
    for channel in sorted(channels):
        with contextlib.suppress(ServicewireError, OSError, TimeoutError):
            async with asyncio.timeout(15):
                await transport.tear_down(channel, ["probe"])


class _Consumer:
    """A member in a background task that records what it got (and acks it)."""

    def __init__(
        self, sub: Subscription, on_message: Callable[[Delivery], Awaitable[None]] | None = None
    ) -> None:
        self.sub = sub
        self.got: list[Message] = []
        self.handled_ns: list[int] = []
        self._on_message = on_message
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(ServicewireError, OSError):
            async for delivery in self.sub:
                if self._on_message is not None:
                    await self._on_message(delivery)
                self.got.append(delivery.message)
                self.handled_ns.append(time.perf_counter_ns())
                await delivery.ack()

    async def stop(self) -> None:
        with contextlib.suppress(ServicewireError, OSError, TimeoutError):
            async with asyncio.timeout(10):
                await self.sub.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ServicewireError, OSError):
            await self._task


async def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# The probes -------------------------------------------------------------------------


async def _probe_order(transport: Transport, result: ProbeResult, count: int) -> None:
    channel, group = _name("order"), "probe"

    async def jitter(_: Delivery) -> None:
        await asyncio.sleep(random.random() * 0.002)

    members = [_Consumer(await transport.subscribe(channel, group), jitter) for _ in range(MEMBERS)]
    try:
        # Let the group settle who owns which shard (Kafka: all three have joined;
        # Kinesis: the first member handed the others their share of the leases).
        settle = {"kafka": join_time("kafka") / 2, "kinesis": 2.5}
        await asyncio.sleep(settle.get(result.name, 0.5))
        sent = [_message(channel, i, key=f"key-{i % KEYS}") for i in range(count)]
        await transport.publish_batch(sent)
        expected = {m.id for m in sent}

        def got_ids() -> set[str]:
            return {m.id for c in members for m in c.got}

        await _wait(lambda: got_ids() >= expected, 30)
        # Order is judged on what the members handled, merged by handling time (one
        # process, one monotonic clock), first reception of each message per key.
        handled = sorted(
            ((t, m) for c in members for t, m in zip(c.handled_ns, c.got, strict=True)),
            key=lambda pair: pair[0],
        )
        first_seen: dict[str, list[int]] = defaultdict(list)
        seen: set[str] = set()
        for _, m in handled:
            if m.id not in seen:
                seen.add(m.id)
                first_seen[m.partition_key or ""].append(int(m.headers["seq"]))
        broken = sum(1 for seqs in first_seen.values() if seqs != sorted(seqs))
        busy = sum(1 for c in members if c.got)
        _tally(result, sent, [m for c in members for m in c.got])
        result.ordering = (
            f"kept on {KEYS - broken}/{KEYS} keys"
            if broken == 0
            else f"broken on {broken}/{KEYS} keys"
        )
        result.competing = (
            f"yes ({busy}/{MEMBERS} members got work)"
            if busy > 1
            else (f"no (1/{MEMBERS} members got work)")
        )
    finally:
        for consumer in members:
            await consumer.stop()


def _tally(result: ProbeResult, sent: Sequence[Message], got: Sequence[Message]) -> None:
    ids = {m.id for m in sent}
    received = [m for m in got if m.id in ids]
    unique = {m.id for m in received}
    result.received += len(received)
    result.duplicates += len(received) - len(unique)
    result.lost += len(ids - unique)


async def _probe_durability(transport: Transport, result: ProbeResult, count: int) -> None:
    channel, group = _name("away"), "probe"
    await transport.declare(channel, group)
    sent = [_message(channel, i) for i in range(count)]
    await transport.publish_batch(sent)
    consumer = _Consumer(await transport.subscribe(channel, group))
    try:
        await _wait(lambda: len({m.id for m in consumer.got}) >= count, join_time(result.name))
        kept = len({m.id for m in consumer.got} & {m.id for m in sent})
        result.durability = (
            f"kept {kept}/{count}" if kept else f"none kept (0/{count}): no member, no buffer"
        )
    finally:
        await consumer.stop()


async def _probe_throughput(transport: Transport, result: ProbeResult, count: int) -> None:
    channel, group = _name("rate"), "probe"
    consumer = _Consumer(await transport.subscribe(channel, group))
    try:
        sent = [_message(channel, i) for i in range(count)]
        started = time.perf_counter()
        for start in range(0, count, 500):
            await transport.publish_batch(sent[start : start + 500])
        result.publish_rate = count / (time.perf_counter() - started)
        await _wait(lambda: len({m.id for m in consumer.got}) >= count, 30)
        _tally(result, sent, consumer.got)
    finally:
        await consumer.stop()


async def _probe_latency(transport: Transport, result: ProbeResult, count: int) -> None:
    channel, group = _name("latency"), "probe"
    arrived: dict[str, int] = {}

    async def stamp(delivery: Delivery) -> None:
        arrived.setdefault(delivery.message.id, time.perf_counter_ns())

    consumer = _Consumer(await transport.subscribe(channel, group), stamp)
    samples: list[float] = []
    try:
        warm_up = _message(channel, -1)
        await transport.publish(warm_up)
        if not await _wait(_arrived(arrived, warm_up.id), join_time(result.name)):
            result.notes.append("latency: the warm-up message did not arrive")
            return
        for i in range(count):
            message = _message(channel, i)
            sent_ns = time.perf_counter_ns()
            await transport.publish(message)
            if not await _wait(_arrived(arrived, message.id), 5):
                result.notes.append(f"latency: message {i} did not arrive within 5 s")
                break
            samples.append((arrived[message.id] - sent_ns) / 1e6)
        if samples:
            samples.sort()
            result.latency_p50_ms = statistics.median(samples)
            result.latency_p99_ms = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    finally:
        await consumer.stop()


def _arrived(arrived: dict[str, int], message_id: str) -> Callable[[], bool]:
    return lambda: message_id in arrived


async def _probe_persistence(url: str, result: ProbeResult, count: int) -> None:
    name = result.name
    if name == "memory":
        result.persistence = "not measured: no broker process (in-process; dies with it)"
        return
    if name == "zmq":
        result.persistence = "not measured: brokerless, no broker to restart (nothing kept)"
        return
    if name == "kafka":
        await _probe_tansu_persistence(result, count)
        return
    if name == "sqs":
        result.persistence = (
            "not measured: the emulator (moto) keeps everything in memory and restarts "
            "empty; AWS documents redundant storage of every accepted message"
        )
        return
    if name == "kinesis":
        result.persistence = (
            "not measured: the emulator (moto) keeps everything in memory and restarts "
            "empty; AWS documents records replicated across three availability zones, "
            "kept for the stream's retention period"
        )
        return
    restart = _restartable.get()
    if restart is not None:
        kept = await _kept_across_restart(url, restart, count, 15)
        result.persistence = f"kept {kept}/{count} (private broker, restarted)"
        return
    if name != "redis":
        result.persistence = "not measured: shared broker; only a private one is restarted"
        return
    from servicewire.testing.redis_server import PrivateRedis

    appendonly = result.declared.get("persistent", False)
    try:
        server = PrivateRedis(appendonly=appendonly)
    except ServicewireError as exc:
        result.persistence = f"not measured: {exc}"
        return
    async with server:
        kept = await _kept_across_restart(server.url, server.restart, count, 5)
    aof = "yes" if appendonly else "no"
    result.persistence = (
        f"kept {kept}/{count} (private redis-server, appendonly {aof} like the target)"
    )


async def _probe_tansu_persistence(result: ProbeResult, count: int) -> None:
    """Publish to a private tansu on S3 storage, restart it, count what a member gets."""
    from servicewire.testing.tansu import Tansu

    try:
        broker = Tansu(persistent=True)
        await asyncio.to_thread(broker.start)
    except ServicewireError as exc:
        result.persistence = f"not measured: {exc}"
        return

    async def restart() -> None:
        await asyncio.to_thread(broker.restart)

    try:
        url = f"{broker.url}/?{TANSU_TUNING}{TANSU_RESTART_TUNING}"
        kept = await _kept_across_restart(url, restart, count, join_time("kafka") + 10)
    finally:
        await asyncio.to_thread(broker.stop)  # its storage (in memory) goes with it
    result.persistence = f"kept {kept}/{count} (private tansu, S3 storage, restarted)"


async def _kept_across_restart(
    url: str, restart: Callable[[], Awaitable[None]], count: int, wait: float
) -> int:
    """Publish ``count`` to a declared group, restart the broker, count what arrives."""
    transport = await connect_transport(url)
    try:
        channel, group = _name("restart"), "probe"
        await transport.declare(channel, group)
        sent = [_message(channel, i) for i in range(count)]
        await transport.publish_batch(sent)
        await restart()
        consumer = await _resubscribe(transport, channel, group)
        try:
            await _wait(lambda: len({m.id for m in consumer.got}) >= count, wait)
            return len({m.id for m in consumer.got} & {m.id for m in sent})
        finally:
            await consumer.stop()
    finally:
        await transport.close()


async def _resubscribe(transport: Transport, channel: str, group: str) -> _Consumer:
    # The first command after a restart may meet the dead connection; try a few times.
    for attempt in range(50):
        try:
            return _Consumer(await transport.subscribe(channel, group))
        except (ServicewireError, OSError):
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


# Running them -------------------------------------------------------------------------


async def probe(url: str, *, messages: int = 2000, progress: Progress | None = None) -> ProbeResult:
    """Measure one transport; an unreachable one comes back with ``reachable=False``."""
    say = progress or (lambda _: None)
    name = transport_name(url)
    if name == "memory" and urlsplit(url).netloc in ("", "default"):
        url = f"memory://probe-{uuid.uuid4().hex[:8]}"  # a broker of its own
    if name == "kafka" and not urlsplit(url).netloc:
        return await _probe_private_tansu(messages, say)
    if name == "stomp" and not urlsplit(url).netloc:
        return await _probe_private_activemq(messages, say)
    if name in ("sqs", "kinesis") and not urlsplit(url).netloc:
        return await _probe_private_moto(name, messages, say)
    result = ProbeResult(name=name, url=redact(url))
    order_n = max(30, min(300, messages // 5))
    latency_n = max(20, min(300, messages // 10))
    away_n = max(10, min(50, messages // 20))
    say(f"[{name}] connecting to {redact(url)}")
    try:
        async with asyncio.timeout(10):
            transport = await connect_transport(url)
    except (ServicewireError, OSError, TimeoutError) as exc:
        result.reachable, result.error = False, str(exc) or type(exc).__name__
        say(f"[{name}] unreachable: {result.error}")
        return result
    result.declared = transport.capabilities.describe()
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        (f"ordering with {MEMBERS} competing members, {order_n} messages",
         lambda: _probe_order(transport, result, order_n)),
        (f"durability: {away_n} messages while no member is connected",
         lambda: _probe_durability(transport, result, away_n)),
        (f"publish throughput, {messages} x {PAYLOAD} B",
         lambda: _probe_throughput(transport, result, messages)),
        (f"latency, {latency_n} messages one at a time",
         lambda: _probe_latency(transport, result, latency_n)),
        ("persistence across a broker restart",
         lambda: _probe_persistence(url, result, away_n)),
    ]  # fmt: skip
    made: set[str] = set()
    token = _made.set(made)
    try:
        for label, step in steps:
            say(f"[{name}] {label}")
            try:
                async with asyncio.timeout(60):
                    await step()
            except (ServicewireError, OSError, TimeoutError) as exc:
                result.notes.append(f"{label}: failed: {exc or type(exc).__name__}")
                say(f"[{name}]   failed: {exc or type(exc).__name__}")
    finally:
        _made.reset(token)
        if made:
            say(f"[{name}] removing the {len(made)} probe channels")
            await _remove_channels(transport, made)
        with contextlib.suppress(ServicewireError, OSError, TimeoutError):
            async with asyncio.timeout(15):
                await transport.close()
    result.delivery = _delivery_cell(result)
    return result


async def _probe_private_tansu(messages: int, say: Progress) -> ProbeResult:
    """Probe ``kafka://`` on a tansu of its own; stopping it removes all the probe made."""
    from servicewire.testing.tansu import Tansu

    try:
        broker = Tansu()
        say("[kafka] starting a private tansu broker")
        await asyncio.to_thread(broker.start)
    except ServicewireError as exc:
        say(f"[kafka] unreachable: {exc}")
        return ProbeResult(name="kafka", url="kafka://", reachable=False, error=str(exc))
    try:
        result = await probe(f"{broker.url}/?{TANSU_TUNING}", messages=messages, progress=say)
    finally:
        await asyncio.to_thread(broker.stop)
    result.url = f"{broker.url} (private tansu, stopped after the probe)"
    result.notes.append(
        "private tansu 0.6 (memory storage) with fast group timings "
        "(heartbeat 100 ms); every new member first waits ~3-4 s for the group's join. "
        "tansu answers an empty fetch only when fetch_max_wait_ms (200 ms, the default) "
        "expires, not when a record arrives, so latency is ~100 ms here "
        "(docs/transports/kafka.md)"
    )
    return result


async def _probe_private_activemq(messages: int, say: Progress) -> ProbeResult:
    """Probe ``stomp://`` on an ActiveMQ of its own (loopback STOMP, temporary data);
    its persistence probe restarts that broker, and stopping it removes all it made."""
    from servicewire.testing.activemq import PrivateActiveMQ

    try:
        broker = PrivateActiveMQ(connectors=("stomp",))
        say("[stomp] starting a private ActiveMQ broker")
        await broker.start()
    except ServicewireError as exc:
        say(f"[stomp] unreachable: {exc}")
        return ProbeResult(name="stomp", url="stomp://", reachable=False, error=str(exc))
    token = _restartable.set(broker.restart)
    try:
        result = await probe(broker.url("stomp"), messages=messages, progress=say)
    finally:
        _restartable.reset(token)
        await broker.close()
    result.url = f"{broker.url('stomp')} (private ActiveMQ, stopped after the probe)"
    result.notes.append(
        "private Apache ActiveMQ 5 (Debian's package) over STOMP: virtual topic per "
        "channel, a queue per group, message groups for per-key order; every publish "
        "waits for the receipt of a persistent (stored) message (docs/transports/stomp.md)"
    )
    return result


async def _probe_private_moto(name: str, messages: int, say: Progress) -> ProbeResult:
    """Probe ``sqs://`` or ``kinesis://`` on a moto server of its own; stopping it removes
    all the probe made."""
    from servicewire.testing.moto_server import PrivateMoto

    api = "an SQS emulator" if name == "sqs" else "a Kinesis and DynamoDB emulator"
    try:
        server = PrivateMoto()
        say(f"[{name}] starting a private moto server ({api})")
        await asyncio.to_thread(server.start)
    except ServicewireError as exc:
        say(f"[{name}] unreachable: {exc}")
        return ProbeResult(name=name, url=f"{name}://", reachable=False, error=str(exc))
    try:
        if name == "sqs":
            url = server.sqs_url(**MOTO_TUNING)
        else:
            url = server.kinesis_url(**MOTO_KINESIS_TUNING)
        result = await probe(url, messages=messages, progress=say)
    finally:
        await asyncio.to_thread(server.close)
    where = f"{name}://127.0.0.1:{server.port}"
    result.url = f"{where} (private moto {_moto_version()}, stopped after)"
    if name == "sqs":
        result.notes.append(
            "moto is an emulator in one Python process: its FIFO queues cost time in "
            "proportion to their depth on every send and receive, so the throughput and "
            "latency here are moto's, not AWS's (docs/transports/sqs.md)"
        )
    else:
        result.notes.append(
            "moto is an emulator in one Python process (its calls serialized, see "
            "testing/moto_serial.py); idle shards are polled every 50 ms here, every 1 s "
            "by default on AWS (5 reads a second per shard), so latency here is about "
            "half the poll interval plus moto's, not AWS's (docs/transports/kinesis.md)"
        )
    return result


def _moto_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("moto")
    except PackageNotFoundError:
        return "?"


def _delivery_cell(result: ProbeResult) -> str:
    if not result.received:
        return "not measured"
    kind = "exactly once" if result.declared.get("exactly_once") else "at least once"
    return (
        f"{kind} declared; {result.received} receptions, "
        f"{result.duplicates} duplicates, {result.lost} lost"
    )


async def probe_all(
    urls: Sequence[str], *, messages: int = 2000, progress: Progress | None = None
) -> list[ProbeResult]:
    return [await probe(url, messages=messages, progress=progress) for url in urls]
