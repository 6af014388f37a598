"""The ``headwater`` commands that read: ``assets``, ``status`` and ``checks`` (graph plus run log)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestration._cli_common import (
    DbtProject,
    ProfilesDir,
    ProjectDir,
    TargetOpt,
    _selected,
    app,
    console,
)


@app.command()
def assets(
    selection: Annotated[str | None, typer.Argument(help="dbt-style selection, plus kind: and group:.")] = None,
    exclude: Annotated[str | None, typer.Option(help="Selection to leave out.")] = None,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """List the assets of the graph: key, kind, group, upstream count."""
    from rich.table import Table

    from assets.run_log import stale_reasons
    from orchestration.run_log import RunLog

    project, resolved, graph, chosen = _selected(project_dir, dbt_project, profiles_dir, target, selection, exclude)
    stale = stale_reasons(graph, RunLog.for_target(project, resolved).latest()[1])
    table = Table(title=f"{len(chosen)} of {len(graph)} assets")
    for column in ("key", "kind", "group", "upstream", "checks", "stale"):
        table.add_column(column, justify="right" if column in ("upstream", "checks") else "left")
    for key in graph.toposorted():
        if key in chosen:
            spec = graph.specs[key]
            table.add_row(
                str(key),
                spec.kind.value,
                spec.group,
                str(len(spec.deps)),
                str(len(graph.checks_for(key))),
                f"[yellow]{stale[key]}[/]" if key in stale else "",
            )
    console.print(table)


@app.command()
def status(
    selection: Annotated[str | None, typer.Argument(help="dbt-style selection (default: everything).")] = None,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """The last materialization of each asset (run, status, attempts, rows, when) and whether it is stale."""
    from rich.table import Table

    from assets.run_log import stale_reasons
    from orchestration.console import styled
    from orchestration.run_log import RunLog

    project, resolved, graph, chosen = _selected(project_dir, dbt_project, profiles_dir, target, selection, None)
    run_log = RunLog.for_target(project, resolved)
    latest, successful = run_log.latest()
    checks = run_log.latest_checks()
    stale = stale_reasons(graph, successful)
    table = Table(title=f"Asset status on {resolved.name}")
    for column in ("key", "kind", "status", "attempts", "rows", "ended", "run", "checks", "stale"):
        table.add_column(column)
    for key in graph.toposorted():
        if key not in chosen or not graph.specs[key].kind.is_materializable:
            continue
        record = latest.get(str(key))
        table.add_row(
            str(key),
            graph.specs[key].kind.value,
            styled(record.status) if record else "[dim]never[/]",
            str(record.attempts) if record else "",
            "" if record is None or record.rows is None else f"{record.rows:,}",
            record.ended_at.strftime("%Y-%m-%d %H:%M:%S") if record and record.ended_at else "",
            (record.run_id[:8] if record else ""),
            _check_summary(
                [checks[(str(key), c.name)][0].status for c in graph.checks_for(key) if (str(key), c.name) in checks]
            ),
            f"[yellow]{stale[key]}[/]" if key in stale else "",
        )
    console.print(table)


def _check_summary(statuses: list[str]) -> str:
    from orchestration.console import styled

    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    return " ".join(f"{n} {styled(s)}" for s, n in counts.items())


@app.command()
def checks(
    selection: Annotated[
        str | None, typer.Argument(help="dbt-style selection of assets (default: everything).")
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only checks whose last result was not a pass.")] = False,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """Every check on the selected assets (dbt tests, GX expectations, freshness, quarantine) and its last result."""
    from rich.table import Table

    from orchestration.console import styled
    from orchestration.run_log import RunLog

    project, resolved, graph, chosen = _selected(project_dir, dbt_project, profiles_dir, target, selection, None)
    latest = RunLog.for_target(project, resolved).latest_checks()
    table = Table(title=f"Checks on {resolved.name}")
    for column in ("asset", "check", "kind", "severity", "last", "rows", "when", "detail"):
        table.add_column(column, overflow="fold", justify="right" if column == "rows" else "left")
    shown = 0
    for check in sorted(graph.checks, key=lambda c: (str(c.asset_key), c.name)):
        if check.asset_key not in chosen:
            continue
        record, ended = latest.get((str(check.asset_key), check.name), (None, None))
        if failed and (record is None or record.status in ("pass", "success")):
            continue
        shown += 1
        table.add_row(
            str(check.asset_key),
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
