"""State-aware runs over a foreign dbt project (``--dbt-project``) whose source Headwater does not load: a real
DuckDB file, the real CLI. Nothing changed: the second run builds nothing. The source's ``loaded_at_field`` moves:
exactly the models downstream of it are rebuilt, those reading only the seed stay fresh."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import duckdb
import pytest

from tests.conftest import base_env, read_task_runs, run_cli
from tests.orchestration.test_engine import flow_run_id

FILES = {
    "dbt_project.yml": """
        name: foreign
        version: "1.0"
        profile: foreign
        model-paths: [models]
        seed-paths: [seeds]
    """,
    "profiles.yml": """
        foreign:
          target: local
          outputs:
            local: {type: duckdb, path: "{{ env_var('FOREIGN_DUCKDB_PATH') }}", threads: 2}
    """,
    "seeds/regions.csv": "region_id,name\n1,north\n2,south\n",
    "models/sources.yml": """
        version: 2
        sources:
          - name: ext
            schema: ext
            config:
              loaded_at_field: loaded_at
            tables:
              - name: events
    """,
    "models/daily_events.sql": "select cast(loaded_at as date) as day, count(*) as n from {{ source('ext', 'events') }} group by 1",
    "models/region_names.sql": "select region_id, upper(name) as name from {{ ref('regions') }}",
    "models/events_by_region.sql": """
        select r.name, count(*) as n
        from {{ source('ext', 'events') }} e join {{ ref('region_names') }} r on e.region_id = r.region_id
        group by 1
    """,
}


def write_files(folder: Path, files: dict[str, str]) -> None:
    """A dbt project from ``{relative path: text}`` (the text dedented)."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def foreign_project(root: Path, api_url: str, files: dict[str, str] = FILES) -> dict:
    """The foreign project under ``root`` with its own DuckDB warehouse, whose ``ext.events`` holds two rows, and the
    environment and arguments that run ``headwater`` over it against the started Prefect server."""
    project = root / "foreign"
    write_files(project, files)
    warehouse = root / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema ext")
        con.execute("create table ext.events (id int, region_id int, loaded_at timestamp)")
        con.execute("insert into ext.events values (1, 1, '2026-11-01 10:00'), (2, 2, '2026-11-01 11:00')")
    env = base_env(root / "data", root / "prefect_home", api_url=api_url)
    env["FOREIGN_DUCKDB_PATH"] = str(warehouse)
    args = ["--dbt-project", str(project), "--profiles-dir", str(project)]
    return {"env": env, "args": args, "root": root, "dir": project, "warehouse": warehouse, "api": api_url}


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory, prefect_server: str):
    return foreign_project(tmp_path_factory.mktemp("foreign"), prefect_server)


def _run(foreign) -> tuple[set[str], set[str], str]:
    proc = run_cli(["materialize", *foreign["args"]], foreign["env"], check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    log = next(Path(foreign["root"] / "data").glob("run_log_*.sqlite"))
    with sqlite3.connect(log) as con:
        run_id = con.execute("select run_id from runs order by started_at desc limit 1").fetchone()[0]
        rows = dict(con.execute("select asset_key, status from materializations where run_id = ?", (run_id,)))
    built = {k for k, s in rows.items() if s == "success"}
    return built, {k for k, s in rows.items() if s == "fresh"}, proc.stdout


def test_a_foreign_project_skips_everything_idle_and_rebuilds_what_reads_a_moved_source(foreign) -> None:
    everything = {"main.daily_events", "main.region_names", "main.events_by_region", "main.regions"}
    built, _, _ = _run(foreign)
    assert built == everything

    built, fresh, out = _run(foreign)
    assert built == set() and fresh == everything, "nothing changed: nothing built"
    runs = read_task_runs(foreign["api"], flow_run_id(out), expect_at_least=len(everything))
    assert sorted(r.name for r in runs) == sorted(everything), "the flow run still shows the whole graph"
    assert {(r.state_type.value, r.state_name) for r in runs} == {("COMPLETED", "Cached")}
    assert all(r.state.message.startswith("fresh: ") for r in runs), [r.state.message for r in runs]

    with duckdb.connect(foreign["env"]["FOREIGN_DUCKDB_PATH"]) as con:
        con.execute("insert into ext.events values (3, 1, '2026-11-02 09:00')")
    built, fresh, out = _run(foreign)
    assert built == {"main.daily_events", "main.events_by_region"}, out[-3000:]
    assert fresh == {"main.region_names", "main.regions"}
    assert "source ext.events" in out

    built, _, _ = _run(foreign)
    assert built == set(), "the move was recorded: the next run builds nothing"
    with duckdb.connect(foreign["env"]["FOREIGN_DUCKDB_PATH"]) as con:
        assert con.execute("select sum(n) from main.daily_events").fetchone()[0] == 3
