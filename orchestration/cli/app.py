"""The ``headwater`` command line. Heavy imports (dbt, Prefect, dlt) happen inside the commands.

This module holds the commands that run things (demo, ingest, sources, materialize, retry, docs);
``cmd_inspect``, ``cmd_lineage`` and ``cmd_deploy`` add the reading and production commands to the same app.
"""

from __future__ import annotations

import shutil
from typing import Annotated

import typer

from orchestration.cli import gc_policy, retrying
from orchestration.cli.cmd_run import FAST_EXIT, _run_flow, ensure_demo
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
    _options,
    _project,
    _target,
    app,
    console,
)
from orchestration.engine.request import RunRequest

__all__ = ["app", "main"]


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 42,
    scale: Annotated[float, typer.Option(help="Size multiplier: 1 gives ~12k order items, 80 gives ~1M.")] = 1.0,
    advance: Annotated[bool, typer.Option("--advance", help="Move an existing shop forward in time.")] = False,
    days: Annotated[int, typer.Option(help="Days to advance with --advance.")] = 1,
    reset: Annotated[bool, typer.Option("--reset", help="Delete the demo inputs and create them anew.")] = False,
    project_dir: ProjectDir = None,
) -> None:
    """Generate the demo shop (SQLite) and marketing exports (CSV), or advance them in time."""
    from ingestion.marketing.simulator import write_spend
    from ingestion.shop.simulator import advance_shop, create_shop, read_state

    project = _project(project_dir)
    paths = project.source_paths
    if reset:
        shutil.rmtree(paths.shop_db.parent, ignore_errors=True)
    if advance:
        if not paths.shop_db.exists():
            raise _fail(f"{paths.shop_db}: no demo shop to advance; run `headwater demo` first")
        before = read_state(paths.shop_db)
        with console.status(f"advancing the shop by {days} day(s)"):
            state = advance_shop(paths.shop_db, days=days)
            write_spend(
                paths.marketing_landing, seed=state.seed, scale=state.scale, days=range(before.day + 1, state.day + 1)
            )
        console.print(f"shop advanced from day {before.day} to day {state.day}")
        return
    if paths.shop_db.exists():
        console.print(f"demo shop already at {paths.shop_db}; use --advance to add days or --reset to recreate it")
        return
    with console.status("generating the demo shop"):
        state = create_shop(paths.shop_db, seed=seed, scale=scale)
        write_spend(paths.marketing_landing, seed=seed, scale=scale, days=range(state.day + 1))
    console.print(f"demo shop created at {paths.shop_db} (seed {seed}, scale {scale}, day {state.day})")


@app.command()
def ingest(
    sources: Annotated[list[str] | None, typer.Argument(help="Sources to load (default: all).")] = None,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh", help="Reload from scratch: repairs what an incremental load cannot see (hard deletes)."
        ),
    ] = False,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
) -> None:
    """Load the raw tables with dlt (without running dbt), then regenerate the dbt sources."""
    from datetime import UTC, datetime

    from rich.table import Table

    from ingestion import SOURCES, get_source
    from orchestration.core.errors import RunLogError
    from orchestration.prefect.ingest_stage import load_source, record_ingest, regenerate_sources

    project = _project(project_dir)
    resolved = _target(project, target)
    ensure_demo(project)
    names = sources or list(SOURCES)
    try:
        definitions = [get_source(n) for n in names]
    except KeyError as exc:
        raise _fail(exc.args[0]) from None
    table = Table(title=f"Ingestion into {resolved.name}")
    for column in ("source", "table", "new rows"):
        table.add_column(column)
    from ingestion import ContractViolation, SourceFailed
    from orchestration.warehouse.lock import TargetBusy, WarehouseUnreachable, target_lock

    failures: list[str] = []
    loads, failed_tables = [], {}
    started = datetime.now(UTC)
    try:
        with target_lock(project, resolved):
            for definition in definitions:
                try:
                    with console.status(f"loading {definition.name}"):
                        result = load_source(project, resolved, definition, full_refresh=full_refresh)
                except (ContractViolation, SourceFailed) as exc:  # the others still load
                    failures.append(str(exc))
                    for name in definition.tables:
                        table.add_row(definition.name, f"{definition.dataset}.{name}", "[red]failed[/]")
                        failed_tables[f"{definition.dataset}.{name}"] = str(exc)
                    continue
                loads.append(result)
                failed_tables.update({f"{definition.dataset}.{t}": why for t, why in result.failed.items()})
                if result.recovered_packages:
                    console.print(
                        f"{definition.name}: finished {result.recovered_packages} load package(s) an interrupted "
                        "run left pending"
                    )
                failures.extend(result.failed.values())  # a table whose reader failed; the others loaded
                for name in definition.tables:
                    rows = "[red]failed[/]" if name in result.failed else f"{result.rows.get(name, 0):,}"
                    table.add_row(definition.name, f"{definition.dataset}.{name}", rows)
            # what it loaded is a run of the run log: the next stale-only run rebuilds its readers, and no table it
            # loaded counts as never loaded
            record_ingest(project, resolved, started, loads, failed_tables, [d.name for d in definitions])
    except (TargetBusy, WarehouseUnreachable, RunLogError) as exc:
        raise _fail(str(exc)) from None
    console.print(table)
    for path, changed in regenerate_sources(project, resolved):
        if changed:
            console.print(f"regenerated {path}")
    if failures:
        raise _fail("\n".join(failures))


