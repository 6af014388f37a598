"""What ``headwater retry`` runs again: the assets of the last run that did not finish (rebuilt), the checks it did
not finish or skipped (run against their assets as they stand, by a stale-only run over their assets), and the
failed tests that belong to no asset (selected by name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assets.specs import CheckKind
from orchestration.cli.common import _fail, console
from orchestration.project import Project

if TYPE_CHECKING:
    from assets import AssetGraph, AssetKey
    from orchestration.warehouse.run_log import RunLog
    from orchestration.warehouse.targets import Target


def is_key(graph: AssetGraph, text: str) -> bool:
    from assets import AssetKey

    try:
        return AssetKey.parse(text) in graph.specs
    except ValueError:
        return False


def retry_graph(project: Project, resolved: Target, run_vars: dict[str, Any]) -> AssetGraph:
    """The asset graph ``retry`` decides with, built once per command: the reading commands' cached graph when
    nothing it was built from changed, else a parse (the run's flow then parses for itself)."""
    from orchestration.cli.common import _graph
    from orchestration.dbt import executor

    return _graph(project, resolved, executor.DbtOptions(vars=run_vars), cached=True)


def check_selectors(graph: AssetGraph, check_ids: list[str], rebuilt: set[str] | None = None) -> list[str]:
    """dbt selectors, by test name, for the tests among ``check_ids`` that no rebuilt asset brings along: a test on no
    asset, and a test whose assets are kept (it runs against them as they stand; selecting its asset would load or
    build that again)."""
    selectors = []
    rebuilt = rebuilt or set()
    for uid in check_ids:
        node = graph.nodes.get(uid)
        check = graph.checks_by_id().get(uid)
        if node is None or check is None or check.kind != CheckKind.DBT_TEST:
            continue
        if check.asset_key is not None and any(str(a) in rebuilt for a in check.assets):
            continue  # it reruns with its rebuilt asset (indirect selection)
        selectors.append(node.name)  # the fqn's leaf, as dbt matches it (``package.name`` misses a test in a folder)
    return selectors


@dataclass
class Retry:
    """What ``retry`` runs: ``rebuild`` (asset keys built again whatever else holds), ``checked`` (asset keys whose
    checks did not finish or were skipped: selected, so the stale-only run runs those checks against them as they
    stand) and ``checks`` (check ids, for the headline and the tests on no asset)."""

    rebuild: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not (self.rebuild or self.checked or self.checks)

    def selection(self, graph: AssetGraph) -> list[str]:
        keys = sorted({*self.rebuild, *self.checked})
        return [*(f"key:{k}" for k in keys), *check_selectors(graph, self.checks, set(self.rebuild))]

    def headline(self, run_id: str, graph: AssetGraph) -> str:
        checks = graph.checks_by_id()
        labels = [*self.rebuild, *(checks[uid].id if uid in checks else uid for uid in self.checks)]
        shown = ", ".join(labels[:10]) + (" ..." if len(labels) > 10 else "")
        return f"retrying {len(self.rebuild)} asset(s) and {len(self.checks)} check(s) of run {run_id}: {shown}"


RETRIED_CHECKS = ("interrupted", "skipped")
"""Check results that judged nothing: a retry runs those checks (against their assets as they stand, when the
assets are not rebuilt)."""


def what_to_retry(graph: AssetGraph, log: RunLog, last: dict[str, Any]) -> Retry:
    """What the last run (``last``: ``RunLog.last_run``) left to do."""
    if last.get("ended_at") is None:
        todo, done = unfinished(graph, log, last)  # what it built is kept; its checks are due (older than it)
        checks = [c.unique_id for k in done if is_key(graph, k) for c in graph.checks_for(_key(k))]
        checked = [
            k for k in done if is_key(graph, k) and any(c.kind == CheckKind.GX for c in graph.checks_for(_key(k)))
        ]
        return Retry(rebuild=todo, checked=checked, checks=sorted(checks))
    failed = {
        m.asset_key for m in log.materializations(last["run_id"]) if m.status in ("failed", "skipped", "interrupted")
    }
    records = log.check_records(last["run_id"])
    by_subject = {(c.subject, c.name): c for c in graph.checks}
    found = [(c, by_subject[(c.asset_key, c.check_name)]) for c in records if (c.asset_key, c.check_name) in by_subject]
    failing = sorted(
        spec.unique_id
        for record, spec in found
        if record.status in ("fail", "error") and (record.severity == "error" or spec.kind.in_dbt)
    )
    unjudged = sorted(spec.unique_id for record, spec in found if record.status in RETRIED_CHECKS)
    blocking = {c.asset_key for c in records if c.severity == "error" and c.status in ("fail", "error")}
    tested = {spec.subject for record, spec in found if spec.unique_id in failing}
    rebuild = sorted(k for k in failed | blocking | tested if is_key(graph, k))
    hooks = sorted(k for k in failed if not is_key(graph, k))
    if hooks:
        console.print(f"[yellow]{', '.join(hooks)} failed last time[/]: hooks run again with every dbt invocation")
    checks_by_id = graph.checks_by_id()
    # a unit test runs only with its model (rebuilt); a GX check goes with its asset (selected: kept, the stale-only
    # run checks it as it stands); a dbt test is selected by its name (check_selectors)
    units = {checks_by_id[uid].subject for uid in unjudged if checks_by_id[uid].kind == CheckKind.UNIT_TEST}
    rebuild = sorted({*rebuild, *(k for k in units if is_key(graph, k))})
    checked = sorted(
        {checks_by_id[uid].subject for uid in unjudged if checks_by_id[uid].kind == CheckKind.GX} - set(rebuild)
    )
    return Retry(rebuild, [k for k in checked if is_key(graph, k)], sorted({*failing, *unjudged}))


def _key(text: str) -> AssetKey:
    from assets import AssetKey

    return AssetKey.parse(text)


def unfinished(graph: AssetGraph, log: RunLog, last: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The assets a run that never finished (killed, crashed) selected but did not complete, and those it completed
    (their checks may not have run: the stale-only retry runs what is due of them)."""
    from assets import SelectionError
    from orchestration.engine.plan import plan_run

    indirect = (last.get("flags") or {}).get("indirect_selection") or "eager"
    try:
        plan = plan_run(graph, last.get("selection"), last.get("exclude"), indirect=indirect)
    except SelectionError as exc:
        raise _fail(f"run {last['run_id']} did not finish and its selection no longer parses: {exc}") from None
    done = {m.asset_key for m in log.materializations(last["run_id"]) if m.status == "success"}
    todo = sorted(str(k) for k in plan.selected if graph.specs[k].builds and str(k) not in done)
    console.print(
        f"[yellow]run {last['run_id']} did not finish[/] (killed or crashed): {len(done)} asset(s) completed "
        f"before it stopped and are kept; {len(todo)} left to run"
    )
    return todo, sorted(done)
