"""What a failed remote call looks like to its caller, the same on REST and gRPC.

The REST client maps problem details to these, the gRPC client maps status codes to
these, and a gRPC handler may raise them to answer with the matching status code::

    raise remote_error_class(404)("order-service", "no order 42")   # a NotFoundError

:func:`counts_as_failure` and :func:`is_transient` are the default rules of the circuit
breaker and of retries: a 4xx is the caller's fault, a 503 is worth another attempt.
"""

from __future__ import annotations

from servicewire.errors import ServicewireError


class RemoteError(ServicewireError):
    """A remote service answered a call with an error.

    ``status`` is the HTTP status (the gRPC client uses the equivalent one); ``title``,
    ``detail``, ``type`` and ``errors`` come from the problem details when there are any.
    """

    default_status: int = 500

    def __init__(
        self,
        service: str,
        detail: str,
        *,
        status: int | None = None,
        title: str = "",
        type: str = "about:blank",
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        self.service = service
        self.detail = detail
        self.status = status if status is not None else self.default_status
        self.title = title
        self.type = type
        self.errors = errors or []
        super().__init__(f"{service}: {self.status} {title + ': ' if title else ''}{detail}")


class BadRequestError(RemoteError):
    default_status = 400


class InvalidArgumentError(BadRequestError):
    """The request failed validation (HTTP 422, gRPC INVALID_ARGUMENT); see ``errors``."""

    default_status = 422


class NotFoundError(RemoteError):
    default_status = 404


class ConflictError(RemoteError):
    """The request conflicts with the resource's state (HTTP 409, gRPC FAILED_PRECONDITION)."""

    default_status = 409


class RemoteServerError(RemoteError):
    """The remote service failed (HTTP 500, gRPC INTERNAL/UNKNOWN)."""

    default_status = 500


class ServiceUnavailableError(RemoteError):
    """The service could not be reached or is overloaded (connection refused, 502/503/504,
    gRPC UNAVAILABLE). Safe to retry for idempotent operations."""

    default_status = 503


_BY_STATUS: dict[int, type[RemoteError]] = {
    400: BadRequestError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidArgumentError,
    500: RemoteServerError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: ServiceUnavailableError,
}


def remote_error_class(status: int) -> type[RemoteError]:
    """The most specific :class:`RemoteError` class for an HTTP status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return RemoteServerError if status >= 500 else BadRequestError if status >= 400 else RemoteError


def counts_as_failure(exc: BaseException) -> bool:
    """Breaker rule: a remote 4xx means the service is up and the request was wrong."""
    return not (isinstance(exc, RemoteError) and exc.status < 500)


def is_transient(exc: BaseException) -> bool:
    """Retry rule: only an unreachable or overloaded service is worth another attempt."""
    return isinstance(exc, ServiceUnavailableError)
