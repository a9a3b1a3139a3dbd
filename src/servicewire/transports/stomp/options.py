"""The ``stomp://`` URL: where the broker is, who we are, and the transport's options.

    stomp://user:secret@127.0.0.1:61613/?receipt_timeout=10

Host and port default to 127.0.0.1:61613 (ActiveMQ's STOMP port); user and password go
into the CONNECT frame (``login``/``passcode``) and never into a message or a log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import unquote

from servicewire.transports.options import TransportOptions, option


@dataclass(frozen=True, slots=True)
class StompOptions(TransportOptions):
    """Options read from the URL's query string."""

    broker: ClassVar[str] = "stomp"
    supports_tls: ClassVar[bool] = False

    receipt_timeout: float = option(30.0, above=0)
    """Seconds a SEND (or SUBSCRIBE) waits for the broker's receipt."""
    connect_timeout: float = option(5.0, above=0)
    """Seconds one connection attempt may take."""
    reply_ttl: float = option(60.0, at_least=1)
    """Seconds a message to an instance reply channel (``svc.replies.<instance>``) lives:
    it expires (STOMP ``expires``) if its reader is gone, with the instance."""
    purge_idle: float = option(0.3, above=0)
    """Seconds without a message after which a purge (``delete_group``) stops reading."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Host, port and credentials of a ``stomp://`` URL."""

    host: str
    port: int
    login: str
    passcode: str


def endpoint(url: str) -> tuple[Endpoint, StompOptions]:
    """The broker address and the options of ``url`` (refused with a clear error)."""
    parsed = StompOptions.parse(url)
    parts = parsed.parts
    try:
        port = parts.port or 61613
    except ValueError as exc:
        raise StompOptions.error(url, str(exc)) from None
    where = Endpoint(
        host=parts.hostname or "127.0.0.1",
        port=port,
        login=unquote(parts.username or ""),
        passcode=unquote(parts.password or ""),
    )
    return where, parsed.options
