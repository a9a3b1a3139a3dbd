"""The SQS transport's URL: endpoint, region, credentials and tuning options.

::

    sqs://                                        # AWS: region and credentials from the chain
    sqs:///?region=eu-west-1                      # AWS, this region
    sqs://AKIA...:secret@/?region=eu-west-1       # AWS, these credentials
    sqs://127.0.0.1:5000/?https=no&region=us-east-1   # a local emulator (moto)
    sqs:///?queue_type=standard                   # unordered, no FIFO throughput limits

Without credentials in the URL, botocore's standard chain supplies them (environment
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, the shared
config and credentials files, ``AWS_PROFILE``, container and instance roles); the region
likewise (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the config file). A URL's secret and
``token`` are never printed: every error shows the URL through
:func:`servicewire.urls.redact`. Unknown options are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from servicewire.transports.aws_url import AwsAddress, describe, parse_aws_url
from servicewire.transports.options import TransportOptions, option

SQS_CLASSIC_LIMIT = 256 * 1024
"""SQS's message size limit before AWS raised it to 1 MiB in 2025; our default, because
queues, SDKs and integrations (SNS, Lambda event sources) older than that still cap there."""
SQS_MAX_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SqsOptions(TransportOptions):
    """Everything the URL can set; defaults suit AWS."""

    broker: ClassVar[str] = "sqs"
    supports_tls: ClassVar[bool] = False  # HTTPS is botocore's; see ``https``

    region: str = ""
    """AWS region; empty: from the AWS chain, else ``us-east-1``."""
    https: bool = True
    """With a host in the URL: reach it over HTTPS (``no`` for a local emulator)."""
    token: str = ""
    """A session token to go with the URL's key and secret (never printed)."""
    queue_type: Literal["fifo", "standard"] = "fifo"
    """``fifo``: per-key order (``MessageGroupId`` = partition key); ``standard``: none."""
    prefix: str = "sw-"
    """Start of every queue name the transport creates (letters, digits, ``-``, ``_``)."""
    visibility_timeout: int = option(30, at_least=1, at_most=43_200)
    """Seconds a received message stays hidden from the group's other members; renewed
    every third of it while the member holds it, so it is the redelivery delay after a
    member dies."""
    wait_time: int = option(5, at_least=0, at_most=20)
    """Long-poll seconds of one receive (closing a member waits for its poll to end)."""
    max_message_size: int = option(SQS_CLASSIC_LIMIT, at_least=1024, at_most=SQS_MAX_LIMIT)
    """Largest message as sent to SQS: body plus attributes (bytes)."""
    retention: int = option(345_600, at_least=60, at_most=1_209_600)
    """Seconds SQS keeps an unconsumed message (``MessageRetentionPeriod``; 4 days)."""
    group_refresh: float = option(1.0, at_least=0)
    """Seconds a publisher trusts its list of a channel's groups before listing again."""
    reply_ttl: int = option(600, at_least=30)
    """Seconds after its last heartbeat a crashed instance's reply queue may be swept."""
    persistent: bool = True
    """What to declare: ``no`` for an emulator that keeps messages in memory (moto)."""
    connections: int = option(64, at_least=1, at_most=1024)
    """HTTP connections of the client (each member's long poll holds one)."""


SqsAddress = AwsAddress[SqsOptions]
"""Where and how to connect (:class:`~servicewire.transports.aws_url.AwsAddress`)."""


def parse_sqs_url(url: str) -> SqsAddress:
    """Parse ``url``; raises :class:`~servicewire.errors.TransportError` naming it redacted."""
    return parse_aws_url(url, SqsOptions)


__all__ = [
    "SQS_CLASSIC_LIMIT",
    "SQS_MAX_LIMIT",
    "SqsAddress",
    "SqsOptions",
    "describe",
    "parse_sqs_url",
]
