"""The shop source: the operational SQLite database, read with dlt's ``sql_database`` source.

Every table is incremental on ``updated_at`` and merged on its primary key, so a rerun with no new
data loads nothing and an updated order replaces its earlier version instead of duplicating it.
"""

from __future__ import annotations

from pathlib import Path

import dlt
from dlt.sources.sql_database import sql_database

from ingestion.contracts import ColumnRule, TableContract, contract_hints, contracted
from ingestion.shop.simulator import TABLES

PRIMARY_KEYS = {table: "id" for table in TABLES}
CONTRACTS = {
    "payments": TableContract(
        table="payments",
        key="id",
        unique=("id",),
        columns=(
            ColumnRule("id", "bigint", required=True),
            ColumnRule("order_id", "bigint", required=True),
            ColumnRule("amount", "double", required=True),
            ColumnRule("paid_at", "timestamp", required=True),
        ),
    ),
}
"""Tables held to a contract: rows that break it are quarantined (see ingestion/contracts.py)."""


@dlt.source(name="shop")
def shop_source(db_path: Path, chunk_size: int = 100_000) -> list:
    """dlt resources for every shop table, Arrow-backed, incremental on ``updated_at``, merge on ``id``."""
    if not Path(db_path).exists():
        raise FileNotFoundError(f"{db_path}: the shop database does not exist; run `headwater demo` first")
    source = sql_database(
        credentials=f"sqlite:///{Path(db_path).resolve()}",
        table_names=list(TABLES),
        backend="pyarrow",
        chunk_size=chunk_size,
        reflection_level="full_with_precision",
    )
    resources = []
    for table in TABLES:
        resource = source.resources[table]
        resource.apply_hints(
            write_disposition="merge",
            primary_key=PRIMARY_KEYS[table],
            incremental=dlt.sources.incremental("updated_at"),
        )
        contract = CONTRACTS.get(table)
        if contract is None:
            resources.append(resource)
            continue
        # the contracted table reads the database rows through one extraction (and one incremental cursor)
        rows = resource.with_name(f"{table}_rows")
        checked, quarantine = contracted(rows, contract, source="shop")
        checked.apply_hints(
            write_disposition="merge",
            primary_key=PRIMARY_KEYS[table],
            columns=rows.columns,
            **contract_hints(contract, declare_types=False),
        )
        resources.extend([checked, quarantine])
    return resources
