"""Great Expectations internals Headwater relies on, in one place; ``tests/test_compat.py`` and
``tests/quality/test_gx_runner.py`` fail when GX moves them (GX is pinned exactly: ``GX_VERSION``).

GX 1.x does not support DuckDB through SQLAlchemy: with duckdb_engine every expectation fails with "list index out
of range", because GX hands each metric its own pooled connection. GX already keeps one persisted connection for
SQLite and SQL Server (its private ``_PERSISTED_CONNECTION_DIALECTS``); :func:`enable_duckdb` adds DuckDB to that
tuple. Closing that connection again (DuckDB allows one writer; dbt needs the file next) means reaching into the
data source's ``_execution_engine._connection``.
"""

from __future__ import annotations

from typing import Any

GX_VERSION = "1.24.1"
"""The exact GX version the DuckDB patch was verified on (pyproject pins the same)."""


class GxVersionError(RuntimeError):
    """The installed GX is not the version the DuckDB patch was verified on."""


class _Dialect(str):
    """A dialect name GX's persisted-connection check accepts: compares as a string, has ``.value``."""

    @property
    def value(self) -> str:
        return str(self)


def enable_duckdb() -> None:
    """Let GX's SQLAlchemy engine run on DuckDB by keeping one persisted connection (idempotent).

    Raises:
        GxVersionError: GX is not ``GX_VERSION``; re-verify the patch before changing the pin.
    """
    import great_expectations as gx
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    if gx.__version__ != GX_VERSION:
        raise GxVersionError(
            f"great_expectations {gx.__version__} is installed, but Headwater's DuckDB support was verified on "
            f"{GX_VERSION}; pin great-expectations=={GX_VERSION} or re-run tests/quality/test_gx_runner.py "
            "and update quality/_compat.GX_VERSION"
        )
    dialects = engine._PERSISTED_CONNECTION_DIALECTS
    if not any(d == "duckdb" for d in dialects):
        engine._PERSISTED_CONNECTION_DIALECTS = (*dialects, _Dialect("duckdb"))  # type: ignore[assignment]


def close_persisted_connection(datasource: Any) -> None:
    """Close a GX SQL data source's persisted connection and dispose of its engines."""
    execution_engine = getattr(datasource, "_execution_engine", None)
    if execution_engine is not None:
        if execution_engine._connection is not None:
            execution_engine._connection.close()
            execution_engine._connection = None
        execution_engine.engine.dispose()
    if getattr(datasource, "_engine", None) is not None:
        datasource._engine.dispose()
