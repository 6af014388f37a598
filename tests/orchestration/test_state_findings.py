"""Issue 29's findings, each through the real CLI over a dbt project Headwater did not make (``--dbt-project``), on a
real DuckDB file against a started Prefect server: what a stale-only run must build, check and say.

One project for the module; the tests run in file order, each starting from what the one before left:

1. a var rendered from an env var (in dbt_project.yml and in ``--vars``) is hashed as dbt renders it;
2. a changed dbt test, a new or changed GX expectation run against their fresh asset, and a contract constraint
   rebuilds its model;
4. a model with no ref() or source() (a hard-coded relation) is stale on every run unless it says it reads nothing;
5. rows deleted by hand make a relation stale;
7. ``retry`` runs the skipped tests of an ephemeral model;
9. a seed over 1 MiB is hashed by content; a source with no ``loaded_at_field`` on DuckDB is rebuilt, with why.

(3: tests/reliability/test_interrupts.py; 6, 8, 10-12: their modules' tests; PostgreSQL: test_state_findings_pg.)
"""

from __future__ import annotations

import json
import sqlite3

import duckdb
import pytest

from tests.conftest import base_env, run_cli
from tests.orchestration.test_state_foreign import write_files

FILES = {
    "dbt_project.yml": """
        name: finder
        version: "1.0"
        profile: finder
        model-paths: [models]
        seed-paths: [seeds]
        vars:
          label: "{{ env_var('FINDER_LABEL', 'p1') }}"
          broken: false
    """,
    "profiles.yml": """
        finder:
          target: local
          outputs:
            local: {type: duckdb, path: "{{ env_var('FINDER_DUCKDB_PATH') }}", threads: 2}
    """,
    "seeds/regions.csv": "region_id,name\n1,north\n2,south\n",
    "models/sources.yml": """
        version: 2
        sources:
          - name: ext
            schema: ext
            tables:
              - name: refs
    """,
    "models/labelled.sql": """
        {{ config(materialized='table') }}
        select region_id, name, '{{ var("label") }}' as label, '{{ var("extra", "none") }}' as extra
        from {{ ref('regions') }}
    """,
    "models/contracted.sql": """
        {{ config(materialized='table') }}
        select region_id, name from {{ ref('regions') }}
    """,
    "models/hard_coded.sql": """
        {{ config(materialized='table') }}
        select count(*) as n from ext.refs
    """,
    "models/calendar.sql": """
        {{ config(materialized='table', meta={'headwater': {'inputs': 'none'}}) }}
        select 1 as day
    """,
    "models/refs_mart.sql": """
        {{ config(materialized='table') }}
        select count(*) as n from {{ source('ext', 'refs') }}
    """,
    "models/upstream.sql": """
        {{ config(materialized='table', meta={'headwater': {'inputs': 'none'}}) }}
        {% if var('broken') %} select * from ext.no_such_table {% else %} select 1 as id, 'a' as code {% endif %}
    """,
    "models/eph.sql": """
        {{ config(materialized='ephemeral') }}
        select id, code from {{ ref('upstream') }}
    """,
    "models/eph_reader.sql": """
        {{ config(materialized='table') }}
        select * from {{ ref('eph') }}
    """,
    "models/big_reader.sql": """
        {{ config(materialized='table') }}
        select count(*) as n, sum(v) as total from {{ ref('big') }}
    """,
    "models/schema.yml": """
        version: 2
        models:
          - name: labelled
            columns:
              - name: name
                data_tests:
                  - accepted_values:
                      name: known_region_names
                      arguments:
                        values: ['north', 'south']
          - name: contracted
            config:
              contract: {enforced: true}
            columns:
              - name: region_id
                data_type: integer
              - name: name
                data_type: varchar
          - name: eph
            columns:
              - name: id
                data_tests: [not_null, unique]
    """,
}
BIG_ROWS = 60_000  # over 1 MiB: dbt checksums the file by its path


