"""Column-level lineage from compiled SQL with sqlglot: relations and queries in, a column graph out.

Pure: the caller hands over every relation (its warehouse name, its known columns, and for models the
compiled SELECT); nothing here reads files or connects anywhere. Models are analysed in dependency order so
that ``select *`` over an upstream model expands to the columns that model was found to produce.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import Node, lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from assets.dag import DAG, CycleError


class LineageError(ValueError):
    """A column address that names no known column; the message says which columns exist."""


@dataclass(frozen=True, order=True)
class ColumnRef:
    """One column of one asset: ``marts.orders`` + ``order_amount``."""

    key: str
    column: str

    def __str__(self) -> str:
        return f"{self.key}.{self.column}"


@dataclass(frozen=True)
class Relation:
    """A table or view as lineage sees it.

    ``relation`` is its warehouse name as SQL (``"headwater"."marts"."orders"``). ``columns`` are known
    columns (sources and seeds); a model's come from its ``sql``, plus ``added_columns`` its materialization
    appends (a snapshot's ``dbt_valid_from``, ...).
    """

    key: str
    relation: str
    columns: tuple[str, ...] = ()
    sql: str | None = None
    added_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnOrigin:
    """How one column is computed: its expression and the upstream columns it reads."""

    expression: str
    upstream: tuple[ColumnRef, ...]


@dataclass
class ColumnLineage:
    """Every analysed column with its direct upstream columns; walk it with :meth:`upstream`/:meth:`downstream`."""

    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    origins: dict[ColumnRef, ColumnOrigin] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    _children: dict[ColumnRef, set[ColumnRef]] = field(default_factory=dict, repr=False)

    def add(self, ref: ColumnRef, origin: ColumnOrigin) -> None:
        self.origins[ref] = origin
        for parent in origin.upstream:
            self._children.setdefault(parent, set()).add(ref)

    def resolve(self, address: str) -> ColumnRef:
        """``marts.orders.order_amount`` -> ColumnRef; the asset key is the longest known prefix.

        Raises:
            LineageError: no such asset or column; the message lists what exists.
        """
        parts = address.strip().split(".")
        for cut in range(len(parts) - 1, 0, -1):
            key, column = ".".join(parts[:cut]), ".".join(parts[cut:])
            if key in self.columns:
                known = self.columns[key]
                match = next((c for c in known if c.lower() == column.lower()), None)
                if match is None:
                    raise LineageError(f"{key} has no column {column!r}; its columns: {', '.join(known)}")
                return ColumnRef(key, match)
        if len(parts) < 2:
            raise LineageError(
                f"{address!r} is not a column address: write <asset key>.<column>, e.g. marts.orders.order_id"
            )
        key = ".".join(parts[:-1])
        hint = f" ({self.problems[key]})" if key in self.problems else ""
        raise LineageError(f"no lineage for asset {key!r}{hint}; known assets: {', '.join(sorted(self.columns))}")

    def parents(self, ref: ColumnRef) -> tuple[ColumnRef, ...]:
        origin = self.origins.get(ref)
        return origin.upstream if origin else ()

    def children(self, ref: ColumnRef) -> tuple[ColumnRef, ...]:
        return tuple(sorted(self._children.get(ref, ())))

    def upstream(self, ref: ColumnRef) -> dict[str, Any]:
        """The tree of columns ``ref`` is computed from, down to columns with no upstream (raw tables)."""
        return self._tree(ref, self.parents, "upstream", ())

    def downstream(self, ref: ColumnRef) -> dict[str, Any]:
        """The tree of columns computed from ``ref``."""
        return self._tree(ref, self.children, "downstream", ())

    def sources(self, ref: ColumnRef) -> list[ColumnRef]:
        """The root columns (no upstream of their own) that ``ref`` reads, sorted."""
        roots: set[ColumnRef] = set()
        stack, seen = [ref], {ref}
        while stack:
            current = stack.pop()
            parents = self.parents(current)
            if not parents and current != ref:
                roots.add(current)
            for parent in parents:
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return sorted(roots)

    def _tree(self, ref: ColumnRef, step: Any, direction: str, path: tuple[ColumnRef, ...]) -> dict[str, Any]:
        origin = self.origins.get(ref)
        node: dict[str, Any] = {"column": str(ref), "asset": ref.key, "name": ref.column}
        if origin is not None:
            node["expression"] = origin.expression
        if ref in path:  # a self-referencing incremental model reads its own columns
            node[direction] = []
            return node
        node[direction] = [self._tree(next_ref, step, direction, (*path, ref)) for next_ref in step(ref)]
        return node


def _table_id(table: exp.Table) -> tuple[str, ...]:
    return tuple(part.lower() for part in (table.catalog, table.db, table.name) if part)


def build_column_lineage(relations: Iterable[Relation], dialect: str) -> ColumnLineage:
    """Analyse every relation with ``sql`` in dependency order.

    A model whose SQL sqlglot cannot parse or qualify is recorded in ``problems`` (with the reason) and
    its columns are unknown downstream; lineage of everything else still resolves.
    """
    relations = list(relations)
    by_table: dict[tuple[str, ...], Relation] = {}
    for relation in relations:
        by_table[_table_id(exp.to_table(relation.relation, dialect=dialect))] = relation
    schema: dict[str, Any] = {}
    result = ColumnLineage()

    def register(relation: Relation, columns: Iterable[str]) -> None:
        columns = tuple(dict.fromkeys((*columns, *relation.added_columns)))
        result.columns[relation.key] = columns
        table = exp.to_table(relation.relation, dialect=dialect)
        level = schema
        for part in [p for p in (table.catalog, table.db) if p]:
            level = level.setdefault(part, {})
        level[table.name] = {column: "UNKNOWN" for column in columns}

    parsed: dict[str, exp.Expr] = {}
    edges: dict[str, set[str]] = {}
    models = {r.key: r for r in relations if r.sql}
    for relation in relations:
        if not relation.sql:
            register(relation, relation.columns)
            continue
        try:
            parsed[relation.key] = sqlglot.parse_one(relation.sql, dialect=dialect)
        except SqlglotError as exc:
            result.problems[relation.key] = f"sqlglot cannot parse its compiled SQL: {_first_line(exc)}"
            continue
        reads = {
            by_table[t_id].key for t in parsed[relation.key].find_all(exp.Table) if (t_id := _table_id(t)) in by_table
        }
        edges[relation.key] = {key for key in reads if key in models and key != relation.key}
    try:
        order = DAG(edges).toposorted()
    except CycleError as exc:
        result.problems.update({key: str(exc) for key in edges})
        return result

    for key in order:
        relation = models[key]
        try:
            qualified = qualify(
                parsed[key],
                schema=MappingSchema(schema, dialect=dialect, normalize=False),
                dialect=dialect,
                validate_qualify_columns=False,
                identify=False,
            )
            outputs = list(qualified.named_selects) if isinstance(qualified, exp.Query) else []
            nodes = lineage(None, qualified, dialect=dialect, copy=False) if outputs else {}
        except (SqlglotError, KeyError, ValueError) as exc:
            result.problems[key] = f"sqlglot cannot resolve its columns: {_first_line(exc)}"
            continue
        register(relation, outputs)
        for column in outputs:
            node = nodes.get(column)
            if node is None:
                continue
            ref = ColumnRef(key, column)
            result.add(ref, ColumnOrigin(_expression(node, dialect), _leaf_columns(node, by_table, ref)))
    return result


def _leaf_columns(node: Node, by_table: Mapping[tuple[str, ...], Relation], ref: ColumnRef) -> tuple[ColumnRef, ...]:
    found: set[ColumnRef] = set()
    for leaf in node.walk():
        if leaf.downstream or not isinstance(leaf.source, exp.Table):
            continue
        relation = by_table.get(_table_id(leaf.source))
        key = relation.key if relation else ".".join(p for p in (leaf.source.db, leaf.source.name) if p)
        column = leaf.expression.name if isinstance(leaf.expression, exp.Column) else leaf.name.split(".")[-1]
        candidate = ColumnRef(key, column.strip('"'))
        if candidate != ref:
            found.add(candidate)
    return tuple(sorted(found))


def _expression(node: Node, dialect: str) -> str:
    """The column's computation: through CTEs that only pass it on (``renamed.amount``) to where it is made."""
    while True:
        expression = node.expression.this if isinstance(node.expression, exp.Alias) else node.expression
        inner = node.downstream[0] if len(node.downstream) == 1 else None
        if not isinstance(expression, exp.Column) or inner is None or isinstance(inner.source, exp.Table):
            return expression.sql(dialect=dialect)
        node = inner


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


SNAPSHOT_COLUMNS = ("dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to")
"""Columns dbt adds to every snapshot table."""

DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "snowflake": "snowflake", "redshift": "redshift"}


