"""SQLMesh internals Headwater relies on, in one place; ``tests/test_compat.py`` fails when SQLMesh moves them
(``sqlmesh`` is pinned to the version those tests pass on).

Change plans categorise a modified dbt model with SQLMesh's categorizer, which works on snapshots
(``Snapshot.from_node`` over a model made with ``create_sql_model``, then ``categorize_change``); table diff uses
``TableDiff`` over an engine adapter on a scratch DuckDB. None of these is SQLMesh's documented Python API (that is
its ``Context``, which needs a SQLMesh project and state).
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp


def only_projections_added(key: str, new: exp.Query, old: exp.Query, dialect: str) -> bool:
    """Whether SQLMesh categorises ``old`` -> ``new`` as non-breaking (only projections added)."""
    from sqlmesh.core.config import CategorizerConfig
    from sqlmesh.core.model import create_sql_model
    from sqlmesh.core.snapshot import Snapshot, SnapshotChangeCategory
    from sqlmesh.core.snapshot.categorizer import categorize_change

    def snapshot(query: exp.Query) -> Snapshot:
        return Snapshot.from_node(create_sql_model(key, query.copy(), dialect=dialect), nodes={})

    return categorize_change(snapshot(new), snapshot(old), CategorizerConfig()) == SnapshotChangeCategory.NON_BREAKING


def row_diff(connection: Any, source: str, target: str, *, on: list[str], skip_columns: list[str], limit: int) -> Any:
    """SQLMesh's row diff of two tables on a DuckDB ``connection`` (``TableDiff.row_diff``, temp tables in
    ``scratch``)."""
    from sqlmesh.core.engine_adapter import create_engine_adapter
    from sqlmesh.core.table_diff import TableDiff

    adapter = create_engine_adapter(lambda: connection, "duckdb")
    differ = TableDiff(adapter, source, target, on=on, skip_columns=skip_columns, limit=limit)
    return differ.row_diff(temp_schema="scratch")
