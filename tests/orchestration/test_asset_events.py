"""Asset events and compiled triggers, as data (no server): what a run publishes and what `deploy` registers.
The server side (the trigger firing on these events, a worker running the reactive run) is test_deployment.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from assets import AssetKey, AssetKind, AssetSpec, CheckSpec, build_asset_graph
from assets.automation import resolve_automations
from assets.checks import CheckOutcome
from orchestration.engine.report import AssetResult, MaterializeReport
from orchestration.prefect.asset_events import REFERENCED, SUCCEEDED, asset_events
from orchestration.prefect.automations import compile_automation
from orchestration.warehouse.targets import Target
from tests.assets.test_automation import spec as automation_spec

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
PG = Target("postgres", "postgres", {"host": "db.internal", "port": 5432, "dbname": "warehouse", "user": "u"})


def spec(key: str, *deps: str, kind: AssetKind = AssetKind.PYTHON) -> AssetSpec:
    """The asset-model tests' spec, with a code version per key and an upper-case relation for marts (as Snowflake
    names them)."""
    return automation_spec(key, *deps, kind=kind).merged(
        code_version=f"code-{key}", relation=key.upper() if key.startswith("marts") else ""
    )


GRAPH = build_asset_graph(
    python_assets=[
        spec("raw.a", kind=AssetKind.DLT),
        spec("raw.x", kind=AssetKind.DLT),
        spec("stg.b", "raw.a"),
        spec("marts.c", "stg.b", "raw.x"),
    ]
)
AUTOMATIONS = resolve_automations(
    GRAPH, {"downstream": {"select": "key:stg.b key:marts.c", "on_upstream_update": True}}
)


def result(key: str, status: str, minute: int, rows: int | None = None) -> AssetResult:
    start = T0 + timedelta(minutes=minute)
    return AssetResult(key, "x", status, 1, start, start + timedelta(seconds=30), rows=rows, message="boom\nmore")


def report(*results: AssetResult, checks=()) -> MaterializeReport:
    r = MaterializeReport(run_id="run-1", target="postgres", selection=None)
    r.assets = {a.key: a for a in results}
    r.checks = list(checks)
    return r


def test_an_ingest_alone_names_its_tables_by_uri_and_leaves_the_downstream_pending() -> None:
    events = asset_events(
        GRAPH, report(result("raw.a", "success", 0, rows=7)), PG, AUTOMATIONS, {AssetKey.parse("raw.a")}, "f1"
    )
    (event,) = events
    assert event["event"] == SUCCEEDED
    assert event["resource"]["prefect.resource.id"] == "postgres://db.internal:5432/warehouse/raw/a"
    assert event["resource"]["headwater.pending"] == ",downstream,"
    assert event["payload"]["rows"] == 7 and event["payload"]["code_version"] == "code-raw.a"
    assert {"prefect.resource.id": "prefect.flow-run.f1", "prefect.resource.role": "flow-run"} in event["related"]


def test_a_run_that_built_the_downstream_leaves_nothing_pending_and_references_what_it_read() -> None:
    built = report(
        result("raw.a", "success", 0, rows=7),
        result("stg.b", "success", 1),
        result("marts.c", "failed", 2),
        result("raw.x", "fresh", 0),
        checks=[CheckOutcome(CheckSpec(AssetKey.parse("stg.b"), "not_null_id"), "fail", failures=3)],
    )
    events = asset_events(GRAPH, built, PG, AUTOMATIONS, set(GRAPH.specs), "f1")
    by_name = {(e["event"], e["resource"]["headwater.asset"]): e for e in events}
    assert by_name[(SUCCEEDED, "raw.a")]["resource"]["headwater.pending"] == ",,"
    stg = by_name[(SUCCEEDED, "stg.b")]
    assert [r["prefect.resource.id"] for r in stg["related"] if r["prefect.resource.role"] == "asset"] == [
        "postgres://db.internal:5432/warehouse/raw/a"
    ]
    assert stg["payload"]["checks"] == {"not_null_id": "fail"}
    failed = by_name[("prefect.asset.materialization.failed", "marts.c")]
    assert failed["resource"]["prefect.resource.id"].endswith("/marts/c") and failed["payload"]["error"] == "boom"
    assert (REFERENCED, "raw.x") in by_name, "read, not built here (fresh): referenced"
    assert (REFERENCED, "raw.a") not in by_name, "built in this run: a materialization, not a reference"
    assert ("headwater.asset.check.failed", "stg.b") in by_name
    assert not any(e["resource"]["headwater.asset"] == "raw.x" and e["event"] == SUCCEEDED for e in events)


def test_a_passing_check_rides_on_its_assets_materialization_and_is_its_own_event_only_without_one() -> None:
    built = report(
        result("raw.a", "success", 0, rows=7),
        result("raw.x", "fresh", 0),
        checks=[
            CheckOutcome(CheckSpec(AssetKey.parse("raw.a"), "unique_id"), "pass"),
            CheckOutcome(CheckSpec(AssetKey.parse("raw.a"), "rows_valid"), "warn", failures=1),
            CheckOutcome(CheckSpec(AssetKey.parse("raw.x"), "not_null_id"), "pass"),
        ],
    )
    events = asset_events(GRAPH, built, PG, AUTOMATIONS, set(GRAPH.specs), "f1")
    checks = sorted((e["event"], e["payload"]["check"]) for e in events if e["event"].startswith("headwater.asset."))
    assert checks == [("headwater.asset.check.passed", "not_null_id"), ("headwater.asset.check.warned", "rows_valid")]
    (materialized,) = [e for e in events if e["event"] == SUCCEEDED]
    assert materialized["payload"]["checks"] == {"unique_id": "pass", "rows_valid": "warn"}, "every result is there"


def test_compiled_triggers_match_the_upstream_uris_and_the_pending_label() -> None:
    (compiled,) = [compile_automation(a, GRAPH, PG) for a in AUTOMATIONS]
    (trigger,) = compiled.triggers
    assert trigger.match.root == {
        "prefect.resource.id": [
            "postgres://db.internal:5432/warehouse/raw/a",
            "postgres://db.internal:5432/warehouse/raw/x",
        ],
        "headwater.pending": "*,downstream,*",
    }
    assert trigger.expect == {SUCCEEDED} and trigger.within == timedelta(minutes=5)
    assert trigger.parameters == {"selection": "key:stg.b key:marts.c", "target": "postgres"}
    (every,) = resolve_automations(
        GRAPH,
        {"every": {"select": "key:stg.b key:marts.c", "on_upstream_update": {"require": "all", "within": "1h"}},
         "aged": {"select": "key:marts.c", "max_age": "2h", "on_cron": "0 6 * * *"}},
    )[1:]  # fmt: skip
    compound = compile_automation(every, GRAPH, PG).triggers[0]
    assert compound.require == "all" and compound.within == timedelta(hours=1) and len(compound.triggers) == 2
    aged = compile_automation(resolve_automations(GRAPH, {"aged": {"select": "key:marts.c", "max_age": "2h",
                                                                     "on_cron": "0 6 * * *"}})[0], GRAPH, PG)  # fmt: skip
    (proactive,) = aged.triggers
    assert proactive.posture.value == "Proactive" and proactive.within == timedelta(hours=2)
    assert proactive.parameters["build_all"] is True
    (schedule,) = aged.schedules
    assert schedule.cron == "0 6 * * *" and schedule.parameters["selection"] == "key:marts.c"
