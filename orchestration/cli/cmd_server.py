"""``headwater server``: Prefect's server for this project's data folder, started once in the background; every
command after it uses it while it answers (``_local_server`` in ``cmd_run``; the deploy commands)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestration.cli.common import ProjectDir, _fail, app, console, server_data_dir


@app.command()
def server(
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop the server started here (it records what it has first).")
    ] = False,
    status: Annotated[bool, typer.Option("--status", help="Say whether it runs, and where.")] = False,
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default: 4200 when free).")] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Start Prefect's server (API and UI) on loopback in the background, for every later command of this project:
    runs start at once and exit without waiting for their records; without it, each run starts its own."""
    from orchestration.prefect.local_server import running_server, start_server, stop_server

    data_dir = server_data_dir(project_dir)
    if data_dir is None:
        raise _fail("no Headwater project here: run from the project, pass --project-dir, or set HEADWATER_DATA_DIR")
    if stop:
        stopped = stop_server(data_dir)
        console.print(f"stopped the Prefect server on port {stopped['port']}" if stopped else "no server was running")
        return
    if status:
        found = running_server(data_dir)
        if found is None:
            console.print(
                "no Prefect server started here answers; runs start their own (`headwater server` starts one)"
            )
            raise typer.Exit(code=1)
        console.print(f"Prefect server: {found['api_url']} (UI http://127.0.0.1:{found['port']}, pid {found['pid']})")
        return
    try:
        with console.status("starting Prefect's server"):
            info, started = start_server(data_dir, port)
    except RuntimeError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"Prefect server {'started' if started else 'already running'}: {info['api_url']} "
        f"(UI http://127.0.0.1:{info['port']}; log {info['log']}). Every headwater command of this project uses it "
        "while it answers; `headwater server --stop` stops it."
    )
