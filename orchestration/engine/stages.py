"""The dbt part of a run, stage by stage: what each stage may build, what it must skip, and the report of every node.

Nothing is built whose upstream failed or was skipped in the run: before each stage (and in every retry round, see
``engine``) the nodes that a failure so far holds back are skipped, with the reason, the way dbt skips within one
invocation (``assets.checks.blocked_by``). Every node dbt reports is recorded: assets, checks, and what is neither
(hooks), so that the summary's counts are dbt's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from assets import AssetKey, AssetKind
from assets.checks import CheckOutcome, blocked_by
from assets.specs import CheckKind
from orchestration.core import interrupts
from orchestration.dbt import executor
from orchestration.dbt.executor import lost_connection
from orchestration.engine.checkpoints import Checkpoints
from orchestration.engine.checks import RunChecks
from orchestration.engine.dbt_segment import DbtSegment, NodeOutcome, WarehouseLost
from orchestration.engine.outcomes import Outcome
from orchestration.engine.plan import RunPlan
from orchestration.engine.progress import reporter
from orchestration.engine.report import AssetResult, MaterializeReport, dbt_check_outcomes
from orchestration.engine.tasks import node_policies
from orchestration.project import Project
from orchestration.warehouse.targets import Target

if TYPE_CHECKING:
    from orchestration.engine.outcomes import TaskRecorder

_SKIPPED_BY_DBT = "skipped by dbt: an upstream node or error-severity test failed"


def bad_assets(report: MaterializeReport) -> dict[AssetKey, str]:
    """Assets of this run that failed or were skipped, each with how (what their downstream must not build on)."""
    bad: dict[AssetKey, str] = {}
    for result in report.assets.values():
        if result.status in ("failed", "skipped"):
            try:
                bad[AssetKey.parse(result.key)] = "failed" if result.status == "failed" else "was skipped"
            except ValueError:
                continue
    return bad


def held_back(plan: RunPlan, report: MaterializeReport, checks: Iterable[CheckOutcome]) -> dict[str, str]:
    """Every planned dbt node that may not run now, with why: its assets are downstream of a failed or skipped
    asset or gated by a failed check, or (a test) it reads a failed, skipped or held-back asset."""
    graph = plan.graph
    bad = bad_assets(report)
    blocked = blocked_by(graph, checks, bad)
    reasons = {**{k: f"{k} {how}" for k, how in bad.items()}, **blocked}
    by_id, by_check = graph.by_unique_id(), graph.checks_by_id()
    held: dict[str, str] = {}
    for uid in plan.dbt_nodes:
        if uid in by_check:
            hit = next((a for a in by_check[uid].assets if a in reasons), None)
            if hit is not None:
                held[uid] = reasons[hit] if hit in blocked else f"it tests {reasons[hit]}"
        elif by_id.get(uid) in blocked:
            held[uid] = blocked[by_id[uid]]
    return held


def _skip(plan: RunPlan, nodes: dict[str, str], mirror: TaskRecorder, report: MaterializeReport) -> None:
    """Mark ``nodes`` (id -> reason) skipped without running them: task runs, assets, checks."""
    now = datetime.now(UTC)
    graph = plan.graph
    by_id, by_check = graph.by_unique_id(), graph.checks_by_id()
    for uid, reason in sorted(nodes.items()):
        mirror.finish(uid, Outcome.SKIPPED, reason, now)
        report.dbt_statuses[uid] = "skipped"
        if uid in by_check:
            report.checks.append(CheckOutcome(by_check[uid], "skipped", None, reason, attempts=0))
            continue
        key = by_id[uid]
        spec = graph.specs[key]
        report.assets[str(key)] = AssetResult(
            str(key), spec.kind.value, "skipped", 0, None, None, message=reason, node_id=uid
        )
        report.blocked[str(key)] = reason


def build_dbt(
    project: Project,
    target: Target,
    plan: RunPlan,
    mirror: TaskRecorder,
    report: MaterializeReport,
    checks: RunChecks,
    *,
    retries: int | None,
    retry_delay: float | None = None,
    options: executor.DbtOptions = executor.NO_OPTIONS,
    checkpoints: Checkpoints | None = None,
) -> None:
    """Build the plan's dbt nodes, stage by stage, with the GX suites of each stage's models between stages.

    A node is skipped before it runs when anything upstream failed or was skipped in this run (a raw table that did
    not load, a model of an earlier stage, a blocking check: dbt test, unit test, GX expectation, freshness,
    quarantine); dbt gates within one invocation itself. ``report.checks`` gets the dbt tests' outcomes.
    """
    graph = plan.graph
    stages = plan.stages()
    by_id = graph.by_unique_id()
    segment = DbtSegment(
        project,
        target,
        graph,
        mirror,
        node_policies(plan, retries, retry_delay),
        options=options,
        on_progress=lambda uid, status: _node_done(uid, status, progress, checkpoints, by_id, segment),
    )
    progress = reporter()
    progress.phase("dbt build", total=len(plan.dbt_nodes))
    dbt_checks: list[CheckOutcome] = []
    try:
        for stage in stages:
            held = {uid: why for uid, why in held_back(plan, report, [*checks.outcomes, *dbt_checks]).items()}
            held = {uid: held[uid] for uid in stage if uid in held}
            _skip(plan, held, mirror, report)
            run = [uid for uid in stage if uid not in held]
            if not run:
                continue
            whole = plan.whole_project and len(stages) == 1 and not held
            interrupts.at("dbt build")  # named when a signal stops it (the suites between stages name themselves)
            segment.run(run, whole_project=whole)
            record_dbt(plan, segment.outcomes, report)
            dbt_checks = dbt_check_outcomes(graph, segment.outcomes)
            built = [k for k in plan.dbt_keys if (r := report.assets.get(str(k))) and r.status == "success"]
            checks.suites(k for k in built if k not in _suited(checks))
    except KeyboardInterrupt:  # a signal (interrupts.Interrupted): keep what finished, the flow marks the rest
        record_dbt(plan, segment.outcomes, report)
        report.checks.extend(dbt_check_outcomes(graph, segment.outcomes))
        report.rounds = segment.rounds
        raise
    except WarehouseLost as exc:
        report.warehouse_error = _warehouse_error(target, str(exc))
        record_dbt(plan, segment.outcomes, report)  # what the invocations before the outage did
        _not_built(plan, report, mirror, f"not built: {report.warehouse_error}")
    finally:
        progress.done()
    lost = [lost_connection(r.message) for r in report.failed if r.kind != AssetKind.DLT.value]
    if not report.warehouse_error and any(lost):
        report.warehouse_error = _warehouse_error(target, next(m for m in lost if m))
    report.rounds = segment.rounds
    report.notes.extend(segment.notes)
    report.checks.extend(dbt_check_outcomes(graph, segment.outcomes))


def _suited(checks: RunChecks) -> set[AssetKey]:
    return {
        o.check.asset_key for o in checks.outcomes if o.check.kind == CheckKind.GX and o.check.asset_key is not None
    }


def _warehouse_error(target: Target, reason: str) -> str:
    where = f"{target.config.get('host')}:{target.config.get('port')}" if target.type != "duckdb" else target.name
    return f"the {target.name} warehouse stopped answering during the run ({where}: {reason})"


def _not_built(plan: RunPlan, report: MaterializeReport, mirror: TaskRecorder, message: str) -> None:
    """Every dbt node of the plan that has no result yet fails with ``message``."""
    now = datetime.now(UTC)
    by_id, by_check = plan.graph.by_unique_id(), plan.graph.checks_by_id()
    for uid in plan.dbt_nodes:
        if uid in report.dbt_statuses:
            continue
        mirror.finish(uid, Outcome.FAILED, message, now)
        report.dbt_statuses[uid] = "error"
        if uid in by_check:
            report.checks.append(CheckOutcome(by_check[uid], "error", None, message, attempts=0))
            continue
        spec = plan.graph.specs[by_id[uid]]
        report.assets[str(spec.key)] = AssetResult(
            str(spec.key), spec.kind.value, "failed", 0, None, None, message=message, node_id=uid
        )


def _node_done(
    uid: str, status: str, progress: Any, checkpoints: Checkpoints | None, by_id: Mapping[str, AssetKey], segment: Any
) -> None:
    progress.advance(uid.split(".", 2)[-1])
    key = by_id.get(uid)
    if checkpoints and key is not None and status == "success":
        outcome = segment.outcomes.get(uid)
        checkpoints.success(key, outcome.started_at if outcome else None, outcome.ended_at if outcome else None)


def _asset_status(outcome: NodeOutcome) -> str:
    if outcome.failed:
        return "failed"
    if outcome.status == "no-op":
        return "no-op"
    return "success" if outcome.succeeded else outcome.status


def _skip_cause(plan: RunPlan, uid: str, failed: list[str]) -> str:
    """Why dbt skipped ``uid``: the failed node upstream of it (a failed test counts when it tests what ``uid``
    reads, or ``uid`` itself for a unit test)."""
    graph = plan.graph
    upstream = graph.node_dag.upstream([uid]) | {uid}
    causes = [f for f in failed if f in upstream or (f in graph.nodes and set(graph.nodes[f].depends_on) <= upstream)]
    if not causes:
        return _SKIPPED_BY_DBT
    more = f" (and {len(causes) - 1} more)" if len(causes) > 1 else ""
    return f"skipped by dbt: {graph.label(causes[0])} failed{more}"


def record_dbt(plan: RunPlan, outcomes: dict[str, NodeOutcome], report: MaterializeReport) -> None:
    """Every node dbt reported, as what it is: an asset's result, or (hooks, nodes outside the graph) a result of
    its own named by its label; checks are recorded from the same outcomes by ``dbt_check_outcomes``."""
    graph = plan.graph
    by_id, by_check = graph.by_unique_id(), graph.checks_by_id()
    failed = sorted(uid for uid, o in outcomes.items() if o.failed)
    for uid, outcome in outcomes.items():
        if outcome.status == "pending":
            continue
        report.dbt_statuses[uid] = outcome.status
        if outcome.status == "skipped" and not outcome.message:
            outcome.message = _skip_cause(plan, uid, failed)
        if uid in by_check:
            continue
        key = by_id.get(uid)
        if key is not None:
            label, kind = str(key), graph.specs[key].kind.value
        else:
            label = graph.label(uid)
            kind = "hook" if uid.startswith("operation.") else uid.split(".", 1)[0]
        status = _asset_status(outcome)
        message = outcome.message if outcome.failed or status == "skipped" else ""
        report.assets[label] = AssetResult(
            label, kind, status, outcome.attempts, outcome.started_at, outcome.ended_at, outcome.rows, message, uid
        )
