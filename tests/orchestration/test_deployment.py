"""Production path, really run: a PostgreSQL-backed Prefect server, `headwater deploy`, a process worker,
deployment runs against a PostgreSQL warehouse, the deployment concurrency limit, and the failure automation.

Everything runs on loopback: the Prefect server keeps its state in its own PostgreSQL database, the
warehouse is another one; the alert receiver is a local HTTP server standing in for the webhook (a fake:
Slack/PagerDuty are unreachable here). Every process started here is stopped at the end.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time

import pytest
import sqlalchemy as sa

from tests.conftest import (
    REPO,
    Receiver,
    base_env,
    prefect_worker,
    read_task_runs,
    run_cli,
    running_prefect_server,
    store_secret,
)

pytestmark = pytest.mark.postgres
POOL = "hw-test-pool"
PLANTED = "hw-planted-secret-7f3a9c"
"""The warehouse password (trust auth ignores it), held only in a Prefect Secret block; it must appear nowhere."""
FINAL = ("Completed", "Failed", "Crashed", "Cancelled")


def wait_for(api: str, flow_run_id, timeout: float = 600):
    from prefect.client.orchestration import SyncPrefectClient

    deadline = time.monotonic() + timeout
    with SyncPrefectClient(api) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(flow_run_id)
            if run.state_name in FINAL:
                return run
            time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} not final after {timeout} s (state {run.state_name})")


def trigger(api: str, name: str, **parameters):
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api) as client:
        deployment = client.read_deployment_by_name(f"headwater-materialize/{name}")
        return client.create_flow_run_from_deployment(deployment.id, parameters=parameters or None).id


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, make_pg_database):
    root = tmp_path_factory.mktemp("production")
    server_db = sa.make_url(make_pg_database("prefect")).set(drivername="postgresql+asyncpg", password="unused")
    warehouse = sa.make_url(make_pg_database("warehouse"))
    receiver = Receiver()
    (root / "server").mkdir()
    with running_prefect_server(root / "server", server_db.render_as_string(hide_password=False)) as api:
        env = base_env(root / "data", root / "client")
        env.update(PREFECT_API_URL=api, HEADWATER_ALERT_WEBHOOK_URL=f"{receiver.url}/hook")
        where = {  # deploy names the assets its triggers listen to by the warehouse the workers write to
            "HEADWATER_PG_HOST": warehouse.host,
            "HEADWATER_PG_PORT": str(warehouse.port),
            "HEADWATER_PG_USER": warehouse.username,
            "HEADWATER_PG_DATABASE": warehouse.database,
        }
        stored = store_secret("HEADWATER_PG_PASSWORD", PLANTED, env)
        # paused: a schedule firing mid-test would add runs; the test triggers each run itself (triggers stay on)
        deployed = run_cli(["deploy", "--target", "postgres", "--work-pool", POOL, "--paused"], {**env, **where})
        worker_env = base_env(root / "worker_data", root / "worker")
        worker_env.update(
            PREFECT_API_URL=api, PREFECT_WORKER_QUERY_SECONDS="1", **where
        )  # no HEADWATER_PG_PASSWORD: the flow reads it from the Secret block at run time
        with contextlib.closing(receiver), prefect_worker(POOL, worker_env, root / "worker.log"):
            nightly = wait_for(api, trigger(api, "nightly-full"))
            # new data in both sources' inputs, but only raw_marketing is ingested (a deployment run): the compiled
            # trigger must start one reactive run, which builds what reads raw_marketing and nothing else
            run_cli(["demo", "--advance"], worker_env)
            ingest_only = wait_for(
                api, trigger(api, "nightly-full", selection="source:raw_marketing", full_refresh=False)
            )
            reactive = wait_for(api, first_reactive_run(api))
            # at once: two runs of one deployment, and a run of the other deployment on the same target
            queued = [
                trigger(api, "hourly-incremental"),
                trigger(api, "hourly-incremental"),
                trigger(api, "nightly-full", selection="channels", full_refresh=False),
            ]
            hourly = [wait_for(api, run_id) for run_id in queued]
            broken_project = root / "broken_dbt_project"
            shutil.copytree(REPO / "dbt_project", broken_project, ignore=shutil.ignore_patterns("target", "logs"))
            (broken_project / "models" / "marts" / "broken_for_test.sql").write_text(
                "select * from {{ ref('orders') }} join table_that_does_not_exist using (order_id)"
            )
            broken = wait_for(
                api,
                trigger(
                    api, "hourly-incremental", dbt_project=str(broken_project), profiles_dir=str(REPO / "profiles")
                ),
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not receiver.by_path("/hook"):
                time.sleep(1)
            task_runs = read_task_runs(api, str(nightly.id), expect_at_least=100)
            recorded = everything_recorded(api, [nightly, *hourly, broken])
            events = asset_events(api, [ingest_only, reactive])
            reactive_task_runs = read_task_runs(api, str(reactive.id))
            reactive_logs = task_run_logs(api, reactive.id)
            reactive_artifacts = artifacts_of(api, reactive.id)
            broken_task_runs = read_task_runs(api, str(broken.id))
            reactive_runs = reactive_run_ids(api)  # still one, minutes and five runs later
    engine = sa.create_engine(warehouse)
    yield {
        "deployed": deployed,
        "stored": stored,
        "recorded": recorded,
        "files": files_text(root / "worker_data") + files_text(root / "data"),
        "nightly": nightly,
        "hourly": hourly,
        "broken": broken,
        "task_runs": task_runs,
        "alerts": receiver.by_path("/hook"),
        "engine": engine,
        "worker_log": (root / "worker.log").read_text(),
        "ingest_only": ingest_only,
        "reactive": reactive,
        "reactive_runs": reactive_runs,
        "events": events,
        "reactive_task_runs": reactive_task_runs,
        "reactive_logs": reactive_logs,
        "reactive_artifacts": reactive_artifacts,
        "broken_task_runs": broken_task_runs,
        "warehouse": warehouse,
    }
    engine.dispose()


def reactive_run_ids(api: str) -> list[str]:
    """The flow runs of the deployment the automations start."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api) as client:
        deployment = client.read_deployment_by_name("headwater-materialize/reactive")
        body = {
            "deployments": {"id": {"any_": [str(deployment.id)]}},
            "sort": "START_TIME_ASC",
            "limit": 50,
            "offset": 0,
        }
        return [r["id"] for r in client.request("POST", "/flow_runs/filter", json=body).json()]


