"""kill -9 during dlt's extract, normalize and load, on DuckDB and PostgreSQL.

Each case starts from the same materialized warehouse, moves the demo sources two days on, and runs
``headwater ingest`` in a process that kills itself (SIGKILL) at one point of one dlt step
(tests/reliability/kill_during.py). Then:

- the staging views (what every dbt model reads) show only rows of completed loads, whatever the raw
  tables hold at that moment;
- the next ``headwater ingest`` finishes what the killed run left and says so;
- every raw table then holds exactly the rows of a run that was never killed: none lost, none twice.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import REPO, base_env, postgres_env, run_cli

STEPS = ("extract", "normalize", "load")
RAW = {
    "raw_shop": {"customers": "id", "order_items": "id", "orders": "id", "payments": "id", "products": "id"},
    "raw_marketing": {"ad_spend": "spend_date, campaign_id"},
}
STAGING = {
    ("raw_shop", t): f"staging.stg_shop__{t}" for t in ("customers", "order_items", "orders", "payments", "products")
} | {("raw_marketing", "ad_spend"): "staging.stg_marketing__ad_spend"}


@dataclass
class Warehouse:
    """One target's copy of the warehouse and Headwater data folder."""

    env: dict[str, str]
    query: Callable[[str], list[tuple]]


class Target:
    """Makes copies of a prepared warehouse (data folder + DuckDB file or PostgreSQL database)."""

    def __init__(self, name: str, root: Path, make_db: Callable[[], str] | None) -> None:
        self.name = name
        self.root = root
        self.make_db = make_db
        self.base = self._fresh("base")

    def _fresh(self, label: str, template: str | None = None) -> Warehouse:
        data = self.root / label / "data"
        env = base_env(data, self.root / label / "prefect")
        if self.name == "dev":
            url = f"duckdb:///{data / 'headwater.duckdb'}"
        else:
            url = self.make_db() if template is None else self._copy_database(template)
            env = postgres_env(env, url)
        env["HEADWATER_TARGET"] = self.name
        engine = sa.create_engine(url)

        def query(sql: str) -> list[tuple]:
            with engine.connect() as conn:
                rows = [tuple(r) for r in conn.execute(sa.text(sql))]
            engine.dispose()
            return rows

        return Warehouse(env, query)

    def copy(self, label: str) -> Warehouse:
        """A copy of the base warehouse and its data folder (dlt's pipeline state included)."""
        shutil.copytree(self.root / "base", self.root / label)
        template = None if self.name == "dev" else self.base.env["HEADWATER_PG_DATABASE"]
        return self._fresh(label, template)

    def _copy_database(self, template: str) -> str:
        url = sa.make_url(self.make_db())
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database "{url.database}"'))
            conn.execute(sa.text(f'create database "{url.database}" template "{template}"'))
        admin.dispose()
        return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Target:
    """A warehouse loaded by ``headwater ingest``, its staging views built by ``dbt run``, whose sources have then
    moved on two days."""
    make_db = None
    if request.param == "postgres":
        factory = request.getfixturevalue("make_pg_database")

        def make_db() -> str:
            return factory("crash")

    prepared = Target(request.param, tmp_path_factory.mktemp(f"crash_{request.param}"), make_db)
    env = prepared.base.env
    run_cli(["ingest"], env)
    # the staging views, built by dbt itself (what a user's `dbt build` would read)
    dbt_env = {**env, "HEADWATER_DUCKDB_PATH": str(Path(env["HEADWATER_DATA_DIR"]) / "headwater.duckdb")}
    scratch = prepared.root / "dbt"
    subprocess.run(
        [sys.executable, "-m", "dbt.cli.main", "run", "--select", "staging", "--project-dir", "dbt_project",
         "--profiles-dir", "profiles", "--target-path", str(scratch / "target"), "--log-path", str(scratch)],
        cwd=REPO, env=dbt_env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    run_cli(["demo", "--advance", "--days", "2"], env)
    return prepared


@pytest.fixture(scope="module")
def reference(target: Target) -> dict[tuple[str, str], list[tuple]]:
    """Every raw table after an ingest that nobody killed."""
    never_killed = target.copy("reference")
    run_cli(["ingest"], never_killed.env)
    return _raw_rows(never_killed)


def _raw_rows(warehouse: Warehouse) -> dict[tuple[str, str], list[tuple]]:
    rows = {}
    for dataset, tables in RAW.items():
        for table, key in tables.items():
            columns = [
                c
                for (c,) in warehouse.query(
                    "select column_name from information_schema.columns "
                    f"where table_schema = '{dataset}' and table_name = '{table}' order by column_name"
                )
                if not c.startswith("_dlt")
            ]
            rows[dataset, table] = warehouse.query(f"select {', '.join(columns)} from {dataset}.{table} order by {key}")
    return rows


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("target", ["dev"], indirect=True)
def test_kill_9_during_ingestion_on_duckdb_loses_nothing_and_dbt_reads_only_completed_loads(
    target: Target, reference: dict, step: str
) -> None:
    _kill_and_recover(target, reference, step)


# extract and normalize write nothing to the warehouse, so PostgreSQL is killed in load only (CI time)
@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgres"], indirect=True)
def test_kill_9_during_load_on_postgres_loses_nothing_and_dbt_reads_only_completed_loads(
    target: Target, reference: dict
) -> None:
    _kill_and_recover(target, reference, "load")


def _kill_and_recover(target: Target, reference: dict, step: str) -> None:
    """Kill ``headwater ingest`` at ``step`` in a copy of the prepared warehouse, check what dbt reads, recover,
    compare every raw table with the never-killed reference. (One test function per target: the prepared warehouse
    is then built once per target, not once per case.)"""
    warehouse = target.copy(f"killed_{step}")
    killed = subprocess.run(
        [sys.executable, "-m", "tests.reliability.kill_during", step, "ingest"],
        cwd=REPO,
        env=warehouse.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, f"the run was not killed at {step}: {killed.stdout[-2000:]}{killed.stderr[-2000:]}"

    partial = sum(
        warehouse.query(
            f"select count(*) from raw_shop.{table} where _dlt_load_id not in (select load_id from raw_shop._dlt_loads)"
        )[0][0]
        for table in RAW["raw_shop"]
    )
    if step == "load":
        assert partial > 0, "the kill was meant to leave a partial load in the raw tables"
    for (dataset, table), view in STAGING.items():
        completed = warehouse.query(
            f"select count(*) from {dataset}.{table} where _dlt_load_id in "
            f"(select load_id from {dataset}._dlt_loads where status = 0)"
        )[0][0]
        read = warehouse.query(f"select count(*) from {view}")[0][0]
        assert read == completed, f"{view} reads {read - completed} rows of unfinished loads"

    recovery = run_cli(["ingest"], warehouse.env)
    out = " ".join(recovery.stdout.split())
    if step != "extract":  # a killed extract committed nothing: the next run extracts again
        assert "shop: finished 1 load package(s) an interrupted run left pending" in out

    after = _raw_rows(warehouse)
    for (dataset, table), expected in reference.items():
        got = after[dataset, table]
        key = RAW[dataset][table]
        distinct = warehouse.query(f"select count(*), count(distinct ({key})) from {dataset}.{table}")[0]
        assert distinct[0] == distinct[1], f"{dataset}.{table}: {distinct[0] - distinct[1]} duplicated rows"
        lost = len(set(expected) - set(got))
        assert lost == 0 and len(got) == len(expected), f"{dataset}.{table}: {lost} rows lost after kill in {step}"
    pending = warehouse.query(
        "select count(*) from raw_shop.payments where _dlt_load_id not in "
        "(select load_id from raw_shop._dlt_loads where status = 0)"
    )[0][0]
    assert pending == 0
