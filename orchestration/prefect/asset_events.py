"""Prefect asset events for a run: what it materialized, what it read, and its check results.

Prefect (3.4.5+) names the events: ``prefect.asset.materialization.succeeded`` / ``.failed`` with the asset as the
resource (``prefect.resource.id`` = a URI) and its upstream assets as related resources of role ``asset``, and
``prefect.asset.referenced`` for an asset that was read. Headwater adds ``headwater.asset.check.<passed|failed|
warned|errored>`` per check result. The OSS server keeps them (Event Feed, ``/events/filter``) and deployment triggers
react to them: that is how ``headwater deploy``'s automations run the graph (see ``automations``).

A materialization's resource carries ``headwater.pending``: ``,<name>,<name>,`` of the automations it leaves work to
(an automation whose assets read it and which this run did not build). A run that built the downstream itself
(a nightly full run) triggers nothing.

The events are built once the run's report is complete and published in one batch from the task-run mirror's
thread: after the dbt segment, never in its way.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from assets import AssetGraph, AssetKey
from assets.automation import Automation
from orchestration.engine.report import MaterializeReport, records
from orchestration.warehouse.targets import Target

SUCCEEDED = "prefect.asset.materialization.succeeded"
FAILED = "prefect.asset.materialization.failed"
REFERENCED = "prefect.asset.referenced"
CHECK = "headwater.asset.check."
_CHECK_WORD = {"pass": "passed", "fail": "failed", "warn": "warned", "error": "errored"}
MATERIALIZED_BY = "headwater"


def warehouse_uri(target: Target) -> str:
    """The warehouse part of an asset URI: ``duckdb://<database>``, ``postgres://<host>:<port>/<dbname>``,
    ``snowflake://<account>/<database>`` (lower case, no credentials)."""
    c = target.config
    if target.type == "duckdb":
        from pathlib import Path

        return f"duckdb://{Path(str(c.get('path') or 'memory')).stem}"
    if target.type == "postgres":
        return f"postgres://{c.get('host')}:{c.get('port', 5432)}/{c.get('dbname')}"
    if target.type == "snowflake":
        return f"snowflake://{c.get('account')}/{c.get('database')}"
    return f"{target.type}://{target.name}"


def asset_uri(target: Target, graph: AssetGraph, key: AssetKey) -> str:
    """An asset's stable id in Prefect: the warehouse URI, then ``/<schema>/<table>`` of its relation."""
    spec = graph.specs.get(key)
    relation = spec.relation_name if spec is not None else str(key)
    schema, _, table = relation.lower().rpartition(".")
    return f"{warehouse_uri(target).lower()}/{quote(schema or 'main')}/{quote(table)}"


def _resource(target: Target, graph: AssetGraph, key: AssetKey, pending: Sequence[str] = ()) -> dict[str, str]:
    spec = graph.specs.get(key)
    resource = {
        "prefect.resource.id": asset_uri(target, graph, key),
        "prefect.resource.name": str(key),
        "headwater.asset": str(key),
        "headwater.target": target.name,
        "headwater.pending": "," + ",".join(pending) + ",",
    }
    if spec is not None:
        resource["headwater.kind"] = spec.kind.value
        if spec.description:
            resource["prefect.asset.description"] = spec.description[:2500]
        if spec.owners:
            resource["prefect.asset.owners"] = json.dumps(list(spec.owners))
    return resource


