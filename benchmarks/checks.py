"""Checks benchmark: a 10-expectation GX suite on a 1M-row table, on DuckDB and on PostgreSQL.

    uv run python benchmarks/checks.py --rows 1000000 [--skip-postgres] [--repeat 3]

Each target gets the same table (Arrow-generated, with a few planted bad rows) and the same suite, run by
Headwater's SuiteRunner (GX pushes every expectation down as SQL). The baseline, measured in the same run,
is one hand-written query computing the same ten aggregates: the least work the warehouse must do. Printed:
best-of-N seconds for both and their ratio; the last line is ``duckdb <ratio> postgres <ratio> rows <n>``.
GX's import and context set-up are reported apart (paid once per run, not per suite).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from quality.suites import load_suites

METHODS = ["card", "paypal", "bank_transfer", "gift_card"]
SUITE = f"""
severity: error
expectations:
  - expect_column_values_to_not_be_null: {{column: id}}
  - expect_column_values_to_be_unique: {{column: id}}
  - expect_column_values_to_not_be_null: {{column: order_id}}
  - expect_column_values_to_be_between: {{column: amount, min_value: 0}}
  - expect_column_values_to_be_in_set: {{column: method, value_set: {METHODS}}}
  - expect_column_values_to_be_in_set: {{column: status, value_set: [succeeded, failed]}}
  - expect_table_row_count_to_be_between: {{min_value: 1}}
  - expect_column_max_to_be_between: {{column: amount, max_value: 100000}}
  - expect_column_mean_to_be_between: {{column: amount, min_value: 1, max_value: 1000}}
  - expect_column_values_to_not_be_null: {{column: paid_at}}
"""
BASELINE = """
select count(*), count(id), count(distinct id), count(order_id),
       sum(case when amount < 0 then 1 else 0 end),
       sum(case when method not in ('card', 'paypal', 'bank_transfer', 'gift_card') then 1 else 0 end),
       sum(case when status not in ('succeeded', 'failed') then 1 else 0 end),
       max(amount), avg(amount), count(paid_at)
from bench.payments
"""


def payments(rows: int) -> pa.Table:
    rng = np.random.default_rng(7)
    amount = np.round(rng.uniform(1, 500, size=rows), 2)
    amount[rng.random(rows) < 0.001] *= -1  # planted: negative payments
    return pa.table(
        {
            "id": np.arange(1, rows + 1, dtype=np.int64),
            "order_id": rng.integers(1, rows, size=rows),
            "amount": amount,
            "method": pa.array(np.array(METHODS)[rng.integers(0, 4, size=rows)]),
            "status": pa.array(np.where(rng.random(rows) < 0.98, "succeeded", "failed")),
            "paid_at": pa.array(np.full(rows, np.datetime64("2026-01-01T00:00:00", "us"))),
        }
    )


def fill_duckdb(path: Path, table: pa.Table) -> str:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema bench")
        con.register("t", table)
        con.execute("create table bench.payments as select * from t")
    return f"duckdb:///{path}"


def fill_postgres(admin_url: str, table: pa.Table) -> tuple[str, str]:
    name = f"hw_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    engine = sa.create_engine(url)
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    buffer.seek(0)
    with engine.begin() as conn:
        conn.execute(sa.text("create schema bench"))
        conn.execute(
            sa.text(
                "create table bench.payments (id bigint, order_id bigint, amount double precision, method text, "
                "status text, paid_at timestamp)"
            )
        )
        cursor = conn.connection.cursor()
        cursor.copy_expert("copy bench.payments from stdin with (format csv, header true)", buffer)
        conn.execute(sa.text("analyze bench.payments"))
    engine.dispose()
    return url, name


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(label: str, url: str, suite, repeat: int, work: Path) -> float:
    from quality.gx_runner import SuiteRunner, Warehouse

    started = time.perf_counter()
    runner = SuiteRunner(work / label, Warehouse(label, url))
    setup = time.perf_counter() - started
    outcomes = []

    def run_suite() -> None:
        outcomes[:] = runner.run(suite, "bench", "payments")

    gx_time = best(run_suite, repeat)
    runner.close()
    engine = sa.create_engine(url)

    def baseline() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(BASELINE)).fetchall()

    sql_time = best(baseline, repeat)
    engine.dispose()
    verdicts = {o.status for o in outcomes}
    failed = [o.check.name for o in outcomes if o.status != "pass"]
    print(
        f"{label:9}: GX suite {gx_time:6.2f} s  one SQL query {sql_time:6.3f} s  ratio {gx_time / sql_time:6.1f}  "
        f"(context set-up {setup:.1f} s; {len(outcomes)} expectations, statuses {sorted(verdicts)}, failed {failed})"
    )
    return gx_time / sql_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--postgres-admin-url",
        default=os.environ.get("HEADWATER_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    started = time.perf_counter()
    import great_expectations  # noqa: F401  (timed apart: paid once per process)

    print(f"import great_expectations: {time.perf_counter() - started:.1f} s")
    table = payments(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        suites = work / "suites"
        suites.mkdir()
        (suites / "bench.payments.yml").write_text(SUITE)
        (suite,) = load_suites(suites)
        duck = measure("duckdb", fill_duckdb(work / "warehouse.duckdb", table), suite, args.repeat, work)
        pg = float("nan")
        if not args.skip_postgres:
            url, name = fill_postgres(args.postgres_admin_url, table)
            try:
                pg = measure("postgres", url, suite, args.repeat, work)
            finally:
                admin = sa.create_engine(args.postgres_admin_url, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    print(f"duckdb {duck:.1f} postgres {pg:.1f} rows {args.rows}")


if __name__ == "__main__":
    main()
