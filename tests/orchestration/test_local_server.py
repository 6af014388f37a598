"""`headwater server`: Prefect's real server started once in the background for a data folder, used by the runs after
it (no server of their own, every task run recorded there), reported by `--status`, stopped by `--stop`."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.conftest import free_port, run_cli
from tests.orchestration.test_inputs_cache import FILES, project_env
from tests.orchestration.test_state_foreign import write_files


def _answers(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_a_started_server_serves_every_later_run_until_stopped(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_files(project, FILES)
    env = project_env(
        tmp_path,
        project,
        PREFECT_HOME=str(tmp_path / "prefect_home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        CACHED_DB=str(tmp_path / "warehouse.duckdb"),
    )
    port = free_port()
    started = run_cli(["server", "--port", str(port)], env, check=False)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        info = json.loads((tmp_path / "data" / "prefect_server.json").read_text())
        assert info["api_url"] == f"http://127.0.0.1:{port}/api" and _answers(info["api_url"])
        again = run_cli(["server"], env, check=False)
        assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr

        run = run_cli(["materialize", "--dbt-project", str(project), "--profiles-dir", str(project)], env, check=False)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        out = " ".join(run.stdout.split())
        assert f"in Prefect's UI: http://127.0.0.1:{port}/runs/flow-run/" in out, out[-2000:]

        from prefect.client.orchestration import SyncPrefectClient
        from prefect.client.schemas.sorting import FlowRunSort

        with SyncPrefectClient(info["api_url"]) as client:
            runs = client.read_flow_runs(sort=FlowRunSort.ID_DESC, limit=10, offset=0)
            assert len(runs) == 1, "the run was recorded on the started server, not on one of its own"
            counted = client.request("POST", "/task_runs/count", json={}).json()
            beats = client.request(
                "POST",
                "/events/filter",
                json={
                    "filter": {
                        "event": {"name": ["prefect.flow-run.heartbeat"]},
                        "occurred": {"since": "2000-01-01T00:00:00Z"},
                        "order": "ASC",
                    },
                    "limit": 50,
                },
            ).json()["events"]
        assert counted == 2, "both models' task runs recorded on the started server"
        # the run's heartbeat (the CLI sends it, Prefect's own thread is off): one at the start, not two
        assert [b["resource"]["prefect.resource.id"] for b in beats] == [f"prefect.flow-run.{runs[0].id}"], beats
        assert [r["prefect.resource.role"] for r in beats[0]["related"]] == ["flow"], beats

        status = run_cli(["server", "--status"], env, check=False)
        assert status.returncode == 0 and info["api_url"] in status.stdout, status.stdout
    finally:
        stopped = run_cli(["server", "--stop"], env, check=False)
    assert stopped.returncode == 0 and f"port {port}" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not _answers(f"http://127.0.0.1:{port}/api")
    assert not (tmp_path / "data" / "prefect_server.json").exists()
    gone = run_cli(["server", "--status"], env, check=False)
    assert gone.returncode == 1 and "no Prefect server" in gone.stdout, gone.stdout
