"""The materialize flow: ingest the selected raw tables, build the selected dbt nodes, record everything.

One Prefect flow run; every dlt table, dbt model, seed, snapshot and test of the selection is its own
task run (mirrored from the work as it happens, see ``task_mirror``), wired by the asset graph's edges.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import deployment, flow_run
from prefect.states import Completed, Failed

from assets.checks import blocked_by
from orchestration.core import interrupts
from orchestration.core.errors import UserError, log_file
from orchestration.dbt import executor
from orchestration.dbt.rendering import run_translator
from orchestration.dbt.state import state_lookup
from orchestration.engine.checkpoints import Checkpoints
from orchestration.engine.checks import RunChecks
from orchestration.engine.plan import plan_run, project_graph
from orchestration.engine.progress import reporter
from orchestration.engine.python_assets import load_python_assets, run_python_assets
from orchestration.engine.report import (
    MaterializeInterrupted,
    MaterializeReport,
    alerts_for,
    mark_unfinished,
    records,
)
from orchestration.engine.stages import bad_assets, build_dbt
from orchestration.engine.state import due_suites, only_stale, raw_checks
from orchestration.engine.tasks import mirrored_tasks
from orchestration.notify.alerts import AlertRouter, alerts_file, load_router
from orchestration.prefect import asset_events
from orchestration.prefect.artifacts import publish_summary, run_url
from orchestration.prefect.asset_slots import asset_slots
from orchestration.prefect.heartbeat import flow_heartbeats
from orchestration.prefect.ingest_stage import ingest as _ingest
from orchestration.prefect.ingest_stage import regenerate_sources
from orchestration.prefect.task_mirror import TaskRunMirror
from orchestration.project import Project
from orchestration.warehouse.lock import asset_locks, lock_timeout, target_lock
from orchestration.warehouse.run_log import RunLog
from orchestration.warehouse.targets import Target, resolve_target


@flow(name="headwater-materialize", validate_parameters=False)
def materialize_flow(
    selection: str | list[str] | None = None,
    exclude: str | list[str] | None = None,
    target: str | None = None,
    project_dir: str | None = None,
    dbt_project: str | None = None,
    profiles_dir: str | None = None,
    retries: int | None = None,
    full_refresh: bool = False,
    retry_delay: float | None = None,
    vars: dict[str, Any] | str | None = None,
    threads: int | None = None,
    indirect_selection: str = "eager",
    build_all: bool = False,
    state: str | None = None,
    rebuild: list[str] | None = None,
) -> State[Any]:
    """Ingest the selected sources, then build and check the selected assets that are stale on ``target`` (all of
    them with ``build_all`` or ``full_refresh``); the run's report is the flow's result.

    ``selection``/``exclude`` are dbt selection expressions (one, or several as a union); ``vars``,
    ``full_refresh``, ``threads`` and ``indirect_selection`` mean what dbt's flags of those names mean (``vars``
    as a mapping or YAML text); ``state`` is the folder ``state:``, ``result:`` and ``source_status:`` selection
    compares with, as dbt's ``--state`` (default: the target's deployed state). Stale means what
    ``assets.run_log.stale_reasons`` says (``headwater assets`` shows it); fresh assets end as Cached task runs. A deployment's run holds the target's global concurrency slot
    (``headwater-target-<target>``, created by ``headwater deploy``) for its whole length, so runs of different
    deployments on one target wait for each other.
    """
    project = Project.discover(
        Path(project_dir) if project_dir else None,
        dbt_project_dir=Path(dbt_project) if dbt_project else None,
        profiles_dir=Path(profiles_dir) if profiles_dir else None,
    )
    resolved = resolve_target(project, target)
    lock: AbstractContextManager[Any] = nullcontext()
    if deployment.get_id() and resolved.type not in ("postgres", "snowflake"):  # there runs lock their assets
        from prefect.concurrency.sync import concurrency

        lock = concurrency(target_lock_name(resolved.name), occupy=1, strict=False)
    try:
        options = executor.DbtOptions(
            vars=vars if isinstance(vars, dict) else executor.DbtOptions.parse_vars(vars),
            full_refresh=full_refresh,
            threads=threads,
        )
        shared = resolved.type == "postgres"  # there, runs on disjoint assets overlap (see warehouse.lock)
        with (
            flow_heartbeats(),
            interrupts.interruptible(),
            lock,
            target_lock(project, resolved, shared=shared),
            ExitStack() as held,
        ):
            return _materialize(
                held,
                project,
                resolved,
                selection,
                exclude,
                retries,
                retry_delay,
                options,
                indirect_selection,
                build_all,
                state,
                tuple(rebuild or ()),
            )
    except interrupts.Interrupted as exc:  # before the run was recorded: nothing to mark
        failure = MaterializeInterrupted(None, exc)
        return Failed(message=str(failure), data=failure)
    except UserError as exc:
        # the user's to fix (a bad file, a cycle, a busy or unreachable warehouse), not a crash: a Failed state with
        # the message, no traceback in the log
        get_run_logger().error("%s", exc)
        return Failed(message=str(exc), data=exc)


def target_lock_name(target: str) -> str:
    """The global concurrency limit that serializes deployment runs on ``target``."""
    return f"headwater-target-{target}"


def _materialize(
    held: ExitStack,
    project: Project,
    resolved: Target,
    selection: str | list[str] | None,
    exclude: str | list[str] | None,
    retries: int | None,
    retry_delay: float | None,
    options: executor.DbtOptions,
    indirect: str,
    build_all: bool = False,
    state_dir: str | None = None,
    rebuild: tuple[str, ...] = (),
) -> State[Any]:
    log_file(project.data_dir)  # tracebacks of what the run reports in one line
    if project.is_headwater_dbt_project:
        day = project.ensure_demo()  # the demo's inputs stand in for production sources
        if day is not None:
            get_run_logger().warning("demo inputs were missing: created them at %s (day %s)", project.data_dir, day)
    progress = reporter()
    progress.phase("prepare manifest", total=None)
    interrupts.at("preparing the manifest")
    manifest = executor.parse(project, resolved, options)
    # the one translator, for every reader; the run's vars as dbt renders them are part of the code version of the
    # nodes that read them
    translator = run_translator(project, resolved, options.vars)
    python_assets = load_python_assets(project.root)
    python_specs = [a.spec for a in python_assets]
    schemas = project.dlt_schemas(resolved.name)
    graph = project_graph(project, resolved, manifest, translator, python_specs, schemas=schemas)
    lookup = state_lookup(project, resolved, state_dir, options)  # state:, result:, source_status: (asks dbt)
    plan = plan_run(graph, selection, exclude, indirect=indirect, state=lookup)
    progress.done()
    wait = None if deployment.get_id() else lock_timeout()  # a deployment's run waits for overlapping runs
    lock_sets = plan.lock_sets()
    if resolved.type == "snowflake":  # no session lock there: Prefect's limits per asset, all taken at once
        held.enter_context(asset_slots(resolved, *lock_sets, timeout=wait))
    waited = held.enter_context(asset_locks(resolved, *lock_sets, timeout=wait))

    run_id = str(flow_run.get_id() or datetime.now(UTC).strftime("local-%Y%m%dT%H%M%S%f"))
    shown_selection, shown_exclude = _joined(selection), _joined(exclude)
    flags = {
        **options.recorded(),
        "indirect_selection": indirect,
        "retries": retries,
        "retry_delay": retry_delay,
        "all": build_all,
    }
    report = MaterializeReport(
        run_id=run_id,
        target=resolved.name,
        selection=shown_selection,
        exclude=shown_exclude,
        vars=dict(options.vars),
        flags=flags,
    )
    if waited:
        report.notes.append(f"waited for another run to release: {', '.join(waited)}")
    run_log, replaced = RunLog.for_run(project, resolved)  # a corrupt local run log is moved aside: build all
    run_log.start_run(
        run_id,
        resolved.name,
        shown_selection,
        shown_exclude,
        datetime.now(UTC),
        vars=dict(options.vars),
        flags=flags,
        project=graph.project_name,
    )
    router: AlertRouter = load_router(alerts_file(project.root))
    flow_run_id = flow_run.get_id()
    mirror = TaskRunMirror(UUID(flow_run_id) if flow_run_id else None, mirrored_tasks(plan))
    checks = RunChecks(project, resolved, graph, mirror)
    checkpoints = Checkpoints(run_log, run_id, resolved.name, graph)
    covered = set(plan.selected)  # what the run answers for, fresh or built: its asset events trigger nothing for it
    try:
        if plan.ingest:
            interrupts.at("ingest")
            _ingest(project, resolved, plan, mirror, report, checks, checkpoints, options.full_refresh)
            report.sources_regenerated = [path for path, changed in regenerate_sources(project, resolved) if changed]
            loaded_schemas = project.dlt_schemas(resolved.name)  # what this ingest loaded: the tables' code versions
            if report.sources_regenerated or loaded_schemas != schemas:  # a first load too: record its versions
                if report.sources_regenerated:
                    manifest = executor.parse(project, resolved, options)
                schemas = loaded_schemas
                graph = project_graph(project, resolved, manifest, translator, python_specs, schemas=schemas)
                lookup = state_lookup(project, resolved, state_dir, options)  # dbt answers for the new manifest
                plan = plan_run(graph, selection, exclude, indirect=indirect, state=lookup)
                checks.graph = checkpoints.graph = graph
                covered = set(plan.selected)
        if lookup.fell_back or replaced:  # a --state or a run log that cannot be trusted: build everything selected
            report.state_note = "; ".join([*lookup.notes, *([replaced] if replaced else [])])
            report.state_note += "; everything selected is built"
            get_run_logger().error("%s", report.state_note)
        elif not (build_all or options.full_refresh):
            interrupts.at("deciding what is stale")
            plan = only_stale(plan, run_log, resolved, report, mirror, rebuild)
            if report.state_note:
                get_run_logger().warning("%s", report.state_note)
        # raw tables are checked right after they land: freshness of every source the run reads, GX suites (of a
        # table that loaded nothing, only when something that reads it is built)
        interrupts.at("the checks of the raw tables")
        checks.freshness(plan.freshness_keys)
        kept = raw_checks(plan, report, mirror, checks)
        if report.due_checks:  # new, changed or cut-off GX checks of assets this run keeps: before their readers
            due_suites(plan, report, checks, kept)
        interrupts.at("dbt build")
        build_dbt(
            project,
            resolved,
            plan,
            mirror,
            report,
            checks,
            retries=retries,
            retry_delay=retry_delay,
            options=options,
            checkpoints=checkpoints,
        )
        checks.not_run(plan.selected - kept, "not run: its asset was not materialized in this run")
        report.checks = sorted([*report.checks, *checks.outcomes], key=lambda c: c.check.id)
        for key, reason in blocked_by(plan.graph, report.checks, bad_assets(report)).items():
            report.blocked.setdefault(str(key), reason)
        interrupts.at("the Python assets")
        run_python_assets(plan, python_assets, mirror, report, resolved)
    except interrupts.Interrupted as exc:
        report.interrupted = f"{exc.name} during {interrupts.phase()}"
        report.exit_code = exc.exit_code
    finally:
        interrupts.at("recording the run")
        with interrupts.shielded():  # a signal now is noted: the record is written first, each step bounded
            _record(project, resolved, plan, report, run_log, checks, checkpoints, mirror, router, covered)
    if not report.interrupted and (late := interrupts.received()) is not None:
        report.interrupted = f"{late.name} while the run was being recorded (everything it ran had finished)"
        report.exit_code = late.exit_code
    if report.interrupted:
        stopped = MaterializeInterrupted(report, interrupts.received() or interrupts.Interrupted(2))
        return Failed(message=str(stopped), data=stopped)
    if report.ok:
        return Completed(message="materialized", data=report)
    failure = MaterializeFailed(report)
    return Failed(message=str(failure), data=failure)


def _record(
    project: Project,
    resolved: Target,
    plan: Any,
    report: MaterializeReport,
    run_log: RunLog,
    checks: RunChecks,
    checkpoints: Checkpoints,
    mirror: TaskRunMirror,
    router: AlertRouter,
    covered: set[Any],
) -> None:
    """Write down what the run did: what a signal cut off, check results, task runs, alerts, the summary, the run
    log. Runs shielded from a first signal; once one is noted every wait is short and what is optional is skipped,
    so that the process ends within seconds with the run recorded."""
    flow_run_id = flow_run.get_id()
    if report.interrupted:
        merged = {c.check.unique_id for c in report.checks}  # the checks that finished before the signal count
        report.checks.extend(o for o in checks.outcomes if o.check.unique_id not in merged)
        message = f"not finished: the run was interrupted by {report.interrupted}"
        mark_unfinished(plan, report, mirror, message, checks.planned)

    def hurry() -> bool:
        return bool(report.interrupted) or interrupts.received() is not None

    checks.close(build_docs=not hurry())  # Data Docs take seconds nobody waits for once a signal came
    report.data_docs = str(checks.data_docs) if checks.data_docs else None
    report.alert_errors.extend(checks.errors)
    try:
        asset_events.publish(mirror, project.root, plan.graph, report, resolved, covered, flow_run_id)
    except Exception as exc:  # events are for Prefect's UI and triggers: the run's own record comes first
        report.mirror_errors.append(f"asset events not published: {type(exc).__name__}: {exc}")
    mirror.close(timeout=_HURRIED if hurry() else 60.0)
    checkpoints.close(timeout=_HURRIED if hurry() else 60.0)  # before finish_run, which replaces the checkpoints
    report.mirror_errors = [*mirror.errors, *checkpoints.errors]
    report.notes.extend(checks.notes)
    report.task_runs = len(mirror.summary())
    report.flow_run_id = str(flow_run_id) if flow_run_id else None
    report.run_url = run_url(flow_run_id)
    alerts = alerts_for(plan.graph, report, run_url=report.run_url)
    router.dispatch(alerts, deadline=_HURRIED if hurry() else None)  # ends at its deadline
    report.alerts_sent, report.alert_errors = list(router.sent), list(router.errors)
    report.disabled_notifiers = router.disabled
    if flow_run_id:
        publish_summary(report, mirror.ids)
    try:  # what each relation the run wrote holds now: rows changed by hand later are seen against it
        report.data_versions = _data_versions(resolved, plan.graph, report)
    except Exception as exc:  # for the next decision; the run's record must be written whatever happens here
        report.notes.append(f"data versions not read: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    materializations, check_records = records(plan.graph, report)
    status = "interrupted" if report.interrupted else "success" if report.ok else "failed"
    try:
        counted = _table_rows(resolved, plan.graph) if not hurry() else {}
    except Exception as exc:  # counting is for readers; the run's record must be written whatever happens here
        counted = {}
        report.notes.append(f"rows not counted for the catalog: {type(exc).__name__}: {exc}")
    try:
        run_log.finish_run(
            report.run_id,
            status,
            datetime.now(UTC),
            materializations,
            check_records,
            attempts=1 if hurry() else 3,  # a retried write waits seconds a signalled process has not got
            table_rows=counted,
        )
    except Exception as exc:  # the run log lives in the warehouse on PostgreSQL, which may be the fault
        report.mirror_errors.append(
            f"run log: the run's record could not be written ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0][:200]}); it stays 'running' there, so `headwater retry` "
            "treats the run as unfinished and re-runs what it did not checkpoint"
        )


_HURRIED = 3.0
"""Seconds each recording step may wait once a signal came (a container's grace period is often 30 s)."""


class MaterializeFailed(Exception):
    """A run in which assets failed or blocking checks failed; ``report`` says which (a Failed state's data
    must be an exception for Prefect to resolve it, in a deployment's run as much as in the CLI)."""

    def __init__(self, report: MaterializeReport) -> None:
        self.report = report
        failed = sorted(r.key for r in report.failed)
        blocking = sorted(c.check.id for c in report.failed_checks)
        parts = [f"{len(failed)} failed: {', '.join(failed[:5])}"] if failed else []
        if blocking:
            parts.append(f"{len(blocking)} check(s) failed: {', '.join(blocking[:5])}")
        if report.skipped:
            parts.append(f"{len(report.skipped)} asset(s) skipped")
        super().__init__("; ".join(parts) or "the run failed")

    def __reduce__(self) -> tuple[Any, ...]:  # pickled with its report (Prefect persists state data)
        return (MaterializeFailed, (self.report,))


def _data_versions(target: Target, graph: Any, report: MaterializeReport) -> dict[str, str]:
    """The data version of every relation this run wrote (``orchestration.warehouse.versions``), by lower-case name."""
    from assets import AssetKey
    from orchestration.warehouse.versions import relation_versions

    written = set()
    for result in report.assets.values():
        if result.status in ("success", "unchanged", "observed"):
            try:
                spec = graph.specs.get(AssetKey.parse(result.key))
            except ValueError:
                continue
            if spec is not None and spec.builds:
                written.add(spec.relation_name)
    if not written or (target.type == "duckdb" and not Path(target.config["path"]).exists()):
        return {}
    return {name: version.value for name, version in relation_versions(target, written).items()}


def _table_rows(target: Target, graph: Any) -> dict[str, int]:
    """On DuckDB, the rows every table holds now, while this run still has the file: readers (the catalog) show these
    instead of opening a file a run may need to write. Elsewhere readers count live (no such lock)."""
    if target.type != "duckdb":
        return {}
    from orchestration.web.catalog import count_rows

    return count_rows(target, [str(k) for k in graph.toposorted() if graph.specs[k].builds])


def _joined(expression: str | list[str] | None) -> str | None:
    """A selection as one expression (several ``--select`` values are a union: joined by spaces)."""
    if expression is None or isinstance(expression, str):
        return expression or None
    return " ".join(e for e in expression if e) or None
