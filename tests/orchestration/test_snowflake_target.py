"""`headwater materialize --target snowflake` end to end against fakesnow's server, a Snowflake emulator.

Snowflake cannot be reached from here: every test in this module runs against the emulator (``running_fakesnow``:
fakesnow 0.12.1 in its own environment, with the gaps ``tests/emulators/fakesnow/serve.py`` lists closed; dlt, dbt,
GX and Headwater run their real Snowflake code paths). One scenario on a copy of the demo dbt project: ingest with
dlt's snowflake destination, build with dbt-snowflake, checks (dbt tests, GX through snowflake-sqlalchemy, freshness,
quarantine), the run log in the warehouse's HEADWATER schema; then ``demo --advance`` and a rerun; then a planted
failure, ``plan`` against the deployed state, and ``retry`` once fixed; then the same data on DuckDB and a table diff.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import REPO, base_env, run_cli, running_fakesnow, snowflake_connect, snowflake_env

MARTS = ("orders", "customers", "daily_revenue", "marketing_roi", "order_items")
RAW_SHOP = ("customers", "products", "orders", "order_items", "payments")
PASSWORD = "pw-emulated-7f3c91d2"
BREAK = "    case when joined.order_count > 0"
BROKEN = "    no_such_column as planted_failure,\n" + BREAK


def _statuses(db: Path) -> dict[int, str]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("select id, status from orders").fetchall())


class Warehouse:
    def __init__(self, port: int) -> None:
        self.port = port

    def query(self, sql: str) -> list[tuple]:
        connection = snowflake_connect(self.port)
        try:
            return connection.cursor().execute(sql).fetchall()
        finally:
            connection.close()

    def counts(self) -> dict[str, int]:
        tables = [f"raw_shop.{t}" for t in RAW_SHOP] + ["raw_marketing.ad_spend"] + [f"marts.{m}" for m in MARTS]
        return {t: self.query(f"select count(*) from {t}")[0][0] for t in tables}


@pytest.fixture(scope="module")
def sf(tmp_path_factory: pytest.TempPathFactory, prefect_server: str):
    root = tmp_path_factory.mktemp("snowflake")
    project = root / "project"  # a copy of the repository's project (the planted failure edits a model)
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "__pycache__")
    for part in ("dbt_project", "profiles", "quality/suites"):
        shutil.copytree(REPO / part, project / part, ignore=ignore)
    shutil.copy(REPO / "headwater.yml", project / "headwater.yml")
    roi = project / "dbt_project" / "models" / "marts" / "marketing_roi.sql"
    assert BREAK in roi.read_text()
    with running_fakesnow(root) as port:
        env = base_env(root / "data", root / "prefect", prefect_server)
        env = {
            **snowflake_env(env, port),
            "HEADWATER_SNOWFLAKE_PASSWORD": PASSWORD,
            "HEADWATER_PROJECT_DIR": str(project),
        }
        dbt: list[str] = []
        args = ["--target", "snowflake"]
        warehouse = Warehouse(port)
        out: dict = {"env": env, "root": root, "warehouse": warehouse, "dbt": dbt, "args": args}
        out["first"] = run_cli(["materialize", *args], env, check=False)
        _ok(out["first"])
        out["counts_first"] = warehouse.counts()
        out["status"] = run_cli(["status", *args, "layer:marts"], env, check=False)
        out["checks"] = run_cli(["checks", *args, "--failed"], env, check=False)
        shop = root / "data" / "demo" / "shop.db"
        before = _statuses(shop)
        run_cli(["demo", "--advance"], env)
        after = _statuses(shop)
        out["changed"] = {oid: status for oid, status in after.items() if oid in before and before[oid] != status}
        out["second"] = run_cli(["materialize", *args], env, check=False)
        out["counts_second"] = warehouse.counts()
        out["save"] = run_cli(["plan", "--save", *args], env, check=False)
        original = roi.read_text()
        roi.write_text(original.replace(BREAK, BROKEN))
        out["plan"] = run_cli(["plan", "--json", *args], env, check=False)
        out["broken"] = run_cli(["materialize", *args], env, check=False)
        roi.write_text(original)
        out["retry"] = run_cli(["retry", *args], env, check=False)
        out["run_log"] = {
            table: warehouse.query(f"select * from headwater.{table}")
            for table in ("runs", "materializations", "check_results")
        }
        out["dev"] = run_cli(["materialize", *dbt], env, check=False)
        yield out


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_materialize_on_snowflake_fills_the_marts(sf) -> None:
    _ok(sf["first"])
    assert "materialized on target snowflake" in sf["first"].stdout
    counts = sf["counts_first"]
    assert all(counts[f"marts.{m}"] > 0 for m in MARTS), counts
    assert counts["raw_shop.orders"] == counts["marts.orders"]
    assert counts["raw_shop.order_items"] == counts["marts.order_items"]


def test_every_source_row_is_loaded_or_quarantined(sf) -> None:
    """dlt's snowflake destination (parquet through the table stage, COPY INTO): nothing lost, nothing twice."""
    records = sf["warehouse"].query("select table_name, record from raw_shop._headwater_quarantine")
    quarantined: dict[str, set] = {}
    for table, record in records:
        quarantined.setdefault(table, set()).add(json.loads(record)["id"])
    with sqlite3.connect(sf["root"] / "data" / "demo" / "shop.db") as con:
        for table in RAW_SHOP:
            source = con.execute(f"select count(*) from {table}").fetchone()[0]
            loaded = sf["counts_second"][f"raw_shop.{table}"]
            assert loaded + len(quarantined.get(table, ())) == source, table
        unpaid = con.execute("select count(*) from payments where amount is null").fetchone()[0]
    assert unpaid > 0 and len(quarantined["payments"]) == unpaid
    reasons = {r[0] for r in sf["warehouse"].query("select reason from raw_marketing._headwater_quarantine")}
    assert "spend: 'n/a' is not a double" in reasons
    assert "quarantined" in sf["first"].stdout and "raw_marketing.ad_spend" in sf["first"].stdout


