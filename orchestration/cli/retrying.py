"""What ``headwater retry`` runs again: the assets of the last run that did not finish, and the failed tests that belong to
no asset (selected by name)."""

from __future__ import annotations

from orchestration.cli.common import _fail, console
from orchestration.project import Project


def is_key(graph, text: str) -> bool:
    from assets import AssetKey

    try:
        return AssetKey.parse(text) in graph.specs
    except ValueError:
        return False


def retry_graph(project: Project, resolved, run_vars: dict):
    """The asset graph ``retry`` decides with, built once per command: the reading commands' cached graph when
    nothing it was built from changed, else a parse (the run's flow then parses for itself)."""
    from orchestration.cli.common import _graph
    from orchestration.dbt import executor

    return _graph(project, resolved, executor.DbtOptions(vars=run_vars), cached=True)


def check_selectors(graph, check_ids: list[str]) -> list[str]:
    """dbt selectors for failed tests that belong to no asset that is retried (a test on no asset): by test name."""
    selectors = []
    for uid in check_ids:
        node = graph.nodes.get(uid)
        check = graph.checks_by_id().get(uid)
        if node is None or check is None or check.asset_key is not None:
            continue  # a test on an asset reruns with the asset (indirect selection)
        selectors.append(f"{node.package}.{node.name}" if node.package else node.name)
    return selectors


def unfinished(graph, log, last: dict) -> list[str]:
    """The assets a run that never finished (killed, crashed) selected but did not complete."""
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
    return todo
