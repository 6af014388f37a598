"""Half-configured projects: a broken file, a damaged run log, a dependency cycle, an unreachable run log, a read-only
data folder. Each is one line naming the file (and line) or the place, and the fix; exit 2; no traceback, which
``--debug`` shows. Runs over tests/fixtures/flaky_project (a dbt project Headwater did not create), copied."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, base_env, free_port, run_cli

FLAKY = REPO / "tests" / "fixtures" / "flaky_project"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> dict:
    root = tmp_path_factory.mktemp("config_errors")
    copy = root / "flaky_project"
    shutil.copytree(FLAKY, copy)
    env = base_env(root / "data", root / "prefect", prefect_server)
    env["FLAKY_DUCKDB_PATH"] = str(root / "flaky.duckdb")
    return {
        "root": root,
        "project": copy,
        "env": env,
        "args": ["--dbt-project", str(copy), "--profiles-dir", str(copy)],
    }


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in proc.stdout.splitlines() if "error:" in line]
    assert len(lines) >= 1, text[-3000:]
    joined = " ".join(proc.stdout.split())
    for needle in needles:
        assert needle in joined, joined[-2000:]
    return joined


def test_bad_yaml_in_profiles_names_the_file_and_line_and_debug_shows_the_traceback(project: dict) -> None:
    profiles = project["root"] / "bad_profiles"
    profiles.mkdir()
    text = (project["project"] / "profiles.yml").read_text()
    (profiles / "profiles.yml").write_text(text + "  extra: [unclosed\n")
    args = ["--dbt-project", str(project["project"]), "--profiles-dir", str(profiles)]
    proc = run_cli(["assets", *args], project["env"], check=False)
    _one_line_error(proc, f"{profiles / 'profiles.yml'}:", "not valid YAML", "fix the file")
    debug = run_cli(["--debug", "assets", *args], project["env"], check=False)
    assert "Traceback" in debug.stdout + debug.stderr and "ConfigFileError" in debug.stdout + debug.stderr


def test_bad_yaml_in_the_alerts_file_stops_the_run_before_it_starts_in_one_line(project: dict) -> None:
    alerts = project["root"] / "alerts.yml"
    alerts.write_text("alerts:\n  notifiers: {hook: {type: webhook, url: 'http://x'}\n")
    env = {**project["env"], "HEADWATER_ALERTS_FILE": str(alerts)}
    proc = run_cli(["materialize", *project["args"]], env, check=False)
    _one_line_error(proc, f"{alerts}:", "not valid YAML")


def test_a_misspelt_key_in_headwater_yml_is_an_error_with_its_line_and_the_nearest_key(project: dict) -> None:
    """Issue 29 finding 10: ``alert:`` for ``alerts:`` was ignored (alerting silently off); now one line per problem,
    before a flow run starts, naming the file, the line and the nearest valid key; nothing runs."""
    root = project["root"] / "typo_root"
    root.mkdir()
    (root / "headwater.yml").write_text(
        "python_assets: []\nalert:\n  notifiers:\n    hook: {type: webhook, url: 'http://127.0.0.1:9'}\n"
        "automation:\n  marts: {select: 'kind:dbt', on_upstream_updates: true}\n"
    )
    proc = run_cli(["materialize", "--project-dir", str(root), *project["args"]], project["env"], check=False)
    text = _one_line_error(
        proc,
        f"{root / 'headwater.yml'}:2: unknown key 'alert' in the top level; did you mean 'alerts'?",
        f"{root / 'headwater.yml'}:6: unknown key 'on_upstream_updates' in automation.marts; did you mean "
        "'on_upstream_update'?",
    )
    assert "flow run" not in text and "prepare manifest" not in text, "found before a flow run starts"


def test_a_damaged_run_log_file_says_so_and_what_to_do(project: dict) -> None:
    data = Path(project["env"]["HEADWATER_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    log = data / "run_log_local.sqlite"
    log.write_bytes(b"this is not a database " * 200)
    try:
        proc = run_cli(["status", *project["args"]], project["env"], check=False)
        _one_line_error(proc, f"{log}: not a readable run log", "move it aside")
    finally:
        log.unlink()


def test_a_dependency_cycle_names_its_path_and_files(project: dict, tmp_path: Path) -> None:
    copy = tmp_path / "cyclic"
    shutil.copytree(project["project"], copy)
    models = copy / "models"
    (models / "loop_a.sql").write_text("select * from {{ ref('loop_b') }}\n")
    (models / "loop_b.sql").write_text("select * from {{ ref('loop_a') }}\n")
    args = ["--dbt-project", str(copy), "--profiles-dir", str(copy)]
    for command in (["assets"], ["materialize"]):
        proc = run_cli([*command, *args], project["env"], check=False)
        # dbt's parse or Headwater's graph finds it; either way one line that names both models
        _one_line_error(proc, "cycle", "loop_a", "loop_b")


def test_an_unreachable_run_log_warehouse_is_one_line(project: dict) -> None:
    env = {
        **project["env"],
        "HEADWATER_PG_HOST": "127.0.0.1",
        "HEADWATER_PG_PORT": str(free_port()),  # nothing listens there
        "HEADWATER_PG_USER": "headwater",
        "HEADWATER_PG_PASSWORD": "unused",
        "HEADWATER_PG_DATABASE": "warehouse",
    }
    for command in (["checks", "--target", "postgres"], ["status", "--target", "postgres"]):
        proc = run_cli(command, env, check=False)  # the demo project's profile has the postgres target
        _one_line_error(proc, "the run log lives in the warehouse", "does not answer")


def test_reading_commands_work_on_a_read_only_data_folder(project: dict) -> None:
    """A data folder mounted read-only (a bind mount; the tests run as root, which no file mode stops)."""
    env = project["env"]
    assert run_cli(["materialize", *project["args"], "-s", "base sibling"], env, check=False).returncode in (0, 1)
    data = Path(env["HEADWATER_DATA_DIR"])
    mounted = project["root"] / "data_read_only"
    mounted.mkdir()
    bind = subprocess.run(["mount", "--bind", str(data), str(mounted)], capture_output=True, text=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({bind.stderr.strip()}): needs root in a mount namespace, as in CI")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(mounted)], capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        read_only = {**env, "HEADWATER_DATA_DIR": str(mounted)}
        for command, shows in ((["status"], "main.base"), (["assets"], "main.base"), (["checks"], "not_null")):
            proc = run_cli([*command, *project["args"]], read_only, check=False)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
            assert shows in proc.stdout, proc.stdout[-2000:]
    finally:
        subprocess.run(["umount", str(mounted)], check=False)
