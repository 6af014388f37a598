"""Running the materialize flow from the CLI: the local Prefect API, signals, the summary, and a fast, safe exit.

``materialize`` and ``retry`` (in ``cli``) call :func:`_run_flow`; everything here prints through the shared console.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from orchestration.cli.common import _fail, console
from orchestration.project import Project

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from orchestration.cli.console import RichReporter
    from orchestration.engine.report import MaterializeReport
    from orchestration.engine.request import RunRequest
    from orchestration.prefect.local_server import LocalServer
    from orchestration.warehouse.targets import Target

FAST_EXIT = [False]
"""Set by ``cli.main``: the console script may end the process without the interpreter's slow teardown."""


def _local_server(project: Project) -> LocalServer | None:
    """Start Headwater's own local Prefect API when none is configured (see ``local_server``); None otherwise: when
    ``PREFECT_API_URL`` is set, or the server ``headwater server`` started answers (then it is the run's API)."""
    import atexit
    import os

    if os.environ.get("PREFECT_API_URL"):
        return None
    from orchestration.core import interrupts
    from orchestration.prefect.local_server import LocalServer, running_server

    if (found := running_server(project.data_dir)) is not None:
        os.environ["PREFECT_API_URL"] = found["api_url"]  # before Prefect is imported: its settings read it then
        return None

    server = LocalServer(project.data_dir / "prefect_server.log").start()
    os.environ["PREFECT_API_URL"] = server.api_url  # before Prefect is imported: its settings read it then
    atexit.register(server.stop)
    interrupts.on_exit(server.kill)
    return server


def ensure_demo(project: Project) -> bool:
    """Generate the demo inputs if absent; True when it did."""
    if project.source_paths.shop_db.exists():
        return False
    with console.status("generating the demo shop"):
        day = project.ensure_demo()
    console.print(f"demo shop created at {project.source_paths.shop_db} (day {day})")
    return True


def _run_flow(project: Project, resolved: Target, request: RunRequest) -> None:
    """Run the materialize flow with progress bars, print its summary, exit non-zero when it failed
    (128 + the signal's number when a signal interrupted it)."""
    from orchestration.core import interrupts

    _check_settings(project)  # a typo in headwater.yml is one line here, never a failed flow run
    server = _local_server(project)  # first: it boots on the other core while this process prepares
    if project.is_headwater_dbt_project:
        ensure_demo(project)
    interrupts.on_exit(_release)  # a second signal ends the process at once: still without leaked semaphores
    with _prefect_settings(server):
        _run_and_report(project, resolved, server, request)


def _check_settings(project: Project) -> None:
    """headwater.yml (and an alerts file of its own) as the run will read them: every key known, every shape right."""
    from orchestration.core.errors import ConfigFileError
    from orchestration.notify.alerts import AlertConfigError, alerts_file, load_router
    from orchestration.settings import Settings

    try:
        Settings.load(project.root)
        load_router(alerts_file(project.root))
    except (ConfigFileError, AlertConfigError) as exc:
        raise _fail(str(exc)) from None


@contextlib.contextmanager
def _prefect_settings(server: LocalServer | None) -> Iterator[None]:
    """Prefect talks to the local API for the rest of this process, whenever Prefect was imported, and never starts
    an ephemeral server of its own (one the CLI's fast exit would leave running)."""
    if server is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: False}):
        yield


def _run_and_report(project: Project, resolved: Target, server: LocalServer | None, request: RunRequest) -> None:
    from orchestration.core import interrupts

    try:
        with interrupts.interruptible():
            state = _flow_state(project, resolved, server, request)
    except interrupts.Interrupted as exc:  # before the run started or after it ended: nothing to record
        console.print(f"[red]interrupted by {exc.name}[/] before the run could record anything; nothing changed")
        if server is not None:
            server.stop()
        raise typer.Exit(code=exc.exit_code) from None
    from orchestration.cli.console import dbt_status_line, summary_tables
    from orchestration.prefect.flow import MaterializeFailed, MaterializeInterrupted

    try:
        report = state.result(raise_on_failure=False)
    except Exception as exc:  # the flow crashed before producing a report: show why, not a traceback
        raise _fail(f"the run crashed: {exc}") from None
    if isinstance(report, MaterializeInterrupted):
        console.print(f"[red]{report}[/]", highlight=False)
        if report.report is None:
            if server is not None:
                server.stop()
            raise typer.Exit(code=report.exit_code)
        _finish(report.report, report.exit_code, server, hurry=True)
    if isinstance(report, MaterializeFailed):
        report = report.report
    if isinstance(report, BaseException) or not hasattr(report, "ok"):
        raise _fail(f"the run failed: {report or state.message}")
    for table in summary_tables(report):
        console.print(table)
    line = dbt_status_line(report)
    if line:
        console.print(line, highlight=False)
    _print_failures(report)
    for message in report.mirror_errors[:5]:
        console.print(f"[yellow]recording:[/] {message}")
    for message in report.notes[:5]:
        console.print(f"[dim]note:[/] {message}")
    if report.state_note:  # a run log or --state that could not be trusted: everything selected was built
        console.print(f"[bold yellow]not state-aware:[/] {report.state_note}", highlight=False)
    if report.warehouse_error:
        console.print(
            f"[red]{report.warehouse_error}.[/] What it was building is not visible: dbt replaces each relation "
            "in one transaction, and models read only completed dlt loads. Once the warehouse answers again, "
            "`headwater retry` runs what did not finish."
        )
    if report.disabled_notifiers:
        console.print(
            f"[dim]alert notifiers off (their variables are unset): {', '.join(report.disabled_notifiers)}[/]"
        )
    if report.quarantined:
        shown = ", ".join(f"{key} {n:,}" for key, n in sorted(report.quarantined.items()))
        console.print(
            f"[yellow]quarantined[/] (rows a data contract rejected, kept with their reason in "
            f"<dataset>._headwater_quarantine): {shown}"
        )
    if report.data_docs:
        console.print(f"GX Data Docs: {report.data_docs}")
    if report.ok:
        console.print(f"[green]materialized[/] on target {report.target} (flow run {report.run_id})")
    else:
        console.print(
            f"[red]run failed[/] on target {report.target} (flow run {report.run_id}); "
            "`headwater retry` re-runs only the failed and skipped assets"
        )
    if server is None and report.run_url:  # a server that outlives the command: its page is worth a click
        console.print(f"in Prefect's UI: {report.run_url}", soft_wrap=True)
    _finish(report, 0 if report.ok else 1, server)


