"""Shared fixtures: an isolated data folder and Prefect home per test session, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRE_SERVICES = os.environ.get("HEADWATER_REQUIRE_SERVICES") == "1"


def base_env(data_dir: Path, prefect_home: Path) -> dict[str, str]:
    """The environment for a Headwater process that must not touch the developer's own data or Prefect."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "PREFECT_"))}
    env.update(
        HEADWATER_DATA_DIR=str(data_dir),
        HEADWATER_PROJECT_DIR=str(REPO),
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        RUNTIME__DLTHUB_TELEMETRY="false",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        COLUMNS="200",
    )
    return env


def run_cli(
    args: list[str], env: dict[str, str], *, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``headwater ARGS`` as the user would, in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"headwater {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prefect_home")


@pytest.fixture
def hw_env(tmp_path: Path, prefect_home: Path) -> dict[str, str]:
    return base_env(tmp_path / "data", prefect_home)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (HEADWATER_REQUIRE_SERVICES=1) a test skipped for a missing service fails instead."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and item.get_closest_marker("postgres") is not None:
        report.outcome = "failed"
        report.longrepr = f"HEADWATER_REQUIRE_SERVICES=1 but {item.nodeid} was skipped: {report.longrepr}"


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo project's real manifest, from an in-process ``dbt parse`` into a private folder."""
    from orchestration import dbt_executor
    from orchestration.project import Project
    from orchestration.targets import resolve_target

    data = tmp_path_factory.mktemp("manifest_data")
    old = os.environ.get("HEADWATER_DATA_DIR")
    os.environ["HEADWATER_DATA_DIR"] = str(data)
    try:
        project = Project.discover(REPO)
        return dbt_executor.parse(project, resolve_target(project, "dev"))
    finally:
        if old is None:
            os.environ.pop("HEADWATER_DATA_DIR", None)
        else:
            os.environ["HEADWATER_DATA_DIR"] = old
