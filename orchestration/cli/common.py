"""What every ``headwater`` command shares: the typer app, the common options, and loading a project, its
target and its asset graph with errors printed instead of raised."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from assets import AssetGraph, AssetKey
    from orchestration.dbt.executor import DbtOptions
    from orchestration.warehouse.targets import Target

from orchestration.cli._env import apply_defaults

apply_defaults()

from orchestration.cli.console import console  # noqa: E402
from orchestration.project import Project  # noqa: E402

app = typer.Typer(
    name="headwater",
    help="Headwater: dlt ingestion, dbt transformation and checks as one asset graph, run on Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options_for_every_command(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error (one line otherwise).")
    ] = False,
) -> None:
    import os

    if debug:
        os.environ["HEADWATER_DEBUG"] = "1"
    if not os.environ.get("PREFECT_API_URL"):
        _use_started_server()


def _use_started_server() -> None:
    """The Prefect server ``headwater server`` started for this project, when it answers, is every command's API
    (set before Prefect is imported: its settings read the variable then)."""
    import os

    data_dir = server_data_dir()
    if data_dir is None or not (data_dir / "prefect_server.json").exists():
        return  # the usual case: no request made
    from orchestration.prefect.local_server import running_server

    if (found := running_server(data_dir)) is not None:
        os.environ["PREFECT_API_URL"] = found["api_url"]


def server_data_dir(project_dir: Path | None = None) -> Path | None:
    """The data folder whose ``headwater server`` commands use: ``HEADWATER_DATA_DIR``, else the project's (None
    when there is no project here)."""
    import os

    if not project_dir and os.environ.get("HEADWATER_DATA_DIR"):
        return Path(os.environ["HEADWATER_DATA_DIR"]).resolve()
    try:
        return Project.discover(project_dir).data_dir
    except FileNotFoundError:
        return None


ProjectDir = Annotated[
    Path | None, typer.Option("--project-dir", help="Headwater project root (default: found from cwd).")
]
TargetOpt = Annotated[
    str | None,
    typer.Option("--target", "-t", help="Target in profiles/profiles.yml (default: HEADWATER_TARGET or dev)."),
]
DbtProject = Annotated[Path | None, typer.Option("--dbt-project", help="A dbt project to run instead of dbt_project/.")]
ProfilesDir = Annotated[Path | None, typer.Option("--profiles-dir", help="Folder holding profiles.yml.")]
VarsOpt = Annotated[
    str | None,
    typer.Option("--vars", help="dbt vars as YAML or JSON, as dbt takes them: '{load_source_data: true}'."),
]
SelectOpt = Annotated[
    list[str] | None,
    typer.Option("--select", "-s", help="dbt selection (repeatable; several values are a union), as dbt's -s."),
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="Artifacts to compare with for state:, result: and source_status: selection, as dbt's --state "
        "(default: the target's deployed state, saved by `headwater deploy` or `plan --save`).",
    ),
]
ExcludeOpt = Annotated[
    list[str] | None, typer.Option("--exclude", help="Selection to leave out (repeatable), as dbt's --exclude.")
]


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def _project(project_dir: Path | None, dbt_project: Path | None = None, profiles_dir: Path | None = None) -> Project:
    try:
        return Project.discover(project_dir, dbt_project_dir=dbt_project, profiles_dir=profiles_dir)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None


def _target(project: Project, name: str | None) -> Target:
    from orchestration.warehouse.targets import MissingCredentialError, UnknownTargetError, resolve_target

    try:
        return resolve_target(project, name)
    except (MissingCredentialError, UnknownTargetError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None


def _options(vars_text: str | None, **flags: Any) -> DbtOptions:
    """The run's dbt flags from the command line (a malformed ``--vars`` is printed, not raised)."""
    from orchestration.dbt import executor

    try:
        return executor.DbtOptions(vars=executor.DbtOptions.parse_vars(vars_text), **flags)
    except executor.DbtVarsError as exc:
        raise _fail(str(exc)) from None


def _graph(
    project: Project, resolved: Target, options: DbtOptions | None = None, *, cached: bool = False
) -> AssetGraph:
    """Parse the dbt project (with the run's ``--vars``) and build its asset graph (errors printed, not raised).

    ``cached``: the commands that only read take the graph saved on disk when nothing it was built from changed
    (``orchestration.dbt.inputs_cache``), and save the one they build."""
    from orchestration.dbt import executor

    options = options or executor.NO_OPTIONS
    if not cached:
        return _built_graph(project, resolved, options)
    from orchestration.dbt import inputs_cache

    key = inputs_cache.inputs_key(project, resolved, options.vars)
    graph = inputs_cache.load(project, resolved, key, options.vars)
    if graph is None:
        graph = _built_graph(project, resolved, options)
        if inputs_cache.inputs_key(project, resolved, options.vars) == key:  # nothing changed while it was built
            inputs_cache.store(project, resolved, key, graph, options.vars)
    return graph


def _built_graph(project: Project, resolved: Target, options: DbtOptions) -> AssetGraph:
    from assets import DuplicateAssetError, ManifestError
    from assets.dag import CycleError
    from orchestration.dbt import executor
    from orchestration.dbt.rendering import run_translator
    from orchestration.engine.plan import project_graph

    with console.status("parsing the dbt project"):
        try:
            manifest = executor.parse(project, resolved, options)
        except executor.DbtInvocationError as exc:
            raise _fail(str(exc)) from None
    from orchestration.engine.python_assets import PythonAssetError, load_python_assets

    try:
        python_specs = [a.spec for a in load_python_assets(project.root)]
    except PythonAssetError as exc:
        raise _fail(str(exc)) from None
    from quality.suites import SuiteError

    try:
        translator = run_translator(project, resolved, options.vars)
        return project_graph(project, resolved, manifest, translator, python_specs)
    except (SuiteError, DuplicateAssetError, ManifestError, CycleError) as exc:
        raise _fail(str(exc)) from None


def _selected(
    project_dir: Path | None,
    dbt_project: Path | None,
    profiles_dir: Path | None,
    target: str | None,
    selection: str | Sequence[str] | None,
    exclude: str | Sequence[str] | None,
    vars_text: str | None = None,
    state_dir: Path | None = None,
) -> tuple[Project, Target, AssetGraph, set[str], set[AssetKey]]:
    """Project, target, graph, the selected node ids and their assets, for the commands that list."""
    from assets import SelectionError
    from assets.selection import select_nodes
    from orchestration.dbt.state import state_lookup

    project = _project(project_dir, dbt_project, profiles_dir)
    resolved = _target(project, target)
    options = _options(vars_text)
    graph = _graph(project, resolved, options, cached=True)
    lookup = state_lookup(project, resolved, state_dir, options)
    try:
        nodes = select_nodes(graph, selection, exclude, state=lookup)
    except SelectionError as exc:
        raise _fail(str(exc)) from None
    for note in lookup.notes:
        console.print(f"[bold red]error:[/] {note}")
    keys = {k for uid in nodes if (k := graph.nodes[uid].asset_key) is not None and k in graph.specs}
    return project, resolved, graph, nodes, keys