@app.command()
def sources(target: TargetOpt = None, project_dir: ProjectDir = None) -> None:
    """Write the dbt sources files (_<source>__sources.yml) from the dlt schemas of the last ingest."""
    from orchestration.prefect.ingest_stage import regenerate_sources

    project = _project(project_dir)
    resolved = _target(project, target)
    try:
        written = regenerate_sources(project, resolved, strict=True)
    except LookupError as exc:
        raise _fail(str(exc)) from None
    for path, changed in written:
        console.print(f"{'wrote' if changed else 'unchanged'} {path}")


def main() -> None:
    """The console script: the typer app, allowed to end the process fast once records are flushed. An error the user
    can fix (a bad file, an unreachable warehouse, a cycle) is one line and exit 2; anything else is one line and
    exit 1; ``--debug`` (or ``HEADWATER_DEBUG=1``) shows the traceback. ``kill -USR1 <pid>`` prints every thread's
    stack to stderr (a run that seems stuck says where)."""
    import faulthandler
    import os
    import signal
    import sys

    FAST_EXIT[0] = True
    gc_policy.freeze_survivors()  # a command's process is short; `catalog` and `docs --serve` thaw before serving
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        app()
    except Exception as exc:
        if os.environ.get("HEADWATER_DEBUG") == "1" or "--debug" in sys.argv:
            raise
        from orchestration.core.errors import UserError

        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, UserError):
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(2)
        console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {first} (run with --debug for the traceback)",
            highlight=False,
        )
        sys.exit(1)


SelectionArg = Annotated[
    list[str] | None,
    typer.Argument(help="dbt selection (default: everything); several words are a union, as after dbt's -s."),
]
FullRefresh = Annotated[
    bool,
    typer.Option(
        "--full-refresh",
        help="Rebuild incremental models and seeds (dbt's flag) and reload incremental sources, from scratch.",
    ),
]
Threads = Annotated[int | None, typer.Option(help="dbt threads (default: the profile's), as dbt's --threads.")]


@app.command()
def materialize(
    selection: SelectionArg = None,
    select: SelectOpt = None,
    exclude: ExcludeOpt = None,
    target: TargetOpt = None,
    vars: VarsOpt = None,
    full_refresh: FullRefresh = False,
    threads: Threads = None,
    indirect_selection: Annotated[
        str, typer.Option(help="Tests selected with their models: eager, cautious, buildable, empty (dbt's).")
    ] = "eager",
    retries: Annotated[
        int | None, typer.Option(help="Retry budget for every model (overrides meta and defaults).")
    ] = None,
    retry_delay: Annotated[
        float | None, typer.Option(help="Seconds between retry rounds (overrides meta and defaults).")
    ] = None,
    build_all: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Build every selected asset, stale or not (default: only the stale; --full-refresh implies it).",
        ),
    ] = False,
    state: StateOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """The main job: ingest with dlt, then build and check, as one Prefect flow, the selected assets that are stale
    (never built here, code or upstream data changed, failed last time, due by max_age); fresh ones are kept.
    `headwater assets` shows which are stale and why."""
    project = _project(project_dir, dbt_project, profiles_dir)
    resolved = _target(project, target)
    options = _options(vars, full_refresh=full_refresh, threads=threads)
    request = RunRequest.of(
        [*(selection or []), *(select or [])],
        exclude,
        retries=retries,
        retry_delay=retry_delay,
        vars=dict(options.vars),
        full_refresh=full_refresh,
        threads=threads,
        indirect_selection=indirect_selection,
        build_all=build_all,
        state=str(state) if state else None,
        dbt_project=str(project.dbt_project_dir),
        profiles_dir=str(project.profiles_dir),
    )
    _run_flow(project, resolved, request)


