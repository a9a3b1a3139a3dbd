"""Secrets never leak: wrong credentials everywhere, then grep every output for them.

Each case connects with a password or token that is deliberately wrong (or to a server
that refuses it), with all logging captured at DEBUG; the exception's text, repr and
full formatted chain, every log record, stdout/stderr and the Prometheus exposition
are then searched for the secret.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text

from servicewire import Service, ServiceOptions
from servicewire.resilience import CallRetryPolicy, Resilience
from servicewire.rest.client import RestClient
from servicewire.security.identity import TokenIssuer
from servicewire.storage.database import create_engine
from servicewire.transports import connect_transport
from tests import services
from tests.security.servers import free_port


def _secret(tag: str) -> str:
    return f"S3cr3t{tag}{os.urandom(6).hex()}"


def _texts(exc: BaseException) -> str:
    parts = ["".join(traceback.format_exception(exc)), repr(exc)]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(getattr(current, "args", ""))]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def _metrics() -> str:
    try:
        import prometheus_client
    except ImportError:  # pragma: no cover - the extra is installed in the test env
        return ""
    return prometheus_client.generate_latest().decode()


def _record_text(record: logging.LogRecord) -> str:
    text = f"{record.getMessage()} {record.exc_text or ''}"
    if record.exc_info and record.exc_info[1] is not None:
        text += _texts(record.exc_info[1])
    return text


async def _leaks(
    secret: str,
    attempt: Callable[[], Awaitable[object]],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    error: BaseException | None = None
    try:
        await attempt()
    except Exception as exc:  # the failure itself is expected; its text is what we check
        error = exc
    assert error is not None, "the wrong credentials were accepted"
    out, err = capsys.readouterr()
    logs = "\n".join(_record_text(r) for r in caplog.records)
    for where, content in {
        "exception": _texts(error),
        "logs": logs,
        "stdout": out,
        "stderr": err,
        "metrics": _metrics(),
    }.items():
        assert secret not in content, f"secret leaked into {where}"


async def test_amqp_bad_password(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    services.require("rabbitmq")
    secret = _secret("amqp")
    url = f"amqp://guest:{secret}@127.0.0.1:5672/?connect_timeout=3"
    await _leaks(secret, lambda: connect_transport(url), caplog, capsys)


@pytest.mark.parametrize("db", ["postgres", "mariadb"])
async def test_database_bad_password(
    db: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    services.require(db)
    secret = _secret(db)
    # PostgreSQL here trusts local users, so a role that does not exist makes it refuse.
    base = services.URLS[db].split("://", 1)[1].split("@", 1)[1]
    scheme = services.URLS[db].split("://", 1)[0]
    url = f"{scheme}://sw_nobody:{secret}@{base}"

    async def attempt() -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    await _leaks(secret, attempt, caplog, capsys)

    async def service() -> None:
        async with Service("leaky", db=url, options=ServiceOptions(relay=False)):
            pass

    await _leaks(secret, service, caplog, capsys)


async def test_redis_password(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    services.require("redis")
    secret = _secret("redis")
    url = f"redis://sw_nobody:{secret}@127.0.0.1:6379/0"  # no such ACL user: WRONGPASS

    async def attempt() -> None:
        transport = await connect_transport(url)
        await transport.close()

    await _leaks(secret, attempt, caplog, capsys)


async def test_nats_password_to_unreachable_server(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = _secret("nats")
    url = f"nats://app:{secret}@127.0.0.1:{free_port()}?connect_timeout=1"
    await _leaks(secret, lambda: connect_transport(url), caplog, capsys)


async def test_rest_token_and_headers(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer = TokenIssuer("order-service", hmac_keys={"k1": os.urandom(32)})
    token = issuer.token("kitchen")
    secret = _secret("rest")
    client = RestClient(
        {"kitchen": [f"127.0.0.1:{free_port()}"]},  # nothing listens: the call fails
        auth=issuer,
        headers={"x-api-key": secret},
        resilience=Resilience(timeout=1.0, retry=CallRetryPolicy(attempts=2)),
    )

    async def attempt() -> None:
        async with client:
            await client.get("kitchen", "/v1/tickets")

    await _leaks(token, attempt, caplog, capsys)
    await _leaks(secret, attempt, caplog, capsys)
