"""The issue-2 acceptance scenario, run through the real CLI in fresh processes.

One scenario (fresh materialize, idle rerun, advance + rerun, the user's own dbt build, asset listing)
on a private data folder; each test asserts one promise about it.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.orchestration.conftest import MARTS, RAW, Scenario


def test_first_run_fills_every_mart(scenario: Scenario) -> None:
    counts = scenario.counts["first"]
    assert all(counts[f"marts.{m}"] > 0 for m in MARTS), counts
    assert counts["raw_shop.order_items"] == counts["marts.order_items"]
    assert "materialized on target dev" in scenario.outputs["first"].stdout


def test_raw_tables_match_the_operational_database(scenario: Scenario) -> None:
    """Nothing lost: every source row is either loaded or quarantined, never both, never neither."""
    quarantined = dict(
        scenario.query(
            "select table_name, count(distinct json_extract_string(record, '$.id')) "
            "from raw_shop._headwater_quarantine group by 1"
        )
    )
    with sqlite3.connect(scenario.data / "demo" / "shop.db") as con:
        for table in RAW["raw_shop"]:
            source_rows = con.execute(f"select count(*) from {table}").fetchone()[0]
            loaded = scenario.counts["after_advance"][f"raw_shop.{table}"]
            assert loaded + quarantined.get(table, 0) == source_rows, table
        unpaid = con.execute("select count(*) from payments where amount is null").fetchone()[0]
    assert unpaid > 0 and quarantined["payments"] == unpaid


def test_dirty_rows_are_quarantined_with_reasons_and_counted(scenario: Scenario) -> None:
    rows = scenario.query(
        "select table_name, reason, origin, _dlt_load_id from raw_marketing._headwater_quarantine order by origin"
    )
    reasons = {r[1] for r in rows}
    assert "spend: 'n/a' is not a double" in reasons and "campaign_id: required value is missing" in reasons
    assert all(r[0] == "ad_spend" and r[2].startswith("ad_spend_") and r[3] for r in rows)
    loads = {r[0] for r in scenario.query("select load_id from raw_marketing._dlt_loads")}
    assert {r[3] for r in rows} <= loads, "every quarantined row belongs to a completed load"
    first = scenario.outputs["first"].stdout
    assert "quarantined" in first and f"raw_marketing.ad_spend {len(rows)}" in first
    payments = scenario.query("select count(*) from raw_shop._headwater_quarantine where table_name = 'payments'")[0][0]
    assert f"raw_shop.payments {payments}" in first


def test_dirty_rows_are_caught_by_checks(scenario: Scenario) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{scenario.data / 'run_log_dev.sqlite'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select asset_key, check_name, status, failures from check_results order by run_id")
        ).fetchall()
    latest = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    warned = {(r[0], r[1]) for r in rows if r[2] == "warn" and r[3]}  # in any run: quarantine is per load
    for key in (
        ("raw_shop.orders", "status_canonical"),  # ' Placed ' from the legacy client
        ("raw_shop.payments", "amount_not_negative"),  # refunds booked as negative payments
        ("marts.orders", "customer_known"),  # orphan customer ids
        ("raw_shop.payments", "quarantine"),  # payments without an amount
        ("raw_marketing.ad_spend", "quarantine"),  # malformed CSV rows
    ):
        assert key in warned, (key, latest.get(key))
    assert latest[("marts.orders", "expect_column_values_to_be_unique__order_id")][0] == "pass"
    assert ("raw_shop.payments", "freshness") in latest


def test_idle_rerun_loads_zero_rows(scenario: Scenario) -> None:
    assert scenario.counts["idle"] == scenario.counts["first"]
    assert scenario.loads["idle"] == scenario.loads["first"], "an idle rerun must not create a dlt load"
    assert "raw_shop.*" in scenario.outputs["idle"].stdout  # the summary's zero-row line


def test_advance_merges_status_changes_without_duplicates(scenario: Scenario) -> None:
    assert scenario.changed_orders, "advancing a day must change some order statuses"
    ids = ",".join(str(i) for i in scenario.changed_orders)
    marts = dict(scenario.query(f"select order_id, status from marts.orders where order_id in ({ids})"))
    expected = {oid: status.strip().lower() for oid, status in scenario.changed_orders.items()}
    assert marts == expected
    for table, key in (("raw_shop.orders", "id"), ("marts.orders", "order_id"), ("raw_shop.payments", "id")):
        dupes = scenario.query(f"select count(*) - count(distinct {key}) from {table}")[0][0]
        assert dupes == 0, f"{table} has {dupes} duplicate keys"
    assert scenario.counts["after_advance"]["raw_shop.orders"] > scenario.counts["first"]["raw_shop.orders"]


def test_incremental_order_items_equals_a_full_rebuild(scenario: Scenario) -> None:
    incremental = scenario.query("select count(*), sum(line_amount) from marts.order_items")[0]
    full = scenario.query("select count(*), sum(line_amount) from staging.stg_shop__order_items")[0]
    assert incremental == full


def test_snapshot_records_customer_history(scenario: Scenario) -> None:
    rows, customers = scenario.query("select count(*), count(distinct customer_id) from snapshots.customers_snapshot")[
        0
    ]
    assert rows > customers, "customers who moved must have a closed and an open snapshot row"


def test_users_own_dbt_build_passes(scenario: Scenario, tmp_path: Path) -> None:
    env = {**scenario.env, "HEADWATER_DUCKDB_PATH": str(scenario.warehouse), "DBT_TARGET_PATH": str(tmp_path)}
    dbt = Path(sys.executable).with_name("dbt")
    proc = subprocess.run(
        [str(dbt), "build", "--project-dir", "dbt_project", "--profiles-dir", "profiles", "--log-path", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "ERROR=0" in proc.stdout


def test_assets_lists_every_kind_with_keys(scenario: Scenario) -> None:
    out = scenario.outputs["assets"].stdout
    for key, kind in (
        ("raw_shop.orders", "dlt"),
        ("raw_marketing.ad_spend", "dlt"),
        ("staging.stg_shop__orders", "dbt_model"),
        ("marts.marketing_roi", "dbt_model"),
        ("seeds.channels", "dbt_seed"),
        ("snapshots.customers_snapshot", "dbt_snapshot"),
    ):
        line = next((line for line in out.splitlines() if f" {key} " in line), None)
        assert line is not None and kind in line, f"{key} ({kind}) missing from:\n{out}"


def test_generated_sources_are_stable(scenario: Scenario) -> None:
    """Three runs regenerated the committed sources files: none may differ from what git holds."""
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--", "dbt_project/models/staging"], cwd=REPO, capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    assert proc.stdout == "", f"generated sources changed:\n{proc.stdout}"


def test_missing_credential_names_the_variable(hw_env: dict[str, str]) -> None:
    env = {k: v for k, v in hw_env.items() if not k.startswith("HEADWATER_PG_")}
    proc = run_cli(["ingest", "--target", "postgres"], env, check=False)
    assert proc.returncode == 2
    text = " ".join(proc.stdout.split())
    assert "HEADWATER_PG_HOST" in text and "profiles.yml" in text
    assert "Traceback" not in proc.stdout + proc.stderr


def test_status_reads_the_run_log(scenario: Scenario) -> None:
    lines = scenario.outputs["status"].stdout.splitlines()
    for mart in MARTS:
        line = next((line for line in lines if f" marts.{mart} " in line), None)
        assert line is not None and "success" in line, (
            f"marts.{mart} missing from status:\n{scenario.outputs['status'].stdout}"
        )
    assert not any(" raw_shop." in line for line in lines), "the selection layer:marts must limit the listing"
