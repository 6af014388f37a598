"""Data contracts on raw tables: rows that break one are quarantined with their reason, never dropped.

dlt's own contracts either stop the load (``freeze``) or drop rows silently (``discard_row``, measured
here). Headwater validates each Arrow batch against a :class:`TableContract` before dlt sees it: good rows
go on, cast to the contract's types; every rejected row goes, as JSON with its reason, source, table and
origin, to the dataset's ``_headwater_quarantine`` table, whose ``_dlt_load_id`` ties it to the load. dlt's
``freeze`` on column types stays on as the backstop for anything the contract does not describe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.resource import DltResource

QUARANTINE_TABLE = "_headwater_quarantine"
"""Per dataset: one row per rejected record."""

_TYPES: dict[str, pa.DataType] = {
    "bigint": pa.int64(),
    "double": pa.float64(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}
_PATTERNS = {
    "bigint": r"^\s*[-+]?\d+\s*$",
    "double": r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$",
    "date": r"^\d{4}-\d{2}-\d{2}$",
    "timestamp": r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$",
}
_QUARANTINE_COLUMNS: dict[str, TColumnSchema] = {
    "source": {"data_type": "text", "nullable": False},
    "table_name": {"data_type": "text", "nullable": False},
    "reason": {"data_type": "text", "nullable": False},
    "origin": {"data_type": "text"},
    "record": {"data_type": "text", "nullable": False},
    "rejected_at": {"data_type": "timestamp", "nullable": False},
}

_QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field(
            name, pa.timestamp("us") if spec["data_type"] == "timestamp" else pa.string(), spec.get("nullable", True)
        )
        for name, spec in _QUARANTINE_COLUMNS.items()
    ]
)


@dataclass(frozen=True)
class ColumnRule:
    """A column the contract promises: its type and whether it may be empty."""

    name: str
    type: str
    required: bool = False

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"column {self.name}: type {self.type!r} is not one of {', '.join(_TYPES)}")


@dataclass(frozen=True)
class TableContract:
    """What a raw table's rows must satisfy; ``severity`` is that of the table's ``quarantine`` check."""

    table: str
    columns: tuple[ColumnRule, ...]
    key: str | None = None
    """A column that identifies a row at its origin (a database id), named in the quarantine."""
    unique: tuple[str, ...] = ()
    """Columns whose values must not repeat within one batch (the merge key): dlt's merge would keep one of
    the rows and drop the others silently, so every row of a repeated key is quarantined instead."""
    severity: str = "warn"
    dlt_contract: dict[str, str] = field(default_factory=lambda: {"data_type": "freeze"})


def split(table: pa.Table, contract: TableContract) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Rows of ``table`` that keep the contract (cast to its types) and ``(row index, reason)`` for the rest.

    A required column the batch lacks fails every row of the batch (say, a renamed CSV header).
    """
    bad = pa.array([False] * table.num_rows, pa.bool_())
    masks: list[tuple[ColumnRule, pa.Array | None]] = []
    for rule in contract.columns:
        if rule.name not in table.column_names:
            if not rule.required:
                continue  # an optional column an export left out: dlt loads it as NULL
            masks.append((rule, None))
            bad = pa.array([True] * table.num_rows, pa.bool_())
            continue
        column = table.column(rule.name)
        mask = _violations(column, rule)
        masks.append((rule, mask))
        bad = pc.or_(bad, mask)
    repeated = _repeated_keys(table, contract.unique)
    if repeated:
        bad = pc.or_(bad, pa.array([i in repeated for i in range(table.num_rows)], pa.bool_()))
    bad_rows = [i for i, flag in enumerate(bad.to_pylist()) if flag]
    reasons = [(i, "; ".join(filter(None, [_reason(table, masks, i), repeated.get(i)]))) for i in bad_rows]
    good = table.filter(pc.invert(bad)) if bad_rows else table
    for rule in contract.columns:
        # text input (CSV) is parsed into the contract's type; typed input (a database) keeps its own type
        if rule.name in good.column_names and pa.types.is_string(good.column(rule.name).type):
            values = pc.utf8_trim_whitespace(good.column(rule.name))
            values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
            index = good.column_names.index(rule.name)
            field = pa.field(rule.name, _TYPES[rule.type], nullable=not rule.required)
            good = good.set_column(index, field, pc.cast(values, _TYPES[rule.type]))
    return good, reasons


def _repeated_keys(table: pa.Table, columns: tuple[str, ...]) -> dict[int, str]:
    """Row index -> reason, for every row whose ``columns`` values occur more than once in ``table``."""
    if not columns or table.num_rows < 2 or any(c not in table.column_names for c in columns):
        return {}
    keys = table.select(list(columns))
    counts = keys.group_by(list(columns)).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    if not repeated.num_rows:
        return {}
    indexed = keys.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    hits = indexed.join(repeated, keys=list(columns), join_type="inner")
    reasons = {}
    for row in hits.to_pylist():
        values = ", ".join(repr(row[c]) for c in columns)
        reasons[row["__row"]] = (
            f"{', '.join(columns)}: key ({values}) appears {row['count_all']} times in one batch; "
            "none of them was loaded (a merge would keep one at random)"
        )
    return reasons


