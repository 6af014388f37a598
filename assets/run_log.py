"""The run log's records and what they imply (staleness), with no storage: that lives in orchestration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from assets.graph import AssetGraph
from assets.keys import AssetKey


@dataclass(frozen=True)
class Materialization:
    """One asset in one run: its status, attempts, times, rows and the code version it ran."""

    asset_key: str
    run_id: str
    status: str  # success | failed | skipped | unchanged
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    rows: int | None = None
    code_version: str | None = None
    kind: str = ""
    message: str = ""
    target: str = ""


@dataclass(frozen=True)
class CheckRecord:
    asset_key: str
    check_name: str
    run_id: str
    severity: str
    status: str
    failures: int | None = None
    message: str = ""


def stale_reasons(graph: AssetGraph, latest: Mapping[str, Materialization]) -> dict[AssetKey, str]:
    """Why each materializable asset is stale, given the latest *successful* materialization per key.

    Stale: never materialized; its code changed since (code version differs); or an upstream asset was
    materialized after it. Assets Headwater does not build (external sources, exposures) are never stale.
    """
    reasons: dict[AssetKey, str] = {}
    for key in graph.toposorted():
        spec = graph.specs[key]
        if not spec.builds:
            continue
        mine = latest.get(str(key))
        if mine is None or mine.ended_at is None:
            reasons[key] = "never materialized"
            continue
        if spec.code_version and mine.code_version and spec.code_version != mine.code_version:
            reasons[key] = "code changed since last materialization"
            continue
        for dep in spec.deps:
            theirs = latest.get(str(dep))
            if theirs is not None and theirs.ended_at is not None and theirs.ended_at > mine.ended_at:
                reasons[key] = f"upstream {dep} materialized since"
                break
    return reasons