def asset_events(
    graph: AssetGraph,
    report: MaterializeReport,
    target: Target,
    automations: Sequence[Automation] = (),
    covered: Collection[AssetKey] = (),
    flow_run_id: str | None = None,
) -> list[dict[str, Any]]:
    """The run's asset events as ``emit_event`` keyword arguments, in time order: a materialization per asset built
    (succeeded) or failed in its last attempt, one reference per upstream asset read but not built here, one event
    per check result that did not pass, and per passing check of an asset with no materialization here (a passing
    check of a materialized asset is in that event's ``checks``: the Prefect server's cost is per event). ``covered``
    is what the run selected (a fresh asset it kept counts as covered)."""
    materializations, checks = records(graph, report)
    by_asset: dict[str, dict[str, str]] = {}
    for row in checks:
        by_asset.setdefault(row.asset_key, {})[row.check_name] = row.status
    related_run = (
        [{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}]
        if flow_run_id
        else []
    )
    by = {"prefect.resource.id": MATERIALIZED_BY, "prefect.resource.role": "asset-materialized-by"}
    events: list[dict[str, Any]] = []
    built = {AssetKey.parse(m.asset_key) for m in materializations if m.status == "success"}
    referenced: dict[AssetKey, datetime] = {}
    covered_keys = frozenset(covered) | built
    for record in materializations:
        if record.status not in ("success", "failed"):
            continue  # fresh, unchanged (a table that loaded nothing), skipped: nothing new happened to it
        key = AssetKey.parse(record.asset_key)
        spec = graph.specs.get(key)
        upstream = [d for d in (spec.deps if spec else ()) if d in graph.specs]
        at = record.ended_at or datetime.now(UTC)
        for dep in upstream:
            if dep not in built:
                referenced[dep] = min(referenced.get(dep, at), record.started_at or at)
        pending = [a.name for a in automations if a.pending_after(graph, key, covered_keys)]
        payload = {
            "run_id": report.run_id,
            "target": report.target,
            "status": record.status,
            "rows": record.rows,
            "code_version": record.code_version,
            "attempts": record.attempts,
            "checks": by_asset.get(record.asset_key, {}),
        }
        if record.status == "failed":
            payload["error"] = (record.message or "").strip().splitlines()[0][:500] if record.message else ""
        events.append(
            {
                "event": SUCCEEDED if record.status == "success" else FAILED,
                "resource": _resource(target, graph, key, pending if record.status == "success" else ()),
                "related": [
                    *(
                        {"prefect.resource.id": asset_uri(target, graph, d), "prefect.resource.role": "asset"}
                        for d in upstream
                    ),
                    by,
                    *related_run,
                ],  # fmt: skip
                "payload": payload,
                "occurred": at,
            }
        )
    for dep, at in sorted(referenced.items()):
        events.append(
            {"event": REFERENCED, "resource": _resource(target, graph, dep), "related": related_run, "occurred": at}
        )
    ended = datetime.now(UTC)
    carried = {e["resource"]["headwater.asset"] for e in events if e["event"] in (SUCCEEDED, FAILED)}
    for check in report.checks:
        word = _CHECK_WORD.get(check.status)
        if word is None or check.check.asset_key is None:
            continue
        key = check.check.asset_key
        if check.status == "pass" and str(key) in carried:
            continue  # in its asset's materialization payload
        events.append(
            {
                "event": CHECK + word,
                "resource": _resource(target, graph, key),
                "related": [
                    {
                        "prefect.resource.id": f"headwater.check.{check.check.id}",
                        "prefect.resource.role": "check",
                        "prefect.resource.name": check.check.name,
                    },
                    *related_run,
                ],
                "payload": {
                    "run_id": report.run_id,
                    "check": check.check.name,
                    "severity": check.check.severity.value,
                    "failures": check.failures,
                    "message": (check.message or "").strip()[:500],
                },
                "occurred": ended,
            }
        )
    return sorted(events, key=lambda e: e["occurred"])


def project_automations(project_root: Any, graph: AssetGraph) -> tuple[list[Automation], str | None]:
    """The project's automations over ``graph``, or none and why (a run publishes its events either way: a broken
    automation section is ``headwater deploy``'s error to report, not a reason to fail a run)."""
    from assets.automation import AutomationError, resolve_automations
    from orchestration.settings import Settings

    try:
        document = Settings.load(project_root).document
        return resolve_automations(graph, document.get("automation")), None
    except (AutomationError, ValueError) as exc:
        return [], f"asset events carry no automation: {str(exc).splitlines()[0]}"


def publish(
    mirror: Any,
    project_root: Any,
    graph: AssetGraph,
    report: MaterializeReport,
    target: Target,
    covered: Collection[AssetKey],
    flow_run_id: str | None,
) -> None:
    """Queue the run's asset events on ``mirror`` (a :class:`TaskRunMirror`); a note on the report says when the
    automations could not be read."""
    if flow_run_id is None:
        return
    automations, note = project_automations(project_root, graph)
    if note:
        report.notes.append(note)
    mirror.publish(asset_events(graph, report, target, automations, covered, flow_run_id))
