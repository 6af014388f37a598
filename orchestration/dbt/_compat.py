"""dbt-duckdb internals Headwater relies on, in one place; ``tests/test_compat.py`` fails when dbt-duckdb moves them.

dbt-duckdb keeps the DuckDB database open in the process after an invocation (its connection manager's class-level
``_ENV``, guarded by ``_LOCK``); checks that connect between dbt invocations with another configuration need it
closed, and dbt-duckdb reopens it on its next invocation. It has no public call for that.
"""

from __future__ import annotations


def close_duckdb_environment() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process (a no-op when none is open)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if env is not None:
        env.close()
