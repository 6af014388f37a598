"""The materialize flow: ingest the selected raw tables, build the selected dbt nodes, collect checks.

Issue 2's shape: one Prefect task per ingestion source, one for the dbt build (dbt's own threads), one
for the checks. (Per-node task runs, retries and alerts are the engine's job: issue 3.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from assets import AssetKey, CheckSpec, Severity
from ingestion import LoadResult, get_source, run_source, write_sources_yml
from orchestration import dbt_executor
from orchestration.dbt_executor import BuildResult, NodeEvent
from orchestration.plan import RunPlan, asset_graph, plan_run
from orchestration.progress import reporter
from orchestration.project import Project
from orchestration.targets import Target, resolve_target

_PASSING = {"success", "pass"}


@dataclass(frozen=True)
class CheckResult:
    check: CheckSpec
    status: str  # pass | warn | fail | error | skipped
    failures: int | None = None
    message: str = ""

    @property
    def blocking_failure(self) -> bool:
        return self.status in ("fail", "error") and self.check.severity is Severity.ERROR


@dataclass
class MaterializeReport:
    run_id: str
    target: str
    selection: str | None
    ingested: list[LoadResult] = field(default_factory=list)
    build: BuildResult | None = None
    checks: list[CheckResult] = field(default_factory=list)
    asset_status: dict[str, str] = field(default_factory=dict)
    sources_regenerated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        failed_nodes = self.build is not None and any(
            r.status in ("error", "fail") for r in self.build.results if not r.unique_id.startswith("test.")
        )
        return not failed_nodes and not any(c.blocking_failure for c in self.checks)


@task(name="ingest", task_run_name="ingest-{source_name}")
def ingest_task(source_name: str, tables: tuple[str, ...], project_root: str, target_name: str) -> LoadResult:
    """Load ``tables`` of ``source_name`` with dlt into the target's warehouse."""
    project = Project.discover(Path(project_root))
    target = resolve_target(project, target_name)
    definition = get_source(source_name)
    result = run_source(
        definition,
        project.source_paths,
        target.dlt_destination(),
        target=target.name,
        pipelines_dir=project.pipelines_dir,
        tables=tables,
    )
    get_run_logger().info("%s: %s new rows %s", source_name, result.total_rows, result.rows)
    return result


def regenerate_sources(project: Project, target: Target) -> list[str]:
    """Rewrite the generated dbt sources from the dlt schemas; returns the files whose content changed."""
    from ingestion import SOURCES, stored_schema

    changed = []
    for definition in SOURCES.values():
        try:
            schema = stored_schema(definition, target=target.name, pipelines_dir=project.pipelines_dir)
        except LookupError:
            continue  # never loaded on this target: keep the committed file
        path, did_change = write_sources_yml(definition, schema, project.dbt_project_dir)
        if did_change:
            changed.append(str(path.relative_to(project.root)) if path.is_relative_to(project.root) else str(path))
    return changed


@task(name="dbt-build")
def dbt_build_task(plan_selectors: list[str] | None, project_root: str, target_name: str, total: int) -> BuildResult:
    """One in-process ``dbt build`` of the selected nodes with dbt's own threads."""
    project = Project.discover(Path(project_root))
    target = resolve_target(project, target_name)
    progress = reporter()
    progress.phase("dbt build", total=total)

    def on_event(event: NodeEvent) -> None:
        if event.kind == "finish":
            progress.advance(event.unique_id.split(".", 2)[-1])

    try:
        return dbt_executor.build(project, target, plan_selectors, on_event=on_event)
    finally:
        progress.done()


def collect_checks(plan: RunPlan, build: BuildResult | None) -> list[CheckResult]:
    """dbt test results mapped to checks ``(asset key, check name)`` with their severity."""
    if build is None:
        return []
    by_id = {c.unique_id: c for c in plan.graph.checks}
    results = []
    for node in build.results:
        check = by_id.get(node.unique_id)
        if check is None:
            continue
        results.append(CheckResult(check=check, status=node.status, failures=node.failures, message=node.message))
    return sorted(results, key=lambda r: (str(r.check.asset_key), r.check.name))


def _asset_status(plan: RunPlan, report: MaterializeReport) -> dict[str, str]:
    status: dict[str, str] = {}
    for load in report.ingested:
        for table in get_source(load.source).tables:
            key = AssetKey.of(load.dataset, table)
            if key in plan.selected:
                status[str(key)] = "success"
    by_id = plan.graph.by_unique_id()
    for node in report.build.results if report.build else []:
        key = by_id.get(node.unique_id)
        if key is not None:
            status[str(key)] = node.status
    return dict(sorted(status.items()))


@flow(name="headwater-materialize", log_prints=False, validate_parameters=False)
def materialize_flow(
    selection: str | None = None,
    exclude: str | None = None,
    target: str | None = None,
    project_dir: str | None = None,
):
    """Ingest, build and check the selected assets on ``target``; returns the run's report as its result."""
    project = Project.discover(Path(project_dir) if project_dir else None)
    resolved = resolve_target(project, target)
    progress = reporter()
    progress.phase("prepare manifest", total=None)
    manifest = dbt_executor.parse(project, resolved)
    plan = plan_run(asset_graph(manifest, dbt_executor.project_defaults(project)), selection, exclude)
    progress.done()
    report = MaterializeReport(run_id=str(flow_run.get_id() or ""), target=resolved.name, selection=selection)

    if plan.ingest:
        progress.phase("ingest", total=len(plan.ingest))
        for source_name, tables in plan.ingest.items():
            report.ingested.append(ingest_task(source_name, tables, str(project.root), resolved.name))
            progress.advance(source_name)
        progress.done()
        report.sources_regenerated = regenerate_sources(project, resolved)
        if report.sources_regenerated:
            manifest = dbt_executor.parse(project, resolved)
            plan = plan_run(asset_graph(manifest, dbt_executor.project_defaults(project)), selection, exclude)

    if plan.dbt_keys:
        total = len(plan.dbt_keys) + plan.dbt_check_count
        selectors = plan.dbt_selectors if selection or exclude else None
        report.build = dbt_build_task(selectors, str(project.root), resolved.name, total)

    report.checks = collect_checks(plan, report.build)
    report.asset_status = _asset_status(plan, report)
    if report.ok:
        return Completed(message="materialized", data=report)
    return Failed(message="some assets or blocking checks failed", data=report)