def first_reactive_run(api: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = reactive_run_ids(api)
        if runs:
            return runs[0]
        time.sleep(1)
    raise AssertionError(f"no run of headwater-materialize/reactive within {timeout} s: the trigger did not fire")


def asset_events(api: str, runs) -> list[dict]:
    """The asset and check events related to ``runs``, from the server's events API."""
    from prefect.client.orchestration import SyncPrefectClient

    body = {
        "filter": {
            "event": {"prefix": ["prefect.asset.", "headwater.asset."]},
            "related": {"id": [f"prefect.flow-run.{r.id}" for r in runs]},
            "occurred": {"since": "2000-01-01T00:00:00Z"},
            "order": "ASC",
        },
        "limit": 50,
    }
    found: list[dict] = []
    with SyncPrefectClient(api) as client:
        page = client.request("POST", "/events/filter", json=body).json()
        found.extend(page["events"])
        while page.get("next_page"):
            page = client._client.get(page["next_page"]).json()
            found.extend(page["events"])
    return found


def task_run_logs(api: str, flow_run_id) -> dict[str, list[str]]:
    """Each task run's log lines (by task run id) of a flow run."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    lines: dict[str, list[str]] = {}
    with SyncPrefectClient(api) as client:
        flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        offset = 0
        while True:
            page = client.read_logs(log_filter=flt, sort=LogSort.TIMESTAMP_ASC, limit=200, offset=offset)
            offset += len(page)
            for log in page:
                lines.setdefault(str(log.task_run_id), []).append(log.message)
            if len(page) < 200:
                return lines


def artifacts_of(api: str, flow_run_id) -> list[dict]:
    from prefect.client.orchestration import SyncPrefectClient

    body = {
        "artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}},
        "sort": "CREATED_DESC",
        "limit": 50,
        "offset": 0,
    }
    with SyncPrefectClient(api) as client:
        return client.request("POST", "/artifacts/filter", json=body).json()


def everything_recorded(api: str, runs) -> str:
    """Flow-run parameters and states, task-run states, logs and artifacts of ``runs``, as one text."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    ids = [r.id for r in runs]
    parts = []
    with SyncPrefectClient(api) as client:
        for run in runs:
            fresh = client.read_flow_run(run.id)
            parts.append(f"{fresh.parameters} {fresh.state.message} {fresh.state.data}")
        flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids))
        logs: list[str] = []
        while True:  # this server rejects limit/offset left unset: page explicitly
            page = client.read_logs(log_filter=flt, sort=LogSort.TIMESTAMP_ASC, limit=200, offset=len(logs))
            logs.extend(log.message for log in page)
            if len(page) < 200:
                break
        parts.extend(logs)
        # read_artifacts sends its unset filters as nulls, which this server rejects: ask directly
        body = {"sort": "CREATED_DESC", "limit": 200, "offset": 0}
        parts.extend(str(a) for a in client.request("POST", "/artifacts/filter", json=body).json())
    for run in runs:
        for task_run in read_task_runs(api, str(run.id), timeout=10):
            parts.append(f"{task_run.name} {task_run.state.message if task_run.state else ''}")
    return "\n".join(parts)


