"""Which dbt invocation failures are a lost warehouse connection (retried, then every unbuilt asset fails with the
reason) and which are not (reported as they are): decided by the exception's type, then its message."""

from __future__ import annotations

import psycopg2
import pytest
from dbt.adapters.exceptions.connection import FailedToConnectError

from orchestration.dbt.errors import connection_failure

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def _wrapped(inner: BaseException) -> RuntimeError:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("Database Error in model orders") from exc
    except RuntimeError as outer:
        return outer


def test_a_refused_or_dropped_connection_is_transient_with_its_line_as_the_reason() -> None:
    refused = FailedToConnectError('connection to server at "127.0.0.1", port 6543 failed: Connection refused')
    assert connection_failure(refused) == 'connection to server at "127.0.0.1", port 6543 failed: Connection refused'
    dropped = _wrapped(psycopg2.OperationalError("server closed the connection unexpectedly\n\tThis probably means"))
    assert connection_failure(dropped) == "server closed the connection unexpectedly"


def test_a_wrong_password_or_a_bad_project_is_not_transient() -> None:
    assert connection_failure(psycopg2.OperationalError('password authentication failed for user "x"')) is None
    assert connection_failure(ValueError("could not connect the dots")) is None, "the type decides first"
