"""The aiobotocore clients of one transport (Kinesis and DynamoDB), and their errors.

::

    clients = await Clients.open(address)     # botocore's credential chain unless the
    await clients.kinesis.put_record(...)     # URL names a key and secret
    await clients.close()
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from servicewire.transports.kinesis.options import KinesisAddress


@dataclass
class Clients:
    """A started Kinesis client and DynamoDB client sharing one session."""

    kinesis: Any
    dynamodb: Any
    _contexts: list[Any]

    @classmethod
    async def open(cls, address: KinesisAddress) -> Clients:
        options = address.options
        config = AioConfig(
            max_pool_connections=options.connections,
            read_timeout=30,
            connect_timeout=10,
            retries={"max_attempts": 4, "mode": "standard"},
        )
        session = get_session()
        contexts: list[Any] = []
        started: list[Any] = []
        try:
            for service in ("kinesis", "dynamodb"):
                context = session.create_client(
                    service,
                    region_name=address.region,
                    endpoint_url=address.endpoint,
                    aws_access_key_id=address.access_key,
                    aws_secret_access_key=address.secret_key,
                    aws_session_token=options.token or None,
                    config=config,
                )
                started.append(await context.__aenter__())
                contexts.append(context)
        except BaseException:
            for context in contexts:
                with contextlib.suppress(Exception):
                    await context.__aexit__(None, None, None)
            raise
        return cls(started[0], started[1], contexts)

    async def close(self) -> None:
        contexts, self._contexts = self._contexts, []
        for context in contexts:
            with contextlib.suppress(Exception):
                await context.__aexit__(None, None, None)


def error_code(exc: BaseException) -> str:
    """The AWS error code of ``exc`` (``""`` when it is no service error)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_missing(exc: BaseException) -> bool:
    """Whether ``exc`` says the stream, shard or table does not exist."""
    return error_code(exc) == "ResourceNotFoundException"


def is_condition_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is a DynamoDB conditional write that lost (fencing)."""
    return error_code(exc) in {"ConditionalCheckFailedException", "TransactionCanceledException"}


AWS_ERRORS = (ClientError, BotoCoreError, OSError)
"""What a call may raise besides cancellation: service errors, transport errors."""
