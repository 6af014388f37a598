from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ingestion.marketing.simulator import write_spend
from ingestion.shop.simulator import TABLES, advance_shop, create_shop, read_state

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def dump(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as con:
        return {t: con.execute(f"select * from {t} order by id").fetchall() for t in TABLES}


def test_same_seed_same_data(tmp_path: Path) -> None:
    create_shop(tmp_path / "a.db", seed=7, scale=0.2)
    create_shop(tmp_path / "b.db", seed=7, scale=0.2)
    create_shop(tmp_path / "c.db", seed=8, scale=0.2)
    assert dump(tmp_path / "a.db") == dump(tmp_path / "b.db")
    assert dump(tmp_path / "a.db")["orders"] != dump(tmp_path / "c.db")["orders"]


def test_advance_is_deterministic_and_moves_time(tmp_path: Path) -> None:
    for name in ("a.db", "b.db"):
        create_shop(tmp_path / name, seed=3, scale=0.2)
        advance_shop(tmp_path / name, days=2)
    assert dump(tmp_path / "a.db") == dump(tmp_path / "b.db")
    assert read_state(tmp_path / "a.db").day == 61


def test_advance_brings_new_orders_status_updates_and_late_payments(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    state = create_shop(db, scale=0.5)
    before = dump(db)
    advance_shop(db)
    after = dump(db)
    assert len(after["orders"]) > len(before["orders"])
    old = {row[0]: row for row in before["orders"]}
    updated = [row for row in after["orders"] if row[0] in old and row[2] != old[row[0]][2]]
    assert updated and all(row[5] > old[row[0]][5] for row in updated), "status changes must move updated_at"
    late = [p for p in after["payments"] if p not in before["payments"] and p[1] in old]
    assert late, "some payments must arrive for orders placed on earlier days"
    assert state.day == 59


def test_dirty_rows_are_present(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    create_shop(db)
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from orders where status <> lower(trim(status))").fetchone()[0] > 0
        assert con.execute("select count(*) from payments where amount < 0").fetchone()[0] > 0
        assert con.execute("select count(*) from customers where email is null").fetchone()[0] > 0
        orphans = "select count(*) from orders where customer_id not in (select id from customers)"
        assert con.execute(orphans).fetchone()[0] > 0


def test_scale_multiplies_volume(tmp_path: Path) -> None:
    small = create_shop(tmp_path / "s.db", scale=0.2)
    large = create_shop(tmp_path / "l.db", scale=1.0)
    assert large.orders_per_day == 5 * small.orders_per_day
    with sqlite3.connect(tmp_path / "l.db") as con:
        assert 10_000 < con.execute("select count(*) from order_items").fetchone()[0] < 16_000


def test_existing_shop_is_not_overwritten(tmp_path: Path) -> None:
    create_shop(tmp_path / "s.db", scale=0.1)
    with pytest.raises(FileExistsError, match="--reset"):
        create_shop(tmp_path / "s.db")


def test_spend_files_are_written_once_per_day(tmp_path: Path) -> None:
    first = write_spend(tmp_path, seed=1, scale=1, days=range(3))
    again = write_spend(tmp_path, seed=1, scale=1, days=range(4))
    assert len(first) == 3 and len(again) == 1
    assert first[0].read_text().splitlines()[0].startswith("spend_date,channel,campaign_id")
