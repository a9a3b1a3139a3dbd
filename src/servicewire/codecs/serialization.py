"""Between contracts and messages: encode a contract into a :class:`Message`, decode back.

    msg = to_message(CreateTicket(order_id="o-1"), source="order-service")
    # destination, type, version, kind, partition key and content type filled in
    ticket = from_message(msg)          # resolved through the contract registry

Decoding resolves ``(type, MAJOR)`` in a registry, so a 1.x reader accepts any 1.y
message, and raises :class:`~servicewire.errors.UnknownContractError` or
:class:`~servicewire.errors.UnsupportedVersionError` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

from servicewire.codecs.base import Codec
from servicewire.codecs.registry import CodecRegistry, default_codecs
from servicewire.messaging import headers as h
from servicewire.messaging.contracts import Contract, ContractRegistry, Reply, default_registry
from servicewire.messaging.message import Message

_default_codecs: CodecRegistry | None = None


def shared_codecs() -> CodecRegistry:
    """The process-wide default codec registry (built on first use)."""
    global _default_codecs
    if _default_codecs is None:
        _default_codecs = default_codecs()
    return _default_codecs


def to_message(
    value: Contract,
    *,
    destination: str | None = None,
    codec: Codec | None = None,
    source: str = "servicewire",
    correlation_id: str | None = None,
    causation_id: str | None = None,
    reply_to: str | None = None,
    partition_key: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> Message:
    """Encode ``value`` into a message for ``destination`` (default: the contract's channel)."""
    cls = type(value)
    channel = destination or cls.default_channel()
    if not channel:
        raise ValueError(
            f"{cls.contract_name()} has no default channel; pass destination= explicitly"
        )
    codec = codec or shared_codecs().for_content_type("application/json")
    more: dict[str, str] = dict(extra) if extra else {}
    if isinstance(value, Reply):
        more[h.REPLY_OUTCOME] = "success" if value.is_success() else "failure"
    return Message.create(
        codec.encode(value),
        destination=channel,
        kind=cls.contract_kind(),
        type=cls.contract_name(),
        version=str(cls.contract_version()),
        content_type=codec.content_type,
        source=source,
        partition_key=partition_key if partition_key is not None else value.partition_key(),
        correlation_id=correlation_id,
        causation_id=causation_id,
        reply_to=reply_to,
        extra=more,
    )


def from_message(
    message: Message,
    *,
    registry: ContractRegistry | None = None,
    codecs: CodecRegistry | None = None,
) -> Contract:
    """Decode ``message`` into its contract class, resolved by type name and MAJOR version."""
    cls = (registry or default_registry).resolve(message.type, message.version or None)
    codec = (codecs or shared_codecs()).for_content_type(message.content_type)
    return codec.decode(message.payload, cls)
