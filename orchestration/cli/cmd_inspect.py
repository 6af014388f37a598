"""The ``headwater`` commands that read: ``assets``, ``status`` and ``checks`` (graph plus run log)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from assets import AssetGraph, AssetKey
    from orchestration.warehouse.run_log import RunLog
    from orchestration.warehouse.targets import Target

from orchestration.cli.common import (
    DbtProject,
    ExcludeOpt,
    ProfilesDir,
    ProjectDir,
    SelectOpt,
    StateOpt,
    TargetOpt,
    VarsOpt,
    _fail,
    _selected,
    app,
    console,
)

SelectionArg = Annotated[
    list[str] | None, typer.Argument(help="dbt selection (a union of the words), plus kind:, key: and layer:.")
]


def _stale(run_log: RunLog, graph: AssetGraph, target: Target) -> dict[AssetKey, str]:
    """What the next run would do to each asset and why: build it (stale) or run some of its checks against it as it
    stands (new, changed or cut-off checks), from the run's own decision (run log, relations in the warehouse and
    their data versions, new source data); a warehouse that does not answer is a printed note."""
    from orchestration.engine.state import stale_now

    found = stale_now(graph, run_log, target)
    if found.note:
        console.print(f"[yellow]note:[/] {found.note}")
    shown = {key: f"[yellow]{why}[/]" for key, why in found.stale.items()}
    for key, checks in found.due.items():
        more = f" (and {len(checks) - 1} more)" if len(checks) > 1 else ""
        shown[key] = f"[yellow]checks to run: {checks[0]}{more}[/]"
    return shown


def _union(positional: list[str] | None, option: list[str] | None) -> list[str]:
    return [*(positional or []), *(option or [])]


@app.command()
def assets(
    selection: SelectionArg = None,
    select: SelectOpt = None,
    exclude: ExcludeOpt = None,
    output: Annotated[str, typer.Option(help="table, or json: one line per selected node, as `dbt ls`.")] = "table",
    target: TargetOpt = None,
    vars: VarsOpt = None,
    state: StateOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """List the assets of the graph: key, kind, layer, upstream count, checks, staleness; or (--output json) every
    node the selection picks, tests included, with the nodes `dbt ls --select` lists."""
    import json

    from rich.table import Table

    from orchestration.warehouse.run_log import RunLog

    if output not in ("table", "json"):
        raise _fail(f"--output {output}: use table or json")
    project, resolved, graph, nodes, chosen = _selected(
        project_dir, dbt_project, profiles_dir, target, _union(selection, select), exclude, vars, state
    )
    if output == "json":
        checks = graph.checks_by_id()
        for uid in sorted(nodes):
            node = graph.nodes[uid]
            name = checks[uid].id if uid in checks else node.label
            line = {"unique_id": uid, "resource_type": node.resource_type, "name": name}
            if node.asset_key is not None and node.asset_key in graph.specs:
                line["asset_key"] = str(node.asset_key)
            print(json.dumps(line))
        return
    stale = _stale(RunLog.for_target(project, resolved), graph, resolved)
    table = Table(title=f"{len(chosen)} of {len(graph)} assets")
    for column in ("key", "kind", "layer", "upstream", "checks", "stale"):
        table.add_column(
            column, justify="right" if column in ("upstream", "checks") else "left", no_wrap=column == "key"
        )
    for key in graph.toposorted():
        if key in chosen:
            spec = graph.specs[key]
            table.add_row(
                str(key),
                spec.kind.value,
                spec.layer,
                str(len(spec.deps)),
                str(len(graph.checks_for(key))),
                stale.get(key, ""),
            )
    console.print(table)
    tests = sum(1 for uid in nodes if graph.nodes[uid].is_test)
    if tests:
        console.print(f"and {tests} test(s) selected with them (`headwater checks` lists them with their results)")


@app.command()
def status(
    selection: SelectionArg = None,
    select: SelectOpt = None,
    target: TargetOpt = None,
    vars: VarsOpt = None,
    state: StateOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """The last materialization of each asset (run, status, attempts, rows, when) and whether it is stale."""
    from rich.table import Table

    from orchestration.cli.console import styled
    from orchestration.warehouse.run_log import RunLog

    project, resolved, graph, _, chosen = _selected(
        project_dir, dbt_project, profiles_dir, target, _union(selection, select), None, vars, state
    )
    run_log = RunLog.for_target(project, resolved)
    latest, successful = run_log.latest()
    checks = run_log.latest_checks()
    stale = _stale(run_log, graph, resolved)
    table = Table(title=f"Asset status on {resolved.name}")
    wide = console.width >= 150  # the kind and the run id only where they fit beside whole keys
    columns = ["key", *(["kind"] if wide else []), "status", "tries", "rows", "ended", *(["run"] if wide else [])]
    for column in [*columns, "checks", "stale"]:
        # keys, statuses and times stay whole; the check counts and staleness reasons wrap
        table.add_column(
            column,
            no_wrap=column != "stale",
            justify="right" if column in ("tries", "rows") else "left",
        )
    for key in graph.toposorted():
        if key not in chosen or not graph.specs[key].builds:
            continue
        record = latest.get(str(key))
        cells = {
            "key": str(key),
            "kind": graph.specs[key].kind.value,
            "status": styled(record.status) if record else "[dim]never[/]",
            "tries": str(record.attempts) if record else "",
            "rows": "" if record is None or record.rows is None else f"{record.rows:,}",
            "ended": record.ended_at.strftime("%m-%d %H:%M") if record and record.ended_at else "",
            "run": record.run_id[:8] if record else "",
        }
        statuses = [checks[(str(key), c.name)][0].status for c in graph.checks_for(key) if (str(key), c.name) in checks]
        table.add_row(
            *(cells[c] for c in columns),
            _check_summary(statuses),
            stale.get(key, ""),
        )
    console.print(table)


_GLYPHS = {"pass": "✓", "success": "✓", "warn": "!", "fail": "✗", "error": "✗", "skipped": "–"}
"""Plain glyphs (no emoji font needed), so a row's check counts fit beside a whole key: ``8✓ 1!``."""


