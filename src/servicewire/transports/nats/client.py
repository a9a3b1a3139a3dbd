"""The nats-py client Servicewire connects with: nats-py, with a cheaper header parser.

Profiles of the consume path put nats-py's header parsing first among our costs: it
checks every character of every header name for whitespace in a Python generator, and
a Servicewire message carries ten CloudEvents headers. This subclass keeps the parser's
rules (``Name: value`` lines, names without whitespace and ASCII only, values UTF-8
with replacement) and does the whitespace test with one C-level ``str.split``::

    nc = FastHeadersClient()
    await nc.connect(["nats://127.0.0.1:4222"])
"""

from __future__ import annotations

from nats.aio.client import Client


class FastHeadersClient(Client):
    """A nats-py ``Client`` whose header parsing costs less per header."""

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            try:
                key = name.strip().decode("ascii")
            except UnicodeDecodeError:
                continue  # a malformed name: skipped, as nats-py does
            if key and len(key.split()) != 1:
                continue  # whitespace inside the name
            out[key] = value.strip().decode("utf-8", "replace")
        return out
