"""``kafka://`` and ``kafka+ssl://`` — the Kafka protocol through aiokafka.

A channel is a topic (``topic_prefix`` + channel name, ``:`` written as ``_``) created
on first use with ``partitions`` partitions; partitions are the channel's shards. Our
groups are Kafka consumer groups; each subscription is one group member::

    transport = await connect_transport("kafka://127.0.0.1:9092/?partitions=16")
    await transport.declare("orders", "billing")       # the group's offsets start here
    await transport.publish(message)                   # acks=all; returns once confirmed
    async with await transport.subscribe("orders", "billing") as sub:
        async for delivery in sub:
            await delivery.ack()                       # commits the contiguous prefix

Partition choice: :func:`servicewire.messaging.channels.shard_for` of the partition key (CRC-32
modulo the topic's partition count), the same shard number every Servicewire transport
and the outbox use, and *not* Kafka's murmur2 default partitioner. The key is also the
record key, and headers follow CloudEvents' Kafka binding
(:mod:`~servicewire.transports.kafka.headers`). The producer uses ``acks=all`` and is
idempotent where the broker grants a producer id (``idempotence=auto``); publishes are
pipelined through the client's batching. See docs/transports/kafka.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from servicewire.errors import (
    ConnectionFailedError,
    PublishError,
    TransportError,
)
from servicewire.messaging.channels import dead_letter_channel, shard_for, validate_name
from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports.base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Capabilities,
    Subscription,
    Transport,
)
from servicewire.transports.kafka.attempts import AttemptsLog, attempts_topic
from servicewire.transports.kafka.cleanup import delete_consumer_group, delete_topics
from servicewire.transports.kafka.client import client_kwargs
from servicewire.transports.kafka.closing import stop_consumer
from servicewire.transports.kafka.headers import to_kafka
from servicewire.transports.kafka.membership import fetch_bytes, group_consumer, kafka_group_id
from servicewire.transports.kafka.options import parse_kafka_url
from servicewire.transports.kafka.subscription import KafkaSubscription
from servicewire.urls import redact, redact_text

log = logging.getLogger("servicewire.transports.kafka.transport")

_TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS
# Room for the record framing and headers on top of our own size check, so a message
# that passed check_size is never refused by the client's own limit.
_FRAMING_ALLOWANCE = 64 * 1024


class KafkaTransport(Transport):
    """A client of a Kafka-protocol cluster (Apache Kafka, Redpanda, tansu, ...)."""

    scheme = "kafka"
    capabilities = Capabilities(
        durable=True,
        persistent=True,
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=False,
    )

    def __init__(self, url: str, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(url, max_message_size=max_message_size)
        self.address = parse_kafka_url(url)
        self.idempotent = False
        """Whether the producer runs idempotent (decided at connect)."""
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._admin_lock = asyncio.Lock()
        self._topics: dict[str, asyncio.Future[int]] = {}
        self._topic_names: dict[str, str] = {}
        self._declared: set[tuple[str, str]] = set()
        self._subscriptions: set[KafkaSubscription] = set()
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    # Connection -------------------------------------------------------------------------

    def _failed(self, exc: BaseException | str) -> ConnectionFailedError:
        reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return ConnectionFailedError("kafka", self.url, redact_text(reason))

    def _producer_kwargs(self, idempotent: bool) -> dict[str, Any]:
        options = self.address.options
        return {
            **client_kwargs(self.address),
            "acks": "all",
            "enable_idempotence": idempotent,
            "linger_ms": options.linger_ms,
            "max_batch_size": 64 * 1024,
            "max_request_size": self.max_message_size + _FRAMING_ALLOWANCE,
        }

    async def _start_producer(self, idempotent: bool) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(**self._producer_kwargs(idempotent))
        timeout = self.address.options.connect_timeout_ms / 1000
        try:
            await within(producer.start(), timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        return producer

    async def connect(self) -> None:
        mode = self.address.options.idempotence
        try:
            try:
                self._producer = await self._start_producer(mode != "false")
                self.idempotent = mode != "false"
            except KafkaError as exc:
                # A broker that cannot hand out producer ids (tansu 0.6 answers
                # InitProducerId with UnknownError) still takes acks=all publishes.
                if mode != "auto" or "bootstrap" in str(exc).lower():
                    raise
                log.info("kafka broker refused an idempotent producer (%r); using acks=all", exc)
                self._producer = await self._start_producer(False)
        except TimeoutError:
            raise self._failed("no answer within connect_timeout_ms") from None
        except (KafkaError, OSError) as exc:
            raise self._failed(exc) from None
        self._closing = False

    def _require_producer(self) -> AIOKafkaProducer:
        if self._producer is None or self._closing:
            raise TransportError(f"kafka transport {redact(self.url)} is not connected")
        return self._producer

    async def _admin_client(self) -> AIOKafkaAdminClient:
        async with self._admin_lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(**client_kwargs(self.address))
                try:
                    await admin.start()
                except (KafkaError, OSError) as exc:
                    with contextlib.suppress(Exception):
                        await admin.close()
                    raise self._failed(exc) from None
                self._admin = admin
            return self._admin

    # Topics -----------------------------------------------------------------------------

    def topic_for(self, channel: str) -> str:
        """The topic of ``channel`` (Kafka topic names have no ``:``)."""
        topic = self._topic_names.get(channel)
        if topic is None:
            validate_name(channel, "channel")
            topic = self.address.options.topic_prefix + channel.replace(":", "_")
            if len(self._topic_names) < 10_000:  # bounded: channel names come from callers
                self._topic_names[channel] = topic
        return topic

    async def _partitions(
        self, topic: str, *, partitions: int | None = None, compact: bool = False
    ) -> int:
        """The partition count of ``topic``, creating the topic on first use."""
        known = self._topics.get(topic)
        if known is None:
            known = self._topics[topic] = asyncio.get_running_loop().create_future()
            try:
                known.set_result(await self._create_topic(topic, partitions, compact))
            except BaseException as exc:
                del self._topics[topic]
                known.set_exception(exc)
                known.exception()  # consumed here; awaiting callers still see it
                raise
        return await asyncio.shield(known)

    async def _create_topic(self, topic: str, partitions: int | None, compact: bool) -> int:
        options = self.address.options
        admin = await self._admin_client()
        configs = {"cleanup.policy": "compact"} if compact else {}
        new = NewTopic(
            topic, partitions or options.partitions, options.replication, topic_configs=configs
        )
        try:
            response = await admin.create_topics([new])
        except KafkaError as exc:
            raise TransportError(f"kafka: cannot create topic {topic!r}: {exc!r}") from None
        for _name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_EXISTS):
                detail = rest[0] if rest else ""
                raise TransportError(f"kafka: cannot create topic {topic!r}: error {code} {detail}")
        producer = self._require_producer()
        try:
            found = await producer.partitions_for(topic)
        except KafkaError as exc:
            raise TransportError(f"kafka: no metadata for topic {topic!r}: {exc!r}") from None
        return len(found) if found else new.num_partitions

    # Publishing -------------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        headers, key = to_kafka(message)
        topic = self.topic_for(message.destination)
        producer = self._require_producer()
        self._started()
        try:
            partitions = self._known_partitions(topic) or await self._partitions(topic)
            partition = shard_for(message.partition_key, partitions, message.id)
            sent = await producer.send(
                topic, message.payload, key=key, headers=headers, partition=partition
            )
            await sent
        except (KafkaError, OSError, TimeoutError, AssertionError) as exc:
            raise self._not_confirmed(topic, exc) from None
        finally:
            self._finished()

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        """Build one record batch per partition and send those, as aiokafka allows.

        One ``send()`` per message costs a future, a callback and an accumulator lookup
        each; ``create_batch``/``send_batch`` builds the partition's records directly and
        confirms them with one future. Records of a partition keep the batch's order.
        """
        if len(messages) < 2:
            await super()._send_batch(messages)
            return
        producer = self._require_producer()
        groups: dict[tuple[str, int], list[Message]] = {}
        for message in messages:
            topic = self.topic_for(message.destination)
            partitions = self._known_partitions(topic) or await self._partitions(topic)
            partition = shard_for(message.partition_key, partitions, message.id)
            groups.setdefault((topic, partition), []).append(message)
        sends = [self._send_partition(producer, t, p, group) for (t, p), group in groups.items()]
        await asyncio.gather(*sends)

    async def _send_partition(
        self, producer: AIOKafkaProducer, topic: str, partition: int, messages: list[Message]
    ) -> None:
        self._started()
        try:
            confirmations = []
            batch = producer.create_batch()
            for message in messages:
                headers, key = to_kafka(message)
                record = {"timestamp": None, "key": key, "value": message.payload}
                if batch.append(**record, headers=headers) is None:  # full: send it
                    confirmations.append(
                        await producer.send_batch(batch, topic, partition=partition)
                    )
                    batch = producer.create_batch()
                    batch.append(**record, headers=headers)  # an empty batch takes any record
            confirmations.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*confirmations)
        except (KafkaError, OSError, TimeoutError, AssertionError) as exc:
            raise self._not_confirmed(topic, exc) from None
        finally:
            self._finished()

    def _started(self) -> None:
        """One more publish in flight: ``close`` waits for them."""
        self._inflight += 1
        self._idle.clear()

    def _finished(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    def _not_confirmed(self, topic: str, exc: BaseException) -> PublishError:
        if isinstance(exc, AssertionError):
            # aiokafka asserts when its metadata no longer has the partition (a
            # restarted broker that lost the topic). Forget the topic so the next
            # publish declares it again, and report a clear, retryable error.
            self._topics.pop(topic, None)
            return PublishError(
                f"kafka: publish to {topic!r} failed: the broker no longer knows its "
                f"partitions ({exc}); retry"
            )
        return PublishError(f"kafka: publish to {topic!r} not confirmed: {redact_text(repr(exc))}")

    def _known_partitions(self, topic: str) -> int | None:
        known = self._topics.get(topic)
        if known is not None and known.done() and known.exception() is None:
            return known.result()
        return None

    # Groups -----------------------------------------------------------------------------

    async def declare(self, channel: str, group: str) -> None:
        topic = self.topic_for(channel)
        validate_name(group, "group")
        self._require_producer()
        partitions = await self._partitions(topic)
        if (topic, group) in self._declared:
            return
        await self._start_group_at_end(topic, group, partitions)
        self._declared.add((topic, group))

    async def _start_group_at_end(self, topic: str, group: str, partitions: int) -> None:
        """Commit the current end offsets for partitions where ``group`` has none.

        That is what "the group keeps messages from now on" means on Kafka: a group
        with committed offsets reads from them, whether or not a member is connected.
        """
        consumer = AIOKafkaConsumer(
            **client_kwargs(self.address),
            group_id=kafka_group_id(topic, group),
            enable_auto_commit=False,
        )
        try:
            await consumer.start()
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            missing = [tp for tp in tps if await consumer.committed(tp) is None]
            if missing:
                ends = await consumer.end_offsets(missing)
                with contextlib.suppress(KafkaError):
                    # Refused when live members already run the group: their positions
                    # stand, which is what declare wants anyway.
                    await consumer.commit({tp: ends[tp] for tp in missing})
        except (KafkaError, OSError) as exc:
            raise TransportError(
                f"kafka: cannot declare group {group!r} on {topic!r}: {redact_text(repr(exc))}"
            ) from None
        finally:
            with contextlib.suppress(Exception):
                await stop_consumer(consumer)

    def _attempts_log(self, topic: str, group: str) -> AttemptsLog:
        """The attempts record of ``group`` on ``topic`` (created by its first nack)."""
        name = attempts_topic(topic, group)

        async def ensure() -> int:
            return await self._partitions(
                name, partitions=await self._partitions(topic), compact=True
            )

        async def exists() -> bool:
            if self._known_partitions(name) is not None:
                return True
            # Listed, not described: a Metadata request naming a missing topic makes
            # brokers with auto-creation (tansu, Kafka's default) create it.
            admin = await self._admin_client()
            return name in await admin.list_topics()

        return AttemptsLog(self.address, name, self._require_producer, ensure, exists)

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        await self.declare(channel, group)
        topic = self.topic_for(channel)
        options = self.address.options
        sub = KafkaSubscription(
            group_consumer(self.address, topic, group, self.max_message_size),
            channel,
            group,
            topic,
            prefetch=prefetch,
            buffer_records=options.buffer_records,
            # Two fetches' worth: one being handed out while the next arrives.
            buffer_bytes=2 * fetch_bytes(self.max_message_size),
            revoke_grace_ms=options.revoke_grace_ms,
            commit_interval_ms=options.commit_interval_ms,
            on_close=self._subscriptions.discard,
            attempts=self._attempts_log(topic, group),
        )
        try:
            await sub.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await sub.close()
            raise self._failed(exc) from None
        self._subscriptions.add(sub)
        return sub

    # Cleanup ----------------------------------------------------------------------------

    async def delete_group(self, channel: str, group: str) -> bool:
        """Delete the consumer group of ``group`` on ``channel`` with its offsets, and its
        attempts record (the ``<topic>.<group>.attempts`` topic, when a nack made it)."""
        topic = self.topic_for(channel)
        validate_name(group, "group")
        admin = await self._admin_client()
        await delete_consumer_group(admin, kafka_group_id(topic, group))
        attempts = attempts_topic(topic, group)
        await delete_topics(admin, [attempts])
        self._topics.pop(attempts, None)
        self._declared.discard((topic, group))
        return True

    async def delete_channel(self, channel: str) -> bool:
        """Delete ``channel``'s topic and its ``.dlq`` topic with their records; the
        consumer groups' offsets go with :meth:`delete_group`."""
        topics = [self.topic_for(channel), self.topic_for(dead_letter_channel(channel))]
        await delete_topics(await self._admin_client(), topics)
        for topic in topics:
            self._topics.pop(topic, None)
            self._declared = {(t, g) for t, g in self._declared if t != topic}
        return True

    # Shutdown ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closing:
            return
        # Publishes already started finish (or fail) before the producer goes away.
        with contextlib.suppress(TimeoutError):
            await within(self._idle.wait(), self.address.options.request_timeout_ms / 1000 + 5)
        self._closing = True
        for sub in list(self._subscriptions):
            await sub.close()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
            self._admin = None