def dialect_of(manifest: Mapping[str, Any]) -> str:
    """sqlglot's dialect for the manifest's adapter (``duckdb``, ``postgres``, ``snowflake``, ...)."""
    adapter = str((manifest.get("metadata") or {}).get("adapter_type") or "")
    return DIALECTS.get(adapter, adapter or "duckdb")


def relations_from_manifest(
    manifest: Mapping[str, Any],
    key_of: Mapping[str, str],
    seed_columns: Mapping[str, Iterable[str]] | None = None,
    source_columns: Mapping[str, Iterable[str]] | None = None,
) -> list[Relation]:
    """The relations of a *compiled* manifest (``dbt compile`` or ``docs generate``): sources, seeds, models, snapshots.

    ``key_of`` maps unique ids to asset keys (the graph's). Seeds' columns come from ``seed_columns`` (their
    CSV headers) or their documented columns; sources' from their (generated) definitions, else from
    ``source_columns`` (what the warehouse or dbt's catalog says a source that declares none has).
    """
    seed_columns, source_columns = seed_columns or {}, source_columns or {}
    relations = []
    for unique_id, source in sorted((manifest.get("sources") or {}).items()):
        if unique_id in key_of and source.get("relation_name"):
            columns = tuple(source.get("columns") or ()) or tuple(source_columns.get(unique_id) or ())
            relations.append(Relation(key_of[unique_id], source["relation_name"], columns))
    for unique_id, node in sorted((manifest.get("nodes") or {}).items()):
        kind = node.get("resource_type")
        if unique_id not in key_of or not node.get("relation_name") or kind not in ("seed", "model", "snapshot"):
            continue
        key, relation_name = key_of[unique_id], node["relation_name"]
        if kind == "seed":
            columns = tuple(seed_columns.get(unique_id) or node.get("columns") or ())
            relations.append(Relation(key, relation_name, columns))
        elif node.get("language", "sql") == "sql" and node.get("compiled_code"):
            added = SNAPSHOT_COLUMNS if kind == "snapshot" else ()
            relations.append(Relation(key, relation_name, sql=node["compiled_code"], added_columns=added))
    return relations