def test_advance_merges_status_changes_without_duplicates(sf) -> None:
    _ok(sf["second"])
    assert sf["changed"], "advancing a day must change some order statuses"
    ids = ",".join(str(i) for i in sf["changed"])
    marts = dict(sf["warehouse"].query(f"select order_id, status from marts.orders where order_id in ({ids})"))
    assert marts == {oid: status.strip().lower() for oid, status in sf["changed"].items()}
    for table, key in (("raw_shop.orders", "id"), ("marts.orders", "order_id"), ("raw_shop.payments", "id")):
        dupes = sf["warehouse"].query(f"select count(*) - count(distinct {key}) from {table}")[0][0]
        assert dupes == 0, f"{table} has {dupes} duplicate keys"
    assert sf["counts_second"]["raw_shop.orders"] > sf["counts_first"]["raw_shop.orders"]


def test_incremental_mart_and_snapshot(sf) -> None:
    warehouse = sf["warehouse"]
    incremental = warehouse.query("select count(*), sum(line_amount) from marts.order_items")[0]
    full = warehouse.query("select count(*), sum(line_amount) from staging.stg_shop__order_items")[0]
    assert incremental == full
    rows, customers = warehouse.query("select count(*), count(distinct customer_id) from snapshots.customers_snapshot")[
        0
    ]
    assert rows > customers, "customers who moved must have a closed and an open snapshot row"
    assert warehouse.query("select count(*) from seeds.channels")[0][0] > 0


def test_run_log_lives_in_the_warehouse(sf) -> None:
    """As on PostgreSQL: every worker shares it (no SQLite file for the snowflake target)."""
    log = sf["run_log"]
    assert len(log["runs"]) == 4  # first, second, broken, retry
    assert not list((sf["root"] / "data").glob("run_log_snowflake*"))
    checks = {(r[1], r[2]) for r in log["check_results"]}
    for key in (
        ("raw_shop.orders", "status_canonical"),  # GX, pushed down through snowflake-sqlalchemy
        ("raw_shop.payments", "amount_not_negative"),
        ("marts.orders", "customer_known"),
        ("raw_shop.payments", "freshness"),
        ("raw_shop.payments", "quarantine"),
    ):
        assert key in checks, key
    assert sum(1 for r in log["materializations"] if r[3] == "success") >= 21


def test_status_and_checks_read_the_snowflake_run_log(sf) -> None:
    _ok(sf["status"])
    assert "marts.orders" in sf["status"].stdout and "marts.marketing_roi" in sf["status"].stdout
    assert "status_canonical" in sf["checks"].stdout and "quarantine" in sf["checks"].stdout


def test_plan_and_retry_after_a_planted_failure(sf) -> None:
    _ok(sf["save"])
    plan = json.loads(sf["plan"].stdout)
    assert "marts.marketing_roi" in json.dumps(plan)
    broken = sf["broken"]
    assert broken.returncode == 1, broken.stdout[-3000:]
    assert "failed marts.marketing_roi" in broken.stdout
    assert "materialized on target snowflake" not in broken.stdout
    _ok(sf["retry"])
    runs = sorted(sf["run_log"]["runs"], key=lambda r: r[5])
    retry_id = runs[-1][0]
    retried = {r[1] for r in sf["run_log"]["materializations"] if r[0] == retry_id}
    assert retried == {"marts.marketing_roi", "exposures.revenue_dashboard"}, retried  # the exposure was skipped
    assert sf["warehouse"].query("select count(*) from marts.marketing_roi")[0][0] > 0


