"""Ingestion benchmark: dlt (Arrow, parquet) into DuckDB against a raw DuckDB Arrow insert of the same rows.

    uv run python benchmarks/ingest.py --rows 1000000 [--shop-scale 80]

Budget (ARCHITECTURE.md): dlt at no less than a third of the raw insert's rows/s. With ``--shop-scale`` it
also times the real shop source (SQLite -> dlt sql_database, pyarrow backend -> DuckDB) end to end.
The last line is ``ratio <dlt rows/s / raw rows/s> rows <n>``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import dlt
import duckdb
import numpy as np
import pyarrow as pa

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


def order_items(rows: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": np.arange(1, rows + 1, dtype=np.int64),
            "order_id": rng.integers(1, rows // 3 + 2, size=rows),
            "product_id": rng.integers(1, 61, size=rows),
            "quantity": rng.integers(1, 4, size=rows),
            "unit_price": np.round(rng.uniform(5, 250, size=rows), 2),
            "updated_at": pa.array(np.full(rows, np.datetime64("2026-01-01T00:00:00", "us"))),
        }
    )


def raw_insert(table: pa.Table, path: Path) -> float:
    start = time.perf_counter()
    with duckdb.connect(str(path)) as con:
        con.execute("create schema landing")
        con.register("incoming", table)
        con.execute("create table landing.order_items as select * from incoming")
    return time.perf_counter() - start


def dlt_insert(table: pa.Table, path: Path, work: Path) -> float:
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        destination=dlt.destinations.duckdb(str(path)),
        dataset_name="raw",
        pipelines_dir=str(work),
    )
    start = time.perf_counter()
    pipeline.run(table, table_name="order_items", loader_file_format="parquet", write_disposition="append")
    return time.perf_counter() - start


def shop_source(scale: float, work: Path) -> tuple[int, float]:
    from ingestion import SOURCES, SourcePaths, run_source
    from ingestion.shop.simulator import create_shop

    create_shop(work / "shop.db", scale=scale)
    with sqlite3.connect(work / "shop.db") as con:
        items = con.execute("select count(*) from order_items").fetchone()[0]
    paths = SourcePaths(shop_db=work / "shop.db", marketing_landing=work / "landing")
    start = time.perf_counter()
    run_source(
        SOURCES["shop"],
        paths,
        dlt.destinations.duckdb(str(work / "shop.duckdb")),
        target="bench",
        pipelines_dir=work / "pipes",
        tables=("order_items",),
    )
    return items, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shop-scale", type=float, default=None, help="also time the real shop source at this scale")
    args = parser.parse_args()
    table = order_items(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        raw_s = raw_insert(table, work / "raw.duckdb")
        dlt_s = dlt_insert(table, work / "dlt.duckdb", work / "pipes")
        raw_rate, dlt_rate = args.rows / raw_s, args.rows / dlt_s
        print(f"raw duckdb arrow insert: {raw_s:7.2f} s  {raw_rate:12,.0f} rows/s")
        print(f"dlt arrow -> parquet   : {dlt_s:7.2f} s  {dlt_rate:12,.0f} rows/s")
        if args.shop_scale:
            items, shop_s = shop_source(args.shop_scale, work)
            print(f"shop source (sqlite)   : {shop_s:7.2f} s  {items / shop_s:12,.0f} rows/s ({items:,} order items)")
        print(f"ratio {dlt_rate / raw_rate:.3f} rows {args.rows}")


if __name__ == "__main__":
    main()
