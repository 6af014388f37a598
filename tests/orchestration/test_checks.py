"""Checks gate exactly the right assets: a real run over tests/fixtures/gated_project (a foreign dbt project).

GX suites (tests/fixtures/gated_project/suites) run on DuckDB through real Great Expectations; the source
``landing.events`` is planted 5 days old so its dbt freshness threshold (error after 2 h) trips. Alerts go
to a local HTTP receiver standing in for Slack/PagerDuty/webhooks (fakes: unreachable here).
"""

from __future__ import annotations

import shutil

import duckdb
import pytest
import yaml

from tests.conftest import REPO, Receiver, base_env, read_task_runs, run_cli

FIXTURE = REPO / "tests" / "fixtures" / "gated_project"


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, prefect_server: str):
    root = tmp_path_factory.mktemp("gated")
    project = root / "gated_project"
    shutil.copytree(FIXTURE, project)
    warehouse = root / "gated.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema landing")
        con.execute("create table landing.events as select 1 as id, now() - interval 5 day as loaded_at")
        con.execute("create table landing.orders as select * from (values (1), (1), (2)) as t(id)")
    receiver = Receiver()
    alerts = root / "alerts.yml"
    alerts.write_text(
        yaml.safe_dump(
            {
                "alerts": {
                    "notifiers": {"hook": {"type": "webhook", "url": f"{receiver.url}/hook"}},
                    "routes": [{"notify": ["hook"]}],
                }
            }
        )
    )
    env = base_env(root / "data", root / "prefect_home")
    env.update(
        PREFECT_API_URL=prefect_server,
        GATED_DUCKDB_PATH=str(warehouse),
        HEADWATER_SUITES_DIR=str(project / "suites"),
        HEADWATER_ALERTS_FILE=str(alerts),
    )
    args = ["--dbt-project", str(project), "--profiles-dir", str(project)]
    run = run_cli(["materialize", *args], env, check=False)
    checks = run_cli(["checks", *args, "--failed"], env)

    def tables() -> set[str]:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            sql = "select table_name from information_schema.tables where table_schema = 'main'"
            return {r[0] for r in con.execute(sql).fetchall()}

    first_tables = tables()
    retry = run_cli(["retry", *args], env, check=False)
    retry_tables = tables()
    receiver.close()
    flow_run_id = next(
        line.split("flow run ")[1].split(")")[0] for line in run.stdout.splitlines() if "flow run " in line
    )
    yield {
        "run": run,
        "checks": checks,
        "tables": first_tables,
        "retry": retry,
        "retry_tables": retry_tables,
        "alerts": receiver.by_path("/hook"),
        "task_runs": read_task_runs(prefect_server, flow_run_id, expect_at_least=20),
        "artifacts": _artifacts(prefect_server, flow_run_id),
    }


def _artifacts(api: str, flow_run_id: str) -> list[dict]:
    """The flow run's artifacts and its task runs', through the REST API (Prefect 3.8's client sends null filters)."""
    import httpx

    body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "CREATED_DESC", "limit": 200, "offset": 0}
    response = httpx.post(f"{api}/artifacts/filter", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_a_failed_checks_failing_values_are_an_artifact_on_its_task_run(gated) -> None:
    by_name = {r.name: r for r in gated["task_runs"]}
    check_run = by_name["main.base:amount_not_negative"]
    on_check = [a for a in gated["artifacts"] if a["task_run_id"] == str(check_run.id)]
    assert len(on_check) == 1, gated["artifacts"]
    text = on_check[0]["data"]
    assert text.startswith("# `main.base:amount_not_negative`: fail") and "-5" in text, text
    summary = [a for a in gated["artifacts"] if a["key"] == "headwater-run-summary"]
    assert len(summary) == 1 and "`main.base:amount_not_negative`" in summary[0]["data"]


def test_a_failing_error_check_skips_exactly_its_downstream(gated) -> None:
    tables = gated["tables"]
    assert "base" in tables, "the checked asset itself stays materialized"
    assert not {"gated_child", "gated_grandchild"} & tables, "downstream of a failed error check must not build"
    assert {"other", "other_child", "warned", "warned_child"} <= tables, "unrelated branches finish"
    out = gated["run"].stdout
    assert "main.gated_child" in out and "blocking check main.base:amount_not_negative failed" in out
    assert gated["run"].returncode == 1


def test_a_warn_check_alerts_but_never_blocks(gated) -> None:
    assert "warned_child" in gated["tables"]
    warned = [a for a in gated["alerts"] if a["asset_key"] == "main.warned"]
    assert len(warned) == 1 and "state_ok" in warned[0]["kind"] and "'odd'" in warned[0]["error"]


def test_blocking_failures_alert_with_their_reason(gated) -> None:
    by_asset = {a["asset_key"]: a for a in gated["alerts"]}
    assert "-5" in by_asset["main.base"]["error"]
    assert "older than error_after" in by_asset["landing.events"]["error"]


def test_dbt_error_test_gates_with_dbt_severity(gated) -> None:
    assert "tested" in gated["tables"] and "tested_child" not in gated["tables"]
    assert "not_null_tested_id" in gated["checks"].stdout


def test_a_stale_source_trips_its_freshness_check_and_blocks(gated) -> None:
    assert "from_stale" not in gated["tables"]
    assert "landing.events:freshness failed" in gated["run"].stdout
    assert "5.0d ago" in gated["checks"].stdout


def test_checks_are_task_runs_of_the_flow(gated) -> None:
    states = {r.name: r.state_name for r in gated["task_runs"]}
    assert states["main.base:amount_not_negative"] == "Failed"
    assert states["main.base:expect_column_values_to_be_unique__id"] == "Completed"
    assert states["landing.events:freshness"] == "Failed"
    assert states["main.gated_child"] not in ("Completed", "Failed")
    assert states["main.other_child"] == "Completed"


def test_checks_command_lists_failed_checks(gated) -> None:
    out = gated["checks"].stdout
    for name in ("amount_not_negative", "state_ok", "freshness", "not_null_tested_id"):
        assert name in out, name
    assert "main.other" not in out.replace("main.other_child", ""), "--failed hides passing checks"


def test_source_tests_gate_the_models_that_read_the_source(gated) -> None:
    assert "from_bad_source" not in gated["tables"]
    assert "source_unique_landing_orders_id" in gated["checks"].stdout


def test_retry_rechecks_and_a_still_failing_check_keeps_blocking(gated) -> None:
    out = gated["retry"].stdout
    assert "main.base" in out.split("\n")[0], "retry re-materializes the asset whose blocking check failed"
    assert not {"gated_child", "gated_grandchild"} & gated["retry_tables"]
    assert "blocking check main.base:amount_not_negative failed" in out
    assert gated["retry"].returncode == 1
