"""dbt's ``state:`` and ``source_status:`` selection through the real CLI, on a foreign dbt project and a real DuckDB
file: Headwater selects what ``dbt ls --state`` selects (the deployed state by default, or ``--state DIR``), a
``materialize -s state:modified+`` builds the edited model and its downstream, and a ``--state`` folder without a
manifest is one clear error after which everything selected is built (never skip on doubt)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_cli
from tests.orchestration.test_state_foreign import FILES, _run, foreign_project, write_files

SOURCES = """
    version: 2
    sources:
      - name: ext
        schema: ext
        config:
          loaded_at_field: loaded_at
          freshness:
            warn_after: {count: 1, period: day}
        tables:
          - name: events
"""
EVERYTHING = {"main.daily_events", "main.region_names", "main.events_by_region", "main.regions"}


@pytest.fixture
def project(tmp_path: Path, prefect_server: str):
    """A fresh copy of the foreign project (whose source has a freshness block) with its own warehouse."""
    return foreign_project(tmp_path, prefect_server, {**FILES, "models/sources.yml": SOURCES})


def _headwater_ls(project, expression: str, *extra: str) -> tuple[set[str], str]:
    proc = run_cli(["assets", "--output", "json", "-s", expression, *extra, *project["args"]], project["env"])
    ids = {json.loads(line)["unique_id"] for line in proc.stdout.splitlines() if line.startswith("{")}
    return ids, proc.stdout


def _dbt(project, *args: str, target_path: Path | None = None) -> subprocess.CompletedProcess:
    """Plain dbt in its own process (dbt-duckdb would keep the file open in this one)."""
    dbt = Path(sys.executable).parent / "dbt"
    where = ["--project-dir", str(project["dir"]), "--profiles-dir", str(project["dir"])]
    command = [str(dbt), "--quiet", *args, *where, "--target-path", str(target_path or project["root"] / "dbt_target")]
    return subprocess.run(command, env=project["env"], capture_output=True, text=True, timeout=300)


def _dbt_ls(project, expression: str, state: Path) -> set[str]:
    proc = _dbt(
        project, "ls", "-s", expression, "--state", str(state), "--output", "json", "--output-keys", "unique_id"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {json.loads(line)["unique_id"] for line in proc.stdout.splitlines() if line.startswith("{")}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_state_methods_select_what_dbt_ls_selects_against_the_deployed_state(project) -> None:
    saved = run_cli(["plan", "--save", *project["args"]], project["env"])
    assert "deployed state of local saved" in saved.stdout, saved.stdout
    deployed = project["root"] / "data" / "state" / "local"
    assert (deployed / "manifest.json").is_file()

    models = project["dir"] / "models"
    _edit(models / "region_names.sql", "upper(name)", "lower(name)")  # the body
    (models / "region_counts.sql").write_text("select count(*) as n from {{ ref('region_names') }}\n")  # new
    (models / "daily.yml").write_text(
        "version: 2\nmodels:\n  - name: daily_events\n    config:\n      materialized: table\n"
    )  # a config

    expected = {
        "state:modified": {
            "model.foreign.region_names",
            "model.foreign.region_counts",
            "model.foreign.daily_events",
        },
        "state:modified+": {
            "model.foreign.region_names",
            "model.foreign.region_counts",
            "model.foreign.daily_events",
            "model.foreign.events_by_region",
        },
        "state:new": {"model.foreign.region_counts"},
        "state:modified.body": {"model.foreign.region_names", "model.foreign.region_counts"},
        "state:modified.configs": {"model.foreign.region_counts", "model.foreign.daily_events"},
    }
    for expression, nodes in expected.items():
        ours, out = _headwater_ls(project, expression)  # no --state: the deployed state
        assert ours == _dbt_ls(project, expression, deployed), expression
        assert ours == nodes, f"{expression}: {sorted(ours)}\n{out[-2000:]}"


def test_source_status_fresher_selects_the_downstream_of_a_source_with_new_rows(project) -> None:
    state = project["root"] / "prod_artifacts"
    proc = _dbt(project, "source", "freshness", target_path=state)
    assert (state / "sources.json").is_file(), proc.stdout + proc.stderr
    _dbt(project, "parse", target_path=state)  # the manifest beside it, as a production target/ holds

    nothing, _ = _headwater_ls(project, "source_status:fresher+", "--state", str(state))
    assert nothing == set(), "no new rows: nothing is fresher"

    with duckdb.connect(str(project["warehouse"])) as con:
        con.execute("insert into ext.events values (3, 1, '2026-11-02 09:00')")
    ours, _ = _headwater_ls(project, "source_status:fresher+", "--state", str(state))
    assert ours == {"source.foreign.ext.events", "model.foreign.daily_events", "model.foreign.events_by_region"}


def test_materialize_state_modified_builds_the_edit_and_a_bad_state_folder_builds_everything(project) -> None:
    built, _, _ = _run(project)
    assert built == EVERYTHING
    run_cli(["plan", "--save", *project["args"]], project["env"])
    _edit(project["dir"] / "models" / "region_names.sql", "upper(name)", "lower(name)")

    proc = run_cli(["materialize", "-s", "state:modified+", *project["args"]], project["env"], check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    built, fresh, out = _run_log(project)
    assert built == {"main.region_names", "main.events_by_region"}, out

    empty = project["root"] / "no_artifacts"
    empty.mkdir()
    listed, out = _headwater_ls(project, "state:modified", "--state", str(empty))
    assert f"{empty / 'manifest.json'} is missing" in " ".join(out.split()), out
    assert {"model.foreign.daily_events", "seed.foreign.regions"} <= listed, "on doubt, every node matches"

    proc = run_cli(
        ["materialize", "-s", "state:modified", "--state", str(empty), *project["args"]], project["env"], check=False
    )
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "is missing" in out and "matches every node" in out, out[-3000:]
    built, fresh, _ = _run_log(project)
    assert built == EVERYTHING and not fresh, "a state that cannot be compared with: everything selected is built"


def _run_log(project) -> tuple[set[str], set[str], str]:
    import sqlite3

    log = next(Path(project["root"] / "data").glob("run_log_*.sqlite"))
    with sqlite3.connect(log) as con:
        run_id = con.execute("select run_id from runs order by started_at desc limit 1").fetchone()[0]
        rows = dict(con.execute("select asset_key, status from materializations where run_id = ?", (run_id,)))
    return {k for k, s in rows.items() if s == "success"}, {k for k, s in rows.items() if s == "fresh"}, str(rows)


def test_a_corrupt_run_log_is_one_clear_error_and_everything_is_built(project) -> None:
    built, _, _ = _run(project)
    assert built == EVERYTHING
    log = next(Path(project["root"] / "data").glob("run_log_*.sqlite"))
    log.write_bytes(b"this is not a SQLite database " * 100)

    proc = run_cli(["materialize", *project["args"]], project["env"], check=False)
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "not state-aware" in out and str(log.name) in out, out[-3000:]
    built, fresh, _ = _run_log(project)
    assert built == EVERYTHING and not fresh


def test_a_run_log_of_another_project_is_one_clear_error_and_everything_is_built(project, tmp_path: Path) -> None:
    built, _, _ = _run(project)
    assert built == EVERYTHING
    other = tmp_path / "other"
    write_files(other, {**FILES, "dbt_project.yml": FILES["dbt_project.yml"].replace("foreign", "other", 1)})
    args = ["--dbt-project", str(other), "--profiles-dir", str(other)]
    proc = run_cli(["materialize", *args], project["env"], check=False)  # the same data folder: the same run log
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "not state-aware" in out and "foreign" in out, out[-3000:]