def _violations(column: pa.ChunkedArray, rule: ColumnRule) -> pa.Array:
    values = column.combine_chunks()
    empty = pc.is_null(values)
    if pa.types.is_string(values.type):
        empty = pc.or_(empty, pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), False))
    bad = empty if rule.required else pa.array([False] * len(values), pa.bool_())
    if rule.type in _PATTERNS and pa.types.is_string(values.type):
        well_formed = pc.fill_null(pc.match_substring_regex(values, _PATTERNS[rule.type]), True)
        bad = pc.or_(bad, pc.and_(pc.invert(well_formed), pc.invert(empty)))
    return bad


def _reason(table: pa.Table, masks: list[tuple[ColumnRule, pa.Array | None]], row: int) -> str:
    reasons = []
    for rule, mask in masks:
        if mask is None:
            reasons.append(f"{rule.name}: column missing from the input")
        elif mask[row].as_py():
            value = table.column(rule.name)[row].as_py()
            if value is None or (isinstance(value, str) and not value.strip()):
                reasons.append(f"{rule.name}: required value is missing")
            else:
                reasons.append(f"{rule.name}: {value!r} is not a {rule.type}")
    return "; ".join(reasons)


def quarantine_rows(
    table: pa.Table, reasons: list[tuple[int, str]], *, source: str, contract: TableContract
) -> pa.Table:
    """The quarantine rows for the rejected rows of ``table``: reason, source, table, origin, the record as JSON."""
    indices = [i for i, _ in reasons]
    records = table.take(pa.array(indices, pa.int64())).to_pylist()
    origins = [r.pop(ORIGIN_COLUMN, None) for r in records]
    now = datetime.now(UTC).replace(tzinfo=None)
    columns = {
        "source": [source] * len(indices),
        "table_name": [contract.table] * len(indices),
        "reason": [reason for _, reason in reasons],
        "origin": [_origin(o, i, r, contract.key) for o, i, r in zip(origins, indices, records, strict=True)],
        "record": [json.dumps(r, default=str, ensure_ascii=False, sort_keys=True) for r in records],
        "rejected_at": [now] * len(indices),
    }
    return pa.table(columns, schema=_QUARANTINE_SCHEMA)


def _origin(origin: str | None, index: int, record: dict[str, Any], key: str | None) -> str:
    if key and record.get(key) is not None:
        return f"{key}={record[key]}"
    return f"{origin}, row {index + 1}" if origin else f"batch row {index + 1}"


ORIGIN_COLUMN = "_headwater_origin"
"""Optional input column saying where each row came from (a file name); dropped from loaded rows."""


def contracted(rows: DltResource, contract: TableContract, *, source: str) -> list[DltResource]:
    """Fork ``rows`` (a resource yielding Arrow batches) into the contract's table and its quarantine.

    Returns two transformers over the same extraction: ``<table>`` with the rows that keep the contract, and
    ``<table>__quarantine`` writing the rejected ones to :data:`QUARANTINE_TABLE`. Both must be selected
    together (see :func:`resource_names`).
    """

    def good_rows(batch: pa.Table) -> Iterator[pa.Table]:
        good, _ = split(batch, contract)
        if ORIGIN_COLUMN in good.column_names:
            good = good.drop_columns([ORIGIN_COLUMN])
        if good.num_rows:
            yield good

    def rejected_rows(batch: pa.Table) -> Iterator[pa.Table]:
        _, reasons = split(batch, contract)
        if reasons:
            yield quarantine_rows(batch, reasons, source=source, contract=contract)

    table = rows | dlt.transformer(good_rows, name=contract.table)
    quarantine = rows | dlt.transformer(
        rejected_rows,
        name=f"{contract.table}__quarantine",
        table_name=QUARANTINE_TABLE,
        write_disposition="append",
        columns=_QUARANTINE_COLUMNS,
    )
    return [table, quarantine]


def resource_names(tables: Iterable[str], available: Iterable[str]) -> list[str]:
    """The resources that load ``tables``: each table's own and, when it has a contract, its quarantine."""
    known = set(available)
    return [name for t in tables for name in (t, f"{t}__quarantine") if name in known]


def contract_hints(contract: TableContract, *, declare_types: bool) -> dict[str, Any]:
    """dlt hints that go with a contract: its schema contract (the backstop) and, for text inputs whose types
    only the contract knows (``declare_types``), the contracted columns' types."""
    hints: dict[str, Any] = {"schema_contract": dict(contract.dlt_contract)}
    if declare_types:
        hints["columns"] = {rule.name: {"data_type": rule.type} for rule in contract.columns}
    return hints
