"""SQLAlchemy internals Headwater relies on, in one place; ``tests/test_compat.py`` fails when SQLAlchemy moves them.

``dbapi_rows`` reads a result's rows straight from its DBAPI cursor (``CursorResult.cursor``, an attribute the docs
do not list): the reconcile check reads every key and cursor of a table, and SQLAlchemy's row objects cost 2 s of
1.9M rows; the statement itself still runs through SQLAlchemy, so its errors stay ``DBAPIError``.

A signal is never raised inside a function that releases a connection (``orchestration.core.interrupts``): besides the
public ``close``/``dispose``, SQLAlchemy's pool releases through these private functions, found by name on the stack.
"""

from __future__ import annotations

from typing import Any

SQLALCHEMY_RELEASE_FUNCTIONS = ("_close_connection", "_finalize_fairy")
"""``sqlalchemy.pool.base.Pool._close_connection`` and ``sqlalchemy.pool.base._finalize_fairy``."""


def dbapi_rows(result: Any) -> list[Any]:
    """Every remaining row of a SQLAlchemy ``CursorResult``, as the driver's tuples."""
    return result.cursor.fetchall()
