"""Data versions of relations: what the warehouse itself can say about a table's rows, read as cheaply as it allows.

A state-aware run compares a relation's version now with the one recorded when it was last materialized (rows
deleted by hand make the asset stale), and a source's version now with the one its readers were built from (a source
with no ``loaded_at_field`` whose rows did not move keeps its readers fresh). Per warehouse:

- **PostgreSQL**: the statistics counters (``pg_stat_user_tables``: rows inserted, updated, deleted) with the
  table's oid and file node (a ``truncate`` or a rebuild makes a new file). Every change of the rows moves them:
  *strong*. Caveat: a session reports its counts when it goes idle (at most once a second, within ~10 s) or ends,
  so a change made by a session still open may show a few seconds late. With ``track_counts`` off there is nothing.
- **Snowflake**: ``information_schema.tables``' ``LAST_ALTERED`` (moved by every DML and DDL) with ``ROW_COUNT``
  and ``BYTES``: strong. (The Snowflake emulator, fakesnow, reports a constant ``LAST_ALTERED``: only its row
  count moves there.)
- **DuckDB**: no change metadata; the row count (``count(*)`` of a table reads its row groups' counts, not its
  rows): *weak*, it sees rows added or deleted, not rows updated in place, so it never proves a source unchanged.

Views have no rows of their own and get no version; what they read is versioned instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestration.warehouse.targets import Target


@dataclass(frozen=True)
class RelationVersion:
    """A relation's data version; ``strong``: any change of its rows moves it (change counters, ``LAST_ALTERED``),
    else it is a row count, which moves only when rows are added or deleted."""

    value: str
    strong: bool
    rows: int | None = None


NO_CHANGE_METADATA = {
    "duckdb": "DuckDB keeps no change counters (only a row count, which an update in place does not move)",
}
"""Why a warehouse cannot prove a relation unchanged (said by ``status`` and the run)."""


def relation_versions(target: Target, relations: Iterable[str], conn: Any = None) -> dict[str, RelationVersion]:
    """The version of each ``schema.name`` of ``relations`` (matched in lower case) that is a base table in the
    warehouse, keyed by the lower-case name; relations the warehouse cannot describe are left out.

    ``conn`` is an open SQLAlchemy connection on the target (one is opened otherwise).

    Raises:
        sqlalchemy.exc.DBAPIError: the warehouse did not answer.
    """
    wanted = {r.lower() for r in relations if r}
    if not wanted:
        return {}
    if conn is None:
        engine = target.engine()
        try:
            with engine.connect() as opened:
                return relation_versions(target, wanted, opened)
        finally:
            engine.dispose()
    reader = _READERS.get(target.type, _counted)
    return reader(conn, wanted)


def _postgres(conn: Any, wanted: set[str]) -> dict[str, RelationVersion]:
    import sqlalchemy as sa

    if str(conn.execute(sa.text("select current_setting('track_counts')")).scalar()).lower() != "on":
        return _counted(conn, wanted)  # no statistics: only counts, which prove nothing of a source
    conn.execute(sa.text("select pg_stat_clear_snapshot()"))  # this transaction's cached statistics, if any
    rows = conn.execute(
        sa.text(
            "select lower(n.nspname || '.' || c.relname), c.oid, c.relfilenode, coalesce(s.n_tup_ins, 0), "
            "coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0), s.n_live_tup "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "left join pg_stat_user_tables s on s.relid = c.oid "
            "where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema')"
        )
    ).fetchall()
    found = {}
    for name, oid, node, inserted, updated, deleted, live in rows:
        if name in wanted:
            value = f"pg:{oid}/{node}:+{inserted}~{updated}-{deleted}"
            found[name] = RelationVersion(value, True, None if live is None else int(live))
    return found


def _snowflake(conn: Any, wanted: set[str]) -> dict[str, RelationVersion]:
    import sqlalchemy as sa

    rows = conn.execute(
        sa.text(
            "select table_schema, table_name, row_count, bytes, last_altered from information_schema.tables "
            "where table_type = 'BASE TABLE'"
        )
    ).fetchall()
    found = {}
    for schema, table, count, size, altered in rows:
        name = f"{schema}.{table}".lower()
        if name in wanted:
            found[name] = RelationVersion(f"sf:{altered}:{count}:{size}", True, None if count is None else int(count))
    return found


def _counted(conn: Any, wanted: set[str]) -> dict[str, RelationVersion]:
    """Row counts of the base tables among ``wanted`` (DuckDB: cheap, it reads row-group counts), 200 tables a query:
    ``status`` asks for every table of the project."""
    import sqlalchemy as sa

    tables = conn.execute(
        sa.text("select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'")
    ).fetchall()
    names = {f"{schema}.{table}".lower(): (schema, table) for schema, table in tables}
    chosen = sorted(n for n in names if n in wanted)
    found = {}
    for start in range(0, len(chosen), 200):
        parts = []
        for index, name in enumerate(chosen[start : start + 200]):
            schema, table = (part.replace('"', '""') for part in names[name])
            parts.append(f'select {index} as i, count(*) as n from "{schema}"."{table}"')  # noqa: S608
        for index, count in conn.execute(sa.text(" union all ".join(parts))).fetchall():
            name = chosen[start + int(index)]
            found[name] = RelationVersion(f"rows:{int(count)}", False, int(count))
    return found


_READERS = {"postgres": _postgres, "snowflake": _snowflake, "duckdb": _counted}


def why_unproven(target: Target, relation: str, versions: Mapping[str, RelationVersion]) -> str:
    """Why the warehouse cannot prove ``relation`` unchanged: it is no base table (a view), or the warehouse keeps no
    change metadata (DuckDB)."""
    found = versions.get(relation.lower())
    if found is None:
        return "it is no table the warehouse keeps change metadata for (a view, or a table it cannot describe)"
    return NO_CHANGE_METADATA.get(target.type, "the warehouse keeps no change metadata for it")
