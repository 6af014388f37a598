"""``headwater plan`` on a copy of the demo dbt project: SQLMesh categorises a rename and an added column."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from tests.conftest import REPO, run_cli


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}: update the test"
    path.write_text(text.replace(old, new))


def test_plan_categorises_a_rename_breaking_and_an_added_column_non_breaking(
    hw_env: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(REPO / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    args = ["--dbt-project", str(project), "--profiles-dir", str(REPO / "profiles")]

    missing = run_cli(["plan", *args], hw_env, check=False)
    assert missing.returncode == 2
    assert "no deployed state at" in missing.stdout and "headwater plan --save" in missing.stdout

    assert "deployed state of dev saved" in run_cli(["plan", "--save", *args], hw_env).stdout
    assert "no model changed since the deployed state" in run_cli(["plan", *args], hw_env).stdout

    staging = project / "models" / "staging" / "shop"
    _edit(staging / "stg_shop__orders.sql", "utm_source as channel,", "utm_source as marketing_channel,")
    _edit(
        staging / "stg_shop__payments.sql",
        "status as payment_status,",
        "status as payment_status,\n upper(method) as method_code,",
    )
    files_before = sorted(p.relative_to(project) for p in project.rglob("*"))

    proc = run_cli(["plan", "--json", "--fail-on-breaking", *args], hw_env, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    changes = {c["key"]: c for c in json.loads(proc.stdout)["changes"]}
    assert sorted(changes) == ["staging.stg_shop__orders", "staging.stg_shop__payments"]

    renamed = changes["staging.stg_shop__orders"]
    assert renamed["category"] == "breaking"
    assert (renamed["columns_added"], renamed["columns_removed"]) == (["marketing_channel"], ["channel"])
    for key in ("marts.orders", "marts.daily_revenue", "marts.marketing_roi", "exposures.revenue_dashboard"):
        assert key in renamed["downstream"]
    assert renamed["tests"] > 0

    added = changes["staging.stg_shop__payments"]
    assert added["category"] == "non-breaking"
    assert added["columns_added"] == ["method_code"] and added["columns_removed"] == []
    assert "intermediate.int_payments__summed" in added["downstream"]
    assert json.loads(proc.stdout)["indirect"]["marts.orders"] == "breaking"

    # analysis only: the dbt project gained no file and the warehouse no SQLMesh schema
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == files_before
    warehouse = Path(hw_env["HEADWATER_DATA_DIR"]) / "headwater.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:  # dbt compile opened (so created) it
        schemas = {row[0] for row in con.execute("select schema_name from information_schema.schemata").fetchall()}
    assert not {s for s in schemas if "sqlmesh" in s.lower()}


def test_state_from_another_warehouse_kind_is_refused_with_the_fix(tmp_path: Path) -> None:
    import pytest

    from orchestration.analysis.changes import StateError, load_state

    state = tmp_path / "manifest.json"
    state.write_text(json.dumps({"metadata": {"adapter_type": "postgres"}, "nodes": {}}))
    with pytest.raises(
        StateError, match="compiled for postgres, the working project for duckdb: plan with the deployed"
    ):
        load_state(state, "duckdb")
    state.write_text("{not json")
    with pytest.raises(StateError, match="not valid JSON"):
        load_state(state, "duckdb")


def _compiled(models: dict[str, str]) -> dict:
    """A compiled DuckDB manifest: one source with declared columns and the given models' SQL."""
    nodes = {
        f"model.p.{name}": {
            "resource_type": "model",
            "name": name,
            "schema": "main",
            "alias": name,
            "relation_name": f'"db"."main"."{name}"',
            "compiled_code": sql,
            "config": {"materialized": "table"},
            "depends_on": {"nodes": ["source.p.raw.t"]},
        }
        for name, sql in models.items()
    }
    source = {
        "resource_type": "source",
        "name": "t",
        "schema": "raw",
        "relation_name": '"db"."raw"."t"',
        "columns": {"a": {"name": "a"}, "b": {"name": "b"}},
    }
    return {
        "metadata": {"adapter_type": "duckdb"},
        "nodes": nodes,
        "sources": {"source.p.raw.t": source},
        "child_map": {"source.p.raw.t": list(nodes)},
    }


def test_a_change_of_column_order_only_is_not_breaking(tmp_path: Path) -> None:
    from assets import DbtTranslator
    from orchestration.analysis.changes import build_change_plan

    old = _compiled({"m": 'select a, b from "db"."raw"."t"'})
    new = _compiled({"m": 'select b, a from "db"."raw"."t"'})
    (change,) = build_change_plan(old, new, tmp_path, DbtTranslator()).changes
    assert change.category == "non-breaking" and "order of its columns" in change.detail
    assert (change.columns_added, change.columns_removed) == ((), ())


def test_a_model_that_no_longer_resolves_says_so_instead_of_losing_its_columns(tmp_path: Path) -> None:
    from assets import DbtTranslator
    from orchestration.analysis.changes import build_change_plan

    old = _compiled({"m": 'select a, b from "db"."raw"."t"'})
    new = _compiled({"m": 'select a, b from "db"."raw"."t" where ((('})
    (change,) = build_change_plan(old, new, tmp_path, DbtTranslator()).changes
    assert change.category == "breaking" and change.detail.startswith("does not resolve: ")
    assert change.columns_removed == (), "its columns are unknown, not removed"


def test_plan_reports_no_change_when_unchanged_jinja_emits_its_columns_in_another_order(tmp_path: Path) -> None:
    """Issue 29 finding 8: a model whose Jinja iterates a set (dbt's ``set()``) compiles its columns in an order that
    moves between processes (Python's hash seed); with no file changed, ``plan`` says nothing changed."""
    from tests.orchestration.test_state_foreign import FILES, foreign_project

    files = {
        **FILES,
        "models/wide.sql": """
            select
            {%- for column in set(['region_code', 'label_upper', 'label_lower', 'region_id']) %}
              '{{ column }}' as {{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        """,
    }
    project = foreign_project(tmp_path, api_url="http://127.0.0.1:9/api", files=files)  # plan needs no Prefect
    args, env = ["--dbt-project", str(project["dir"]), "--profiles-dir", str(project["dir"])], project["env"]
    saved = run_cli(["plan", "--save", *args], {**env, "PYTHONHASHSEED": "1"})
    assert "deployed state" in saved.stdout
    shutil.rmtree(tmp_path / "data" / "dbt_compile")  # the next plan compiles anew, in a process of another seed
    planned = run_cli(["plan", "--json", *args], {**env, "PYTHONHASHSEED": "2"})
    state = json.loads(next((tmp_path / "data" / "state").rglob("manifest.json")).read_text())
    compiled = json.loads((tmp_path / "data" / "dbt_compile" / "manifest.json").read_text())
    uid = "model.foreign.wide"
    assert state["nodes"][uid]["compiled_code"] != compiled["nodes"][uid]["compiled_code"], "the order moved"
    assert json.loads(planned.stdout)["changes"] == [], planned.stdout
