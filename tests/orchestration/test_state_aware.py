"""State-aware ``headwater materialize``: each staleness rule, through the real CLI on a real DuckDB warehouse.

One copy of the demo project (dbt project, profiles, suites) and one data folder for the module; each test edits one
thing, runs a stale-only ``materialize`` and asserts that exactly the expected assets were built (what changed and
everything downstream of it) and every other one was kept ``fresh``. The tests run in file order: each starts from
what the one before left, and the first proves that an idle rerun builds nothing.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import duckdb
import pytest

from assets import AssetKey, build_asset_graph
from tests.conftest import REPO, base_env, run_cli

DBT = "dbt_project"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, prefect_server: str):
    root = tmp_path_factory.mktemp("state")
    for part in ("dbt_project", "profiles", "quality/suites"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    shutil.copy(REPO / "headwater.yml", root / "headwater.yml")
    env = base_env(root / "data", root / "prefect_home", api_url=prefect_server)
    env["HEADWATER_PROJECT_DIR"] = str(root)
    first = run_cli(["materialize"], env)
    assert "never materialized" in first.stdout
    return {"root": root, "env": env}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}: update the test"
    path.write_text(text.replace(old, new, 1))


def _graph(demo):
    manifest = json.loads((demo["root"] / "data" / "dbt_target" / "manifest.json").read_text())
    return build_asset_graph(manifest=manifest)


def _last_run(demo) -> tuple[str, dict[str, str]]:
    """The last run's status and the status of each dbt asset in it (dlt tables left out)."""
    with sqlite3.connect(demo["root"] / "data" / "run_log_dev.sqlite") as con:
        run_id, status = con.execute("select run_id, status from runs order by started_at desc limit 1").fetchone()
        sql = "select asset_key, status from materializations where run_id = ? and kind like 'dbt_%'"
        return status, dict(con.execute(sql, (run_id,)))


def _materialize(demo, *args: str, expect_ok: bool = True) -> tuple[set[str], set[str], str]:
    proc = run_cli(["materialize", *args], demo["env"], check=False)
    assert (proc.returncode == 0) is expect_ok, proc.stdout[-3000:] + proc.stderr[-2000:]
    status, assets = _last_run(demo)
    built = {k for k, s in assets.items() if s == "success"}
    fresh = {k for k, s in assets.items() if s == "fresh"}
    return built, fresh, proc.stdout


def _with_downstream(demo, *keys: str) -> set[str]:
    graph = _graph(demo)
    chosen = {AssetKey.parse(k) for k in keys}
    return {str(k) for k in chosen | graph.downstream(chosen) if graph.specs[k].kind.is_dbt}


def _callers(demo) -> list[str]:
    """The models whose SQL calls the ``completed_loads`` macro."""
    manifest = json.loads((demo["root"] / "data" / "dbt_target" / "manifest.json").read_text())
    graph = build_asset_graph(manifest=manifest)
    by_id = graph.by_unique_id()
    return [
        str(by_id[uid])
        for uid, node in manifest["nodes"].items()
        if "macro.headwater.completed_loads" in (node.get("depends_on") or {}).get("macros", []) and uid in by_id
    ]


def _dbt_assets(demo) -> set[str]:
    graph = _graph(demo)
    return {str(k) for k, s in graph.specs.items() if s.kind.is_dbt and s.builds}


def test_an_idle_rerun_builds_nothing_and_keeps_every_asset_fresh(demo) -> None:
    built, fresh, out = _materialize(demo)
    assert built == set()
    assert fresh == _dbt_assets(demo)
    assert "fresh" in out and "dbt: " not in out  # no dbt invocation at all


def test_a_models_sql_change_rebuilds_it_and_its_downstream_only(demo) -> None:
    _edit(
        demo["root"] / DBT / "models/staging/shop/stg_shop__payments.sql",
        "select",
        "select -- edited\n",
    )
    built, fresh, out = _materialize(demo)
    expected = _with_downstream(demo, "staging.stg_shop__payments")
    assert built == expected
    assert fresh == _dbt_assets(demo) - expected
    assert "code changed since last materialization" in out


def test_a_macro_change_rebuilds_the_models_that_call_it(demo) -> None:
    _edit(
        demo["root"] / DBT / "macros/completed_loads.sql", "{%- set loads", "{# edited inside the macro #}{%- set loads"
    )
    built, _, _ = _materialize(demo)
    callers = _callers(demo)
    assert len(callers) == 6
    assert built == _with_downstream(demo, *callers)


