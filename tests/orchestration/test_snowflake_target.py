"""The snowflake target against fakesnow's server (a fake: Snowflake cannot be reached from here).

What runs: Headwater renders the `snowflake` output of profiles/profiles.yml, and dbt-snowflake builds and
tests a small project through Headwater's flow against fakesnow over HTTP. What does not: dlt's snowflake
destination fails on fakesnow (SchemaUpdateTransientError), and GX's Snowflake data source needs
snowflake-sqlalchemy; both are configuration only (README, Targets).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, base_env, free_port, run_cli, stop_process_group

FIXTURE = REPO / "tests" / "fixtures" / "snowflake_project"


@pytest.fixture(scope="module")
def fakesnow_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fakesnow")
    port = free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakesnow", "-s", "-p", str(port), "-d", str(root / "db")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "Uvicorn running" not in (root / "server.log").read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError((root / "server.log").read_text()[-2000:])
        time.sleep(0.3)
    yield port
    stop_process_group(proc)
    log.close()


def test_fake_snowflake_dbt_build_through_headwater(fakesnow_server: int, tmp_path, prefect_server: str) -> None:
    import snowflake.connector

    env = base_env(tmp_path / "data", tmp_path / "prefect", prefect_server)
    env.update(
        HEADWATER_SNOWFLAKE_ACCOUNT="fakesnow",
        HEADWATER_SNOWFLAKE_USER="headwater",
        HEADWATER_SNOWFLAKE_PASSWORD="fake",
        HEADWATER_SNOWFLAKE_DATABASE="HEADWATER",
        HEADWATER_SNOWFLAKE_WAREHOUSE="WH",
        HEADWATER_SNOWFLAKE_HOST="localhost",
        HEADWATER_SNOWFLAKE_PORT=str(fakesnow_server),
        HEADWATER_SNOWFLAKE_PROTOCOL="http",
    )
    args = ["--target", "snowflake", "--dbt-project", str(FIXTURE), "--profiles-dir", str(REPO / "profiles")]
    run = run_cli(["materialize", *args], env)
    assert "materialized on target snowflake" in run.stdout
    checks = run_cli(["checks", *args], env)
    assert "unique_payments_id" in checks.stdout and "pass" in checks.stdout
    connection = snowflake.connector.connect(
        account="fakesnow",
        user="headwater",
        password="fake",
        host="localhost",
        port=fakesnow_server,
        protocol="http",
        database="HEADWATER",
        schema="PUBLIC",
    )
    try:
        assert connection.cursor().execute("select payments, amount from payment_totals").fetchall() == [(2, 30.5)]
    finally:
        connection.close()
