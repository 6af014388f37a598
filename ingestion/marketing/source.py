"""The marketing source: daily ad-spend CSV exports in a landing folder, read with dlt's filesystem source.

Files are picked up incrementally by modification date and rows are merged on
``(spend_date, campaign_id)``, so re-delivering a day's export replaces that day instead of doubling it.
Every row is held to :data:`CONTRACT`; rows that break it go to ``raw_marketing._headwater_quarantine``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.csv as pacsv
from dlt.sources.filesystem import filesystem

from ingestion.contracts import ORIGIN_COLUMN, ColumnRule, TableContract, contract_hints, contracted

PRIMARY_KEY = ("spend_date", "campaign_id")
CONTRACT = TableContract(
    table="ad_spend",
    unique=PRIMARY_KEY,
    columns=(
        ColumnRule("spend_date", "date", required=True),
        ColumnRule("channel", "text", required=True),
        ColumnRule("campaign_id", "text", required=True),
        ColumnRule("campaign_name", "text"),
        ColumnRule("impressions", "bigint"),
        ColumnRule("clicks", "bigint"),
        ColumnRule("spend", "double", required=True),
    ),
)


@dlt.transformer(name="ad_spend_rows")
def _csv_rows(files: Any) -> Iterator[pa.Table]:
    """Each export read as text, so that one malformed value cannot break the whole file; the contract decides."""
    for item in files:
        with item.open() as handle:
            table = pacsv.read_csv(
                handle,
                convert_options=pacsv.ConvertOptions(
                    column_types={rule.name: pa.string() for rule in CONTRACT.columns},
                    strings_can_be_null=True,
                    null_values=[""],  # 'n/a' in a number column is a malformed value, not a missing one
                ),
            )
        yield table.append_column(ORIGIN_COLUMN, pa.array([item["file_name"]] * table.num_rows, pa.string()))


@dlt.source(name="marketing")
def marketing_source(landing_dir: Path) -> list:
    """The ``ad_spend`` resource over ``landing_dir/ad_spend_*.csv``."""
    landing = Path(landing_dir).resolve()
    if not landing.is_dir():
        raise FileNotFoundError(f"{landing}: the marketing landing folder does not exist; run `headwater demo` first")
    files = filesystem(bucket_url=landing.as_uri(), file_glob="ad_spend_*.csv")
    files.apply_hints(incremental=dlt.sources.incremental("modification_date"))
    ad_spend, quarantine = contracted(files | _csv_rows, CONTRACT, source="marketing")
    ad_spend.apply_hints(
        write_disposition="merge", primary_key=list(PRIMARY_KEY), **contract_hints(CONTRACT, declare_types=True)
    )
    return [ad_spend, quarantine]
