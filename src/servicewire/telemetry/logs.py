"""Structured logs: one JSON object per line, or readable text in a terminal.

Every record carries the service name and, while a message is being handled, its
message id, correlation id and trace id (the pipeline sets them for the handler's
task, so a handler's own ``log.info`` gets them too). URLs with credentials and
``password=`` style secrets are redacted from messages and tracebacks::

    configure_logging(service="order-service")           # JSON unless stderr is a TTY
    log.info("order %s created", order_id)
    # {"time": "2026-11-28T08:40:01.123Z", "level": "INFO", "logger": "ftgo.order",
    #  "service": "order-service", "message": "order o-1 created",
    #  "message_id": "...", "correlation_id": "...", "trace_id": "..."}
"""

from __future__ import annotations

import contextlib
import contextvars
import json as jsonlib
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from servicewire.messaging.message import Message
from servicewire.telemetry.tracing import current_trace_id, trace_id_of
from servicewire.urls import redact_text

_message: contextvars.ContextVar[Message | None] = contextvars.ContextVar(
    "servicewire_log_message", default=None
)

# Set while the filter reads a message's trace headers: OpenTelemetry logs a warning about
# a malformed header, that warning passes through the filter with the same message
# current, and reading the headers again for it would recurse until the stack overflows.
_reading_headers: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "servicewire_log_reading_headers", default=False
)

_FIELDS = ("service", "message_id", "correlation_id", "trace_id")


@contextlib.contextmanager
def message_context(message: Message) -> Iterator[None]:
    """Log records made inside the block name ``message`` (its ids and trace)."""
    token = _message.set(message)
    try:
        yield
    finally:
        _message.reset(token)


class ContextFilter(logging.Filter):
    """Adds ``service``, ``message_id``, ``correlation_id`` and ``trace_id`` to records."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        message = _message.get()
        record.service = getattr(record, "service", None) or self.service
        record.message_id = message.id if message is not None else None
        record.correlation_id = message.correlation_id if message is not None else None
        trace_id = current_trace_id()
        if trace_id is None and message is not None and not _reading_headers.get():
            token = _reading_headers.set(True)
            try:
                trace_id = trace_id_of(message)
            finally:
                _reading_headers.reset(token)
        record.trace_id = trace_id
        return True


def _stamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _stamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return jsonlib.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level service logger: message [ids]`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{name.split('_')[0]}={getattr(record, name)}"
            for name in ("message_id", "correlation_id", "trace_id")
            if getattr(record, name, None)
        )
        line = (
            f"{_stamp(record)} {record.levelname:<7} {getattr(record, 'service', '')} "
            f"{record.name}: {redact_text(record.getMessage())}"
        )
        if ids:
            line += f"  [{ids}]"
        if record.exc_info:
            line += "\n" + redact_text(self.formatException(record.exc_info))
        return line


def configure_logging(
    *,
    service: str,
    json: bool | None = None,
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) as JSON lines or text.

    ``json=None`` picks text when the stream is a terminal, JSON otherwise (log
    collectors read files and pipes). Replaces handlers this function installed
    before; returns the new handler.
    """
    stream = stream or sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(ContextFilter(service))
    handler.set_name("servicewire")
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "servicewire":
            root.removeHandler(old)
    root.addHandler(handler)
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.INFO
    root.setLevel(level)
    return handler
