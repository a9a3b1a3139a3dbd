"""Trace context and baggage through OpenTelemetry's configured propagators, end to end.

REST request -> command message -> reply and event, on the in-memory transport with
real services and relays; malformed context is ignored; OTEL_PROPAGATORS (read when
OpenTelemetry's propagate module is imported, so those cases run in a child process)
decides what is written.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import httpx
from opentelemetry import baggage
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from servicewire import Command, Context, Event, Message, Service, SuccessReply
from servicewire.rest import create_app
from servicewire.telemetry import configure_logging, tracing
from servicewire.timeouts import within

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class PackLunch(Command, name="telemetry.test.PackLunch", version="1.0.0", channel="tp-lunch"):
    order_id: str


class LunchPacked(SuccessReply, name="telemetry.test.LunchPacked", version="1.0.0"):
    order_id: str


class LunchReady(Event, name="telemetry.test.LunchReady", version="1.0.0", channel="tp-ready"):
    order_id: str


def _seen(message: Message | None) -> dict[str, Any]:
    """What a handler saw: its message's trace headers and the current baggage."""
    assert message is not None
    return {
        "trace_id": tracing.trace_id_of(message),
        "baggage_header": message.headers.get("baggage"),
        "tenant": baggage.get_baggage("tenant"),
    }


