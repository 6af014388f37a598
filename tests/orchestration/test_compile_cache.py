"""The compile kept between `headwater lineage` and `plan` (orchestration/analysis/compile_cache.py), really run: dbt
and a DuckDB warehouse over a small project. A repeated command imports no dbt; an edited model, a column added in
the warehouse, and a model whose SQL queries the warehouse are each seen at once, never a stale answer.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.orchestration.test_inputs_cache import _cli, project_env
from tests.orchestration.test_state_foreign import write_files

FILES = {
    "dbt_project.yml": """
        name: compiled
        version: "1.0"
        profile: compiled
        model-paths: [models]
    """,
    "profiles.yml": """
        compiled:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: "{{ env_var('COMPILED_DB') }}"
              threads: 1
    """,
    "models/sources.yml": """
        version: 2
        sources:
          - name: ext
            schema: ext
            tables:
              - name: events
    """,
    "models/events.sql": "select * from {{ source('ext', 'events') }}",
    "models/daily.sql": "select id, amount * 2 as doubled from {{ ref('events') }}",
}


@pytest.fixture
def project(tmp_path: Path) -> dict:
    root = tmp_path / "project"
    write_files(root, FILES)
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("create schema ext; create table ext.events as select 1 as id, 10 as amount")
    env = project_env(tmp_path, root, COMPILED_DB=str(warehouse))
    args = ["--dbt-project", str(root), "--profiles-dir", str(root)]
    return {"root": root, "warehouse": warehouse, "env": env, "args": args}


def _lineage(project: dict, column: str) -> tuple[str, set[str]]:
    return _cli(["lineage", column, *project["args"]], project["env"])


def test_lineage_and_plan_reuse_the_compile_until_the_project_or_the_warehouse_changes(project: dict) -> None:
    out, imported = _lineage(project, "main.events.amount")
    assert "dbt" in imported, "the first command compiles"
    again, imported = _lineage(project, "main.events.amount")
    assert again == out and "dbt" not in imported, "nothing changed: the kept compile, no dbt"

    _cli(["plan", "--save", *project["args"]], project["env"])
    unchanged, imported = _cli(["plan", *project["args"]], project["env"])
    assert "no model changed" in unchanged and "dbt" not in imported, unchanged

    # a column added in the warehouse: `select *` now has it, and lineage says so at once
    with duckdb.connect(str(project["warehouse"])) as conn:
        conn.execute("alter table ext.events add column channel varchar")
    widened, imported = _lineage(project, "main.events.channel")
    assert "dbt" in imported and "ext.events.channel" in " ".join(widened.split()), widened

    # an edited model: plan lists it at once
    (project["root"] / "models" / "daily.sql").write_text("select id, amount * 3 as doubled from {{ ref('events') }}")
    changed, imported = _cli(["plan", *project["args"]], project["env"])
    assert "dbt" in imported and "main.daily" in changed, changed


def test_a_model_that_queries_the_warehouse_while_compiling_is_compiled_every_time(project: dict) -> None:
    (project["root"] / "models" / "latest.sql").write_text(
        "{% set top = run_query('select max(id) from ext.events') %}\n"
        "select {{ top.columns[0].values()[0] if execute else 0 }} as top_id"
    )
    for _ in range(2):
        _, imported = _lineage(project, "main.daily.doubled")
        assert "dbt" in imported, "its SQL depends on data: compiled every time"
    kept = list(Path(project["env"]["HEADWATER_DATA_DIR"]).rglob("headwater_compile.json"))
    assert not kept, "a compile that queried the warehouse is never kept"


def test_an_incremental_model_is_unchanged_by_its_first_run(project: dict) -> None:
    """The deployed state saved before the model's table existed, the working project after: `is_incremental()`
    would render its filter only now, yet nothing about the model changed (plan compiles every model as a full
    build; it used to call this a breaking change)."""
    (project["root"] / "models" / "growing.sql").write_text(
        "{{ config(materialized='incremental', unique_key='id') }}\n"
        "select id, amount from {{ ref('events') }}\n"
        "{% if is_incremental() %} where id > (select max(id) from {{ this }}) {% endif %}\n"
    )
    _cli(["plan", "--save", *project["args"]], project["env"])
    with duckdb.connect(str(project["warehouse"])) as conn:  # what its first run leaves
        conn.execute("create table main.growing as select 1 as id, 10 as amount")
    unchanged, _ = _cli(["plan", *project["args"]], project["env"])
    assert "no model changed" in unchanged, unchanged
    (project["root"] / "models" / "growing.sql").write_text(
        "{{ config(materialized='incremental', unique_key='id') }}\n"
        "select id, amount from {{ ref('events') }} where amount > 0\n"
        "{% if is_incremental() %} and id > (select max(id) from {{ this }}) {% endif %}\n"
    )
    changed, _ = _cli(["plan", *project["args"]], project["env"])
    assert "main.growing" in changed and "breaking" in changed, changed
