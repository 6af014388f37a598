"""Table diff of one model between two targets or schemas: schema differences, then rows by primary key.

Each side is read (read-only) from its warehouse into Arrow and copied into a scratch in-memory DuckDB, where
SQLMesh's ``TableDiff`` joins them by key. So two different warehouses can be compared, and neither
warehouse gets a temporary table: SQLMesh writes only into the scratch database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from assets.dbt_manifest import DbtTranslator
from orchestration.warehouse.targets import Target

_INTEGER = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT")
_NUMERIC = ("DECIMAL", "FLOAT", "DOUBLE", "NUMERIC", "REAL")


class DiffError(ValueError):
    """A side cannot be read or the key is unknown; the message names the table and the fix."""


@dataclass(frozen=True)
class Side:
    """One side of a diff: a target and the schema the table is in there."""

    label: str
    target: Target
    schema: str
    table: str

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass
class TableDiffResult:
    source: str
    target: str
    key: tuple[str, ...]
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    types_changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    column_mismatches: dict[str, int] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (
            self.columns_added
            or self.columns_removed
            or self.types_changed
            or self.rows.get("only_in_source")
            or self.rows.get("only_in_target")
            or self.rows.get("changed")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "key": list(self.key),
            "schema": {
                "added": self.columns_added,
                "removed": self.columns_removed,
                "type_changed": {c: {"source": a, "target": b} for c, (a, b) in self.types_changed.items()},
            },
            "rows": self.rows,
            "column_mismatches": self.column_mismatches,
            "sample": self.sample,
            "identical": self.identical,
        }


def read_side(side: Side) -> tuple[pa.Table, dict[str, str]]:
    """The table's rows as Arrow and its column types as the warehouse names them.

    Raises:
        DiffError: the relation does not exist or the warehouse cannot be reached.
    """
    if side.target.type == "duckdb":
        import duckdb

        path = side.target.config["path"]
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                types = dict(
                    con.execute(
                        "select column_name, data_type from information_schema.columns "
                        "where table_schema = ? and table_name = ? order by ordinal_position",
                        [side.schema, side.table],
                    ).fetchall()
                )
                if not types:
                    raise DiffError(_missing(side))
                table = con.execute(f'select * from "{side.schema}"."{side.table}"').fetch_arrow_table()  # noqa: S608
        except duckdb.Error as exc:
            raise DiffError(f"{side.label}: cannot read {path}: {exc}") from None
        return table, types
    import sqlalchemy as sa

    engine = side.target.engine()
    try:
        with engine.connect() as con:
            columns = sa.inspect(con).get_columns(side.table, schema=side.schema)
            if not columns:
                raise DiffError(_missing(side))
            types = {c["name"]: str(c["type"]) for c in columns}
            quoted = sa.sql.quoted_name
            statement = sa.select(sa.text("*")).select_from(sa.table(quoted(side.table, True), schema=side.schema))
            result = con.execute(statement)
            rows = [dict(zip(result.keys(), row, strict=True)) for row in result]
    except sa.exc.NoSuchTableError:
        raise DiffError(_missing(side)) from None
    except sa.exc.OperationalError as exc:
        raise DiffError(f"{side.label}: the {side.target.name} warehouse is unreachable: {exc.orig}") from None
    finally:
        engine.dispose()
    return pa.Table.from_pylist(rows) if rows else pa.table({c: pa.array([], pa.string()) for c in types}), types


def _missing(side: Side) -> str:
    return (
        f"{side.label}: no table {side.relation} on target {side.target.name}; "
        f"materialize it there first (headwater materialize --target {side.target.name})"
    )


def _comparable(types: dict[str, str]) -> dict[str, str]:
    """A type per column that the same values get on any warehouse (numbers as DOUBLE, times as TIMESTAMP)."""
    result = {}
    for column, duckdb_type in types.items():
        upper = duckdb_type.upper()
        if upper.startswith(_INTEGER):
            result[column] = "BIGINT"
        elif upper.startswith(_NUMERIC):
            result[column] = "DOUBLE"
        elif upper.startswith("TIMESTAMP"):
            result[column] = "TIMESTAMP"
        elif upper in ("DATE", "BOOLEAN"):
            result[column] = upper
        else:
            result[column] = "VARCHAR"
    return result


def diff_tables(
    source: Side, target: Side, key: tuple[str, ...], *, sample: int = 10, skip_columns: tuple[str, ...] = ()
) -> TableDiffResult:
    """Schema and row differences between ``source`` and ``target``, rows matched on ``key``.

    ``skip_columns`` stay in the schema comparison but out of the row comparison (load ids, timestamps).

    Raises:
        DiffError: a side cannot be read, or ``key`` is not a column of both.
    """
    import duckdb

    from orchestration.analysis._compat import row_diff as sqlmesh_row_diff

    s_rows, s_types = read_side(source)
    t_rows, t_types = read_side(target)
    result = TableDiffResult(source.label, target.label, key)
    result.columns_removed = [c for c in s_types if c not in t_types]
    result.columns_added = [c for c in t_types if c not in s_types]
    shared = [c for c in s_types if c in t_types]
    result.types_changed = {
        c: (s_types[c], t_types[c]) for c in shared if _normal_type(s_types[c]) != _normal_type(t_types[c])
    }
    missing = [k for k in key if k not in shared]
    if missing:
        raise DiffError(
            f"key column(s) {', '.join(missing)} not in both {source.label} and {target.label}; "
            f"shared columns: {', '.join(shared)}; name the key with --key"
        )

    scratch = duckdb.connect(":memory:")
    try:
        for name, rows in (("source", s_rows), ("target", t_rows)):
            scratch.register(f"{name}_arrow", _naive_utc(rows))
            native = {row[0]: row[1] for row in scratch.execute(f"describe {name}_arrow").fetchall()}
            casts = ", ".join(f'cast("{c}" as {t}) as "{c}"' for c, t in _comparable(native).items())
            scratch.execute(f"create table main.{name} as select {casts} from {name}_arrow")  # noqa: S608
            scratch.unregister(f"{name}_arrow")
        row_diff = sqlmesh_row_diff(
            scratch, "main.source", "main.target", on=list(key), skip_columns=list(skip_columns), limit=sample
        )
    finally:
        scratch.close()
    changed = row_diff.partial_match_count
    result.rows = {
        "source": row_diff.source_count,
        "target": row_diff.target_count,
        "matched": row_diff.join_count,
        "changed": changed,
        "only_in_source": row_diff.s_only_count,
        "only_in_target": row_diff.t_only_count,
    }
    stats = row_diff.column_stats
    if not stats.empty and "pct_match" in stats.columns:
        for column, row in stats.iterrows():
            mismatched = round((100 - float(row["pct_match"])) / 100 * row_diff.join_count)
            if mismatched:
                result.column_mismatches[str(column)] = mismatched
    result.sample = _records(row_diff.joined_sample, sample)
    return result


_SYNONYMS = {
    "CHARACTER VARYING": "VARCHAR",
    "TEXT": "VARCHAR",
    "STRING": "VARCHAR",
    "NUMERIC": "DECIMAL",
    "NUMBER": "DECIMAL",
    "INT": "INTEGER",
    "INT4": "INTEGER",
    "INT8": "BIGINT",
    "DOUBLE PRECISION": "DOUBLE",
    "FLOAT8": "DOUBLE",
    "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP",
    "TIMESTAMP_NTZ": "TIMESTAMP",
    "BOOL": "BOOLEAN",
}


def _naive_utc(table: pa.Table) -> pa.Table:
    """Time-zone-aware timestamps as naive UTC (DuckDB without its ICU extension cannot convert zones)."""
    for index, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            table = table.set_column(index, column.name, table.column(index).cast(pa.timestamp(column.type.unit)))
    return table


def _normal_type(name: str) -> str:
    """One name per type across warehouses (``character varying`` = ``VARCHAR``); differences left are real."""
    base = name.upper().split("(")[0].strip()
    return _SYNONYMS.get(base, base)


def _records(frame: Any, limit: int) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    records = frame.head(limit).to_dict(orient="records")
    return [
        {str(k): (None if v != v else v if isinstance(v, int | float | str | bool) else str(v)) for k, v in r.items()}
        for r in records
    ]


def model_relation(manifest: dict[str, Any], model: str, translator: DbtTranslator) -> tuple[str, str, str]:
    """``(unique id, schema, table)`` of a model, seed or snapshot named by asset key or by dbt name.

    Raises:
        DiffError: nothing or more than one node answers to ``model``.
    """
    from orchestration.analysis.lineage import key_map

    keys = key_map(manifest, translator)
    nodes = manifest.get("nodes") or {}
    found = [
        uid
        for uid, key in keys.items()
        if uid in nodes and (key == model or nodes[uid].get("name") == model or nodes[uid].get("alias") == model)
    ]
    if len(found) != 1:
        known = ", ".join(sorted(keys[u] for u in keys if u in nodes))
        problem = "no model" if not found else "more than one node"
        raise DiffError(f"{problem} named {model!r}; models: {known}")
    node = nodes[found[0]]  # the relation is the node's, whatever key a custom translator gives it
    return found[0], str(node.get("schema") or ""), str(node.get("alias") or node.get("name") or "")


def primary_key(manifest: dict[str, Any], unique_id: str) -> tuple[str, ...]:
    """The columns with a ``unique`` test on the model (or a combination test's columns), else ()."""
    for node in (manifest.get("nodes") or {}).values():
        if node.get("resource_type") != "test" or unique_id not in ((node.get("depends_on") or {}).get("nodes") or []):
            continue
        metadata = node.get("test_metadata") or {}
        kwargs = metadata.get("kwargs") or {}
        if metadata.get("name") == "unique" and node.get("column_name"):
            return (node["column_name"],)
        if metadata.get("name") == "unique_combination_of_columns":
            return tuple(kwargs.get("combination_of_columns") or ())
    return ()