async def test_trace_and_baggage_flow_rest_to_command_to_reply_and_event(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    transport = f"memory://{uuid.uuid4().hex}"
    kitchen = Service("tp-kitchen", db=f"sqlite:///{tmp_path / 'k.db'}", transport=transport)
    orders = Service("tp-orders", db=f"sqlite:///{tmp_path / 'o.db'}", transport=transport)
    seen: dict[str, dict[str, Any]] = {}
    done = asyncio.Event()

    @kitchen.handles(PackLunch)
    async def pack(cmd: PackLunch, ctx: Context) -> None:
        seen["command"] = _seen(ctx.message)
        await ctx.reply(LunchPacked(order_id=cmd.order_id))
        await ctx.publish(LunchReady(order_id=cmd.order_id))

    @orders.on_reply(LunchPacked)
    async def packed(reply: LunchPacked, ctx: Context) -> None:
        seen["reply"] = _seen(ctx.message)
        if "event" in seen:
            done.set()

    @orders.subscribes(LunchReady)
    async def ready(evt: LunchReady, ctx: Context) -> None:
        seen["event"] = _seen(ctx.message)
        if "reply" in seen:
            done.set()

    app = create_app("Lunch", "1.0.0")

    @app.post("/v1/lunches")
    async def order_lunch() -> dict[str, str]:
        # The request's baggage is current in the endpoint, and goes out with the command.
        assert baggage.get_baggage("tenant") == "acme"
        await orders.send(PackLunch(order_id="l-1"))
        return {"orderId": "l-1"}

    async with kitchen, orders:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        async with client:
            r = await client.post(
                "/v1/lunches", headers={"traceparent": TRACEPARENT, "baggage": "tenant=acme"}
            )
        assert r.status_code == 200, r.text
        await within(done.wait(), 10)

    for hop in ("command", "reply", "event"):
        assert seen[hop]["trace_id"] == TRACE_ID, (hop, seen)
        assert seen[hop]["tenant"] == "acme", (hop, seen)
        assert seen[hop]["baggage_header"] == "tenant=acme", (hop, seen)
    finished = spans.get_finished_spans()
    server = next(s for s in finished if s.name == "POST /v1/lunches")
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None and server.parent.span_id == 0x00F067AA0BA902B7


async def _handle_and_serve_with(
    bad: dict[str, str], kitchen: Service, done: asyncio.Event, app: Any
) -> None:
    """Send one command carrying ``bad`` trace headers and wait until it is handled; then
    one REST request carrying them, which must succeed."""
    async with kitchen:
        async with kitchen.transaction() as ctx:
            await ctx.send(PackLunch(order_id="bad-1"), headers=bad)
        await within(done.wait(), 10)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        async with client:
            r = await client.get("/v1/ping", headers=bad)
        assert r.status_code == 200


async def test_malformed_trace_context_is_ignored_not_an_error(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    transport = f"memory://{uuid.uuid4().hex}"
    kitchen = Service("tp-kitchen", db=f"sqlite:///{tmp_path / 'k.db'}", transport=transport)
    handled: list[str | None] = []
    done = asyncio.Event()

    @kitchen.handles(PackLunch)
    async def pack(cmd: PackLunch, ctx: Context) -> None:
        handled.append(cmd.order_id)
        done.set()

    app = create_app("Lunch", "1.0.0")

    @app.get("/v1/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    bad = {"traceparent": "00-not-a-trace-01", "tracestate": "=", "baggage": "%%%;;=="}
    # Logging configured as a deployed service does it: its filter reads the trace id of
    # the message being handled, and OpenTelemetry's warnings about the malformed headers
    # pass through that filter too.
    logs = io.StringIO()
    log_handler = configure_logging(service="tp-kitchen", json=True, stream=logs)
    try:
        await _handle_and_serve_with(bad, kitchen, done, app)
    finally:
        logging.getLogger().removeHandler(log_handler)
    assert '"message_id"' in logs.getvalue()
    assert "RecursionError" not in logs.getvalue()
    assert handled == ["bad-1"]
    finished = spans.get_finished_spans()
    handler = next(s for s in finished if s.name == "handle PackLunch")
    request = next(s for s in finished if s.name == "GET /v1/ping")
    assert request.parent is None  # a new trace: the malformed parent was dropped
    assert handler.context.trace_id != 0
    # The handler's parent is the relay's publish span, which started a new trace.
    publish = next(s for s in finished if s.name == "publish PackLunch")
    assert handler.parent is not None and handler.parent.span_id == publish.context.span_id
    assert publish.parent is None or publish.parent.trace_id == publish.context.trace_id


# OTEL_PROPAGATORS ----------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json
    from opentelemetry import baggage, context
    from opentelemetry.sdk.trace import TracerProvider
    from servicewire import Message
    from servicewire.telemetry import tracing

    tracing.use_tracer_provider(TracerProvider())
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    with tracing.span("root") as current:
        message_headers = tracing.current_trace_headers()
        call_headers = tracing.current_call_headers()
        trace_id = f"{current.get_span_context().trace_id:032x}"
    context.detach(token)
    message = Message.create(b"{}", destination="x", type="x.Ping", extra=message_headers)
    print(json.dumps({
        "message": message_headers,
        "call": call_headers,
        "written_trace_id": trace_id,
        "read_trace_id": tracing.trace_id_of(message),
    }))
    """
)

# A propagator of our own, registered the way OTEL_PROPAGATORS finds every propagator
# (an "opentelemetry_propagator" entry point of an installed distribution).
_PROPAGATOR = textwrap.dedent(
    """
    from opentelemetry import trace
    from opentelemetry.propagators.textmap import TextMapPropagator, default_getter, default_setter
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    class SwTestPropagator(TextMapPropagator):
        fields = {"X-Sw-Trace"}

        def inject(self, carrier, context=None, setter=default_setter):
            ids = trace.get_current_span(context).get_span_context()
            if ids.is_valid:
                setter.set(carrier, "X-Sw-Trace", f"{ids.trace_id:032x}:{ids.span_id:016x}")

        def extract(self, carrier, context=None, getter=default_getter):
            values = getter.get(carrier, "X-Sw-Trace")
            try:
                trace_id, span_id = (int(part, 16) for part in values[0].split(":"))
            except (TypeError, ValueError):
                return context if context is not None else {}
            remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(1))
            return trace.set_span_in_context(NonRecordingSpan(remote), context)
    """
)


def _child(tmp_path: Path, propagators: str) -> dict[str, Any]:
    plugin = tmp_path / "plugin"
    (plugin / "sw_test_propagator-1.0.dist-info").mkdir(parents=True, exist_ok=True)
    (plugin / "sw_test_propagator.py").write_text(_PROPAGATOR)
    info = plugin / "sw_test_propagator-1.0.dist-info"
    metadata = "Metadata-Version: 2.1\nName: sw-test-propagator\nVersion: 1.0\n"
    (info / "METADATA").write_text(metadata)
    (info / "entry_points.txt").write_text(
        "[opentelemetry_propagator]\nswtest = sw_test_propagator:SwTestPropagator\n"
    )
    env = dict(os.environ, OTEL_PROPAGATORS=propagators)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_default_propagators_write_tracecontext_and_baggage(tmp_path: Path) -> None:
    written = _child(tmp_path, "tracecontext,baggage")
    assert set(written["message"]) == {"traceparent", "baggage"}
    assert written["message"]["baggage"] == "tenant=acme"
    assert written["call"] == written["message"]
    assert written["read_trace_id"] == written["written_trace_id"]


def test_tracecontext_alone_drops_baggage(tmp_path: Path) -> None:
    written = _child(tmp_path, "tracecontext")
    assert set(written["message"]) == {"traceparent"}
    assert written["read_trace_id"] == written["written_trace_id"]


def test_another_propagator_changes_what_is_written(tmp_path: Path) -> None:
    written = _child(tmp_path, "swtest")
    # HTTP headers and gRPC metadata take the propagator's field as it names it; message
    # headers its CloudEvents-safe form (lowercase letters and digits).
    value = f"{written['written_trace_id']}:"
    assert list(written["call"]) == ["X-Sw-Trace"]
    assert written["call"]["X-Sw-Trace"].startswith(value)
    assert list(written["message"]) == ["xswtrace"]
    assert written["message"]["xswtrace"].startswith(value)
    # ... and read back through the same propagator.
    assert written["read_trace_id"] == written["written_trace_id"]
