"""State-aware runs: which of a plan's assets are stale now, the plan narrowed to them, and the rest kept fresh.

The decision is ``assets.run_log.stale_reasons`` (assets) and ``due_checks`` (checks whose last result does not judge
their asset as it stands: new, changed or cut off), the functions ``headwater assets``, ``status`` and the catalog ask
too; this module gathers what they need at run time: the run log, what this run ingested, and the warehouse as
``orchestration.engine.observe`` reads it (relations present, their data versions, what the sources hold). Anything
that cannot be read (a corrupt run log, one written by another project, an unreachable catalog) falls back to
building everything selected, with the reason as a note: never skip on doubt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from assets import AssetGraph, AssetKey, AssetKind
from assets.run_log import Materialization, blocked_keys, due_checks, stale_reasons
from assets.specs import CheckKind
from orchestration.engine.checks import RunChecks
from orchestration.engine.observe import look
from orchestration.engine.outcomes import Outcome, TaskRecorder
from orchestration.engine.plan import RunPlan
from orchestration.engine.report import AssetResult, MaterializeReport
from orchestration.warehouse.targets import Target


@dataclass
class StateDecision:
    """What a state-aware run builds (``plan``), why (``stale``), what it keeps and why (``fresh``), which checks
    run against assets it keeps (``due``); ``fallback`` says why it builds everything selected instead."""

    plan: RunPlan
    stale: dict[AssetKey, str] = field(default_factory=dict)
    fresh: dict[AssetKey, str] = field(default_factory=dict)
    fresh_nodes: dict[str, str] = field(default_factory=dict)
    """dbt nodes of the selection that do not run (fresh assets and their tests), with why: Cached task runs."""
    observed: list[Materialization] = field(default_factory=list)
    """Sources Headwater does not load whose data version moved (or was first seen): recorded by the run."""
    due: dict[str, str] = field(default_factory=dict)
    """Checks (unique id) that run although their asset is kept, with why (new, changed, cut off)."""
    fallback: str | None = None


def decide(
    plan: RunPlan,
    run_log: Any,
    target: Target,
    report: MaterializeReport,
    project_name: str,
    rebuild: Iterable[str] = (),
) -> StateDecision:
    """The stale part of ``plan`` after this run's ingest (``report`` holds what it loaded); ``rebuild`` keys are
    stale whatever else holds (what ``retry`` runs again)."""
    graph = plan.graph
    try:
        other = run_log.other_project(project_name, exclude_run=report.run_id)
        if other:
            return StateDecision(plan, fallback=f"the run log belongs to project {other!r}, not {project_name!r}")
        latest, successful = run_log.latest(project_name)
        checks = run_log.latest_checks()
    except Exception as exc:  # a corrupt or unreadable run log: build everything rather than guess
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return StateDecision(plan, fallback=f"the run log could not be read ({type(exc).__name__}: {first})")
    latest, successful = dict(latest), dict(successful)
    before = dict(successful)  # what was built before this run: a check older than its asset's build is due
    ingested = set()
    for result in report.assets.values():  # this run's ingest, whether or not its checkpoints are written yet
        key = AssetKey.parse(result.key)
        ingested.add(key)
        record = Materialization(result.key, report.run_id, result.status, 1, result.started_at, result.ended_at)
        latest[result.key] = record
        if result.status == "success":
            successful[result.key] = record
    now = datetime.now(UTC)
    try:
        view = look(target, graph, plan.selected, successful, report.run_id, now)
    except Exception as exc:  # the warehouse's catalog did not answer: nothing can be known to be fresh
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return StateDecision(plan, fallback=f"the warehouse could not be inspected ({type(exc).__name__}: {first})")
    for record in view.observed:
        successful[record.asset_key] = record
    # a dbt test runs when the selection picked it; a GX check belongs to no node and goes with its asset
    due = {uid: why for uid, why in due_checks(graph, checks, successful=before).items() if _planned(plan, uid)}
    reasons = stale_reasons(
        graph,
        successful,
        latest,
        blocked=blocked_keys(checks, graph),
        now=now,
        present=view.present,
        # a dlt table is what its last load left: loaded by this run, by an earlier one, or by `headwater ingest`
        done=ingested | {k for k, spec in graph.specs.items() if spec.kind is AssetKind.DLT},
        versions=view.version_texts(),
        forced={**unit_tests_due(graph, due), **_retried(graph, rebuild)},
    )
    for key in sorted(k for k in reasons if graph.specs[k].kind is AssetKind.DLT):  # rows changed outside loads:
        result = report.assets.get(str(key)) or AssetResult(  # observed now: readers built after it are fresh
            str(key), AssetKind.DLT.value, "observed", 0, now, now, node_id=graph.specs[key].unique_id
        )
        report.assets[str(key)] = replace(result, status="observed", message=reasons[key], ended_at=now)
    unchanged = {AssetKey.parse(r.key) for r in report.assets.values() if r.status == "unchanged"}
    narrowed, fresh_nodes = narrow(plan, reasons, unchanged, due)
    fresh = {}
    for key in plan.selected - narrowed.selected:
        if not graph.specs[key].builds:
            fresh[key] = "fresh: nothing it reads was rebuilt"
            continue
        mine = successful.get(str(key))
        when = f"{mine.ended_at:%Y-%m-%d %H:%M} UTC" if mine and mine.ended_at else "before"
        run = f" in run {mine.run_id[:8]}" if mine else ""
        fresh[key] = f"fresh: built {when}{run}; its code and upstream data have not changed since"
    stale = {k: reasons[k] for k in narrowed.selected if k in reasons}
    observed = [r for r in view.observed if r.data_version is not None]
    return StateDecision(narrowed, stale, fresh, fresh_nodes, observed, due)


def _retried(graph: AssetGraph, keys: Iterable[str]) -> dict[AssetKey, str]:
    found = {}
    for text in keys:
        key = AssetKey.parse(text)
        if key in graph.specs:
            found[key] = "retried: the run that selected it did not finish it"
    return found


def _planned(plan: RunPlan, uid: str) -> bool:
    """A check this run may run: a dbt test the selection picked, a GX check (no node) of a selected asset."""
    if uid in plan.graph.nodes:
        return uid in plan.nodes
    check = plan.graph.checks_by_id().get(uid)
    return check is not None and any(a in plan.selected for a in check.assets)


def unit_tests_due(graph: AssetGraph, due: Mapping[str, str]) -> dict[AssetKey, str]:
    """Models whose unit test is due: dbt runs a unit test only together with its model, so the model is rebuilt."""
    forced: dict[AssetKey, str] = {}
    for uid, why in sorted(due.items()):
        check = graph.checks_by_id().get(uid)
        if check is not None and check.kind == CheckKind.UNIT_TEST and check.asset_key is not None:
            forced.setdefault(check.asset_key, f"its unit test {check.name} is due ({why}); dbt runs it with its model")
    return forced


def narrow(
    plan: RunPlan,
    stale: Mapping[AssetKey, str],
    unchanged: Iterable[AssetKey] = (),
    due: Mapping[str, str] | None = None,
) -> tuple[RunPlan, dict[str, str]]:
    """``plan`` with only what must run: dlt tables (always loaded: only the source knows whether it has new data),
    stale assets, the tests that read one of them (a test on no asset always runs: nothing says what it reads), and
    the ``due`` tests (new, changed or cut off: they run against their assets as they stand). The tests of a dlt
    table that loaded nothing (``unchanged``) run only when something reading it is built: they gate it. Returns the
    narrowed plan and every dbt node left out, with why."""
    due = due or {}
    graph = plan.graph
    by_id, by_check = graph.by_unique_id(), graph.checks_by_id()
    keep = {k for k in plan.selected if graph.specs[k].kind is AssetKind.DLT or k in stale}
    built = keep - set(unchanged)

    def gates(key: AssetKey) -> bool:
        """A check on ``key`` runs: ``key`` is built, or it is data Headwater does not rebuild (a source, a dlt
        table) read by something built, which the check gates."""
        if key in built:
            return True
        spec = graph.specs.get(key)
        if spec is None or (spec.builds and spec.kind is not AssetKind.DLT):
            return False
        return bool(graph.downstream([key]) & built)

    nodes: set[str] = set()
    left: dict[str, str] = {}
    for uid in plan.nodes:
        check = by_check.get(uid)
        key = by_id.get(uid)
        if check is not None:
            if check.asset_key is None or uid in due or any(gates(a) for a in check.assets):
                nodes.add(uid)
            else:
                left[uid] = "fresh: the assets it tests were not rebuilt; its last result stands"
        elif key is not None and key in graph.specs and graph.specs[key].builds:
            if key in keep:
                nodes.add(uid)
            else:
                left[uid] = "fresh: its code and upstream data have not changed since it was built"
        else:  # an exposure or saved query: runs when something it reads is rebuilt
            reads = graph.node_dag.upstream([uid]) if uid in graph.node_dag.nodes else set()
            if any(by_id.get(r) in built for r in reads):
                nodes.add(uid)
            else:
                left[uid] = "fresh: nothing it reads was rebuilt"
    dbt_nodes = tuple(uid for uid in plan.dbt_nodes if uid in nodes)
    keep |= {by_id[uid] for uid in nodes if by_id.get(uid) in plan.selected}  # an exposure that runs
    narrowed = replace(
        plan,
        selected=frozenset(keep),
        dbt_keys=tuple(k for k in plan.dbt_keys if k in keep),
        nodes=frozenset(nodes),
        dbt_nodes=dbt_nodes,
        whole_project=plan.whole_project and not left,
    )
    return narrowed, {uid: why for uid, why in left.items() if uid in plan.dbt_nodes or uid in plan.nodes}


def only_stale(
    plan: RunPlan,
    run_log: Any,
    target: Target,
    report: MaterializeReport,
    mirror: TaskRecorder,
    rebuild: Iterable[str] = (),
) -> RunPlan:
    """The part of ``plan`` that is stale (``rebuild``: keys built even when fresh, said so); the rest recorded
    ``fresh`` with why, its task runs Cached."""
    decision = decide(plan, run_log, target, report, plan.graph.project_name, rebuild)
    if decision.fallback:
        report.state_note = f"built everything selected: {decision.fallback}"
        return plan
    report.state_aware = True
    report.stale = {str(k): why for k, why in decision.stale.items()}
    report.observed = [replace(r, target=report.target) for r in decision.observed]
    report.due_checks = dict(decision.due)
    graph, now = plan.graph, datetime.now(UTC)
    for key, why in sorted(decision.fresh.items()):
        spec = graph.specs[key]
        report.assets[str(key)] = AssetResult(
            str(key), spec.kind.value, "fresh", 0, None, None, message=why, node_id=spec.unique_id
        )
        if spec.unique_id not in decision.fresh_nodes:  # a Python asset
            mirror.finish(spec.unique_id, Outcome.CACHED, why, now)
        for check in graph.checks_for(key):
            if not check.kind.in_dbt and check.unique_id not in decision.due:
                mirror.finish(check.unique_id, Outcome.CACHED, "fresh: its asset was not rebuilt; last result stands")
    for uid, why in sorted(decision.fresh_nodes.items()):
        mirror.finish(uid, Outcome.CACHED, why, now)
    return decision.plan


LANDED = ("success", "unchanged", "observed")
"""A raw table's statuses once its load ended well: loaded rows, loaded nothing, or loaded nothing but its rows
changed outside its loads (``observed``: what it holds is new to its readers)."""


def suite_due(plan: RunPlan, report: MaterializeReport, key: AssetKey) -> bool:
    """A raw table's suite runs when it loaded rows (or its rows changed outside its loads), or when the run builds
    something that reads it (its gate)."""
    if not report.state_aware or report.assets[str(key)].status in ("success", "observed"):
        return True
    return bool(plan.graph.downstream([key]) & set(plan.selected))


@dataclass
class Staleness:
    """What the next stale-only run would do, for ``headwater assets`` and ``status``: the assets it would build
    (``stale``, with why), the checks it would run against assets it keeps (``due``: asset -> ``check: why``), and a
    note when the warehouse could not be inspected."""

    stale: dict[AssetKey, str]
    due: dict[AssetKey, list[str]]
    note: str | None = None


def stale_now(graph: AssetGraph, run_log: Any, target: Target) -> Staleness:
    """What the next run would find stale or due: the run log, plus what the run reads of the warehouse (relations,
    their data versions, the sources' data). When the warehouse could not be inspected, the note says what is not
    seen. A run log that cannot be read raises, as it would for the run."""
    latest, successful = (dict(m) for m in run_log.latest(graph.project_name))
    checks = run_log.latest_checks()
    now = datetime.now(UTC)
    note: str | None = None
    present: set[str] | None = None
    versions: dict[str, str] | None = None
    try:
        view = look(target, graph, [k for k, spec in graph.specs.items() if spec.builds], successful, "now", now)
        successful.update((record.asset_key, record) for record in view.observed)
        present, versions = view.present, view.version_texts()
    except Exception as exc:  # an unreachable warehouse: say what cannot be seen from the run log alone
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        note = f"the warehouse could not be inspected ({type(exc).__name__}: {first}); dropped relations, rows "
        note += "changed by hand and new source data are not shown (a run would build everything selected)"
    due = due_checks(graph, checks, successful=successful)
    stale = stale_reasons(
        graph,
        successful,
        latest,
        blocked=blocked_keys(checks, graph),
        now=now,
        present=present,
        # every run loads the dlt tables first and decides after: as after a load that brought nothing new
        done=[k for k, spec in graph.specs.items() if spec.kind is AssetKind.DLT],
        versions=versions,
        forced=unit_tests_due(graph, due),
    )
    by_key: dict[AssetKey, list[str]] = {}
    for uid, why in sorted(due.items()):
        check = graph.checks_by_id()[uid]
        if check.asset_key is not None and check.asset_key not in stale:
            by_key.setdefault(check.asset_key, []).append(f"{check.name}: {why}")
    return Staleness(stale, by_key, note)


def raw_checks(plan: RunPlan, report: MaterializeReport, mirror: TaskRecorder, checks: RunChecks) -> set[AssetKey]:
    """The GX suites of the dlt tables that landed: each runs when its table loaded rows or something reading it is
    built (it gates that); otherwise it is Cached, its last result standing, but for its due checks (new, changed or
    cut off), which run. Returns the tables kept so. (Their reconcile checks always run, with the load: they find
    what an incremental cursor cannot see.)"""
    landed = [k for k in plan.selected if _landed(report, k)]
    kept = {k for k in landed if not suite_due(plan, report, k)}
    for check in (c for k in sorted(kept) for c in plan.graph.checks_for(k) if c.kind == CheckKind.GX):
        if check.unique_id not in report.due_checks:
            why = "fresh: its table loaded nothing new and nothing reading it is built; its last result stands"
            mirror.finish(check.unique_id, Outcome.CACHED, why)
    checks.suites(k for k in landed if k not in kept)
    return kept


def due_suites(plan: RunPlan, report: MaterializeReport, checks: RunChecks, kept: set[AssetKey]) -> set[str]:
    """The due GX checks (new, changed or cut off) of assets this run neither builds nor checks whole: run now,
    before dbt, against the assets as they stand, so that a blocking one gates the readers this run builds.
    ``kept``: the raw tables whose suites :func:`raw_checks` left standing. Returns the ids run."""
    graph = plan.graph
    whole = {k for k in plan.selected if graph.specs[k].kind is not AssetKind.DLT or k not in kept}
    whole |= {AssetKey.parse(r.key) for r in report.assets.values() if r.status in ("failed", "skipped")}
    wanted = [
        check
        for uid in sorted(report.due_checks)
        if (check := graph.checks_by_id().get(uid)) is not None
        and check.kind == CheckKind.GX
        and check.asset_key is not None
        and check.asset_key not in whole
    ]
    checks.run_due(wanted)
    return {c.unique_id for c in wanted}


def _landed(report: MaterializeReport, key: AssetKey) -> bool:
    result = report.assets.get(str(key))
    return result is not None and result.kind == AssetKind.DLT.value and result.status in LANDED
