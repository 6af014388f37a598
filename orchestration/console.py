"""Rich output for the CLI: progress bars while a run works, summary tables when it ends."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


class RichReporter:
    """A :class:`~orchestration.progress.Reporter` that draws one progress bar per phase."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task_id: int | None = None

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
}


def styled(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def summary_tables(report) -> list[Table]:  # report: orchestration.materialize.MaterializeReport
    """The end-of-run summary: what was loaded, what was built, what the checks said."""
    tables = []
    if report.ingested:
        loads = Table(title="Ingestion (new rows this run)")
        loads.add_column("source")
        loads.add_column("table")
        loads.add_column("rows", justify="right")
        for load in report.ingested:
            if not load.rows:
                loads.add_row(load.source, f"{load.dataset}.*", "0")
            for table, rows in load.rows.items():
                loads.add_row(load.source, f"{load.dataset}.{table}", f"{rows:,}")
        tables.append(loads)
    if report.build is not None:
        built = Table(title="dbt build")
        for column in ("status", "models/seeds/snapshots", "tests"):
            built.add_column(column, justify="right" if column != "status" else "left")
        statuses = sorted({r.status for r in report.build.results})
        for status in statuses:
            nodes = sum(1 for r in report.build.results if r.status == status and not r.unique_id.startswith("test."))
            tests = sum(1 for r in report.build.results if r.status == status and r.unique_id.startswith("test."))
            built.add_row(styled(status), str(nodes), str(tests))
        tables.append(built)
    problems = [c for c in report.checks if c.status not in ("pass", "success")]
    if problems:
        checks = Table(title="Checks that did not pass")
        for column in ("asset", "check", "severity", "status", "failing rows"):
            checks.add_column(column)
        for result in problems:
            checks.add_row(
                str(result.check.asset_key),
                result.check.name,
                result.check.severity.value,
                styled(result.status),
                "" if result.failures is None else str(result.failures),
            )
        tables.append(checks)
    failed = [(k, s) for k, s in report.asset_status.items() if s in ("error", "fail", "skipped")]
    if failed:
        assets = Table(title="Assets not materialized")
        assets.add_column("asset")
        assets.add_column("status")
        for key, status in failed:
            assets.add_row(key, styled(status))
        tables.append(assets)
    return tables
