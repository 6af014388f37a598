"""State-aware runs: which of a plan's assets are stale now, the plan narrowed to them, and the rest kept fresh.

The decision is ``assets.run_log.stale_reasons``, the one function ``headwater assets``, ``status`` and the catalog
ask too; this module gathers what it needs at run time: the run log, what this run ingested, the relations in the
warehouse, and the newest ``loaded_at_field`` of each source Headwater does not load. Anything that cannot be read
(a corrupt run log, one written by another project, an unreachable catalog) falls back to building everything
selected, with the reason as a note: never skip on doubt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assets import AssetGraph, AssetKey, AssetKind
from assets.run_log import Materialization, blocked_keys, reads_through, stale_reasons
from orchestration.engine.checks import RunChecks, newest
from orchestration.engine.outcomes import Outcome, TaskRecorder
from orchestration.engine.plan import RunPlan
from orchestration.engine.report import AssetResult, MaterializeReport
from orchestration.warehouse.targets import Target


@dataclass
class StateDecision:
    """What a state-aware run builds (``plan``), why (``stale``), what it keeps and why (``fresh``); ``fallback``
    says why it builds everything selected instead, when it must."""

    plan: RunPlan
    stale: dict[AssetKey, str] = field(default_factory=dict)
    fresh: dict[AssetKey, str] = field(default_factory=dict)
    fresh_nodes: dict[str, str] = field(default_factory=dict)
    """dbt nodes of the selection that do not run (fresh assets and their tests), with why: Cached task runs."""
    observed: list[Materialization] = field(default_factory=list)
    """Sources Headwater does not load whose ``loaded_at_field`` moved (or was first seen): recorded by the run."""
    fallback: str | None = None


def decide(plan: RunPlan, run_log: Any, target: Target, report: MaterializeReport, project_name: str) -> StateDecision:
    """The stale part of ``plan`` after this run's ingest (``report`` holds what it loaded)."""
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
        observed, present = _warehouse_view(target, graph, plan.dbt_keys, successful, report.run_id, now)
    except Exception as exc:  # the warehouse's catalog did not answer: nothing can be known to be fresh
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return StateDecision(plan, fallback=f"the warehouse could not be inspected ({type(exc).__name__}: {first})")
    for record in observed:
        successful[record.asset_key] = record
    reasons = stale_reasons(
        graph, successful, latest, blocked=blocked_keys(checks), now=now, present=present, done=ingested
    )
    unchanged = {AssetKey.parse(r.key) for r in report.assets.values() if r.status == "unchanged"}
    narrowed, fresh_nodes = narrow(plan, reasons, unchanged)
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
    return StateDecision(narrowed, stale, fresh, fresh_nodes, [r for r in observed if r.data_version is not None])


def narrow(
    plan: RunPlan, stale: Mapping[AssetKey, str], unchanged: Iterable[AssetKey] = ()
) -> tuple[RunPlan, dict[str, str]]:
    """``plan`` with only what must run: dlt tables (always loaded: only the source knows whether it has new data),
    stale assets, and the tests that read one of them (a test on no asset always runs: nothing says what it reads).
    The tests of a dlt table that loaded nothing (``unchanged``) run only when something reading it is built: they
    gate it. Returns the narrowed plan and every dbt node left out, with why."""
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
            if check.asset_key is None or any(gates(a) for a in check.assets):
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


def _warehouse_view(
    target: Target,
    graph: AssetGraph,
    readers: Iterable[AssetKey],
    successful: Mapping[str, Materialization],
    run_id: str,
    now: datetime,
) -> tuple[list[Materialization], set[str]]:
    """What the decision reads from the warehouse: the sources ``readers`` read whose ``loaded_at_field`` moved, and
    the relations present. A DuckDB file that does not exist yet holds nothing (and is not created by looking)."""
    if target.type == "duckdb" and not Path(target.config["path"]).exists():
        return [], set()
    observed = _observe_sources(target, graph, _sources_read(graph, readers), successful, run_id, now)
    return observed, present_relations(target)


def _sources_read(graph: AssetGraph, keys: Iterable[AssetKey]) -> set[AssetKey]:
    """Sources Headwater does not load that ``keys`` read directly or through ephemeral models."""
    return {
        d
        for k in keys
        for d in reads_through(graph, graph.specs[k])
        if d in graph.specs and graph.specs[d].kind is AssetKind.SOURCE
    }


def _observe_sources(
    target: Target,
    graph: AssetGraph,
    sources: set[AssetKey],
    successful: Mapping[str, Materialization],
    run_id: str,
    now: datetime,
) -> list[Materialization]:
    """The sources among ``sources`` whose newest ``loaded_at_field`` differs from the one last recorded (or was
    never recorded), as observations at ``now``. A source whose value cannot be read is reported as changed, with
    why (``data_version`` None: not recorded, so the next run looks again)."""
    watched = sorted(k for k in sources if graph.specs[k].config.get("loaded_at_field"))
    if not watched:
        return []
    import sqlalchemy as sa

    observed = []
    engine = target.engine()
    try:
        with engine.connect() as conn:
            for key in watched:
                spec = graph.specs[key]
                schema, _, table = spec.relation_name.partition(".")
                try:
                    value = newest(conn, schema, table, spec.config["loaded_at_field"])
                except sa.exc.DBAPIError as exc:
                    why = f"its loaded_at_field could not be read ({str(exc.orig).strip().splitlines()[0][:160]})"
                    observed.append(Materialization(str(key), run_id, "observed", 1, now, now, message=why))
                    continue
                version = "" if value is None else str(value)
                last = successful.get(str(key))
                if last is not None and last.data_version == version:
                    continue
                why = (
                    f"its {spec.config['loaded_at_field']} moved to {version or 'nothing'}"
                    if last is not None and last.data_version is not None
                    else "first observed: nothing recorded what its readers were built from"
                )
                observed.append(
                    Materialization(
                        str(key), run_id, "observed", 1, now, now, kind="source", message=why, data_version=version
                    )
                )
    finally:
        engine.dispose()
    return observed