def files_text(folder) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def scalar(production, sql: str):
    with production["engine"].connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def test_deploy_registers_both_deployments_and_the_automation(production) -> None:
    out = production["deployed"].stdout
    assert "headwater-materialize/hourly-incremental" in out and "headwater-materialize/nightly-full" in out
    assert "0 * * * * UTC" in out and "0 2 * * * UTC" in out
    assert "failed or crashed runs notify ops-webhook" in out
    assert "headwater-target-postgres" in out
    assert "headwater-materialize/reactive" in out and "downstream-of-new-data" in out


def test_a_deployment_run_completes_on_the_worker_against_postgres(production) -> None:
    nightly = production["nightly"]
    assert nightly.state_name == "Completed", f"{nightly.state.message}\n{production['worker_log'][-3000:]}"
    assert production["nightly"].parameters == {"target": "postgres", "full_refresh": True}
    assert scalar(production, "select count(*) from marts.orders") > 0
    assert scalar(production, "select count(*) from marts.marketing_roi") > 0


def test_every_model_is_a_task_run_of_the_deployment_run(production) -> None:
    states = {r.name: r.state_name for r in production["task_runs"]}
    for key in ("raw_shop.orders", "staging.stg_shop__orders", "marts.orders", "marts.customers"):
        assert states.get(key) == "Completed", key
    assert any(name.startswith("marts.orders:") for name in states), "checks are task runs too"


def test_check_results_are_recorded_in_the_warehouse(production) -> None:
    run_id = str(production["nightly"].id)
    assert scalar(production, f"select count(*) from headwater.check_results where run_id = '{run_id}'") > 50
    assert scalar(production, f"select status from headwater.runs where run_id = '{run_id}'") == "success"


def test_two_runs_of_one_deployment_never_overlap(production) -> None:
    first, second = sorted(production["hourly"][:2], key=lambda r: r.start_time)
    assert first.state_name == second.state_name == "Completed", [first.state.message, second.state.message]
    assert second.start_time >= first.end_time, "the deployment's concurrency limit must hold the second run back"


def test_runs_on_overlapping_assets_take_turns(production) -> None:
    """Per-asset locks serialize the work itself (recorded in the run log) wherever two runs' assets overlap."""
    ids = ", ".join(f"'{r.id}'" for r in production["hourly"])
    with production["engine"].connect() as conn:
        spans = conn.execute(
            sa.text(
                f"select run_id, started_at, ended_at, status from headwater.runs where run_id in ({ids}) order by 2"
            )
        ).fetchall()
    assert [s.status for s in spans] == ["success"] * 3
    assets = {s.run_id: set(_built(production, type("R", (), {"id": s.run_id}))) for s in spans}
    for i, earlier in enumerate(spans):
        for later in spans[i + 1 :]:
            if assets[earlier.run_id] & assets[later.run_id]:
                assert later.started_at >= earlier.ended_at, "two runs worked on the same assets at the same time"


def test_a_failed_run_fires_the_automation_alert(production) -> None:
    assert production["broken"].state_name == "Failed"
    bodies = [a for a in production["alerts"] if a.get("kind") == "flow_run_failed"]
    assert bodies, "the automation's webhook did not arrive"
    assert "Failed" in bodies[0]["subject"] and "hourly-incremental" in bodies[0]["body"]
    assert "broken_for_test" in bodies[0]["body"]


def test_the_secret_block_is_resolved_at_run_time_and_appears_nowhere(production) -> None:
    assert production["nightly"].state_name == "Completed", "the password came from the Secret block"
    assert PLANTED not in production["stored"].stdout + production["stored"].stderr
    assert PLANTED not in production["deployed"].stdout + production["worker_log"]
    assert PLANTED not in production["recorded"], "flow parameters, states, task runs, logs or artifacts"
    assert PLANTED not in production["files"], "a file the runs wrote (dlt state, dbt artifacts, GX, logs)"
    assert PLANTED not in str(production["alerts"])
    with production["engine"].connect() as conn:
        for table in ("runs", "materializations", "check_results"):
            rows = conn.execute(sa.text(f"select * from headwater.{table}")).fetchall()
            assert PLANTED not in str(rows), table


