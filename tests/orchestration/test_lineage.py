"""``headwater lineage`` over the demo project, compiled for real by dbt (no data needed)."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_demo_mart_column_resolves_to_its_raw_columns(hw_env: dict[str, str]) -> None:
    proc = run_cli(["lineage", "marts.orders.is_paid", "--json"], hw_env)
    document = json.loads(proc.stdout)
    assert document["roots"] == [
        "raw_shop.order_items.quantity",
        "raw_shop.order_items.unit_price",
        "raw_shop.payments.amount",
        "raw_shop.payments.status",
    ]
    assert [c["column"] for c in document["tree"]["upstream"]] == [
        "intermediate.int_orders__items_summed.order_amount",
        "intermediate.int_payments__summed.amount_paid",
    ]
    assert document["problems"] == {}

    downstream = run_cli(["lineage", "raw_shop.orders.status", "--downstream"], hw_env).stdout
    for column in ("staging.stg_shop__orders.status", "marts.orders.status", "marts.daily_revenue.net_revenue"):
        assert column in downstream

    missing = run_cli(["lineage", "marts.orders.revenue"], hw_env, check=False)
    assert missing.returncode == 2
    assert "marts.orders has no column 'revenue'; its columns: order_id" in missing.stdout
    assert "Traceback" not in missing.stdout + missing.stderr
