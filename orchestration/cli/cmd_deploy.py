"""The ``headwater`` commands for production: ``deploy`` (deployments, pools, automations) and ``secret``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

if TYPE_CHECKING:
    from assets import AssetGraph
    from orchestration.prefect.automations import Compiled
    from orchestration.prefect.deploy import DeploymentSpec
    from orchestration.project import Project
    from orchestration.warehouse.targets import Target

from orchestration.cli.common import (
    ProjectDir,
    _fail,
    _project,
    app,
    console,
)


@app.command()
def deploy(
    target: Annotated[str | None, typer.Option(help="Override every deployment's `target` parameter.")] = None,
    work_pool: Annotated[str | None, typer.Option("--work-pool", help="Override every deployment's work pool.")] = None,
    file: Annotated[Path | None, typer.Option(help="Deployments file (default: prefect.yaml in the project).")] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Register the schedules paused.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the deployments and compiled automations; register nothing.")
    ] = False,
    project_dir: ProjectDir = None,
) -> None:
    """Register prefect.yaml's deployments, the automations of headwater.yml and dbt meta (as triggers of the
    `reactive` deployment), their work pools and the failure automation on PREFECT_API_URL."""
    from orchestration.notify.alerts import alerts_file
    from orchestration.prefect.deploy import (
        DeployConfigError,
        automation_notifiers,
        load_deployments,
        prefect_api_url,
        register,
    )

    project = _project(project_dir)
    api = prefect_api_url()
    if not api and not dry_run:
        raise _fail(
            "headwater deploy needs a Prefect server: start one (`prefect server start`, see README Production) "
            "and set PREFECT_API_URL, e.g. http://127.0.0.1:4200/api (or see what it would do: --dry-run)"
        )
    try:
        specs = load_deployments(file or project.root / "prefect.yaml")
        notifiers = automation_notifiers(project, alerts_file(project.root))
    except DeployConfigError as exc:
        raise _fail(str(exc)) from None
    targets = sorted({str(target or s.parameters.get("target") or "dev") for s in specs})
    pool = work_pool or specs[0].work_pool
    resolved, graph, compiled = _compiled(project, target or targets[0])
    _print_deployments(specs, target, work_pool, paused, api or "(dry run)")
    _print_automations(compiled, resolved.name)
    if dry_run:
        console.print("[dim]dry run: nothing registered[/]")
        return
    with console.status(f"registering {len(specs)} deployment(s) on {api}"):
        result = register(project, specs, target=target, work_pool=work_pool, notifiers=notifiers, paused=paused)
    for name, deployment_id in result.deployments:
        console.print(f"headwater-materialize/{name}: {deployment_id}")
    if compiled:
        from orchestration.prefect.automations import REACTIVE, register_reactive

        with console.status("registering the automations"):
            reactive_id, started = register_reactive(project, compiled, resolved, pool, paused=paused)
        triggers = sum(len(c.triggers) for c in compiled)
        console.print(f"headwater-materialize/{REACTIVE}: {reactive_id} ({triggers} trigger(s) from lineage)")
        for run_id in started:
            console.print(f"on_missing: started flow run {run_id}")
    if result.automation:
        console.print(f"automation {result.automation}: failed or crashed runs notify {', '.join(result.notifiers)}")
    else:
        console.print(
            "[dim]no failure automation: headwater.yml names no enabled notifier (their variables are unset)[/]"
        )
    if resolved.type == "snowflake":
        from orchestration.prefect.asset_slots import ensure_slots

        with console.status("creating the per-asset concurrency limits"):
            slots = ensure_slots(resolved, [str(k) for k, spec in graph.specs.items() if spec.builds])
        console.print(
            f"runs on {resolved.name} lock by asset: {len(slots)} global concurrency limits headwater-asset-*"
        )
    console.print(
        f"one run at a time per target on DuckDB: global concurrency limit(s) {', '.join(result.target_locks)}; "
        "on PostgreSQL runs lock by asset (advisory locks)"
    )
    _save_deployed_states(project, targets)
    pools = ", ".join(result.work_pools)
    console.print(f"start a worker: prefect worker start --pool {pools} --type process")


@app.command()
def automations(
    target: Annotated[
        str | None, typer.Option(help="The target whose assets the triggers name (default: dev).")
    ] = None,
    project_dir: ProjectDir = None,
) -> None:
    """List the automations `headwater deploy` compiles from headwater.yml's `automation:` and dbt's
    `meta.headwater.automation`: their assets, what starts them, and the Prefect triggers and schedules."""
    project = _project(project_dir)
    resolved, _, compiled = _compiled(project, target)
    _print_automations(compiled, resolved.name)


def _compiled(project: Project, target_name: str | None) -> tuple[Target, AssetGraph, list[Compiled]]:
    """The target, the graph and the compiled automations (errors printed, not raised)."""
    from assets.automation import AutomationError, resolve_automations
    from orchestration.cli.common import _graph, _target
    from orchestration.prefect.automations import compile_all
    from orchestration.settings import Settings

    resolved = _target(project, target_name)
    graph = _graph(project, resolved)
    settings = Settings.load(project.root)
    try:
        found = resolve_automations(graph, settings.document.get("automation"), settings.path.name)
    except AutomationError as exc:
        raise _fail(str(exc)) from None
    return resolved, graph, compile_all(found, graph, resolved)


def _print_deployments(
    specs: list[DeploymentSpec], target: str | None, work_pool: str | None, paused: bool, where: str
) -> None:
    from rich.table import Table

    table = Table(title=f"Deployments on {where}")
    for column in ("deployment", "schedule", "work pool", "parameters"):
        table.add_column(column, overflow="fold")
    for spec in specs:
        parameters = dict(spec.parameters)
        if target:
            parameters["target"] = target
        table.add_row(
            f"headwater-materialize/{spec.name}",
            (f"{spec.cron} {spec.timezone}" + (" (paused)" if paused else "")) if spec.cron else "manual",
            work_pool or spec.work_pool,
            ", ".join(f"{k}={v}" for k, v in sorted(parameters.items())),
        )
    console.print(table)


def _print_automations(compiled: list[Compiled], target_name: str) -> None:
    from rich.table import Table

    if not compiled:
        console.print(
            "[dim]no automation: add `automation:` to headwater.yml or meta.headwater.automation in dbt "
            "(README, Automation)[/]"
        )
        return
    table = Table(title=f"Automations on {target_name} (deployment headwater-materialize/reactive)")
    table.add_column("automation", overflow="fold", max_width=24)
    table.add_column("assets", no_wrap=True)
    table.add_column("starts a run when", overflow="fold")
    for item in compiled:
        automation = item.automation
        keys = [str(k) for k in automation.assets]
        shown = keys[:4] + ([f"... {len(keys) - 4} more"] if len(keys) > 4 else [])
        table.add_row(
            f"{automation.name}\n[dim]{automation.origin}[/]",
            "\n".join([f"{len(keys)} asset(s): {automation.selection[:40]}", *shown]),
            "\n".join(item.lines),
        )
    console.print(table)


def _save_deployed_states(project: Project, target_names: list[str]) -> None:
    """Keep the compiled manifest per deployed target: ``headwater plan`` compares the working project with it."""
    from orchestration.analysis.changes import save_deployed_state
    from orchestration.dbt.executor import DbtInvocationError
    from orchestration.warehouse.targets import MissingCredentialError, UnknownTargetError, resolve_target

    for name in target_names:
        try:
            path = save_deployed_state(project, resolve_target(project, name))
        except (DbtInvocationError, MissingCredentialError, UnknownTargetError) as exc:
            console.print(f"[yellow]deployed state of {name} not saved ({exc}); `headwater plan` needs it:[/]")
            console.print(f"[yellow]  run `headwater plan --save --target {name}` where the target is reachable[/]")
        else:
            console.print(f"deployed state of {name} saved to {path} (`headwater plan` compares against it)")


@app.command()
def secret(
    variable: Annotated[
        str, typer.Argument(help="The environment variable the block stands in for, e.g. HEADWATER_PG_PASSWORD.")
    ],
) -> None:
    """Store a credential as a Prefect Secret block (value read from stdin, never echoed), resolved at run time."""
    import getpass
    import sys

    from prefect.blocks.system import Secret

    from orchestration.prefect.deploy import prefect_api_url
    from orchestration.warehouse.targets import secret_block_name

    if not prefect_api_url():
        raise _fail("headwater secret stores blocks on a Prefect server: set PREFECT_API_URL first")
    value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass(f"{variable}: ")
    if not value:
        raise _fail(f"no value given for {variable}; nothing stored")
    name = secret_block_name(variable)
    Secret(value=cast(Any, value)).save(name, overwrite=True)  # pydantic coerces the str to a SecretStr
    console.print(f"stored Secret block {name!r}; runs without {variable} in their environment read it from there")
