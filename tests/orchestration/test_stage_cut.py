"""Nothing is built on a failed upstream across a stage cut, on the demo itself.

``marts.orders`` has a Great Expectations suite with ``error`` expectations, so the dbt build is cut into two
stages at it (the suite runs before anything reads the mart). A copy of the demo with its intermediate model
``int_payments__summed`` broken: dbt skips ``marts.orders`` in the first stage, and the marts that read
``marts.orders`` (customers, daily_revenue, marketing_roi) must be skipped in the second, not rebuilt over the old
table and reported as successes.
"""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest
import sqlalchemy as sa

from tests.conftest import REPO, base_env, run_cli

READERS = ("marts.customers", "marts.daily_revenue", "marts.marketing_roi")


@pytest.fixture(scope="module")
def broken_demo(tmp_path_factory: pytest.TempPathFactory, prefect_server: str):
    root = tmp_path_factory.mktemp("stage_cut")
    for part in ("dbt_project", "profiles", "quality"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    shutil.copy(REPO / "headwater.yml", root / "headwater.yml")
    model = root / "dbt_project" / "models" / "intermediate" / "int_payments__summed.sql"
    text = model.read_text()
    assert "group by order_id" in text, "the demo model changed: update this test"
    model.write_text(text.replace("group by order_id", "where planted_missing_column = 1 group by order_id"))
    env = base_env(root / "data", root / "prefect_home", api_url=prefect_server)
    env["HEADWATER_PROJECT_DIR"] = str(root)
    proc = run_cli(["materialize"], env, check=False)
    return {"proc": proc, "root": root, "data": root / "data"}


def test_the_demo_build_is_cut_into_stages_at_the_gx_gated_mart(broken_demo) -> None:
    from orchestration.engine.plan import asset_graph, plan_run
    from orchestration.settings import project_defaults

    manifest = json.loads((broken_demo["data"] / "dbt_target" / "manifest.json").read_text())
    defaults = project_defaults(type("P", (), {"dbt_project_dir": broken_demo["root"] / "dbt_project"}))
    graph = asset_graph(manifest, defaults, True, [], broken_demo["root"] / "quality" / "suites")
    stages = plan_run(graph).stages()
    assert len(stages) == 2
    assert "model.headwater.orders" in stages[0]
    assert {"model.headwater.customers", "model.headwater.daily_revenue"} <= set(stages[1])


def test_no_mart_is_built_downstream_of_the_failed_model(broken_demo) -> None:
    proc = broken_demo["proc"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert any(line.startswith("failed intermediate.int_payments__summed") for line in proc.stdout.splitlines()), (
        proc.stdout
    )
    with duckdb.connect(str(broken_demo["data"] / "headwater.duckdb"), read_only=True) as con:
        sql = "select table_schema || '.' || table_name from information_schema.tables"
        tables = {row[0] for row in con.execute(sql).fetchall()}
    assert "staging.stg_shop__payments" in tables, "the branch that did not fail was built"
    assert not {"marts.orders", *READERS} & tables, "nothing downstream of the failed model may be built"


def test_every_descendant_is_recorded_skipped_with_the_failure_that_stopped_it(broken_demo) -> None:
    engine = sa.create_engine(f"sqlite:///{broken_demo['data'] / 'run_log_dev.sqlite'}")
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("select asset_key, status from materializations")).fetchall())
        messages = dict(conn.execute(sa.text("select asset_key, message from materializations")).fetchall())
        sql = "select check_name, status from check_results where asset_key = 'marts.orders'"
        orders_checks = dict(conn.execute(sa.text(sql)).fetchall())
    engine.dispose()
    assert rows["intermediate.int_payments__summed"] == "failed"
    assert rows["marts.orders"] == "skipped"
    for key in READERS:
        assert rows[key] == "skipped", key
        assert "int_payments__summed" in messages[key], messages[key]
    assert rows["exposures.revenue_dashboard"] == "skipped"
    # every check of the mart that was not built is accounted for, skipped: its dbt tests and its GX suite
    assert "unique_orders_order_id" in orders_checks and "status_cleaned" in orders_checks, sorted(orders_checks)
    assert set(orders_checks.values()) == {"skipped"}, orders_checks
