"""How a dbt invocation failed: not at all (a bad project, profile or arguments) or on a lost warehouse connection
(transient: the engine retries it within the run's budget)."""

from __future__ import annotations

from assets.errors import UserError


class DbtInvocationError(UserError, RuntimeError):
    """dbt could not run at all (bad project, profile or arguments), as opposed to a node failing."""


class WarehouseConnectionError(DbtInvocationError):
    """dbt could not run because the warehouse connection failed (refused, reset, closed): transient, worth retrying.

    Raised for dbt's ``FailedToConnectError`` and a driver's ``OperationalError``/``InterfaceError`` whose message
    says the connection failed (a wrong password is an OperationalError too, and is not transient). ``reason`` is
    that line.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


_LOST = (
    "connection to server",
    "server closed the connection",
    "connection refused",
    "could not connect",
    "terminating connection",
    "connection already closed",
    "connection reset",
    "ssl connection has been closed",
    "no connection to the server",
)


def lost_connection(message: str) -> str | None:
    """The line of a dbt/driver error ``message`` that says the warehouse connection failed, else None.

    dbt reports a failed node by message only (run_results hold no exception), so a node's lost connection can only
    be read from its text; an invocation's is typed (:class:`WarehouseConnectionError`)."""
    for line in message.splitlines():
        if any(marker in line.lower() for marker in _LOST):
            return line.strip()
    return None


def connection_failure(exc: BaseException) -> str | None:
    """The reason, when ``exc`` (or what it wraps) is a connection failure of dbt's adapter or the driver."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names = {c.__name__ for c in type(current).__mro__}
        if names & {"FailedToConnectError", "OperationalError", "InterfaceError"}:
            return lost_connection(str(current)) or lost_connection(str(exc))
        current = current.__cause__ or current.__context__
    return None


def duckdb_busy(exception: BaseException | None) -> bool:
    """dbt-duckdb could not open the file: another process holds DuckDB's lock on it."""
    return exception is not None and "could not set lock on file" in str(exception).lower()


def busy_line(exception: BaseException) -> str:
    """The line of a busy-file error that says who holds the lock (else its first line)."""
    lines = [line.strip() for line in str(exception).splitlines() if line.strip()]
    return next((line for line in lines if "lock" in line.lower()), lines[0] if lines else type(exception).__name__)
