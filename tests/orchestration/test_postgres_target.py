"""`headwater materialize --target postgres` end to end against the local PostgreSQL server.

Each test session gets its own database (tests/conftest.py `pg_database`), so runs never collide. Ingestion
(dlt's postgres destination), dbt (dbt-postgres), GX suites, freshness, quarantine and the run log (the
warehouse's own `headwater` schema) all run against it.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import base_env, postgres_env, run_cli

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_run(tmp_path_factory: pytest.TempPathFactory, pg_database: str, prefect_server: str):
    root = tmp_path_factory.mktemp("pg")
    env = postgres_env(base_env(root / "data", root / "prefect", prefect_server), pg_database)
    run = run_cli(["materialize", "--target", "postgres"], env, check=False)
    status = run_cli(["status", "--target", "postgres", "layer:marts"], env, check=False)
    checks = run_cli(["checks", "--target", "postgres", "--failed"], env, check=False)
    engine = sa.create_engine(pg_database)
    yield {"run": run, "status": status, "checks": checks, "engine": engine, "env": env}
    engine.dispose()


def scalar(pg_run, sql: str):
    with pg_run["engine"].connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def test_materialize_on_postgres_fills_the_marts(pg_run) -> None:
    assert pg_run["run"].returncode == 0, pg_run["run"].stdout[-3000:] + pg_run["run"].stderr[-3000:]
    assert "materialized on target postgres" in pg_run["run"].stdout
    for mart in ("orders", "customers", "daily_revenue", "marketing_roi", "order_items"):
        assert scalar(pg_run, f"select count(*) from marts.{mart}") > 0, mart
    assert scalar(pg_run, "select count(*) from raw_shop.orders") == scalar(pg_run, "select count(*) from marts.orders")


def test_quarantine_and_checks_land_in_the_warehouse(pg_run) -> None:
    assert scalar(pg_run, "select count(*) from raw_shop._headwater_quarantine") > 0
    gx = scalar(pg_run, "select count(*) from headwater.check_results where check_name = 'status_canonical'")
    assert gx == 1
    assert scalar(pg_run, "select count(*) from headwater.materializations where status = 'success'") >= 21
    assert scalar(pg_run, "select count(*) from headwater.check_results where check_name = 'freshness'") >= 6


def test_status_and_checks_read_the_postgres_run_log(pg_run) -> None:
    assert pg_run["status"].returncode == 0 and "marts.orders" in pg_run["status"].stdout
    assert "status_canonical" in pg_run["checks"].stdout and "quarantine" in pg_run["checks"].stdout


def test_diff_between_dev_and_postgres_reports_a_planted_row_change(pg_run, tmp_path) -> None:
    """The same demo data built on DuckDB and on PostgreSQL gives the same mart; a planted change shows up."""
    import json

    env = pg_run["env"]
    dev = run_cli(["materialize"], env, check=False)
    assert dev.returncode == 0, dev.stdout[-3000:] + dev.stderr[-3000:]
    same = json.loads(run_cli(["diff", "marts.orders", "--from", "dev", "--to", "postgres", "--json"], env).stdout)
    assert same["rows"]["changed"] == 0 and same["rows"]["only_in_source"] == 0 and same["rows"]["only_in_target"] == 0
    assert same["rows"]["source"] == same["rows"]["target"] > 0

    with pg_run["engine"].begin() as conn:
        conn.execute(sa.text("create schema if not exists marts_planted"))
        conn.execute(sa.text("create table marts_planted.orders as select * from marts.orders"))
        first, last = conn.execute(sa.text("select min(order_id), max(order_id) from marts_planted.orders")).one()
        conn.execute(sa.text("update marts_planted.orders set status = 'lost' where order_id = :id"), {"id": first})
        conn.execute(sa.text("delete from marts_planted.orders where order_id = :id"), {"id": last})
        conn.execute(sa.text("alter table marts_planted.orders add column note text"))
    proc = run_cli(["diff", "orders", "--from", "dev", "--to", "postgres:marts_planted", "--json"], env)
    planted = json.loads(proc.stdout)
    assert planted["key"] == ["order_id"]
    assert planted["schema"]["added"] == ["note"]
    assert planted["rows"]["changed"] == 1 and planted["rows"]["only_in_source"] == 1
    assert planted["rows"]["only_in_target"] == 0
    assert planted["column_mismatches"] == {"status": 1}
    (row,) = planted["sample"]
    assert (row["order_id"], row["s__status"], row["t__status"]) == (first, "completed", "lost") or (
        row["t__status"] == "lost" and row["order_id"] == first
    )
    text = run_cli(["diff", "orders", "--from", "dev", "--to", "postgres:marts_planted"], env).stdout
    assert "changed 1" in text and "differences found" in text

    unknown = run_cli(["diff", "orders", "--from", "dev", "--to", "postgres:no_such_schema"], env, check=False)
    assert unknown.returncode == 2 and "no table no_such_schema.orders on target postgres" in unknown.stdout
