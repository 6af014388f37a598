"""The reconcile comparison itself, pure: what an incremental source cannot see, found from key -> cursor maps."""

from __future__ import annotations

from datetime import datetime

import pytest

from ingestion.reconcile import comparable, reconcile, sample_keys

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def test_a_cursor_read_as_text_at_the_source_equals_the_same_timestamp_in_the_warehouse() -> None:
    source = comparable({1: "2026-11-01 10:00:00", 2: "2026-11-01T11:00:00", 3: 7, 4: None})
    warehouse = comparable({1: datetime(2026, 11, 1, 10), 2: datetime(2026, 11, 1, 11), 3: 7.0, 4: None})
    assert source == warehouse
    assert reconcile("t", source, warehouse).total == 0
    assert sorted(sample_keys(source, warehouse)) == [1, 2, 3, 4]


def test_deletes_rows_behind_the_cursor_and_moved_cursors_are_each_counted_and_quarantined_rows_are_not() -> None:
    source = comparable({1: "2026-11-01 10:00:00", 2: "2026-10-01 00:00:00", 4: "2026-11-01 12:00:00", 5: 1})
    warehouse = comparable({1: datetime(2026, 11, 1, 10), 2: datetime(2026, 11, 2), 3: datetime(2026, 11, 3)})
    found = reconcile("orders", source, warehouse, quarantined=[5])
    assert found.deleted == (3,) and found.missing == (4,) and found.stale == (2,) and found.total == 3
    assert "1 deleted at the source" in found.message("shop") and "--full-refresh shop" in found.message("shop")
    assert sample_keys(source, warehouse) == [1], "only rows with the same cursor on both sides are sampled"


def test_a_sampled_row_whose_content_changed_under_the_same_cursor_is_found() -> None:
    cursors = comparable({1: "2026-11-01 10:00:00"})
    found = reconcile("c", cursors, cursors, (), {1: {"email": "a@x", "n": 1}}, {1: {"email": "b@x", "n": 1.0}})
    assert found.changed == (1,) and found.sampled == 1


def test_a_samples_count_is_said_as_a_samples_count_with_what_it_stands_for() -> None:
    """Issue 29 finding 12: 3 changed rows in a sample of 60 drawn from 500 are about 25 in the table, not 3."""
    cursors = comparable({k: "2026-11-01 10:00:00" for k in range(500)})
    sample = sample_keys(cursors, cursors, size=60)
    ours = {k: {"email": "a"} for k in sample}
    theirs = {k: {"email": "b" if i < 3 else "a"} for i, k in enumerate(sample)}
    found = reconcile("customers", cursors, cursors, (), ours, theirs)
    message = found.message("shop")
    assert "3 of 60 sampled rows changed at the source without a newer cursor (about 25 of its 500 rows)" in message
