"""The demo marketing export: one CSV of ad spend per day, dropped into a landing folder.

It mirrors what an ad platform's daily export looks like; the marketing dlt source reads the folder.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import numpy as np

from ingestion.shop.simulator import EPOCH

CAMPAIGNS = (
    ("google", "g-brand", "Brand search"),
    ("google", "g-generic", "Generic search"),
    ("meta", "m-prospecting", "Prospecting"),
    ("meta", "m-retargeting", "Retargeting"),
    ("tiktok", "t-creators", "Creator collabs"),
    ("newsletter", "n-weekly", "Weekly newsletter"),
)
"""(channel, campaign id, campaign name). Channel names match the shop's ``orders.utm_source``."""

COLUMNS = ("spend_date", "channel", "campaign_id", "campaign_name", "impressions", "clicks", "spend")


def spend_file(landing: Path, day: int) -> Path:
    """The export file for simulated ``day``."""
    return landing / f"ad_spend_{(EPOCH + timedelta(days=day)).date().isoformat()}.csv"


def write_spend(landing: Path, *, seed: int, scale: float, days: range) -> list[Path]:
    """Write one spend CSV per day in ``days`` (existing files are left as they are)."""
    landing.mkdir(parents=True, exist_ok=True)
    written = []
    for day in days:
        path = spend_file(landing, day)
        if path.exists():
            continue
        rng = np.random.default_rng([seed, day, 99])
        date = (EPOCH + timedelta(days=day)).date().isoformat()
        rows = []
        for channel, campaign_id, name in CAMPAIGNS:
            impressions = int(rng.integers(2_000, 20_000) * scale) + 1
            clicks = int(impressions * rng.uniform(0.005, 0.04))
            spend = round(float(clicks * rng.uniform(0.2, 1.5)), 2)
            rows.append([date, channel, campaign_id, name, impressions, clicks, spend])
        if day % 11 == 3:
            rows[day % len(rows)][6] = "n/a"  # deliberately dirty: the platform exported no spend figure
        elif day % 11 == 8:
            rows[day % len(rows)][2] = ""  # deliberately dirty: a row without its campaign id
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
        tmp.replace(path)  # atomic: the source never reads a half-written export
        written.append(path)
    return written