def test_gx_and_dbt_verdicts_match_duckdb_on_the_same_data(sf) -> None:
    """The demo built on DuckDB from the same source data: every check that does not depend on load history
    (quarantine counts per load, freshness) gives the same verdict on both warehouses."""
    _ok(sf["dev"])
    with sqlite3.connect(sf["root"] / "data" / "run_log_dev.sqlite") as con:
        dev = {(a, c): s for a, c, s in con.execute("select asset_key, check_name, status from check_results")}
    second = sorted(sf["run_log"]["runs"], key=lambda r: r[5])[1][0]
    snow = {(r[1], r[2]): r[4] for r in sf["run_log"]["check_results"] if r[0] == second}
    compared = {k for k in snow if k in dev and k[1] not in ("quarantine", "freshness")}
    assert len(compared) > 40
    assert {k: snow[k] for k in compared} == {k: dev[k] for k in compared}


def test_table_diff_between_dev_and_snowflake(sf) -> None:
    def diff(model: str, *extra: str) -> dict:
        proc = run_cli(["diff", model, "--from", "dev", "--to", "snowflake", "--json", *sf["dbt"], *extra], sf["env"])
        return json.loads(proc.stdout)

    for model in ("marts.orders",):  # each diff is a process (~25 s here): one plain, one with a key, one ignoring
        rows = diff(model)["rows"]
        assert rows["source"] == rows["target"] == rows["matched"] > 0 and rows["changed"] == 0, (model, rows)
    items = diff("marts.order_items", "--ignore", "_dlt_load_id")["rows"]  # each warehouse has its own loads
    assert items["changed"] == 0 and items["source"] == items["target"] > 0
    roi = diff("marts.marketing_roi")
    # the emulator computes NUMBER / NUMBER in floating point (Snowflake keeps NUMBER): round(x, 2) can land one
    # cent apart; nothing else may differ
    assert roi["rows"]["only_in_source"] == roi["rows"]["only_in_target"] == 0
    assert set(roi["column_mismatches"]) <= {"cost_per_order", "roas"}


def test_the_password_is_never_printed_or_stored(sf) -> None:
    outputs = [sf[k] for k in ("first", "second", "broken", "retry", "status", "checks", "plan")]
    for proc in outputs:
        assert PASSWORD not in proc.stdout + proc.stderr
    for path in (sf["root"] / "data").rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_key_pair_authentication(tmp_path: Path, prefect_server: str) -> None:
    """An encrypted PEM key and its passphrase, no password: dlt, dbt and the run log (SQLAlchemy, as GX) sign in with
    the key (the emulator accepts any signature: the key's use is checked, not Snowflake's verification of it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    passphrase = "kp-passphrase-41d9"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    ).decode()
    with running_fakesnow(tmp_path) as port:
        env = snowflake_env(base_env(tmp_path / "data", tmp_path / "prefect", prefect_server), port, "KEYPAIR")
        del env["HEADWATER_SNOWFLAKE_PASSWORD"]
        missing = run_cli(["materialize", "--target", "snowflake"], env, check=False)
        assert missing.returncode != 0 and "HEADWATER_SNOWFLAKE_PRIVATE_KEY_PATH" in missing.stdout + missing.stderr
        env.update(HEADWATER_SNOWFLAKE_PRIVATE_KEY=pem, HEADWATER_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE="wrong")
        wrong = run_cli(["materialize", "--target", "snowflake"], env, check=False)
        assert wrong.returncode != 0 and "cannot read the private key" in wrong.stdout + wrong.stderr
        env["HEADWATER_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"] = passphrase
        ingest = run_cli(["ingest", "--target", "snowflake"], env, check=False)  # dlt
        _ok(ingest)
        seed = ["key:seeds.channels", "--indirect-selection", "cautious"]  # not the tests that read staging views
        run = run_cli(["materialize", "--target", "snowflake", *seed], env, check=False)  # dbt, the run log
        _ok(run)
        connection = snowflake_connect(port, "KEYPAIR")
        try:
            assert connection.cursor().execute("select count(*) from raw_shop.orders").fetchall()[0][0] > 0
            assert connection.cursor().execute("select count(*) from seeds.channels").fetchall()[0][0] > 0
            # the ingest is recorded as a run of its own (its tables' loads), then the materialize
            assert connection.cursor().execute("select count(*) from headwater.runs").fetchall()[0][0] == 2
        finally:
            connection.close()
        body = pem.splitlines()[1]
        for proc in (missing, wrong, ingest, run):
            assert body not in proc.stdout + proc.stderr and passphrase not in proc.stdout + proc.stderr
