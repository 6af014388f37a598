"""The ``headwater`` commands for production: ``deploy`` (deployments, pools, automations) and ``secret``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer

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
    project_dir: ProjectDir = None,
) -> None:
    """Register prefect.yaml's deployments, their work pools and the failure automation on PREFECT_API_URL."""
    from rich.table import Table

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
    if not api:
        raise _fail(
            "headwater deploy needs a Prefect server: start one (`prefect server start`, see README Production) "
            "and set PREFECT_API_URL, e.g. http://127.0.0.1:4200/api"
        )
    try:
        specs = load_deployments(file or project.root / "prefect.yaml")
        notifiers = automation_notifiers(project, alerts_file(project.root))
    except DeployConfigError as exc:
        raise _fail(str(exc)) from None
    with console.status(f"registering {len(specs)} deployment(s) on {api}"):
        result = register(project, specs, target=target, work_pool=work_pool, notifiers=notifiers, paused=paused)
    table = Table(title=f"Deployments on {api}")
    for column in ("deployment", "id", "schedule", "work pool", "parameters"):
        table.add_column(column)
    for spec, (name, deployment_id) in zip(specs, result.deployments, strict=True):
        parameters = dict(spec.parameters)
        if target:
            parameters["target"] = target
        table.add_row(
            f"headwater-materialize/{name}",
            deployment_id,
            (f"{spec.cron} {spec.timezone}" + (" (paused)" if paused else "")) if spec.cron else "manual",
            work_pool or spec.work_pool,
            ", ".join(f"{k}={v}" for k, v in sorted(parameters.items())),
        )
    console.print(table)
    if result.automation:
        console.print(f"automation {result.automation}: failed or crashed runs notify {', '.join(result.notifiers)}")
    else:
        console.print(
            "[dim]no failure automation: headwater.yml names no enabled notifier (their variables are unset)[/]"
        )
    console.print(f"one run at a time per target: global concurrency limit(s) {', '.join(result.target_locks)}")
    _save_deployed_states(project, sorted({target or spec.parameters.get("target") or "dev" for spec in specs}))
    pools = ", ".join(result.work_pools)
    console.print(f"start a worker: prefect worker start --pool {pools} --type process")


def _save_deployed_states(project, target_names: list[str]) -> None:
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
