"""Two runs on one target: the second is refused with a clear message, or waits and runs after the first.

DuckDB: a file lock beside the warehouse; PostgreSQL: an advisory lock. Both die with their holder, so a run
killed with SIGKILL never leaves the target locked.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO, base_env, postgres_env, run_cli, start_cli


def _wait_for_holder(lock: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().strip():
            return json.loads(lock.read_text())
        time.sleep(0.2)
    raise AssertionError(f"nobody took {lock} within {timeout} s")


def test_second_run_on_duckdb_is_refused_then_waits_and_runs_after(tmp_path: Path, prefect_server: str) -> None:
    env = base_env(tmp_path / "data", tmp_path / "prefect", prefect_server)
    run_cli(["demo"], env)
    lock = tmp_path / "data" / "headwater.lock"

    first = start_cli(["materialize"], env)
    holder = _wait_for_holder(lock)
    assert holder["pid"] == first.pid
    refused = run_cli(["ingest"], env, check=False)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-3000:]
    assert refused.returncode == 2
    message = " ".join(refused.stdout.split())
    assert f"target dev is busy: another Headwater run holds it (pid {first.pid}" in message
    assert "HEADWATER_LOCK_TIMEOUT" in message and "Traceback" not in refused.stdout + refused.stderr

    waiting = {**env, "HEADWATER_LOCK_TIMEOUT": "600"}
    a = start_cli(["materialize"], waiting)
    _wait_for_holder(lock)
    b = start_cli(["materialize"], waiting)
    for proc in (a, b):
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-3000:]
    with sqlite3.connect(tmp_path / "data" / "run_log_dev.sqlite") as con:
        runs = con.execute("select started_at, ended_at from runs order by started_at").fetchall()
    assert len(runs) == 3
    assert runs[2][0] >= runs[1][1], f"the waiting run started before the other ended: {runs}"
    with duckdb.connect(str(tmp_path / "data" / "headwater.duckdb"), read_only=True) as con:
        raw, distinct = con.execute("select count(*), count(distinct id) from raw_shop.orders").fetchone()
        marts = con.execute("select count(*) from marts.orders").fetchone()[0]
    assert raw == distinct == marts, "no duplicate and no lost row after three runs"


def test_a_killed_holder_frees_the_duckdb_target(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", tmp_path / "prefect")
    holder = _hold_lock_in_a_child(env, "dev")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    _assert_lock_free(env, "dev")


@pytest.mark.postgres
def test_second_run_on_postgres_is_refused_and_a_killed_holder_frees_it(pg_database: str, tmp_path: Path) -> None:
    env = postgres_env(base_env(tmp_path / "data", tmp_path / "prefect"), pg_database)
    holder = _hold_lock_in_a_child(env, "postgres")
    refused = run_cli(["ingest", "--target", "postgres"], env, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "target postgres is busy" in " ".join(refused.stdout.split())
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    _assert_lock_free(env, "postgres")


_HOLD = """
import sys, time
from orchestration.project import Project
from orchestration.warehouse.lock import target_lock
from orchestration.warehouse.targets import resolve_target
project = Project.discover()
with target_lock(project, resolve_target(project, sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold_lock_in_a_child(env: dict[str, str], target: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, target], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _assert_lock_free(env: dict[str, str], target: str) -> None:
    check = subprocess.run(
        [sys.executable, "-c", _HOLD.replace("time.sleep(600)", "pass"), target],
        cwd=REPO,
        env={**env, "HEADWATER_LOCK_TIMEOUT": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0 and "held" in check.stdout, check.stderr[-2000:]
