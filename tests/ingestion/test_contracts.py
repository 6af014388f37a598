"""Data contracts: bad rows are split off with every reason, good rows are cast, nothing disappears."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from ingestion.contracts import ORIGIN_COLUMN, ColumnRule, TableContract, quarantine_rows, resource_names, split

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

CONTRACT = TableContract(
    table="ad_spend",
    columns=(
        ColumnRule("spend_date", "date", required=True),
        ColumnRule("campaign_id", "text", required=True),
        ColumnRule("clicks", "bigint"),
        ColumnRule("spend", "double", required=True),
    ),
)


def batch() -> pa.Table:
    return pa.table(
        {
            "spend_date": ["2026-01-01", "2026-01-02", None, "2026-01-04", "01/05/2026"],
            "campaign_id": ["a", " ", "b", "c", "d"],
            "clicks": ["1", "2", "3", "", "x"],
            "spend": ["1.5", "n/a", "2", "3e2", "4"],
            ORIGIN_COLUMN: ["f.csv"] * 5,
            "note": ["é", "'; drop table x; --", "日本", "", "z" * 10_000],
        }
    )


def test_split_keeps_good_rows_cast_and_lists_every_reason() -> None:
    good, reasons = split(batch(), CONTRACT)
    assert good.column("spend_date").type == pa.date32() and good.column("spend").type == pa.float64()
    assert good.select(["campaign_id", "clicks", "spend"]).to_pylist() == [
        {"campaign_id": "a", "clicks": 1, "spend": 1.5},
        {"campaign_id": "c", "clicks": None, "spend": 300.0},
    ]
    assert reasons == [
        (1, "campaign_id: required value is missing; spend: 'n/a' is not a double"),
        (2, "spend_date: required value is missing"),
        (4, "spend_date: '01/05/2026' is not a date; clicks: 'x' is not a bigint"),
    ]


def test_every_input_row_is_either_loaded_or_quarantined() -> None:
    table = batch()
    good, reasons = split(table, CONTRACT)
    assert good.num_rows + len(reasons) == table.num_rows


def test_quarantine_rows_keep_the_whole_record_and_its_origin() -> None:
    table = batch()
    _, reasons = split(table, CONTRACT)
    rows = quarantine_rows(table, reasons, source="marketing", contract=CONTRACT).to_pylist()
    assert [r["origin"] for r in rows] == ["f.csv, row 2", "f.csv, row 3", "f.csv, row 5"]
    assert {r["source"] for r in rows} == {"marketing"} and {r["table_name"] for r in rows} == {"ad_spend"}
    assert json.loads(rows[0]["record"])["note"] == "'; drop table x; --"
    assert len(json.loads(rows[2]["record"])["note"]) == 10_000


def test_database_rows_are_identified_by_key() -> None:
    contract = TableContract("payments", (ColumnRule("amount", "double", required=True),), key="id")
    table = pa.table({"id": [7, 8], "amount": pa.array([1.0, None], pa.float64())})
    good, reasons = split(table, contract)
    assert good.column("amount").type == pa.float64() and good.num_rows == 1
    assert quarantine_rows(table, reasons, source="shop", contract=contract).column("origin").to_pylist() == ["id=8"]


def test_a_missing_contracted_column_rejects_the_batch() -> None:
    good, reasons = split(pa.table({"campaign_id": ["a"], "spend": ["1"]}), CONTRACT)
    assert good.num_rows == 0 and reasons == [(0, "spend_date: column missing from the input")]


def test_unknown_rule_type_is_refused() -> None:
    with pytest.raises(ValueError, match="type 'money' is not one of"):
        ColumnRule("spend", "money")


def test_contracted_tables_select_their_quarantine_resource() -> None:
    assert resource_names(["payments", "orders"], ["orders", "payments", "payments__quarantine"]) == [
        "payments",
        "payments__quarantine",
        "orders",
    ]


def test_every_row_of_a_repeated_key_is_quarantined_with_the_count() -> None:
    contract = TableContract(
        table="t", unique=("day", "id"), columns=(ColumnRule("day", "date"), ColumnRule("id", "text", required=True))
    )
    batch = pa.table({"day": ["2030-01-01", "2030-01-01", "2030-01-02", "2030-01-01"], "id": ["a", "b", "a", "a"]})
    good, reasons = split(batch, contract)
    assert good.column("id").to_pylist() == ["b", "a"]
    assert [i for i, _ in reasons] == [0, 3]
    assert all("key ('2030-01-01', 'a') appears 2 times in one batch" in reason for _, reason in reasons)
    # without the key columns (or with one row) nothing is judged
    assert split(batch.drop_columns(["day"]), contract)[1] == []