def _check_summary(statuses: list[str]) -> str:
    from orchestration.cli.console import _STATUS_STYLE as _COLOURS
    from orchestration.cli.console import styled

    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    return " ".join(
        f"{n}[{_COLOURS.get(s, 'white')}]{_GLYPHS[s]}[/]" if s in _GLYPHS else f"{n} {styled(s)}"
        for s, n in counts.items()
    )


@app.command()
def checks(
    selection: SelectionArg = None,
    select: SelectOpt = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only checks whose last result was not a pass.")] = False,
    target: TargetOpt = None,
    vars: VarsOpt = None,
    state: StateOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """Every selected check (dbt tests, unit tests, GX expectations, freshness, quarantine) and its last result:
    the tests the selection picks (as dbt's), the other checks of the selected assets, and tests on no asset."""
    from rich.table import Table

    from orchestration.cli.console import styled
    from orchestration.warehouse.run_log import RunLog

    narrowed = bool(selection or select)
    project, resolved, graph, nodes, chosen = _selected(
        project_dir, dbt_project, profiles_dir, target, _union(selection, select), None, vars, state
    )
    latest = RunLog.for_target(project, resolved).latest_checks()
    table = Table(title=f"Checks on {resolved.name}")
    for column in ("asset", "check", "kind", "severity", "last", "rows", "when", "detail"):
        table.add_column(
            column,
            overflow="fold",
            justify="right" if column == "rows" else "left",
            no_wrap=column in ("asset", "check"),
        )
    shown = 0
    for check in sorted(graph.checks, key=lambda c: (c.subject, c.name)):
        if check.unique_id in graph.nodes:
            if check.unique_id not in nodes:
                continue
        elif check.asset_key not in chosen and (narrowed or check.asset_key is not None):
            continue
        record, ended = latest.get((check.subject, check.name), (None, None))
        if failed and (record is None or record.status in ("pass", "success")):
            continue
        shown += 1
        table.add_row(
            check.subject,
            check.name,
            check.kind,
            check.severity.value,
            styled(record.status) if record else "[dim]never run[/]",
            "" if record is None or record.failures is None else str(record.failures),
            ended.strftime("%Y-%m-%d %H:%M") if ended else "",
            (record.message if record else check.description)[:100],
        )
    console.print(table)
    console.print(f"{shown} check(s) on {len(chosen)} selected asset(s)")
