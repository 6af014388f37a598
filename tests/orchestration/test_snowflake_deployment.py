"""The nightly deployment against the snowflake target, run by a Prefect worker, on fakesnow's server (a Snowflake
emulator: Snowflake cannot be reached from here).

A Prefect server of its own (SQLite), ``headwater deploy --target snowflake`` (which also creates the per-asset
concurrency limits runs take on Snowflake), the password only in a Prefect Secret block, a ``process`` worker without
the password in its environment, and one run of ``nightly-full`` triggered through the API.
"""

from __future__ import annotations

import pytest

from tests.conftest import (
    base_env,
    prefect_worker,
    run_cli,
    running_fakesnow,
    running_prefect_server,
    snowflake_connect,
    snowflake_env,
    store_secret,
)
from tests.orchestration.test_deployment import trigger, wait_for

POOL = "hw-snowflake-pool"
PLANTED = "sf-planted-secret-52be7e"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("snowflake_deploy")
    (root / "server").mkdir()
    with running_fakesnow(root) as port, running_prefect_server(root / "server") as api:
        env = snowflake_env(base_env(root / "data", root / "client", api), port)
        del env["HEADWATER_SNOWFLAKE_PASSWORD"]
        store_secret("HEADWATER_SNOWFLAKE_PASSWORD", PLANTED, env)
        deploy = run_cli(["deploy", "--target", "snowflake", "--work-pool", POOL, "--paused"], env)
        worker_env = {**snowflake_env(base_env(root / "worker_data", root / "worker", api), port)}
        del worker_env["HEADWATER_SNOWFLAKE_PASSWORD"]  # read from the Secret block at run time
        worker_env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
        with prefect_worker(POOL, worker_env, root / "worker.log"):
            nightly = wait_for(api, trigger(api, "nightly-full", target="snowflake"))
        connection = snowflake_connect(port)
        try:
            cursor = connection.cursor()
            counts = {
                "orders": cursor.execute("select count(*) from marts.orders").fetchall()[0][0],
                "runs": cursor.execute("select count(*) from headwater.runs").fetchall()[0][0],
            }
        finally:
            connection.close()
        from prefect.client.orchestration import SyncPrefectClient

        with SyncPrefectClient(api) as client:
            limits = [limit.name for limit in client.read_global_concurrency_limits(limit=200)]
        yield {
            "deploy": deploy,
            "nightly": nightly,
            "counts": counts,
            "limits": limits,
            "worker_log": (root / "worker.log").read_text(),
            "root": root,
        }


def test_the_nightly_deployment_runs_on_snowflake_through_a_worker(deployed) -> None:
    run = deployed["nightly"]
    assert run.state_name == "Completed", deployed["worker_log"][-4000:]
    assert run.parameters["target"] == "snowflake" and run.parameters["full_refresh"] is True
    assert deployed["counts"]["orders"] > 0 and deployed["counts"]["runs"] == 1  # the run log in the warehouse


def test_deploy_creates_the_per_asset_limits_snowflake_runs_take(deployed) -> None:
    assert "headwater-asset-snowflake-marts.orders" in deployed["limits"]
    assert "concurrency limits" not in deployed["worker_log"].lower() or "do not exist" not in deployed["worker_log"]


def test_the_password_comes_from_the_secret_block_and_appears_nowhere(deployed) -> None:
    assert PLANTED not in deployed["worker_log"] + deployed["deploy"].stdout + deployed["deploy"].stderr
    for path in deployed["root"].rglob("*"):
        if path.is_file() and "server" not in path.parts and path.stat().st_size < 50_000_000:
            assert PLANTED.encode() not in path.read_bytes(), path
