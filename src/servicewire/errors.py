"""The exceptions Servicewire raises, in one place so callers can catch them by kind.

Every error derives from :class:`ServicewireError`. Messages name what went wrong and
where (contract, format, field, transport, address) and never carry a password::

    try:
        order = codec.decode(payload, CreateOrder)
    except DecodeError as exc:
        log.warning("bad payload: %s", exc)   # names contract, format, field/offset
"""

from __future__ import annotations


class ServicewireError(Exception):
    """Base class of every error raised by Servicewire."""


class ContractError(ServicewireError):
    """A contract definition or lookup problem."""


class UnknownContractError(ContractError):
    """No contract is registered under a wire name."""

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version
        suffix = f" (version {version})" if version else ""
        super().__init__(f"unknown contract type {name!r}{suffix}")


class UnsupportedVersionError(ContractError):
    """The contract is known, but not in the message's MAJOR version."""

    def __init__(self, name: str, version: str, supported: list[str]) -> None:
        self.name = name
        self.version = version
        self.supported = supported
        have = ", ".join(supported) or "none"
        super().__init__(
            f"contract {name!r} version {version} is not supported; this reader has {have}"
        )


class DuplicateContractError(ContractError):
    """Two different classes claim the same wire name and MAJOR version."""


class DecodeError(ServicewireError):
    """A payload could not be decoded into its contract.

    The one error any codec raises on bad input: garbage, truncation, oversize, wrong
    types. It names the contract, the format, and the field or byte offset when known.
    """

    def __init__(
        self,
        contract: str,
        fmt: str,
        reason: str,
        *,
        field: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.contract = contract
        self.format = fmt
        self.reason = reason
        self.field = field
        self.offset = offset
        where = ""
        if field is not None:
            where = f" at field {field!r}"
        elif offset is not None:
            where = f" at offset {offset}"
        super().__init__(f"cannot decode {contract} from {fmt}{where}: {reason}")


class EncodeError(ServicewireError):
    """A contract value could not be encoded (for example it exceeds the size limit)."""


class UnsupportedContentTypeError(ServicewireError):
    """No codec is registered for a message's content type."""

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type
        super().__init__(f"no codec for content type {content_type!r}")


class TransportError(ServicewireError):
    """A transport failed to connect, publish or consume."""


class ConnectionFailedError(TransportError):
    """A transport could not reach its broker or peer.

    The address is always redacted: ``amqp://guest:***@127.0.0.1:5672/``.
    """

    def __init__(self, transport: str, address: str, reason: str) -> None:
        from servicewire.urls import redact

        self.transport = transport
        self.address = redact(address)
        self.reason = reason
        super().__init__(f"{transport} transport cannot connect to {self.address}: {reason}")


class MessageTooLargeError(TransportError):
    """A message exceeds the transport's size limit; refused before the broker sees it."""

    def __init__(self, size: int, limit: int, channel: str) -> None:
        self.size = size
        self.limit = limit
        self.channel = channel
        super().__init__(
            f"message of {size} bytes for channel {channel!r} exceeds the limit of {limit} bytes"
        )


class PublishError(TransportError):
    """The broker did not confirm a publish."""


class InvalidNameError(ServicewireError, ValueError):
    """A channel, group or table name does not match the allowed pattern."""


class PermanentError(ServicewireError):
    """Raised by a handler for a failure that no retry can fix: dead-letter at once.

    if order is None:
        raise PermanentError(f"order {cmd.order_id} does not exist")
    """


class RequestTimeoutError(ServicewireError, TimeoutError):
    """No reply arrived before the request's deadline."""

    def __init__(self, contract: str, correlation_id: str, timeout: float) -> None:
        self.contract = contract
        self.correlation_id = correlation_id
        self.timeout = timeout
        super().__init__(
            f"no reply to {contract} (correlation id {correlation_id}) within {timeout:g}s"
        )


class ServiceStateError(ServicewireError):
    """A service operation was called in the wrong state (e.g. request before start)."""


class RequestNotSentError(ServicewireError):
    """A request (or scatter) never went out: writing it, or reading its replies, failed.

    Nothing is left waiting for its reply; the cause is chained (``__cause__``)::

        try:
            reply = await service.request(CheckCredit(consumer_id="c-1"), timeout=5)
        except RequestNotSentError as exc:
            log.warning("not sent: %s", exc)   # names contract, correlation id and cause
    """

    def __init__(self, contract: str, correlation_id: str, cause: BaseException) -> None:
        self.contract = contract
        self.correlation_id = correlation_id
        super().__init__(
            f"request {contract} (correlation id {correlation_id}) was not sent: "
            f"{type(cause).__name__}: {cause}"
        )