def _built(production, run) -> dict[str, str]:
    with production["engine"].connect() as conn:
        rows = conn.execute(
            sa.text("select asset_key, kind from headwater.materializations where run_id = :r and status = 'success'"),
            {"r": str(run.id)},
        ).fetchall()
    return {r.asset_key: r.kind for r in rows}


def test_an_ingest_starts_exactly_one_reactive_run_that_builds_only_its_stale_downstream(production, manifest):
    """headwater.yml's `downstream-of-new-data` (kind:dbt, on_upstream_update) compiled by `headwater deploy` into a
    trigger of the `reactive` deployment: an ingest of raw_marketing alone starts one run, which builds what reads
    the tables that loaded rows. The earlier full run and the later runs that built their own downstream started
    none."""
    from orchestration.engine.plan import asset_graph

    ingest_only, reactive = production["ingest_only"], production["reactive"]
    assert ingest_only.state_name == "Completed", ingest_only.state.message
    loaded = {k for k, kind in _built(production, ingest_only).items() if kind == "dlt"}
    assert loaded and all(k.startswith("raw_marketing.") for k in loaded), loaded
    assert production["reactive_runs"] == [str(reactive.id)], "exactly one run must start, and only one"
    assert reactive.state_name == "Completed", f"{reactive.state.message}\n{production['worker_log'][-3000:]}"
    assert reactive.parameters["selection"] == "kind:dbt"
    graph = asset_graph(manifest)
    loaded_keys = {k for k in graph.specs if str(k) in loaded}
    expected = {str(k) for k in graph.downstream(loaded_keys) if graph.specs[k].builds}
    assert expected, "raw_marketing feeds models"
    assert set(_built(production, reactive)) == expected


def test_asset_events_name_the_warehouse_relation_and_their_upstream(production) -> None:
    w = production["warehouse"]
    base = f"postgres://{w.host}:{w.port}/{w.database}"
    events = production["events"]
    ingest_id, reactive_id = str(production["ingest_only"].id), str(production["reactive"].id)

    def of(run_id: str, name: str) -> dict[str, dict]:
        related = f"prefect.flow-run.{run_id}"
        return {
            e["resource"]["headwater.asset"]: e
            for e in events
            if e["event"] == name and any(r["prefect.resource.id"] == related for r in e["related"])
        }

    loaded = of(ingest_id, "prefect.asset.materialization.succeeded")
    assert "raw_marketing.ad_spend" in loaded, sorted(loaded)
    ad_spend = loaded["raw_marketing.ad_spend"]
    assert ad_spend["resource"]["prefect.resource.id"] == f"{base}/raw_marketing/ad_spend"
    assert ",downstream-of-new-data," in ad_spend["resource"]["headwater.pending"]
    assert ad_spend["payload"]["rows"] > 0 and ad_spend["payload"]["run_id"] == ingest_id
    built = of(reactive_id, "prefect.asset.materialization.succeeded")
    assert set(built) == set(_built(production, production["reactive"]))
    staging = built["staging.stg_marketing__ad_spend"]
    upstream = {r["prefect.resource.id"] for r in staging["related"] if r["prefect.resource.role"] == "asset"}
    assert upstream == {f"{base}/raw_marketing/ad_spend"}
    assert staging["resource"]["headwater.pending"] == ",,", "a run that built the set leaves no work to the trigger"
    assert staging["payload"]["code_version"]
    referenced = of(reactive_id, "prefect.asset.referenced")
    assert "raw_marketing.ad_spend" in referenced
    checks = [e for e in events if e["event"].startswith("headwater.asset.check.")]
    staging_checks = staging["payload"]["checks"]  # a materialized asset's passing checks ride on its event
    assert staging_checks and all(
        status == "pass" or any(e["resource"]["headwater.asset"] == "staging.stg_marketing__ad_spend" for e in checks)
        for status in staging_checks.values()
    ), (staging_checks, checks[:3])


def test_the_reactive_run_shows_its_work_in_prefect(production) -> None:
    logs = production["reactive_logs"]
    built = [r for r in production["reactive_task_runs"] if r.state_name == "Completed" and not r.name.count(":")]
    assert built
    for task_run in built:
        lines = logs.get(str(task_run.id), [])
        assert any("(attempt 1)" in line for line in lines), (task_run.name, lines)
    messages = {r.name: r.state.message for r in built}
    assert re.fullmatch(r"\d+ rows", messages["marts.marketing_roi"] or ""), messages  # a table: PostgreSQL counts
    assert any(a["key"] == "headwater-run-summary" or a["type"] == "markdown" for a in production["reactive_artifacts"])
    broken = {r.name: r for r in production["broken_task_runs"]}
    failed = broken["marts.broken_for_test"]
    assert failed.state_name == "Failed"
    assert "table_that_does_not_exist" in failed.state.message