@pytest.fixture(scope="module")
def finder(tmp_path_factory: pytest.TempPathFactory, prefect_server: str):
    root = tmp_path_factory.mktemp("finder")
    project = root / "finder"
    write_files(project, FILES)
    big = project / "seeds" / "big.csv"
    big.write_text("id,v,padding\n" + "".join(f"{i},{i % 7},{'x' * 10}\n" for i in range(BIG_ROWS)))
    assert big.stat().st_size > 1 << 20
    suites = root / "suites"
    suites.mkdir()
    warehouse = root / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema ext")
        con.execute("create table ext.refs (id int)")
        con.execute("insert into ext.refs values (1), (2)")
    env = base_env(root / "data", root / "prefect_home", api_url=prefect_server)
    env.update(FINDER_DUCKDB_PATH=str(warehouse), HEADWATER_SUITES_DIR=str(suites), COLUMNS="250")
    args = ["--dbt-project", str(project), "--profiles-dir", str(project)]
    found = {"root": root, "dir": project, "env": env, "args": args, "warehouse": warehouse, "suites": suites}
    first = _run(found, expect=0)
    assert first["built"] >= {"main.labelled", "main.big", "main.big_reader", "main.eph_reader"}
    return found


def _run(finder, *extra: str, expect: int = 0, env: dict | None = None, command: str = "materialize") -> dict:
    proc = run_cli([command, *finder["args"], *extra], {**finder["env"], **(env or {})}, check=False)
    assert proc.returncode == expect, proc.stdout[-4000:] + proc.stderr[-2000:]
    with sqlite3.connect(finder["root"] / "data" / "run_log_local.sqlite") as con:
        (run_id,) = con.execute("select run_id from runs order by started_at desc limit 1").fetchone()
        assets = dict(con.execute("select asset_key, status from materializations where run_id = ?", (run_id,)))
        sql = "select asset_key, check_name, status from check_results where run_id = ?"
        checks = {f"{a}:{n}": s for a, n, s in con.execute(sql, (run_id,))}
    return {
        "built": {k for k, s in assets.items() if s == "success"},
        "fresh": {k for k, s in assets.items() if s == "fresh"},
        "checks": checks,
        "out": " ".join(proc.stdout.split()),
    }


def _query(finder, sql: str) -> list[tuple]:
    with duckdb.connect(str(finder["warehouse"]), read_only=True) as con:
        return con.execute(sql).fetchall()


ALWAYS = {"main.hard_coded", "main.refs_mart"}
"""What no run can prove fresh here: a model reading a hard-coded relation (finding 4), and a reader of a source with
no loaded_at_field on DuckDB, which keeps no change counters (finding 9)."""


def test_an_idle_rerun_builds_only_what_nothing_can_prove_fresh_and_says_why(finder) -> None:
    run = _run(finder)
    assert run["built"] == ALWAYS, run["out"][-3000:]
    assert "main.big" in run["fresh"] and "main.calendar" in run["fresh"], "large seed hashed; inputs: none"
    assert "its inputs are unknown: it has no ref() or source()" in run["out"]
    assert "DuckDB keeps no change counters" in run["out"] and "give it a loaded_at_field" in run["out"]
    status = run_cli(["status", *finder["args"]], finder["env"]).stdout
    assert "its inputs are unknown" in status and "DuckDB keeps no change counters" in status


def test_a_var_rendered_from_an_env_var_rebuilds_its_reader_with_the_new_value(finder) -> None:
    run = _run(finder, env={"FINDER_LABEL": "p2"})
    assert run["built"] == {"main.labelled", *ALWAYS}, run["out"][-3000:]
    assert _query(finder, "select distinct label from main.labelled") == [("p2",)]
    assert _run(finder, env={"FINDER_LABEL": "p2"})["built"] == ALWAYS, "the same rendered value: fresh"
    # Jinja in --vars is rendered too: its env var's value is what counts
    extra = json.dumps({"extra": "{{ env_var('FINDER_EXTRA', 'e1') }}"})
    env = {"FINDER_LABEL": "p2", "FINDER_EXTRA": "e1"}
    assert "main.labelled" in _run(finder, "--vars", extra, env=env)["built"]
    assert _run(finder, "--vars", extra, env=env)["built"] == ALWAYS
    run = _run(finder, "--vars", extra, env={**env, "FINDER_EXTRA": "e2"})
    assert run["built"] == {"main.labelled", *ALWAYS}
    assert _query(finder, "select distinct extra from main.labelled") == [("e2",)]
    assert "main.labelled" in _run(finder)["built"], "back to the defaults: p1, none"