@app.command()
def retry(
    target: TargetOpt = None,
    vars: Annotated[str | None, typer.Option("--vars", help="dbt vars (default: the last run's).")] = None,
    full_refresh: Annotated[
        bool | None, typer.Option("--full-refresh/--no-full-refresh", help="Default: as the last run.")
    ] = None,
    threads: Threads = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """Re-run what the last run on the target did not finish: the assets that failed or were skipped (with the
    assets whose blocking checks failed: re-materialized and re-checked, so a still-failing check keeps blocking),
    and the checks a signal cut off or that were skipped (run against their assets as they stand), with the last
    run's vars and flags unless given."""
    from orchestration.warehouse.run_log import RunLog

    project = _project(project_dir, dbt_project, profiles_dir)
    resolved = _target(project, target)
    log = RunLog.for_target(project, resolved)
    last = log.last_run(resolved.name)
    if last is None:
        raise _fail(f"no run recorded on target {resolved.name}; run `headwater materialize` first")
    flags = last.get("flags") or {}
    options = _options(vars) if vars is not None else _options(None)
    run_vars = dict(options.vars) if vars is not None else dict(last.get("vars") or {})
    graph = retrying.retry_graph(project, resolved, run_vars)
    todo = retrying.what_to_retry(graph, log, last)
    if todo.nothing:
        console.print(f"nothing to retry: run {last['run_id']} has no failed or skipped assets or unfinished checks")
        return
    console.print(todo.headline(last["run_id"], graph))
    request = RunRequest.of(
        todo.selection(graph),
        vars=run_vars,
        full_refresh=flags.get("full_refresh", False) if full_refresh is None else full_refresh,
        threads=threads if threads is not None else flags.get("threads"),
        rebuild=tuple(todo.rebuild),  # built whatever else holds; the rest of the selection runs only what is due
        dbt_project=str(project.dbt_project_dir),
        profiles_dir=str(project.profiles_dir),
    )
    _run_flow(project, resolved, request)


@app.command()
def docs(
    serve: Annotated[bool, typer.Option("--serve", help="Serve the docs on localhost after generating them.")] = False,
    port: Annotated[int, typer.Option(help="Port for --serve.")] = 8080,
    target: TargetOpt = None,
    vars: VarsOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """dbt docs from the dlt tables onwards, with each asset's check results and column lineage; --serve to browse."""
    from orchestration.dbt import executor
    from orchestration.web.docs import generate_docs
    from orchestration.web.docs import serve as serve_folder

    project = _project(project_dir, dbt_project, profiles_dir)
    resolved = _target(project, target)
    options = _options(vars)
    try:
        with console.status("dbt docs generate"):
            result = generate_docs(project, resolved, options)
    except executor.DbtInvocationError as exc:
        raise _fail(str(exc)) from None
    console.print(f"docs written to {result.folder / 'index.html'}")
    console.print(
        f"check results linked on {result.checks_linked} asset(s); column lineage on {result.columns_with_lineage} column(s)"
    )
    if result.data_docs:
        console.print(f"GX Data Docs (validation results of the last runs) copied to {result.data_docs}")
    else:
        console.print("[dim]no GX Data Docs yet: they appear after a run with Great Expectations suites[/]")
    if serve:
        console.print(f"serving on http://127.0.0.1:{port} (Ctrl+C to stop)")
        try:
            gc_policy.thaw()  # serves until stopped
            serve_folder(result.folder, port)
        except KeyboardInterrupt:
            pass


# the reading and production commands register on the same app, after the running ones (help lists them so)
from orchestration.cli import cmd_deploy, cmd_inspect, cmd_lineage, cmd_server  # noqa: E402, F401

if __name__ == "__main__":  # pragma: no cover
    main()
