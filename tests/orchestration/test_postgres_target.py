"""`headwater materialize --target postgres` end to end against the local PostgreSQL server.

Each test session gets its own database (tests/conftest.py `pg_database`), so runs never collide. Ingestion
(dlt's postgres destination), dbt (dbt-postgres), GX suites, freshness, quarantine and the run log (the
warehouse's own `headwater` schema) all run against it.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import base_env, run_cli

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_run(tmp_path_factory: pytest.TempPathFactory, pg_database: str):
    url = sa.make_url(pg_database)
    root = tmp_path_factory.mktemp("pg")
    env = base_env(root / "data", root / "prefect")
    env.update(
        HEADWATER_PG_HOST=url.host,
        HEADWATER_PG_PORT=str(url.port),
        HEADWATER_PG_USER=url.username,
        HEADWATER_PG_PASSWORD="unused-under-trust-auth",
        HEADWATER_PG_DATABASE=url.database,
    )
    run = run_cli(["materialize", "--target", "postgres"], env, check=False)
    status = run_cli(["status", "--target", "postgres", "group:marts"], env, check=False)
    checks = run_cli(["checks", "--target", "postgres", "--failed"], env, check=False)
    engine = sa.create_engine(pg_database)
    yield {"run": run, "status": status, "checks": checks, "engine": engine}
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
