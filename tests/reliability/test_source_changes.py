"""Changes an incremental source cannot see are flagged, and a full refresh repairs them.

The demo shop is loaded incrementally on ``updated_at`` and merged on ``id``. Then, in its SQLite database, two orders
are deleted (a hard delete: nothing comes to say so), one order changes with its ``updated_at`` moved backwards (it
falls behind the cursor) and one customer's email changes with no new ``updated_at``. The next run's ``reconcile``
checks warn about each (it would be silent otherwise); ``--full-refresh`` reloads the tables and the checks pass, with
the warehouse equal to the source row for row.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest

from tests.conftest import base_env, run_cli


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> dict:
    root = tmp_path_factory.mktemp("source_changes")
    env = base_env(root / "data", root / "prefect", prefect_server)
    run_cli(["materialize", "key:raw_shop.orders", "key:raw_shop.customers"], env)
    db = root / "data" / "demo" / "shop.db"
    with sqlite3.connect(db) as conn:
        deleted = [r[0] for r in conn.execute("select id from orders order by id desc limit 2")]
        conn.executemany("delete from orders where id = ?", [(i,) for i in deleted])
        backwards = conn.execute("select id from orders order by id limit 1").fetchone()[0]
        conn.execute(
            "update orders set status = 'returned', updated_at = '2020-01-01 00:00:00' where id = ?", (backwards,)
        )
        conn.execute("update customers set email = 'moved@example.com'")  # every customer: the sample sees it
    after = run_cli(["materialize", "key:raw_shop.orders", "key:raw_shop.customers"], env, check=False)
    repaired = run_cli(["materialize", "key:raw_shop.orders", "key:raw_shop.customers", "--full-refresh"], env)
    return {"after": after, "repaired": repaired, "db": db, "warehouse": root / "data" / "headwater.duckdb",
            "deleted": deleted, "backwards": backwards, "log": root / "data" / "run_log_dev.sqlite"}  # fmt: skip


def _reconcile(log: Path, run: int) -> dict[str, tuple[str, int, str]]:
    with sqlite3.connect(log) as conn:
        runs = [r[0] for r in conn.execute("select run_id from runs order by started_at")]
        sql = "select asset_key, status, failures, message from check_results where run_id = ? and check_name = 'reconcile'"
        return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(sql, (runs[run],))}


def test_what_the_incremental_load_missed_is_flagged_as_a_warning(shop) -> None:
    assert shop["after"].returncode == 0, "a warning never fails the run"
    found = _reconcile(shop["log"], -2)
    orders_status, orders_failures, orders_message = found["raw_shop.orders"]
    assert orders_status == "warn" and orders_failures == 3, orders_message
    assert "2 deleted at the source, still in the warehouse" in orders_message
    assert "1 with another cursor at the source" in orders_message
    assert "--full-refresh" in orders_message
    customers = found["raw_shop.customers"]
    assert customers[0] == "warn" and "changed at the source without a newer cursor" in customers[2]
    # a sample's count is said as one, with what it stands for (issue 29 finding 12): 500 of the 1,000 customers
    assert "500 of 500 sampled rows changed at the source without a newer cursor (about 1,000 of its" in customers[2]


def test_a_full_refresh_repairs_it_row_for_row(shop) -> None:
    found = _reconcile(shop["log"], -1)
    assert {k: v[0] for k, v in found.items()} == {"raw_shop.orders": "pass", "raw_shop.customers": "pass"}
    with sqlite3.connect(shop["db"]) as conn:
        source = dict(conn.execute("select id, status from orders").fetchall())
        emails = {r[0] for r in conn.execute("select distinct email from customers")}
    with duckdb.connect(str(shop["warehouse"]), read_only=True) as con:
        loaded = dict(con.execute("select id, status from raw_shop.orders").fetchall())
        loaded_emails = {r[0] for r in con.execute("select distinct email from raw_shop.customers").fetchall()}
    assert loaded == source
    assert not set(shop["deleted"]) & set(loaded)
    assert loaded[shop["backwards"]] == "returned"
    assert loaded_emails == emails == {"moved@example.com"}
