"""The marketing source: daily ad-spend CSV exports in a landing folder, read with dlt's filesystem source.

Files are picked up incrementally by modification date and rows are merged on
``(spend_date, campaign_id)``, so re-delivering a day's export replaces that day instead of doubling it.
"""

from __future__ import annotations

from pathlib import Path

import dlt
from dlt.sources.filesystem import filesystem, read_csv

PRIMARY_KEY = ("spend_date", "campaign_id")


@dlt.source(name="marketing")
def marketing_source(landing_dir: Path) -> list:
    """The ``ad_spend`` resource over ``landing_dir/ad_spend_*.csv``."""
    landing = Path(landing_dir).resolve()
    if not landing.is_dir():
        raise FileNotFoundError(f"{landing}: the marketing landing folder does not exist; run `headwater demo` first")
    files = filesystem(bucket_url=landing.as_uri(), file_glob="ad_spend_*.csv")
    files.apply_hints(incremental=dlt.sources.incremental("modification_date"))
    ad_spend = (files | read_csv(dtype={"spend_date": "string", "campaign_id": "string"})).with_name("ad_spend")
    ad_spend.apply_hints(write_disposition="merge", primary_key=list(PRIMARY_KEY))
    return [ad_spend]
