"""Hostile input: nothing executes payloads, limits hold, SQL and names are safe.

* no codec (or anything else in src/) unpickles, evals or yaml-loads; the two ``exec``
  uses compile code generated from our own schemas, never from a payload;
* XML entity expansion and external entities are refused;
* header and payload size limits are enforced before any I/O;
* SQL is only built from bound parameters (an AST scan of src/ allows a short,
  reviewed list of identifiers interpolated after an allow-list check);
* channel, group, service and slot names go through allow-list patterns;
* TLS requested from a database that has none is refused, never used in plaintext.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from servicewire import Context, Service, ServiceOptions
from servicewire.codecs.serialization import to_message
from servicewire.codecs.xml import XmlCodec
from servicewire.errors import DecodeError, InvalidNameError, MessageTooLargeError
from servicewire.messaging.channels import validate_name
from servicewire.messaging.message import Message
from servicewire.pipeline.retry import NO_RETRY
from servicewire.pipeline.unit_of_work import Outcome
from servicewire.storage.database import DatabaseError, create_engine
from servicewire.testing import ServiceHarness
from servicewire.transports.base import MAX_HEADER_BYTES
from servicewire.transports.memory.transport import MemoryTransport
from tests import services
from tests.security.certs import Pki
from tests.service.contracts import CreateTicket, TicketEvent

SRC = Path(__file__).resolve().parents[2] / "src"

FORBIDDEN = re.compile(
    r"\bimport\s+(pickle|cPickle|dill|shelve|marshal)\b|\bpickle\.|\bmarshal\.loads"
    r"|\beval\(|\byaml\.(load|unsafe_load|full_load)\(|jsonpickle|\b__import__\("
)
# exec of code generated from our own schemas (field names checked as identifiers),
# never of anything from a payload: reviewed and allowed by file.
EXEC_ALLOWED = {"servicewire/codecs/_proto_codegen.py", "servicewire/codecs/_dumper.py"}

# SQL built by string interpolation, reviewed: what is interpolated and why it is safe.
SQL_INTERPOLATION_ALLOWED = {
    "servicewire/relay/replication_slot.py",  # publication name, checked: [a-z0-9_]{1,63}
    "servicewire/storage/database.py",  # PRAGMA busy_timeout=<int constant>
    "ftgo/app/up.py",  # CREATE DATABASE ftgo_<name from a constant tuple>
}


def _sources() -> list[tuple[str, str]]:
    return [(str(p.relative_to(SRC)), p.read_text()) for p in sorted(SRC.rglob("*.py"))]


def test_nothing_unpickles_evals_or_yaml_loads() -> None:
    offenders = []
    for name, source in _sources():
        for number, line in enumerate(source.splitlines(), 1):
            code = line.split("#", 1)[0]
            if FORBIDDEN.search(code):
                offenders.append(f"{name}:{number}: {line.strip()}")
            if re.search(r"\bexec\(", code) and name not in EXEC_ALLOWED:
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []


def _is_dynamic_string(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return isinstance(node.left, ast.Constant | ast.JoinedStr)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and isinstance(node.func.value, ast.Constant)
    return False


def test_sql_only_through_bound_parameters() -> None:
    """No ``text()``/``execute()`` of an interpolated string outside the reviewed list."""
    offenders = []
    for name, source in _sources():
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in {"text", "execute", "exec_driver_sql", "executemany", "fetch"}:
                continue
            if _is_dynamic_string(node.args[0]) and name not in SQL_INTERPOLATION_ALLOWED:
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(
    "name",
    ["orders; DROP TABLE x", "a'--", "", "x" * 201, "../etc", "a b", "café", "-lead", "a\x00b"],
)
def test_names_are_allow_listed(name: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_name(name)
    with pytest.raises(InvalidNameError):
        Service(name or "\n")


async def test_transport_refuses_bad_names_and_oversized_headers() -> None:
    transport = MemoryTransport("memory://hostile")
    await transport.connect()
    try:
        bad = to_message(TicketEvent(order_id="o", seq=1), destination="x;DROP")
        with pytest.raises(InvalidNameError):
            await transport.publish(bad)
        with pytest.raises(InvalidNameError):
            await transport.subscribe("ok", "g; rm -rf")
        huge = to_message(TicketEvent(order_id="o", seq=1)).with_headers(
            xbig="v" * (MAX_HEADER_BYTES + 1)
        )
        with pytest.raises(MessageTooLargeError):
            await transport.publish(huge)
    finally:
        await transport.close()


def test_wal_relay_refuses_injected_slot_names() -> None:
    from servicewire.relay.postgres_wal import PostgresWalRelay

    engine = create_engine("postgresql://postgres@127.0.0.1:5432/test")
    with pytest.raises(ValueError, match="invalid slot"):
        PostgresWalRelay(engine, MemoryTransport("memory://x"), slot="x; DROP TABLE t")


@pytest.mark.parametrize(
    "payload",
    [
        # billion laughs: entity expansion
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><CreateTicket><order_id>&b;'
        b"</order_id></CreateTicket>",
        # external entity: reading a local file
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<CreateTicket><order_id>&e;</order_id></CreateTicket>",
    ],
)
def test_xml_entities_are_refused(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        XmlCodec().decode(payload, CreateTicket)


async def test_hostile_strings_are_stored_verbatim_through_bound_parameters() -> None:
    """Quotes, SQL and NULs in payloads and headers reach the outbox byte for byte."""
    nasty = "o'); DROP TABLE servicewire_outbox; -- \\ \" ` ${x} %s %(x)s"
    service = Service("kitchen", options=ServiceOptions(retry=NO_RETRY))

    @service.handles(CreateTicket)
    async def create(cmd: CreateTicket, ctx: Context) -> None:
        await ctx.publish(TicketEvent(order_id=cmd.order_id, seq=1), headers={"xnote": nasty})

    async with ServiceHarness(service) as harness:
        assert await harness.deliver(CreateTicket(order_id=nasty)) is Outcome.HANDLED
        [event] = await harness.sent()
        assert event.headers["xnote"] == nasty
        assert event.partition_key == nasty
        [decoded] = await harness.sent_contracts()
        assert decoded == TicketEvent(order_id=nasty, seq=1)


@pytest.mark.parametrize("db", ["postgres", "mariadb"])
async def test_database_tls_requested_but_absent_is_refused(db: str, pki: Pki) -> None:
    services.require(db)
    engine = create_engine(f"{services.URLS[db]}?tls_ca={pki.ca}")
    try:
        with pytest.raises((DatabaseError, ConnectionError, OSError)):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def test_database_tls_options_are_checked() -> None:
    with pytest.raises(DatabaseError):
        create_engine("postgresql://u@127.0.0.1/x?tls_ca=/nonexistent.pem")
    with pytest.raises(DatabaseError):
        create_engine("postgresql://u@127.0.0.1/x?tls_verify=false")


def test_message_with_many_headers_is_still_bounded() -> None:
    many = {f"x{i}": "v" * 100 for i in range(1000)}
    message = Message.create(b"{}", destination="c", kind="event", type="t", extra=many)
    transport = MemoryTransport("memory://bounded")
    with pytest.raises(MessageTooLargeError):
        transport.check_size(message)