def _flow_state(project: Project, resolved: Target, server: LocalServer | None, request: RunRequest) -> State[Any]:
    """The materialize flow's final state, with progress bars (the local server must answer first)."""
    from orchestration.cli.console import RichReporter
    from orchestration.engine.progress import set_reporter

    progress = RichReporter.progress_bar()
    reporter = RichReporter(progress)
    set_reporter(reporter)
    try:
        with progress:
            if server is not None:  # it boots on the other core meanwhile: dbt parses, Prefect is imported
                _parse_ahead(project, resolved, request, reporter)
                reporter.phase("start local Prefect API")
                server.wait()
                reporter.done()
            from orchestration.prefect.flow import materialize_flow
            from orchestration.prefect.heartbeat import cli_heartbeats

            with cli_heartbeats():  # the run's end does not wait on Prefect's heartbeat thread
                return materialize_flow(
                    target=resolved.name, project_dir=str(project.root), return_state=True, **request.flow_parameters()
                )
    finally:
        set_reporter(None)


def _parse_ahead(project: Project, resolved: Target, request: RunRequest, reporter: RichReporter) -> None:
    """The run's ``dbt parse``, while the local Prefect server starts (~6.5 s, most of it on the other core): the flow
    takes this manifest when no input changed since (``executor.parse_ahead``). A parse that fails here is left
    to the flow, which fails the same way and records it as the run's own failure."""
    from orchestration.dbt.executor import DbtOptions, parse_ahead

    reporter.phase("parse dbt project")
    try:  # a parse depends on the run's --vars alone (its key and its dbt arguments)
        parse_ahead(project, resolved, DbtOptions(vars=request.vars))
    except Exception:  # the flow parses again, fails the same way and reports it
        pass
    import orchestration.prefect.flow  # noqa: F401  (Prefect's import, ~1.5 s, also while the server starts)


def _print_failures(report: MaterializeReport) -> None:
    """Every final failure on its own line (assets, hooks, checks), grouped by message when many share one, so
    that the list fits a screen; each line names the node and the first line of its error."""
    from orchestration.cli.console import first_lines

    lines: dict[str, list[str]] = {}
    for result in sorted(report.failed, key=lambda r: r.key):
        lines.setdefault(f"{result.kind}: {first_lines(result.message) or 'failed'}", []).append(result.key)
    for check in sorted(report.failed_checks, key=lambda c: c.check.id):
        detail = first_lines(check.message) or f"{check.failures or 0} failing rows"
        lines.setdefault(f"{check.check.kind} {check.status}: {detail}", []).append(check.check.id)
    shown = 0
    for message, names in lines.items():
        if shown >= 12:
            console.print(
                f"[red]... and {len(lines) - shown} more failure message(s): `headwater status` lists them[/]"
            )
            break
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        console.print(f"[red]failed[/] {listed} ({message})", highlight=False)
        shown += 1


def _finish(report: MaterializeReport, code: int, server: LocalServer | None = None, hurry: bool = False) -> None:
    """End the process once every record is safe.

    With Headwater's local server, wait until it has recorded the run's task runs (events are stored
    asynchronously), then stop it. Flush the event and log queues, release DuckDB, and exit without the
    interpreter's slow teardown of dbt's objects (~1.5 s). ``hurry`` (a signal stopped the run): each wait is a few
    seconds at most, so the process ends within a container's grace period; what is not sent by then is lost to
    Prefect's UI only (the run log holds the run).
    """
    import os
    import sys

    from orchestration.prefect._compat import drain_event_and_log_queues

    wait = 3.0 if hurry else 120.0
    drain_event_and_log_queues(wait)
    if server is not None:
        from orchestration.prefect.records import wait_for_task_runs

        recorded = wait_for_task_runs(report.flow_run_id, report.task_runs, timeout=3.0 if hurry else 60.0)
        if recorded < report.task_runs:
            console.print(f"[yellow]the local Prefect server recorded {recorded} of {report.task_runs} task runs[/]")
        server.stop()
    if not FAST_EXIT[0]:
        raise typer.Exit(code=code)
    _release()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _release() -> None:
    """What the interpreter's exit would do that matters: close DuckDB (a clean checkpoint) and release dbt's
    semaphores (or the resource tracker warns of leaks)."""
    import gc

    if "dbt.adapters.duckdb" in sys.modules:  # dbt-duckdb ran in this process: close its file (dbt/ does)
        from orchestration.dbt.executor import release_duckdb

        release_duckdb()
        gc.collect()
    from orchestration.cli._compat import run_multiprocessing_exit_hooks

    run_multiprocessing_exit_hooks()
