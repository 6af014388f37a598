from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from assets import AssetKey, AssetKind, AssetSpec, build_asset_graph
from assets.run_log import Materialization, stale_reasons

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

T0 = datetime(2026, 1, 1, 12, 0)


def spec(key: str, *deps: str, code: str = "v1") -> AssetSpec:
    return AssetSpec(
        key=AssetKey.parse(key),
        kind=AssetKind.DBT_MODEL,
        deps=tuple(AssetKey.parse(d) for d in deps),
        code_version=code,
    )


def done(key: str, minutes: int, code: str = "v1") -> Materialization:
    return Materialization(key, "r", "success", 1, T0, T0 + timedelta(minutes=minutes), code_version=code)


def test_stale_when_never_run_upstream_newer_or_code_changed() -> None:
    graph = build_asset_graph(
        python_assets=[spec("s.a"), spec("s.b", "s.a"), spec("s.c", "s.b", code="v2"), spec("s.d")]
    )
    latest = {m.asset_key: m for m in (done("s.a", 10), done("s.b", 5), done("s.c", 20, code="v1"))}
    reasons = stale_reasons(graph, latest)
    assert reasons == {
        AssetKey.parse("s.b"): "upstream s.a materialized since",
        AssetKey.parse("s.c"): "code changed since last materialization",
        AssetKey.parse("s.d"): "never materialized",
    }


def test_fresh_graph_has_no_stale_assets() -> None:
    graph = build_asset_graph(python_assets=[spec("s.a"), spec("s.b", "s.a")])
    assert stale_reasons(graph, {"s.a": done("s.a", 1), "s.b": done("s.b", 2)}) == {}