def test_a_var_and_an_env_var_rebuild_only_their_readers(demo) -> None:
    path = demo["root"] / DBT / "models/marts/customers.sql"
    text = path.read_text()
    path.write_text(
        "-- reads a var and an env var\n{% set _min = var('min_orders', 0) %}{% set _r = env_var('HW_REGION', 'eu') %}\n"
        + text
    )
    built, _, _ = _materialize(demo)
    assert built == _with_downstream(demo, "marts.customers")  # the SQL changed
    assert _materialize(demo)[0] == set()
    built, _, out = _materialize(demo, "--vars", "{min_orders: 2}")
    assert built == _with_downstream(demo, "marts.customers"), out[-2000:]
    assert _materialize(demo, "--vars", "{min_orders: 2}")[0] == set()
    demo["env"]["HW_REGION"] = "us"
    try:
        built, _, _ = _materialize(demo, "--vars", "{min_orders: 2}")
    finally:
        demo["env"].pop("HW_REGION")
    assert built == _with_downstream(demo, "marts.customers")
    # back to the defaults: both moved again
    assert _materialize(demo)[0] == _with_downstream(demo, "marts.customers")


def test_a_seed_file_change_rebuilds_the_seed_and_its_readers(demo) -> None:
    seed = demo["root"] / DBT / "seeds/channels.csv"
    seed.write_text(seed.read_text().rstrip("\n") + "\npodcast_ads,Podcast Ads,paid_audio,true\n")
    built, _, _ = _materialize(demo)
    assert built == _with_downstream(demo, "seeds.channels")


def test_a_snapshot_definition_change_rebuilds_the_snapshot(demo) -> None:
    _edit(
        demo["root"] / DBT / "snapshots/customers_snapshot.yml", "unique_key: customer_id", "unique_key: [customer_id]"
    )
    built, _, _ = _materialize(demo)
    assert built == _with_downstream(demo, "snapshots.customers_snapshot")


def test_a_new_dlt_load_rebuilds_what_reads_the_tables_that_loaded_rows(demo) -> None:
    run_cli(["demo", "--advance"], demo["env"])
    built, _, _ = _materialize(demo)
    with sqlite3.connect(demo["root"] / "data" / "run_log_dev.sqlite") as con:
        run_id = con.execute("select run_id from runs order by started_at desc limit 1").fetchone()[0]
        sql = "select asset_key from materializations where run_id = ? and kind = 'dlt' and status = 'success'"
        loaded = [r[0] for r in con.execute(sql, (run_id,))]
    assert loaded, "advancing the shop gives new rows"
    assert built == _with_downstream(demo, *loaded) - set(loaded)


def test_an_upstream_rebuilt_by_hand_rebuilds_its_downstream(demo) -> None:
    built, _, _ = _materialize(demo, "--all", "stg_shop__customers")
    assert built == {"staging.stg_shop__customers"}
    built, _, out = _materialize(demo)
    assert built == _with_downstream(demo, "staging.stg_shop__customers") - {"staging.stg_shop__customers"}
    assert "upstream staging.stg_shop__customers materialized since" in out or "upstream" in out


def test_a_relation_dropped_in_the_warehouse_is_rebuilt(demo) -> None:
    with duckdb.connect(str(demo["root"] / "data" / "headwater.duckdb")) as con:
        con.execute("drop table marts.customers")
    built, _, out = _materialize(demo)
    assert built == _with_downstream(demo, "marts.customers")
    assert "is not in the warehouse" in out


def test_a_failure_last_time_is_rebuilt_once_fixed_with_what_it_held_back(demo) -> None:
    path = demo["root"] / DBT / "models/intermediate/int_payments__summed.sql"
    good = path.read_text()
    path.write_text(good.replace("select", "select no_such_column,", 1))
    built, _, _ = _materialize(demo, expect_ok=False)
    assert "intermediate.int_payments__summed" not in built
    path.write_text(good)  # the same code as its last success: stale only because it failed
    built, _, out = _materialize(demo)
    assert built == _with_downstream(demo, "intermediate.int_payments__summed")
    assert "last attempt failed" in out


def test_an_asset_past_its_max_age_is_rebuilt(demo) -> None:
    _edit(
        demo["root"] / DBT / "models/marts/_marts__models.yml",
        "        owner: finance@headwater.example\n",
        "        owner: finance@headwater.example\n        max_age: 1s\n",
    )
    built, _, out = _materialize(demo)
    assert built == _with_downstream(demo, "marts.daily_revenue")
    assert "older than its max_age 1s" in out


def test_all_builds_everything_selected_whatever_its_state(demo) -> None:
    built, fresh, _ = _materialize(demo, "--all")
    assert built == _dbt_assets(demo) and fresh == set()
