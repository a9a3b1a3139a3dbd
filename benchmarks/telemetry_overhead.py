"""Telemetry overhead on the relay: drain throughput with and without observed publishes.

Every relay wraps its transport (``servicewire.relay.observed``): spans per message
when a tracer provider is set, publish counts and sampled commit-to-publish latency
for Prometheus always. This drains ``--rows`` committed outbox rows (PostgreSQL, polling
relay, in-memory transport so the broker does not hide the cost) three ways in one
run, interleaved over ``--rounds`` (order rotated), best round kept:

* ``bare``: the relay's transport unwrapped (what a relay cost before telemetry);
* ``metrics``: the default, no tracer provider set;
* ``tracing``: an OpenTelemetry SDK provider with a batch processor and an exporter
  that drops what it gets (spans are built, stamped into headers, ended, queued).

    .venv/bin/python benchmarks/telemetry_overhead.py            # ~1 minute
    .venv/bin/python benchmarks/telemetry_overhead.py --rows 5000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from servicewire import Message, connect_transport
from servicewire.outbox import write_messages
from servicewire.relay import base as relay_base
from servicewire.relay.observed import observed_transport
from servicewire.relay.polling import PollingRelay
from servicewire.storage.database import create_engine
from servicewire.storage.schema import all_tables_metadata
from servicewire.telemetry.tracing import use_tracer_provider

URL = "postgresql://postgres@127.0.0.1:5432/test"


def _tracer_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):  # type: ignore[misc]
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))  # as deployed
    return provider


async def drain_once(rows: int, wrap: Callable[..., Any], schema: str) -> float:
    engine = create_engine(URL, connect_args={"server_settings": {"search_path": schema}})
    async with engine.begin() as conn:
        await conn.run_sync(all_tables_metadata().create_all)
        parent = {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}  # a writer's span
        messages = [
            Message.create(
                b'{"n": 1}',
                destination=f"bench-{i % 8}",
                type="bench.Ping",
                partition_key=str(i % 64),
                extra=parent,
            )
            for i in range(rows)
        ]
        for start in range(0, rows, 1000):
            await write_messages(conn, messages[start : start + 1000])
    transport = await connect_transport(f"memory://{uuid.uuid4().hex}")
    relay_base.observed_transport = wrap  # type: ignore[attr-defined]
    relay = PollingRelay(engine, transport, name=f"bench-{schema}", poll_interval=0.01)
    started = time.perf_counter()
    await relay.start()
    await relay.drain(timeout=300)
    elapsed = time.perf_counter() - started
    await relay.stop()
    await transport.close()
    async with engine.begin() as conn:
        await conn.run_sync(all_tables_metadata().drop_all)
    await engine.dispose()
    return rows / elapsed


def per_message_costs(provider: Any) -> dict[str, float]:
    """Microseconds per message of each hook alone, on batches of 500 (best of 5)."""
    from servicewire.telemetry.metrics import record_published
    from servicewire.telemetry.tracing import end_spans, start_publish_spans

    batch = [
        Message.create(b"{}", destination=f"bench-{i % 8}", type="bench.Ping",
                       extra={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
        for i in range(500)
    ]  # fmt: skip

    def best(step: Callable[[], None]) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(10):
                step()
            times.append((time.perf_counter() - started) / (10 * len(batch)) * 1e6)
        return min(times)

    def traced() -> None:
        _stamped, spans = start_publish_spans("bench", batch)
        end_spans(spans)

    costs = {"metrics (record_published)": best(lambda: record_published("bench", batch))}
    use_tracer_provider(provider)
    costs["tracing (span per message)"] = best(traced)
    use_tracer_provider(None)
    costs["tracing off (span hook)"] = best(traced)
    return costs


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(URL)
    async with admin.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
    provider = _tracer_provider()

    def bare(transport: Any, *, relay: str) -> Any:
        return transport

    best: dict[str, float] = {"bare": 0.0, "metrics": 0.0, "tracing": 0.0}
    try:
        cases = list(best)
        for round_no in range(1, args.rounds + 1):
            # Rotate the order each round, so warm-up and neighbours' load spread evenly.
            for case in cases[round_no % 3 :] + cases[: round_no % 3]:
                use_tracer_provider(provider if case == "tracing" else None)
                wrap = bare if case == "bare" else observed_transport
                rate = await drain_once(args.rows, wrap, schema)
                best[case] = max(best[case], rate)
                print(f"  round {round_no}/{args.rounds} {case}: {rate:,.0f} msg/s",
                      file=sys.stderr, flush=True)  # fmt: skip
    finally:
        use_tracer_provider(None)
        relay_base.observed_transport = observed_transport  # type: ignore[attr-defined]
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()
    print(f"\npolling relay, PostgreSQL -> memory://, {args.rows} rows, best of {args.rounds}")
    print(f"{'case':10}{'msg/s':>12}{'vs bare':>10}")
    for case, rate in best.items():
        print(f"{case:10}{rate:>12,.0f}{rate / best['bare']:>10.2f}")
    print("\nper message, each hook alone (us):")
    for name, cost in per_message_costs(provider).items():
        print(f"  {name:30}{cost:>8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
