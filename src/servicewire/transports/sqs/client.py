"""The aiobotocore client of one transport, and what its errors mean.

::

    client, closer = await open_client(address)     # botocore's credential chain unless
    ...                                             # the URL names a key and secret
    await closer.__aexit__(None, None, None)

One client per transport: its HTTP pool (``connections``) is shared by publishes and by
every member's long poll.
"""

from __future__ import annotations

from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from servicewire.transports.sqs.options import SqsAddress

_MISSING_QUEUE = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)


async def open_client(address: SqsAddress) -> tuple[Any, Any]:
    """A started SQS client for ``address`` and the context that closes it."""
    options = address.options
    config = AioConfig(
        max_pool_connections=options.connections,
        # A long poll answers after wait_time; anything slower than that plus a margin
        # is a lost connection, worth a retry.
        read_timeout=options.wait_time + 20,
        connect_timeout=10,
        retries={"max_attempts": 4, "mode": "standard"},
    )
    session = get_session()
    context = session.create_client(
        "sqs",
        region_name=address.region,
        endpoint_url=address.endpoint,
        aws_access_key_id=address.access_key,
        aws_secret_access_key=address.secret_key,
        aws_session_token=options.token or None,
        config=config,
    )
    client = await context.__aenter__()
    return client, context


def error_code(exc: BaseException) -> str:
    """The AWS error code of ``exc`` (``""`` when it is no service error)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_missing_queue(exc: BaseException) -> bool:
    """Whether ``exc`` says the queue does not exist (deleted, or never made)."""
    return error_code(exc) in _MISSING_QUEUE


AWS_ERRORS = (ClientError, BotoCoreError, OSError)
"""What a call to SQS may raise besides cancellation: service errors, transport errors."""