def present_relations(target: Target) -> set[str]:
    """Every table and view in the warehouse, ``schema.name`` in lower case (information_schema)."""
    import sqlalchemy as sa

    engine = target.engine()
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select table_schema, table_name from information_schema.tables")).fetchall()
    finally:
        engine.dispose()
    return {f"{s}.{t}".lower() for s, t in rows}


def only_stale(plan: RunPlan, run_log: Any, target: Target, report: MaterializeReport, mirror: TaskRecorder) -> RunPlan:
    """The part of ``plan`` that is stale; the rest recorded ``fresh`` with why, its task runs Cached."""
    decision = decide(plan, run_log, target, report, plan.graph.project_name)
    if decision.fallback:
        report.state_note = f"built everything selected: {decision.fallback}"
        return plan
    report.state_aware = True
    report.stale = {str(k): why for k, why in decision.stale.items()}
    report.observed = [replace(r, target=report.target) for r in decision.observed]
    graph, now = plan.graph, datetime.now(UTC)
    for key, why in sorted(decision.fresh.items()):
        spec = graph.specs[key]
        report.assets[str(key)] = AssetResult(
            str(key), spec.kind.value, "fresh", 0, None, None, message=why, node_id=spec.unique_id
        )
        if spec.unique_id not in decision.fresh_nodes:  # a Python asset
            mirror.finish(spec.unique_id, Outcome.CACHED, why, now)
        for check in graph.checks_for(key):
            if check.kind not in ("dbt_test", "unit_test"):
                mirror.finish(check.unique_id, Outcome.CACHED, "fresh: its asset was not rebuilt; last result stands")
    for uid, why in sorted(decision.fresh_nodes.items()):
        mirror.finish(uid, Outcome.CACHED, why, now)
    return decision.plan


def suite_due(plan: RunPlan, report: MaterializeReport, key: AssetKey) -> bool:
    """A raw table's suite runs when it loaded rows, or when the run builds something that reads it (its gate)."""
    if not report.state_aware or report.assets[str(key)].status == "success":
        return True
    return bool(plan.graph.downstream([key]) & set(plan.selected))


def stale_now(graph: AssetGraph, run_log: Any, target: Target) -> tuple[dict[AssetKey, str], str | None]:
    """What the next run would find stale, for ``headwater assets`` and ``status``: the run log, plus the relations
    in the warehouse and the newest ``loaded_at_field`` of every source Headwater does not load, as the run reads
    them. Returns the reasons and a note when the warehouse could not be inspected (then dropped relations and new
    source data are not seen: the note says so). A run log that cannot be read raises, as it would for the run."""
    latest, successful = (dict(m) for m in run_log.latest(graph.project_name))
    checks = run_log.latest_checks()
    now = datetime.now(UTC)
    readers = [k for k, spec in graph.specs.items() if spec.kind.is_dbt]
    note: str | None = None
    present: set[str] | None = None
    try:
        observed, present = _warehouse_view(target, graph, readers, successful, "now", now)
        successful.update((record.asset_key, record) for record in observed)
    except Exception as exc:  # an unreachable warehouse: say what cannot be seen from the run log alone
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        note = f"the warehouse could not be inspected ({type(exc).__name__}: {first}); dropped relations and new "
        note += "source data are not shown (a run would build everything selected)"
    return stale_reasons(graph, successful, latest, blocked=blocked_keys(checks), now=now, present=present), note


def raw_checks(plan: RunPlan, report: MaterializeReport, mirror: TaskRecorder, checks: RunChecks) -> set[AssetKey]:
    """The GX suites of the dlt tables that landed: each runs when its table loaded rows or something reading it is
    built (it gates that); otherwise it is Cached, its last result standing. Returns the tables kept so. (Their
    reconcile checks always run, with the load: they find what an incremental cursor cannot see.)"""
    landed = [k for k in plan.selected if _landed(report, k)]
    kept = {k for k in landed if not suite_due(plan, report, k)}
    for check in (c for k in sorted(kept) for c in plan.graph.checks_for(k) if c.kind == "gx"):
        why = "fresh: its table loaded nothing new and nothing reading it is built; its last result stands"
        mirror.finish(check.unique_id, Outcome.CACHED, why)
    checks.suites(k for k in landed if k not in kept)
    return kept


def _landed(report: MaterializeReport, key: AssetKey) -> bool:
    result = report.assets.get(str(key))
    return result is not None and result.kind == AssetKind.DLT.value and result.status in ("success", "unchanged")
