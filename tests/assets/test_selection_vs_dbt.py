"""Headwater's selection must select what ``dbt ls --select`` selects, on the demo project."""

from __future__ import annotations

import json

import pytest

from assets import build_asset_graph, select
from ingestion import ingestion_specs

EXPRESSIONS = [
    ("orders", None),
    ("+orders", None),
    ("orders+", None),
    ("2+daily_revenue", None),
    ("stg_shop__orders+1", None),
    ("@stg_marketing__ad_spend", None),
    ("tag:finance", None),
    ("tag:pii+", None),
    ("path:models/staging", None),
    ("path:models/marts/orders.sql", None),
    ("source:raw_shop", None),
    ("source:raw_shop.orders+", None),
    ("resource_type:seed resource_type:snapshot", None),
    ("config.materialized:incremental", None),
    ("config.materialized:view,+customers", None),
    ("staging.shop", None),
    ("stg_shop__*", None),
    ("marts.*", None),
    ("+marketing_roi", "resource_type:source"),
    ("tag:finance,tag:marketing", None),
    ("+exposure:revenue_dashboard", None),
    ("package:headwater,resource_type:model", "marts"),
    ("fqn:headwater.intermediate.*", None),
]
RESOURCE_TYPES = ["model", "seed", "snapshot", "source", "exposure"]


@pytest.fixture(scope="module")
def graph(manifest: dict):
    return build_asset_graph(manifest=manifest, ingestion=ingestion_specs())


@pytest.fixture(scope="module")
def dbt_ls(tmp_path_factory: pytest.TempPathFactory):
    from dbt.cli.main import dbtRunner

    from tests.conftest import REPO

    target_path = tmp_path_factory.mktemp("dbt_ls")

    def run(select_expr: str, exclude: str | None) -> set[str]:
        args = [
            "--quiet",
            "ls",
            "--project-dir",
            str(REPO / "dbt_project"),
            "--profiles-dir",
            str(REPO / "profiles"),
            "--target-path",
            str(target_path),
            "--select",
            *select_expr.split(),
            "--output",
            "json",
            "--output-keys",
            "unique_id",
            "--resource-type",
            *RESOURCE_TYPES,
        ]
        if exclude:
            args += ["--exclude", *exclude.split()]
        result = dbtRunner().invoke(args)
        assert result.success, result.exception
        return {json.loads(line)["unique_id"] for line in result.result}

    return run


@pytest.mark.parametrize(("expression", "exclude"), EXPRESSIONS)
def test_same_nodes_as_dbt_ls(graph, dbt_ls, expression: str, exclude: str | None) -> None:
    ours = {graph.specs[k].unique_id for k in select(graph, expression, exclude)}
    assert ours == dbt_ls(expression, exclude)
    assert ours, f"{expression!r} selects nothing: a useless comparison"
