"""Rich output for the CLI: progress bars while a run works, summary tables when it ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestration.engine.report import MaterializeReport

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

console = Console()


class RichReporter:
    """A :class:`~orchestration.engine.progress.Reporter` that draws one progress bar per phase."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task_id: TaskID | None = None

    @classmethod
    def progress_bar(cls) -> Progress:
        return Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[last]}"),
            console=console,
            transient=False,
            # redrawn only where someone watches: elsewhere (a log, CI, a benchmark's pipe) the refresh thread built
            # the table ten times a second for nothing, ~2% of a 200-model run's CPU; the final bars print anyway
            auto_refresh=console.is_terminal,
        )

    def phase(self, name: str, total: int | None = None) -> None:
        self.done()
        self.task_id = self.progress.add_task(name, total=total, last="")

    def advance(self, description: str = "") -> None:
        if self.task_id is not None:
            task = self.progress.tasks[self.task_id]
            if task.total is not None and task.completed + 1 > task.total:
                self.progress.update(self.task_id, total=task.completed + 1)
            self.progress.update(self.task_id, advance=1, last=description)

    def done(self) -> None:
        if self.task_id is not None:
            task = self.progress.tasks[self.task_id]
            self.progress.update(self.task_id, total=task.completed or 1, completed=task.completed or 1, last="")
            self.task_id = None


_STATUS_STYLE = {
    "success": "green",
    "pass": "green",
    "warn": "yellow",
    "skipped": "yellow",
    "error": "red",
    "fail": "red",
    "failed": "red",
    "interrupted": "red",
    "fresh": "cyan",
}


MAX_ROWS = 20
"""Rows of a detail table in the run summary; the rest are counted."""


def first_lines(message: str, limit: int = 300) -> str:
    """The headline of an error: dbt's first line names the node ("Runtime Error in model x (path)"), the next
    line says what went wrong, so both, on one line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    text = lines[0] if len(lines) == 1 or len(lines[0]) > 120 else f"{lines[0]}: {lines[1]}"
    return text[:limit]


def styled(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def dbt_status_line(report: MaterializeReport) -> str | None:
    """dbt's own end-of-run line over the final status of every node dbt ran, hooks included."""
    if not report.dbt_statuses:
        return None
    c = report.dbt_counts()
    return (
        f"dbt: PASS={c['pass']} WARN={c['warn']} ERROR={c['error']} SKIP={c['skip']} NO-OP={c['no-op']} "
        f"TOTAL={c['total']}"
    )


