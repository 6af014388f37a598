"""Headwater's selection must select what ``dbt ls --select`` selects: on the demo project and on
tests/fixtures/edge_project, a project shaped like public ones (seeds that are the raw data, two sources on one
table, versioned models, dbt groups and access, unit tests, a singular test on no model, semantic models, metrics,
saved queries, an exposure, a hook), with every selector method dbt documents."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assets import SelectionError, build_asset_graph, select
from assets.selection import select_nodes
from ingestion import ingestion_specs
from tests.conftest import REPO

EDGE = REPO / "tests" / "fixtures" / "edge_project"
EDGE_VARS = {"load_source_data": True}

DEMO = [
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

EDGE_EXPRESSIONS = [
    # the default method (fqn), versions, wildcards
    ("orders", None, "eager"),
    ("customers", None, "eager"),
    ("customers.v1", None, "eager"),
    ("customers_v2", None, "eager"),
    ("edge.marts.*", None, "eager"),
    ("stg_*", None, "eager"),
    ("*", None, "eager"),
    ("revenue_by_day", None, "eager"),
    ("fqn:edge.staging.*", None, "eager"),
    # graph operators
    ("+orders", None, "eager"),
    ("orders+", None, "eager"),
    ("2+customer_summary", None, "eager"),
    ("stg_orders+1", None, "eager"),
    ("@stg_orders", None, "eager"),
    ("+customer_summary+", None, "eager"),
    ("@+orders", None, "eager"),
    # tags, dbt groups, access
    ("tag:finance+", None, "eager"),
    ("tag:fin*", None, "eager"),
    ("group:finance", None, "eager"),
    ("group:growth+", None, "eager"),
    ("access:public access:private", None, "eager"),
    ("access:protected", None, "eager"),
    # sources: a seed that is the raw data, two sources on one table
    ("source:ecom", None, "eager"),
    ("source:ecom.raw_orders+", None, "eager"),
    ("source:legacy+", None, "eager"),
    ("source:edge.ecom.*", None, "eager"),
    ("raw_orders+", None, "eager"),
    # paths and files
    ("path:models/staging", None, "eager"),
    ("path:models/marts/_marts.yml", None, "eager"),
    ("path:seeds", None, "eager"),
    ("path:tests", None, "eager"),
    ("path:models/*/stg_*.sql", None, "eager"),
    ("models/marts", None, "eager"),
    ("path:snapshots/orders_snapshot.yml", None, "eager"),
    ("file:stg_orders.sql", None, "eager"),
    ("file:_marts.yml", None, "eager"),
    ("customers_v1.sql", None, "eager"),
    ("file:*.csv", None, "eager"),
    # packages and config
    ("package:this", None, "eager"),
    ("package:edge,resource_type:seed", None, "eager"),
    ("config.materialized:view", None, "eager"),
    ("config.materialized:ephemeral+", None, "eager"),
    ("config.schema:marts", None, "eager"),
    ("config.severity:warn", None, "eager"),
    ("config.group:growth", None, "eager"),
    ("config.enabled:true,resource_type:source", None, "eager"),
    ("config.tags:finance", None, "eager"),
    # tests, unit tests, tests on no model
    ("test_name:unique", None, "eager"),
    ("test_name:relationships", None, "eager"),
    ("test_name:orders_amount*", None, "eager"),
    ("test_type:generic", None, "eager"),
    ("test_type:singular", None, "eager"),
    ("test_type:unit", None, "eager"),
    ("test_type:data", None, "eager"),
    ("resource_type:test", None, "eager"),
    ("resource_type:unit_test", None, "eager"),
    ("unit_test:orders_amount_is_the_payment_total", None, "eager"),
    ("assert_no_small_raw_payments", None, "eager"),
    # the semantic layer and exposures
    ("resource_type:saved_query resource_type:semantic_model resource_type:metric", None, "eager"),
    ("exposure:finance_dashboard", None, "eager"),
    ("+exposure:finance_dashboard", None, "eager"),
    ("metric:revenue+", None, "eager"),
    ("+metric:revenue", None, "eager"),
    ("semantic_model:orders", None, "eager"),
    ("saved_query:*", None, "eager"),
    # versions
    ("version:latest", None, "eager"),
    ("version:old", None, "eager"),
    ("version:none,resource_type:model", None, "eager"),
    ("version:prerelease", None, "eager"),
    # intersections, exclusions and indirect selection
    ("tag:finance,resource_type:model", None, "eager"),
    ("+customer_summary", "resource_type:test", "eager"),
    ("marts", "customers", "eager"),
    ("orders", "test_type:generic", "eager"),
    ("orders", None, "cautious"),
    ("orders customers", None, "cautious"),
    ("+orders", None, "buildable"),
    ("orders", None, "empty"),
    ("resource_type:analysis resource_type:macro", None, "eager"),
]


def _ls(
    runner,
    manifest,
    target_path: Path,
    project: Path,
    profiles: Path,
    select_expr: str,
    exclude,
    indirect: str,
    extra=(),
):
    args = [
        "--quiet",
        "ls",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(profiles),
        "--target-path",
        str(target_path),
        "--select",
        *select_expr.split(),
        "--indirect-selection",
        indirect,
        "--output",
        "json",
        "--output-keys",
        "unique_id",
        *extra,
    ]
    if exclude:
        args += ["--exclude", *exclude.split()]
    result = runner(manifest=manifest).invoke(args)
    assert result.success, result.exception
    return {json.loads(line)["unique_id"] for line in result.result}


@pytest.fixture(scope="module")
def graph(manifest: dict):
    return build_asset_graph(manifest=manifest, ingestion=ingestion_specs())


@pytest.fixture(scope="module")
def dbt_ls(tmp_path_factory: pytest.TempPathFactory):
    from dbt.cli.main import dbtRunner

    target_path = tmp_path_factory.mktemp("dbt_ls")
    kinds = ["--resource-type", "model", "seed", "snapshot", "source", "exposure"]

    def run(select_expr: str, exclude: str | None) -> set[str]:
        project = REPO / "dbt_project"
        return _ls(dbtRunner, None, target_path, project, REPO / "profiles", select_expr, exclude, "eager", kinds)

    return run


@pytest.mark.parametrize(("expression", "exclude"), DEMO)
def test_same_nodes_as_dbt_ls(graph, dbt_ls, expression: str, exclude: str | None) -> None:
    kinds = {"model", "seed", "snapshot", "source", "exposure"}
    ours = {uid for uid in select_nodes(graph, expression, exclude, resource_types=kinds)}
    assert ours == dbt_ls(expression, exclude)
    assert ours, f"{expression!r} selects nothing: a useless comparison"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module):
    """The edge project parsed once by dbt (with the var that enables its seeds), its graph, and a ``dbt ls``."""
    from dbt.cli.main import dbtRunner

    root = tmp_path_factory.mktemp("edge_ls")
    project = root / "edge_project"
    shutil.copytree(EDGE, project)
    monkeypatch_module.setenv("EDGE_DUCKDB_PATH", str(root / "edge.duckdb"))
    target_path = root / "target"
    parsed = dbtRunner().invoke(
        ["--quiet", "parse", "--project-dir", str(project), "--profiles-dir", str(project), "--target-path",
         str(target_path), "--vars", json.dumps(EDGE_VARS)]
    )  # fmt: skip
    assert parsed.success, parsed.exception
    manifest = json.loads((target_path / "manifest.json").read_text())
    graph = build_asset_graph(manifest=manifest)

    def ls(expression: str, exclude: str | None, indirect: str) -> set[str]:
        extra = ("--vars", json.dumps(EDGE_VARS))
        return _ls(dbtRunner, parsed.result, target_path, project, project, expression, exclude, indirect, extra)

    return graph, ls


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize(("expression", "exclude", "indirect"), EDGE_EXPRESSIONS)
def test_edge_project_selects_what_dbt_ls_lists(edge, expression: str, exclude: str | None, indirect: str) -> None:
    graph, ls = edge
    ours = select_nodes(graph, expression, exclude, indirect=indirect)
    theirs = ls(expression, exclude, indirect)
    assert ours == theirs, f"only Headwater: {sorted(ours - theirs)}; only dbt: {sorted(theirs - ours)}"


def test_edge_comparison_covers_every_documented_method_and_selects_something() -> None:
    methods = {"fqn", "tag", "group", "access", "source", "path", "file", "package", "config", "test_name"}
    methods |= {"test_type", "resource_type", "exposure", "metric", "version", "semantic_model", "saved_query"}
    methods |= {"unit_test"}
    used = {
        e.split(":")[0].lstrip("+@0123456789").split(".")[0] for expr, _, _ in EDGE_EXPRESSIONS for e in expr.split()
    }
    assert methods <= used, sorted(methods - used)
    assert len(EDGE_EXPRESSIONS) >= 40


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("state:modified", "needs dbt.s --state artifacts: pass --state DIR"),
        ("result:error", "needs dbt's --state artifacts"),
        ("source_status:fresher", "needs dbt's --state artifacts"),
        ("colour:red", "unknown selection method 'colour'"),
        ("resource_type:table", "invalid resource_type selector"),
        ("version:newest", "invalid version selector"),
        ("test_type:bogus", "invalid test_type selector"),
        ("exposure:a.b.c", "invalid exposure selector"),
        ("config:table", "name the setting"),
    ],
)
def test_what_headwater_cannot_select_is_a_named_error(edge, expression: str, message: str) -> None:
    graph, _ = edge
    with pytest.raises(SelectionError, match=message):
        select(graph, expression)
