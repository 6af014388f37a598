"""kill -9 in the middle of a dbt build: `headwater retry` completes the run without rebuilding what finished."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from tests.conftest import REPO, base_env, run_cli

PROJECT = REPO / "tests" / "fixtures" / "slow_project"
ARGS = ["--dbt-project", str(PROJECT), "--profiles-dir", str(PROJECT)]


def _succeeded(run_log: Path) -> set[str]:
    if not run_log.exists():
        return set()
    try:
        with sqlite3.connect(run_log) as con:
            return {r[0] for r in con.execute("select asset_key from materializations where status = 'success'")}
    except sqlite3.OperationalError:  # the table is not there yet
        return set()


def test_retry_after_kill_9_mid_build_runs_only_what_did_not_finish(tmp_path: Path, prefect_server: str) -> None:
    env = base_env(tmp_path / "data", tmp_path / "prefect", prefect_server)
    warehouse = tmp_path / "slow.duckdb"
    env["SLOW_DUCKDB_PATH"] = str(warehouse)
    building = env["SLOW_MARKER"] = str(tmp_path / "slow_is_building")
    run_log = tmp_path / "data" / "run_log_local.sqlite"

    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "materialize", *ARGS],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    # base's checkpoint is in the run log, and slow.py wrote its marker as it started building (it then waits)
    while "main.base" not in _succeeded(run_log) or not Path(building).exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "slow never started building"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _succeeded(run_log) == {"main.base"}, "only base finished before the kill"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        built_at = con.execute("select max(built_at) from main.base").fetchone()[0]
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    assert "after_slow" not in tables

    retry = run_cli(["retry", *ARGS], env, check=False)
    assert retry.returncode == 0, retry.stdout[-3000:] + retry.stderr[-3000:]
    text = " ".join(retry.stdout.split())
    assert "did not finish (killed or crashed): 1 asset(s) completed" in text and "2 left to run" in text
    with sqlite3.connect(run_log) as con:
        runs = con.execute("select run_id, status from runs order by started_at").fetchall()
        retried = {r[0] for r in con.execute("select asset_key from materializations where run_id = ?", (runs[-1][0],))}
    assert runs[-1][1] == "success" and retried == {"main.slow", "main.after_slow"}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select max(built_at) from main.base").fetchone()[0] == built_at, "base was rebuilt"
        assert con.execute("select count(*) from main.after_slow").fetchone()[0] == 10
