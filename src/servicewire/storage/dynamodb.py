"""DynamoDB as an outbox store: the ``dynamodb://`` URL, clients, and ``db init``.

::

    dynamodb://127.0.0.1:8000?region=us-east-1            # local endpoint (moto, DynamoDB Local)
    dynamodb://AKID:SECRET@127.0.0.1:8000/orders_outbox   # credentials and table in the URL
    dynamodb://aws/orders_outbox?region=eu-west-1         # AWS itself; credentials: the chain

    config = DynamoConfig.from_url(url)
    async with config.client("dynamodb") as client:          # an aiobotocore client
        await client.transact_write_items(TransactItems=[...])
    await create_tables(config)                              # what `servicewire db init` runs

* The host ``aws`` means AWS's own regional endpoints; any other host is an endpoint
  URL (``http`` for loopback hosts, ``https`` otherwise; ``?tls=true|false`` overrides).
* The path names the outbox table (default ``servicewire_outbox``); the relay keeps
  its lease, checkpoints and dead letters in ``<table>_relay``.
* ``?region=`` or, when absent, the standard AWS chain (``AWS_REGION``,
  ``AWS_DEFAULT_REGION``, the config file); a local endpoint with no region anywhere
  gets ``us-east-1`` (requests must be signed with some region).
* Credentials in the URL (``key-id:secret@``, percent-encoded) or, when absent, the
  standard AWS chain (environment, config and credentials files, instance roles).
  :meth:`DynamoConfig.display` and :func:`servicewire.urls.redact` hide the secret.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from servicewire.errors import ServicewireError
from servicewire.urls import redact

SCHEME = "dynamodb"
DEFAULT_TABLE = "servicewire_outbox"
RELAY_TABLE_SUFFIX = "_relay"
TTL_ATTRIBUTE = "expires_at"
"""The outbox items' (and dead letters') time-to-live attribute: epoch seconds."""

AWS_HOST = "aws"

MISSING = "dynamodb:// needs aiobotocore: pip install 'servicewire[dynamodb]'"


class DynamoConfigError(ServicewireError):
    """A ``dynamodb://`` URL is not understood, or the tables are missing."""


def is_dynamodb_url(url: object) -> bool:
    return isinstance(url, str) and url.lower().startswith(f"{SCHEME}://")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class DynamoConfig:
    """Where the outbox table lives and how to reach it (parsed from a ``dynamodb://`` URL)."""

    url: str
    table: str = DEFAULT_TABLE
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    @classmethod
    def from_url(cls, url: str) -> DynamoConfig:
        if not is_dynamodb_url(url):
            raise DynamoConfigError(f"not a dynamodb:// URL: {redact(url)!r}")
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = parts.port
        except ValueError as exc:
            raise DynamoConfigError(f"invalid dynamodb URL {redact(url)!r}: {exc}") from None
        if not host:
            raise DynamoConfigError(f"dynamodb URL {redact(url)!r} names no host (or 'aws')")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"region", "tls"}
        if unknown:
            raise DynamoConfigError(
                f"dynamodb URL {redact(url)!r}: unknown option(s) {', '.join(sorted(unknown))}"
            )
        table = parts.path.strip("/") or DEFAULT_TABLE
        if "/" in table:
            raise DynamoConfigError(f"dynamodb URL {redact(url)!r}: one table name, no '/'")
        endpoint = None
        if host != AWS_HOST:
            tls = _flag(query["tls"]) if "tls" in query else not _loopback(host)
            netloc = f"[{host}]" if ":" in host else host
            endpoint = f"{'https' if tls else 'http'}://{netloc}{f':{port}' if port else ''}"
        region = query.get("region")
        if region is None and endpoint is not None and _loopback(host):
            region = _chain_region() or "us-east-1"
        return cls(
            url=url,
            table=table,
            endpoint_url=endpoint,
            region=region,
            access_key_id=unquote(parts.username) if parts.username else None,
            secret_access_key=unquote(parts.password) if parts.password else None,
        )

    @property
    def relay_table(self) -> str:
        """The relay's own table: lease, per-shard checkpoints, dead letters."""
        return self.table + RELAY_TABLE_SUFFIX

    def display(self) -> str:
        """The URL for logs: the secret access key hidden."""
        return redact(self.url)

    @contextlib.asynccontextmanager
    async def client(self, service: str = "dynamodb") -> AsyncIterator[Any]:
        """An aiobotocore client for ``dynamodb`` or ``dynamodbstreams``."""
        try:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session
        except ModuleNotFoundError:
            raise DynamoConfigError(MISSING) from None

        options: dict[str, Any] = {
            "config": AioConfig(
                connect_timeout=5,
                read_timeout=20,
                retries={"max_attempts": 3, "mode": "standard"},
            )
        }
        if self.region:
            options["region_name"] = self.region
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.access_key_id is not None:
            options["aws_access_key_id"] = self.access_key_id
            options["aws_secret_access_key"] = self.secret_access_key or ""
        async with get_session().create_client(service, **options) as client:
            yield client


