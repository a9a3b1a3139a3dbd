"""Telling a database that is unreachable from a statement that failed on its own.

A handler that raises is retried a bounded number of times and then dead-lettered. A
database that is down, restarting or dropped the connection is no fault of the message:
the delivery pipeline must wait and redeliver, never dead-letter for it::

    try:
        await session.commit()
    except Exception as exc:
        if is_infrastructure_error(exc):
            await delivery.nack(delay=1.0)     # the message is fine; the database is not
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc


def is_infrastructure_error(error: BaseException, *, sockets: bool = True) -> bool:
    """Whether ``error`` (or what caused it) says the database could not be reached.

    True for lost or refused connections and operational failures (SQLAlchemy's
    ``OperationalError``, ``InterfaceError``, ``DisconnectionError``, any DBAPI error
    that invalidated its connection) and for a refused or reset connection raised by a
    driver before SQLAlchemy could wrap it. A constraint violation, a syntax error or a
    handler's own exception is not, nor a bare timeout (a handler's call to some other
    system may time out; that is its failure to retry and, in the end, dead-letter).
    Explicit causes (``raise ... from``) are followed; implicit contexts are not.

    ``sockets=False`` counts SQLAlchemy's errors only: for an error a handler raised,
    whose own ``ConnectionError`` may come from a call to some other system.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # bounded by the chain
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(
            current, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError
        ):
            return True
        if sockets and isinstance(current, ConnectionError):
            return True
        current = current.__cause__
    return False


__all__ = ["is_infrastructure_error"]
