"""The demo scenario shared by the end-to-end, docs and catalog tests: materialized once per session."""

from __future__ import annotations

import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from tests.conftest import base_env, run_cli

MARTS = ("orders", "customers", "daily_revenue", "marketing_roi", "order_items")
RAW = {"raw_shop": ("customers", "products", "orders", "order_items", "payments"), "raw_marketing": ("ad_spend",)}


@dataclass
class Scenario:
    env: dict[str, str]
    data: Path
    outputs: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    loads: dict[str, int] = field(default_factory=dict)
    changed_orders: dict[int, str] = field(default_factory=dict)

    @property
    def warehouse(self) -> Path:
        return self.data / "headwater.duckdb"

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql).fetchall()

    def snapshot(self, label: str) -> None:
        counts = {}
        for schema, tables in RAW.items():
            for table in tables:
                counts[f"{schema}.{table}"] = self.query(f"select count(*) from {schema}.{table}")[0][0]
        for mart in MARTS:
            counts[f"marts.{mart}"] = self.query(f"select count(*) from marts.{mart}")[0][0]
        self.counts[label] = counts
        self.loads[label] = sum(self.query(f"select count(*) from {s}._dlt_loads")[0][0] for s in RAW)


def _sqlite_statuses(db: Path) -> dict[int, str]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("select id, status from orders").fetchall())


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("e2e")
    s = Scenario(env=base_env(root / "data", root / "prefect"), data=root / "data")
    s.outputs["first"] = run_cli(["materialize"], s.env)
    s.snapshot("first")
    s.outputs["idle"] = run_cli(["materialize"], s.env)
    s.snapshot("idle")
    shop_db = s.data / "demo" / "shop.db"
    before = _sqlite_statuses(shop_db)
    s.outputs["advance"] = run_cli(["demo", "--advance"], s.env)
    after = _sqlite_statuses(shop_db)
    s.changed_orders = {oid: status for oid, status in after.items() if oid in before and before[oid] != status}
    s.outputs["after_advance"] = run_cli(["materialize"], s.env)
    s.snapshot("after_advance")
    s.outputs["assets"] = run_cli(["assets"], s.env)
    s.outputs["status"] = run_cli(["status", "layer:marts"], s.env)
    return s