def summary_tables(report: MaterializeReport) -> list[Table]:
    """The end-of-run summary: what was loaded, what was built, what the checks said, who was alerted."""
    tables = []
    if report.ingested:
        loads = Table(title="Ingestion (new rows this run)")
        for column in ("source", "table", "rows", "quarantined"):
            loads.add_column(column, justify="left" if column in ("source", "table") else "right")
        for load in report.ingested:
            if not load.rows:
                loads.add_row(load.source, f"{load.dataset}.*", "0", "")
            for table, rows in load.rows.items():
                rejected = load.quarantined.get(table, 0)
                loads.add_row(
                    load.source, f"{load.dataset}.{table}", f"{rows:,}", f"[yellow]{rejected:,}[/]" if rejected else ""
                )
        tables.append(loads)
    if report.assets:
        by_kind = Table(title=f"Assets ({report.rounds} dbt invocation(s))")
        statuses = sorted({r.status for r in report.assets.values()})
        by_kind.add_column("kind")
        for status in statuses:
            by_kind.add_column(styled(status), justify="right")
        for kind in sorted({r.kind for r in report.assets.values()}):
            counts = [sum(1 for r in report.assets.values() if r.kind == kind and r.status == s) for s in statuses]
            by_kind.add_row(kind, *[str(c) for c in counts])
        tables.append(by_kind)
    retried = [r for r in report.assets.values() if r.attempts > 1 or r.status in ("failed", "skipped")]
    if retried:
        detail = Table(title="Assets that failed, were skipped or needed retries")
        for column in ("asset", "status", "attempts", "error"):
            detail.add_column(
                column, no_wrap=column == "asset", overflow="fold", min_width=12 if column == "error" else None
            )
        # failures first; a long tail of skipped descendants is counted, not listed, so the summary fits a screen
        ordered = sorted(retried, key=lambda r: (r.status != "failed", r.status != "success", r.key))
        for result in ordered[:MAX_ROWS]:
            detail.add_row(result.key, styled(result.status), str(result.attempts), first_lines(result.message, 160))
        if len(ordered) > MAX_ROWS:
            detail.add_row(f"... {len(ordered) - MAX_ROWS} more", "", "", "`headwater status` lists every asset")
        tables.append(detail)
    if report.state_aware:
        tables.append(state_table(report))
    if report.checks:
        by_kind = Table(title="Checks")
        statuses = sorted({c.status for c in report.checks})
        by_kind.add_column("kind")
        for status in statuses:
            by_kind.add_column(styled(status), justify="right")
        for kind in sorted({c.check.kind for c in report.checks}):
            counts = [sum(1 for c in report.checks if c.check.kind == kind and c.status == s) for s in statuses]
            by_kind.add_row(kind, *[str(n) for n in counts])
        tables.append(by_kind)
    # skipped checks are counted above; listing each would push the failures off the screen
    problems = [c for c in report.checks if c.status not in ("pass", "success", "skipped")]
    problems.sort(key=lambda c: (not c.failed, c.check.id))  # failures first: they are what the reader needs
    if problems:
        checks = Table(title="Checks that did not pass")
        widths = {"check": 20, "severity": 8, "status": 7, "rows": 4, "detail": 24}
        for column in ("asset", "check", "severity", "status", "rows", "detail"):
            # asset keys stay whole; long test names fold; every other column keeps a readable width
            checks.add_column(
                column,
                justify="right" if column == "rows" else "left",
                overflow="fold",
                no_wrap=column in ("asset", "severity", "status", "rows"),
                min_width=widths.get(column),
            )
        for outcome in problems[:MAX_ROWS]:
            checks.add_row(
                outcome.check.subject,
                outcome.check.name,
                outcome.check.severity.value,
                styled(outcome.status),
                "" if outcome.failures is None else str(outcome.failures),
                first_lines(outcome.message, 160),
            )
        if len(problems) > MAX_ROWS:
            checks.add_row(f"... {len(problems) - MAX_ROWS} more", "", "", "", "", "`headwater checks --failed`")
        tables.append(checks)
    if report.alerts_sent or report.alert_errors:
        alerts = Table(title="Alerts")
        alerts.add_column("notifier")
        alerts.add_column("asset")
        alerts.add_column("result")
        for notifier, key in report.alerts_sent:
            alerts.add_row(notifier, key, styled("success"))
        for error in report.alert_errors:
            alerts.add_row("", "", f"[red]{error}[/]")
        tables.append(alerts)
    return tables


def state_table(report: MaterializeReport) -> Table:
    """A stale-only run: each asset it built with why it was stale, each check it ran against an asset it kept
    (new, changed or cut off) with why, then the fresh ones it kept, counted by why when there are many (the run's
    artifact in Prefect and `headwater assets` list each)."""
    table = Table(title="Stale-only run: built because / kept fresh (`--all` builds everything)")
    table.add_column("asset", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("why", overflow="fold", min_width=24)
    built = sorted(report.stale.items())
    for key, why in built[:MAX_ROWS]:
        table.add_row(key, "[green]built[/]", why)
    if len(built) > MAX_ROWS:
        table.add_row(f"... {len(built) - MAX_ROWS} more built", "", "`headwater status` lists every asset")
    checked = sorted(report.due_checks.items())
    labels = {c.check.unique_id: c.check.id for c in report.checks}
    for uid, why in checked[:MAX_ROWS]:
        table.add_row(labels.get(uid, uid), "[green]checked[/]", why)
    if len(checked) > MAX_ROWS:
        table.add_row(f"... {len(checked) - MAX_ROWS} more checked", "", "`headwater checks` lists every check")
    fresh = sorted(report.fresh, key=lambda r: r.key)
    if len(fresh) <= 5:
        for result in fresh:
            table.add_row(result.key, styled("fresh"), result.message)
    else:
        names = ", ".join(r.key for r in fresh[:3])
        table.add_row(
            f"{len(fresh)} assets",
            styled("fresh"),
            f"not stale: code and upstream data unchanged since built ({names}, ...)",
        )
    return table