def test_a_tightened_dbt_test_runs_against_its_fresh_asset_and_fails_the_run(finder) -> None:
    schema = finder["dir"] / "models" / "schema.yml"
    schema.write_text(schema.read_text().replace("values: ['north', 'south']", "values: ['north']"))
    run = _run(finder, expect=1)
    assert "main.labelled" in run["fresh"], "the asset is not rebuilt for a check"
    assert run["checks"]["main.labelled:known_region_names"] == "fail"
    assert "its definition changed since its last result" in run["out"]
    schema.write_text(schema.read_text().replace("values: ['north']", "values: ['north', 'south']"))
    run = _run(finder)  # the failed blocking test made its asset stale: rebuilt and checked again
    assert "main.labelled" in run["built"] and run["checks"]["main.labelled:known_region_names"] == "pass"


def test_a_new_and_a_changed_gx_expectation_run_against_their_fresh_asset(finder) -> None:
    suite = finder["suites"] / "main.labelled.yml"
    suite.write_text("expectations:\n  - expect_column_values_to_be_in_set: {column: name, value_set: [north]}\n")
    run = _run(finder, expect=1)
    assert "main.labelled" in run["fresh"], run["out"][-3000:]
    assert run["checks"]["main.labelled:expect_column_values_to_be_in_set__name"] == "fail"
    assert "new: it has never run" in run["out"]
    suite.write_text(suite.read_text().replace("[north]", "[north, south]"))
    run = _run(finder)
    assert run["checks"]["main.labelled:expect_column_values_to_be_in_set__name"] == "pass", run["out"][-3000:]


def test_a_constraint_added_to_an_enforced_contract_rebuilds_the_model(finder) -> None:
    schema = finder["dir"] / "models" / "schema.yml"
    lines = schema.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "data_type: integer")
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    schema.write_text("\n".join([*lines[: at + 1], f"{indent}constraints: [{{type: not_null}}]", *lines[at + 1 :]]))
    run = _run(finder)
    assert "main.contracted" in run["built"] and "code changed since last materialization" in run["out"]


def test_rows_deleted_by_hand_make_the_table_stale(finder) -> None:
    with duckdb.connect(str(finder["warehouse"])) as con:
        con.execute("delete from main.labelled where region_id = 1")
    status = run_cli(["status", *finder["args"]], finder["env"]).stdout
    assert "its rows changed outside Headwater since it was built (2 rows -> 1 row)" in " ".join(status.split())
    run = _run(finder)
    assert run["built"] == {"main.labelled", *ALWAYS}
    assert _query(finder, "select count(*) from main.labelled") == [(2,)]


def test_a_model_reading_a_hard_coded_relation_is_rebuilt_when_it_grows(finder) -> None:
    with duckdb.connect(str(finder["warehouse"])) as con:
        con.execute("insert into ext.refs values (3)")
    run = _run(finder)
    assert run["built"] == ALWAYS
    assert _query(finder, "select n from main.hard_coded") == [(3,)]
    assert _query(finder, "select n from main.refs_mart") == [(3,)]


def test_retry_runs_the_skipped_tests_of_an_ephemeral_model(finder) -> None:
    broken = _run(finder, "--vars", "{broken: true}", expect=1)
    skipped = {k for k, s in broken["checks"].items() if k.startswith("main.eph:") and s == "skipped"}
    assert len(skipped) == 2, broken["checks"]
    retried = _run(finder, "--vars", "{broken: false}", command="retry")
    for check in skipped:
        assert retried["checks"].get(check) == "pass", (check, retried["checks"])
    again = run_cli(["retry", *finder["args"]], finder["env"])
    assert "nothing to retry" in again.stdout


def test_a_seed_over_one_mebibyte_is_hashed_by_content(finder) -> None:
    big = finder["dir"] / "seeds" / "big.csv"
    big.write_text(big.read_text().replace("\n5,5,", "\n5,6,", 1))
    run = _run(finder)
    assert {"main.big", "main.big_reader"} <= run["built"], run["out"][-3000:]
    assert _run(finder)["built"] == ALWAYS
