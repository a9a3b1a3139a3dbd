"""Where an AWS transport talks to and as whom: the shared part of ``sqs://`` and
``kinesis://`` URLs.

The host of the URL, if any, is the endpoint (an emulator such as moto; AWS's own
otherwise); ``key:secret@`` are credentials (botocore's standard chain without them);
``region`` and ``https`` are options. Each transport adds its own options on top::

    address = parse_aws_url("sqs://KEY:SECRET@127.0.0.1:5000/?https=no", SqsOptions)
    address.endpoint      # "http://127.0.0.1:5000"
    address.region        # "us-east-1": an emulator takes any, botocore insists on one
    describe(address)     # "http://127.0.0.1:5000 (us-east-1)", never the secret
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from urllib.parse import unquote

from servicewire.transports.options import TransportOptions


class _AwsOptions(Protocol):
    region: str
    https: bool
    prefix: str


OptionsT = TypeVar("OptionsT", bound=TransportOptions)


@dataclass(frozen=True, slots=True)
class AwsAddress(Generic[OptionsT]):
    """Where and how to connect; ``endpoint`` ``None`` is AWS's own."""

    endpoint: str | None
    region: str | None
    access_key: str | None
    secret_key: str | None
    options: OptionsT


def parse_aws_url(url: str, options_type: type[OptionsT]) -> AwsAddress[OptionsT]:
    """Parse ``url`` with ``options_type`` (its ``broker`` is the scheme); raises
    :class:`~servicewire.errors.TransportError` naming the URL redacted."""
    parsed = options_type.parse(url)
    parts, options = parsed.parts, parsed.options
    aws: _AwsOptions = options  # type: ignore[assignment]  # every AWS options class has them
    scheme = options_type.broker
    if parts.scheme.lower() != scheme:
        raise options_type.error(url, f"scheme must be {scheme}")
    if parts.path not in ("", "/"):
        raise options_type.error(url, "a path is not used; put options in the query")
    if not aws.prefix.replace("-", "").replace("_", "").isalnum() or len(aws.prefix) > 10:
        raise options_type.error(url, "prefix: up to 10 letters, digits, '-' or '_'")
    netloc = parts.netloc
    access = secret = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        access, secret = unquote(user), unquote(password)
        if not access or not secret:
            raise options_type.error(url, "credentials need both key id and secret (id:secret@)")
    endpoint = f"{'https' if aws.https else 'http'}://{netloc}" if netloc else None
    region = aws.region or None
    if endpoint is not None and region is None:
        region = "us-east-1"  # emulators accept any region; botocore insists on one
    return AwsAddress(endpoint, region, access, secret, options)


def describe(address: AwsAddress[OptionsT]) -> str:
    """Where the transport talks to, for messages (no credentials)."""
    where = address.endpoint or "AWS"
    return f"{where} ({address.region or 'region from the AWS chain'})"