def _chain_region() -> str | None:
    try:
        from aiobotocore.session import get_session
    except ModuleNotFoundError:
        raise DynamoConfigError(MISSING) from None

    region = get_session().get_config_variable("region")
    return str(region) if region else None


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


async def _create_table(client: Any, name: str, *, stream: bool) -> bool:
    """Create ``name`` (string hash key ``pk``, on demand) unless it exists; True if created."""
    options: dict[str, Any] = {}
    if stream:
        # NEW_IMAGE: the relay needs the item as written; old images would double the
        # stream's size for nothing.
        options["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    try:
        await client.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            **options,
        )
    except Exception as exc:
        if error_code(exc) == "ResourceInUseException":
            return False
        raise
    waiter = client.get_waiter("table_exists")
    await waiter.wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    return True


async def _enable_ttl(client: Any, name: str) -> None:
    described = await client.describe_time_to_live(TableName=name)
    status = described.get("TimeToLiveDescription", {}).get("TimeToLiveStatus")
    if status in ("ENABLED", "ENABLING"):
        return
    await client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )


async def create_tables(config: DynamoConfig) -> list[str]:
    """Create the outbox table (with its stream and TTL) and the relay table; idempotent.

    Returns the tables created now (an empty list when both existed).
    """
    created = []
    async with config.client() as client:
        if await _create_table(client, config.table, stream=True):
            created.append(config.table)
        else:
            await check_stream(client, config.table)
        if await _create_table(client, config.relay_table, stream=False):
            created.append(config.relay_table)
        await _enable_ttl(client, config.table)
        await _enable_ttl(client, config.relay_table)
    return created


async def check_stream(client: Any, table: str) -> str:
    """The outbox table's stream ARN; raises with the fix when the table or its stream is
    missing or the stream's records would lack the items."""
    try:
        described = (await client.describe_table(TableName=table))["Table"]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise DynamoConfigError(
                f"DynamoDB table {table} does not exist: run `servicewire db init dynamodb://...`"
            ) from None
        raise
    spec = described.get("StreamSpecification") or {}
    arn = described.get("LatestStreamArn")
    if not spec.get("StreamEnabled") or not arn:
        raise DynamoConfigError(
            f"DynamoDB table {table} has no stream: enable one with StreamViewType NEW_IMAGE "
            "(or NEW_AND_OLD_IMAGES)"
        )
    if spec.get("StreamViewType") not in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        raise DynamoConfigError(
            f"DynamoDB table {table}'s stream carries {spec.get('StreamViewType')}: the relay "
            "needs NEW_IMAGE or NEW_AND_OLD_IMAGES"
        )
    return str(arn)


async def missing_dynamo_tables(config: DynamoConfig) -> list[str]:
    """Which of the outbox and relay tables do not exist."""
    missing = []
    async with config.client() as client:
        for name in (config.table, config.relay_table):
            try:
                await client.describe_table(TableName=name)
            except Exception as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
                missing.append(name)
    return missing
