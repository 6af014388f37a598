"""Concurrency by asset through Prefect's global concurrency limits (what Snowflake runs use: no session lock there),
against a real Prefect server: holders on disjoint assets overlap, holders sharing an asset (written or read) take
turns. The Snowflake warehouse itself is not involved: the limits live on the Prefect server."""

from __future__ import annotations

import contextvars
import threading
import time

from orchestration.prefect.asset_slots import asset_slots, ensure_slots, slot_name
from orchestration.warehouse.targets import Target

SNOW = Target("snowflake", "snowflake", {"account": "acme", "database": "analytics"})


def _hold(spans: dict, label: str, writes: list[str], reads: list[str], meet: threading.Barrier | None) -> None:
    with asset_slots(SNOW, writes, reads, timeout=60):
        started = time.monotonic()
        if meet is not None:
            meet.wait(60)  # both hold their slots at once, or this times out (and the span is missing)
        else:
            time.sleep(1.5)
        spans[label] = (started, time.monotonic())


def _together(url: str, *holders: tuple[str, list[str], list[str]], meet: bool = False) -> dict:
    """Each holder in its own thread; with ``meet``, each waits (holding) until the other holds too."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    spans: dict = {}
    threads = []
    barrier = threading.Barrier(len(holders)) if meet else None
    with temporary_settings({PREFECT_API_URL: url}):
        for label, writes, reads in holders:
            run = contextvars.copy_context().run  # each thread sees the API URL set here
            threads.append(threading.Thread(target=run, args=(_hold, spans, label, writes, reads, barrier)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    return spans


def _overlap(spans: dict) -> bool:
    (a_start, a_end), (b_start, b_end) = spans.values()
    return a_start < b_end and b_start < a_end


def test_disjoint_holders_overlap_and_sharing_ones_take_turns(prefect_server: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        names = ensure_slots(SNOW, ["marts.orders", "marts.customers", "staging.stg_orders"])
    assert slot_name(SNOW, "marts.orders") in names
    disjoint = _together(prefect_server, ("a", ["marts.orders"], []), ("b", ["marts.customers"], []), meet=True)
    assert len(disjoint) == 2 and _overlap(disjoint), disjoint
    same = _together(prefect_server, ("a", ["marts.orders"], []), ("b", ["marts.orders"], []))
    assert len(same) == 2 and not _overlap(same), same
    reader = _together(
        prefect_server, ("a", ["staging.stg_orders"], []), ("b", ["marts.orders"], ["staging.stg_orders"])
    )
    assert len(reader) == 2 and not _overlap(reader), "a run reading what another writes waits for it"


def test_a_holder_that_may_not_wait_is_refused_naming_the_limits(prefect_server: str) -> None:
    import pytest
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from orchestration.warehouse.lock import TargetBusy

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        ensure_slots(SNOW, ["marts.daily"])
        with asset_slots(SNOW, ["marts.daily"], timeout=0):
            with pytest.raises(TargetBusy, match="headwater-asset-snowflake-"):
                with asset_slots(SNOW, [], ["marts.daily"], timeout=0):
                    pass
        with asset_slots(SNOW, ["marts.not_deployed"], timeout=0):
            pass  # an asset without a limit (added after the last deploy) is not held, and does not stop the run
