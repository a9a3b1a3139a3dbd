"""The Kinesis transport's URL: endpoint, region, credentials and tuning options.

::

    kinesis://                                         # AWS: region and credentials from the chain
    kinesis:///?region=eu-west-1                       # AWS, this region
    kinesis://AKIA...:secret@/?region=eu-west-1        # AWS, these credentials
    kinesis://127.0.0.1:5000/?https=no&region=us-east-1    # a local emulator (moto)
    kinesis:///?shards=8&lease_time=20                 # tuning

One endpoint serves both APIs the transport uses: Kinesis Data Streams (the streams)
and DynamoDB (the lease and checkpoint table of each channel). On AWS both come from
the region; with a host in the URL both go to it (moto serves every API on one port).
Without credentials in the URL, botocore's standard chain supplies them; a URL's secret
and ``token`` are never printed (errors show it through :func:`servicewire.urls.redact`).
Unknown options are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from servicewire.transports.aws_url import AwsAddress, describe, parse_aws_url
from servicewire.transports.options import TransportOptions, option

KINESIS_RECORD_LIMIT = 1024 * 1024
"""Kinesis' limit on one record: data plus partition key (PutRecord reference)."""


@dataclass(frozen=True, slots=True)
class KinesisOptions(TransportOptions):
    """Everything the URL can set; defaults suit AWS."""

    broker: ClassVar[str] = "kinesis"
    supports_tls: ClassVar[bool] = False  # HTTPS is botocore's; see ``https``

    region: str = ""
    """AWS region; empty: from the AWS chain, else ``us-east-1``."""
    https: bool = True
    """With a host in the URL: reach it over HTTPS (``no`` for a local emulator)."""
    token: str = ""
    """A session token to go with the URL's key and secret (never printed)."""
    prefix: str = "sw-"
    """Start of every stream and table name the transport creates."""
    shards: int = option(4, at_least=1, at_most=500)
    """Shards of a stream the transport creates (a channel's parallelism per group)."""
    retention: int = option(24, at_least=24, at_most=8760)
    """Hours Kinesis keeps records (24 is the stream default and the cheapest)."""
    lease_time: float = option(10.0, at_least=1.0)
    """Seconds a member's shard lease and heartbeat stay valid without renewal; a crashed
    member's shards move after about this long. Renewed every third of it."""
    poll_interval: float = option(1.0, at_least=0.01, at_most=60)
    """Seconds between GetRecords of an idle shard (AWS allows 5 a second per shard,
    shared by every group reading it)."""
    batch: int = option(500, at_least=1, at_most=10_000)
    """Records one GetRecords asks for."""
    checkpoint_interval: float = option(1.0, at_least=0.0)
    """Seconds between checkpoint writes of a shard with new acks (also at release)."""
    shard_refresh: float = option(10.0, at_least=0.1)
    """Seconds between ListShards of a subscription (how soon resharding is seen)."""
    max_message_size: int = option(
        KINESIS_RECORD_LIMIT, at_least=1024, at_most=KINESIS_RECORD_LIMIT
    )
    """Largest record as sent to Kinesis: envelope plus payload plus partition key."""
    reply_ttl: int = option(600, at_least=30)
    """Seconds after its last heartbeat a crashed instance's reply stream may be swept."""
    persistent: bool = True
    """What to declare: ``no`` for an emulator that keeps records in memory (moto)."""
    connections: int = option(64, at_least=1, at_most=1024)
    """HTTP connections of each client (each owned shard polls on one)."""


KinesisAddress = AwsAddress[KinesisOptions]
"""Where and how to connect (:class:`~servicewire.transports.aws_url.AwsAddress`)."""


def parse_kinesis_url(url: str) -> KinesisAddress:
    """Parse ``url``; raises :class:`~servicewire.errors.TransportError` naming it redacted."""
    return parse_aws_url(url, KinesisOptions)


__all__ = [
    "KINESIS_RECORD_LIMIT",
    "KinesisAddress",
    "KinesisOptions",
    "describe",
    "parse_kinesis_url",
]
