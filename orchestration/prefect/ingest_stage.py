"""The ingest stage of a run: dlt loads the selected raw tables, each table a mirrored task run, its quarantine and
reconcile checks right after it; then the generated dbt sources are rewritten from what dlt stored."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger

from assets import AssetKey, AssetKind
from orchestration.core import interrupts
from orchestration.core.errors import log_failure
from orchestration.engine.checkpoints import Checkpoints
from orchestration.engine.checks import RunChecks
from orchestration.engine.plan import RunPlan
from orchestration.engine.progress import reporter
from orchestration.engine.report import AssetResult, MaterializeReport
from orchestration.prefect.task_mirror import Outcome, TaskRunMirror
from orchestration.project import Project
from orchestration.warehouse.targets import Target


def load_source(
    project: Project,
    target: Target,
    definition: Any,
    tables: tuple[str, ...] | None = None,
    *,
    full_refresh: bool = False,
) -> Any:
    """Run one ingestion source (or some of its tables) into the target's warehouse; returns its LoadResult.
    ``full_refresh`` reloads them from scratch (see ``ingestion.run_source``)."""
    from ingestion import run_source

    return run_source(
        definition,
        project.source_paths,
        target.dlt_destination(),
        target=target.name,
        pipelines_dir=project.pipelines_dir,
        tables=tables,
        full_refresh=full_refresh,
    )


def regenerate_sources(project: Project, target: Target, *, strict: bool = False) -> list[tuple[str, bool]]:
    """Rewrite the generated dbt sources from the dlt schemas; returns ``(file, changed)`` per source written.

    A source never loaded on the target keeps its committed file, unless ``strict``: then its LookupError
    (which says to run ``headwater ingest``) propagates.
    """
    if not project.is_headwater_dbt_project:
        return []
    from ingestion import SOURCES, stored_schema, write_sources_yml

    written = []
    for definition in SOURCES.values():
        try:
            schema = stored_schema(definition, target=target.name, pipelines_dir=project.pipelines_dir)
        except LookupError:
            if strict:
                raise
            continue
        path, changed = write_sources_yml(definition, schema, project.dbt_project_dir)
        shown = str(path.relative_to(project.root)) if path.is_relative_to(project.root) else str(path)
        written.append((shown, changed))
    return written


def ingest(
    project: Project,
    target: Target,
    plan: RunPlan,
    mirror: TaskRunMirror,
    report: MaterializeReport,
    checks: RunChecks,
    checkpoints: Checkpoints | None = None,
    full_refresh: bool = False,
) -> None:
    """dlt loads the selected tables, source by source; a table's quarantine and reconcile checks follow its load
    (reconcile also when it loaded nothing: it finds the source changes an incremental cursor cannot see)."""
    from ingestion import get_source

    progress = reporter()
    progress.phase("ingest", total=sum(len(t) for t in plan.ingest.values()))
    for source_name, tables in plan.ingest.items():
        definition = get_source(source_name)
        keys = {table: AssetKey.of(definition.dataset, table) for table in tables}
        ids = {table: plan.graph.specs[key].unique_id for table, key in keys.items()}
        started = datetime.now(UTC)
        for table in tables:
            mirror.open(ids[table], started)
        try:
            load = load_source(project, target, definition, tables, full_refresh=full_refresh)
        except Exception as exc:  # any dlt failure fails this source's tables only; other branches go on
            interrupts.check()  # unless a signal was behind it (a library that wrapped the interruption)
            log_failure(f"source {source_name}", exc)
            ended = datetime.now(UTC)
            message = f"{type(exc).__name__}: {exc}"
            for table in tables:
                mirror.finish(ids[table], Outcome.FAILED, message, ended)
                report.assets[str(keys[table])] = AssetResult(
                    str(keys[table]), AssetKind.DLT.value, "failed", 1, started, ended, message=message
                )
                progress.advance(str(keys[table]))
            checks.load_failed(keys.values(), message)
            continue
        ended = datetime.now(UTC)
        if load.recovered_packages:
            get_run_logger().warning(
                "%s: finished %d load package(s) an interrupted run left pending",
                source_name,
                load.recovered_packages,
            )
        report.ingested.append(load)
        for table, message in sorted(load.failed.items()):  # its reader failed; the source's other tables loaded
            if table in load.errors:
                log_failure(str(keys[table]), load.errors[table])
            mirror.finish(ids[table], Outcome.FAILED, message, ended)
            report.assets[str(keys[table])] = AssetResult(
                str(keys[table]), AssetKind.DLT.value, "failed", 1, started, ended, message=message
            )
            checks.load_failed([keys[table]], message)
            progress.advance(str(keys[table]))
        tables = tuple(t for t in tables if t not in load.failed)
        checks.quarantine(load, tables)
        checks.reconcile(definition, tables)
        for table in tables:
            rows = load.rows.get(table, 0)
            mirror.finish(ids[table], Outcome.SUCCESS, f"{rows} new rows", ended)
            status = "success" if rows else "unchanged"
            report.assets[str(keys[table])] = AssetResult(
                str(keys[table]), AssetKind.DLT.value, status, 1, started, ended, rows=rows
            )
            if checkpoints and rows:  # a table that loaded nothing is "unchanged": its readers stay fresh
                checkpoints.success(keys[table], started, ended, rows)
            progress.advance(str(keys[table]))
    progress.done()


def record_ingest(
    project: Project,
    target: Target,
    started: datetime,
    loads: list[Any],
    failed: dict[str, str],
    sources: list[str],
) -> str:
    """Record a ``headwater ingest`` (no flow run) in the run log as a run of its own: each table loaded
    (``success`` with its rows, ``unchanged``) or ``failed`` with why, with its code version and the data version
    its table holds now, so that the readers of what it loaded are stale for the next run (and a run that loads
    nothing more does not take the tables for never loaded). Returns the run id.

    Raises:
        RunLogError: the run log cannot be opened.
    """
    from assets.run_log import Materialization
    from ingestion import get_source, ingestion_specs
    from orchestration.warehouse.run_log import RunLog
    from orchestration.warehouse.versions import relation_versions

    ended = datetime.now(UTC)
    run_id = f"ingest-{started:%Y%m%dT%H%M%S%f}"
    specs = {str(s.key): s for s in ingestion_specs(schemas=project.dlt_schemas(target.name))}
    log = RunLog.for_target(project, target)
    log.start_run(run_id, target.name, f"ingest {' '.join(sources)}", None, started, flags={"ingest": True})
    records = []
    for load in loads:
        for table in get_source(load.source).tables:
            key = f"{load.dataset}.{table}"
            if table in load.failed:
                continue
            rows = load.rows.get(table, 0)
            spec = specs.get(key)
            records.append(
                Materialization(
                    key, run_id, "success" if rows else "unchanged", 1, started, ended, rows,
                    spec.code_version if spec else None, AssetKind.DLT.value, "", target.name,
                )
            )  # fmt: skip
    records += [
        Materialization(key, run_id, "failed", 1, started, ended, None, None, AssetKind.DLT.value, why[:2000])
        for key, why in sorted(failed.items())
    ]
    try:
        versions = relation_versions(target, [r.asset_key for r in records if r.status != "failed"])
    except Exception as exc:  # the record is what matters; the versions only sharpen the next decision
        log_failure("data versions after ingest", exc)
        versions = {}
    records = [replace(r, data_version=versions[r.asset_key].value) if r.asset_key in versions else r for r in records]
    status = "failed" if failed else "success"
    log.finish_run(run_id, status, datetime.now(UTC), records, [], attempts=3)
    return run_id
