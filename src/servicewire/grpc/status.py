"""Errors to gRPC status codes (server side) and back to typed errors (client side).

A handler raises our errors; the server interceptor answers with the matching status
and rich details (``google.rpc.Status`` in ``grpc-status-details-bin``: an ``ErrorInfo``
naming the error kind, and ``BadRequest`` field violations for invalid arguments)::

    raise NotFoundError("order-service", "no order o-9")   # -> NOT_FOUND "no order o-9"

The client maps the status back, so callers catch the same ``NotFoundError`` over REST
and gRPC. Anything unexpected becomes ``INTERNAL`` with a generic message: the
exception text may hold internals and stays in the server log.

The ``google.rpc.Status`` travels the way gRPC's own ``grpcio-status`` package puts it
(``grpc_status.rpc_status``: ``to_status`` on the server, ``from_call`` on the client,
which also checks that the details agree with the call's code and message); this
module only chooses the details.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import grpc
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from pydantic import ValidationError

from servicewire.errors import DecodeError
from servicewire.resilience import (
    BadRequestError,
    BulkheadFullError,
    CircuitOpenError,
    ConflictError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    RemoteError,
    RemoteServerError,
    ServiceUnavailableError,
)

log = logging.getLogger(__name__)

DOMAIN: Final = "servicewire"

_SERVER_SIDE: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (BadRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (ConflictError, grpc.StatusCode.FAILED_PRECONDITION),
    (ServiceUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (CircuitOpenError, grpc.StatusCode.UNAVAILABLE),
    (BulkheadFullError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (DecodeError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotImplementedError, grpc.StatusCode.UNIMPLEMENTED),
    (RemoteServerError, grpc.StatusCode.INTERNAL),
]

_CLIENT_SIDE: dict[grpc.StatusCode, tuple[type[RemoteError], int]] = {
    grpc.StatusCode.NOT_FOUND: (NotFoundError, 404),
    grpc.StatusCode.INVALID_ARGUMENT: (InvalidArgumentError, 422),
    grpc.StatusCode.OUT_OF_RANGE: (InvalidArgumentError, 422),
    grpc.StatusCode.FAILED_PRECONDITION: (ConflictError, 409),
    grpc.StatusCode.ALREADY_EXISTS: (ConflictError, 409),
    grpc.StatusCode.ABORTED: (ConflictError, 409),
    grpc.StatusCode.UNAVAILABLE: (ServiceUnavailableError, 503),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (ServiceUnavailableError, 429),
    grpc.StatusCode.UNAUTHENTICATED: (BadRequestError, 401),
    grpc.StatusCode.PERMISSION_DENIED: (BadRequestError, 403),
    grpc.StatusCode.UNIMPLEMENTED: (RemoteServerError, 501),
    grpc.StatusCode.CANCELLED: (RemoteError, 499),
}


def code_for(exc: BaseException) -> grpc.StatusCode:
    for kind, code in _SERVER_SIDE:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def rich_status(code: grpc.StatusCode, message: str, details: Sequence[Message]) -> grpc.Status:
    """A ``grpc.Status`` carrying ``details`` in a ``google.rpc.Status``.

    A handler that aborts by itself answers the way the server interceptor does::

        status = rich_status(grpc.StatusCode.NOT_FOUND, "no order o-9", [info])
        await context.abort(status.code, status.details, status.trailing_metadata)
    """
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...]]:
    """``(code, message, trailing metadata)`` to answer ``exc`` with."""
    code = code_for(exc)
    if code is grpc.StatusCode.INTERNAL and not isinstance(exc, RemoteError):
        message = "internal error; the server has logged it"
    elif isinstance(exc, RemoteError):
        message = exc.detail
    else:
        message = str(exc)
    info = error_details_pb2.ErrorInfo(reason=type(exc).__name__, domain=DOMAIN)
    if isinstance(exc, RemoteError) and exc.title:
        info.metadata["title"] = exc.title
    details: list[Message] = [info]
    violations = _violations(exc)
    if violations:
        details.append(error_details_pb2.BadRequest(field_violations=violations))
    status = rich_status(code, message, details)
    return status.code, status.details, tuple(status.trailing_metadata)


def _violations(exc: BaseException) -> list[error_details_pb2.BadRequest.FieldViolation]:
    if isinstance(exc, ValidationError):
        return [
            error_details_pb2.BadRequest.FieldViolation(
                field=".".join(str(p) for p in err["loc"]), description=err["msg"]
            )
            for err in exc.errors()
        ]
    if isinstance(exc, RemoteError):
        return [
            error_details_pb2.BadRequest.FieldViolation(
                field=err.get("field", ""), description=err.get("message", "")
            )
            for err in exc.errors
        ]
    if isinstance(exc, DecodeError) and exc.field:
        return [
            error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.reason)
        ]
    return []


def error_from_rpc(
    service: str, error: grpc.aio.AioRpcError, operation: str, timeout: float = 0.0
) -> Exception:
    """The typed error for a failed call (``DeadlineExceededError`` for DEADLINE_EXCEEDED)."""
    code = error.code()
    message = error.details() or code.name
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(operation, timeout)
    cls, http_status = _CLIENT_SIDE.get(code, (RemoteServerError, 500))
    title, errors = _details_of(error, operation)
    return cls(service, message, status=http_status, title=title or code.name, errors=errors)


def _details_of(error: grpc.aio.AioRpcError, operation: str) -> tuple[str, list[dict[str, str]]]:
    """The title (``ErrorInfo``) and field errors (``BadRequest``) the status carries."""
    try:
        status = rpc_status.from_call(error)
    except (ValueError, ProtobufDecodeError) as exc:
        # Unreadable, or contradicting the call's code or message: the status code and
        # message still say what failed, so answer with those and say why details are gone.
        log.warning("%s: ignoring the status details of the error: %s", operation, exc)
        return "", []
    title = ""
    errors: list[dict[str, str]] = []
    for packed in status.details if status is not None else ():
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            title = info.metadata.get("title", "")
        elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            errors = [
                {"field": v.field, "message": v.description, "code": "invalid"}
                for v in bad.field_violations
            ]
    return title, errors
