"""The ``headwater`` commands about change and lineage: ``lineage``, ``plan``, ``diff`` and ``catalog``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestration.cli import gc_policy
from orchestration.cli.common import (
    DbtProject,
    ProfilesDir,
    ProjectDir,
    TargetOpt,
    VarsOpt,
    _fail,
    _options,
    _project,
    _target,
    app,
    console,
)
from orchestration.settings import project_translator


@app.command()
def lineage(
    column: Annotated[str, typer.Argument(help="<asset key>.<column>, e.g. marts.orders.order_amount")],
    downstream: Annotated[bool, typer.Option("--downstream", help="Columns computed from it instead.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tree as JSON.")] = False,
    target: TargetOpt = None,
    vars: VarsOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """Column-level lineage from the compiled SQL: upstream down to the raw dlt columns (or --downstream)."""
    from assets.lineage import LineageError
    from orchestration.analysis.lineage import project_lineage
    from orchestration.dbt.executor import DbtInvocationError

    project = _project(project_dir, dbt_project, profiles_dir)
    resolved = _target(project, target)
    try:
        with console.status("compiling the dbt project"):
            graph = project_lineage(project, resolved, _options(vars))
        ref = graph.resolve(column)
    except (DbtInvocationError, LineageError) as exc:
        raise _fail(str(exc)) from None
    tree = graph.downstream(ref) if downstream else graph.upstream(ref)
    if as_json:
        document = {
            "column": str(ref),
            "direction": "downstream" if downstream else "upstream",
            "tree": tree,
            "roots": [str(r) for r in graph.sources(ref)] if not downstream else [],
            "problems": graph.problems,
        }
        print(json.dumps(document, indent=2))
        return
    console.print(_rich_tree(tree, "downstream" if downstream else "upstream"))
    if not downstream:
        roots = graph.sources(ref)
        console.print(f"reads {len(roots)} root column(s): {', '.join(str(r) for r in roots) or 'none (constants)'}")
    for key, problem in sorted(graph.problems.items()):
        console.print(f"[yellow]no column lineage through {key}:[/] {problem}")


def _rich_tree(node: dict[str, Any], direction: str) -> Any:
    from rich.markup import escape
    from rich.tree import Tree

    def label(entry: dict[str, Any]) -> str:
        text = f"[bold]{escape(entry['asset'])}[/].[cyan]{escape(entry['name'])}[/]"
        if entry.get("expression") and entry["expression"] != entry["name"]:
            text += f"  [dim]= {escape(entry['expression'])}[/]"
        elif "expression" not in entry:
            text += "  [green](raw)[/]" if direction == "upstream" else ""
        return text

    def grow(branch: Tree, entry: dict[str, Any]) -> None:
        for child in entry.get(direction, []):
            grow(branch.add(label(child)), child)

    root = Tree(label(node))
    grow(root, node)
    return root


_CATEGORY_STYLE = {"breaking": "bold red", "removed": "bold red", "non-breaking": "green", "added": "cyan"}


@app.command()
def plan(
    state: Annotated[
        Path | None, typer.Option(help="Deployed manifest (default: data/state/<target>/manifest.json).")
    ] = None,
    save: Annotated[
        bool, typer.Option("--save", help="Record the project as it is now as the deployed state.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    fail_on_breaking: Annotated[
        bool, typer.Option("--fail-on-breaking", help="Exit 1 when any change is breaking (for CI).")
    ] = False,
    target: TargetOpt = None,
    vars: VarsOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """Changed models against the deployed state, each breaking or non-breaking (SQLMesh), with what they affect."""
    from assets.lineage import dialect_of
    from orchestration.analysis.changes import (
        StateError,
        build_change_plan,
        compile_working,
        load_state,
        save_state,
        state_path,
    )
    from orchestration.dbt.executor import DbtInvocationError

    project = _project(project_dir, dbt_project, profiles_dir)
    resolved = _target(project, target)
    state = state or state_path(project.data_dir, resolved.name)
    try:
        with console.status("compiling the working project"):
            working, compiled_path = compile_working(project, resolved, _options(vars), cached=not save)
        if save:
            save_state(compiled_path, state)
            console.print(f"deployed state of {resolved.name} saved to {state}")
            return
        deployed = load_state(state, dialect_of(working))
    except (DbtInvocationError, StateError) as exc:
        raise _fail(str(exc)) from None
    with console.status("categorising changes with SQLMesh"):
        change_plan = build_change_plan(
            deployed, working, project.dbt_project_dir, project_translator(project), resolved
        )
    if as_json:
        print(json.dumps(change_plan.to_dict(), indent=2))
    else:
        _print_plan(change_plan, state)
    if fail_on_breaking and change_plan.breaking:
        raise typer.Exit(code=1)


def _print_plan(change_plan: Any, state: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    if not change_plan.changes:
        console.print(f"no model changed since the deployed state ({state})")
        return
    table = Table(title=f"Changes against {state}")
    for column in ("model", "change", "columns", "downstream affected", "why"):
        table.add_column(column, overflow="fold")
    for change in change_plan.changes:
        columns = [f"+{c}" for c in change.columns_added] + [f"-{c}" for c in change.columns_removed]
        affected = ", ".join(change.downstream) or "nothing"
        if change.tests:
            affected += f" (+{change.tests} tests)"
        style = _CATEGORY_STYLE.get(change.category, "yellow")
        table.add_row(change.key, f"[{style}]{change.category}[/]", " ".join(columns), affected, escape(change.detail))
    console.print(table)
    breaking = sorted(k for k, v in change_plan.indirect.items() if v == "breaking")
    if breaking:
        console.print(f"[red]indirectly broken (rebuild needed):[/] {', '.join(breaking)}")
    console.print(
        f"{len(change_plan.changes)} changed model(s), {len(change_plan.breaking)} breaking; "
        f"{len(change_plan.indirect)} downstream asset(s) affected"
    )


@app.command()
def diff(
    model: Annotated[str, typer.Argument(help="The model: asset key (marts.orders) or dbt name (orders).")],
    from_: Annotated[str, typer.Option("--from", help="A target (dev, postgres), a schema, or target:schema.")],
    to: Annotated[str, typer.Option("--to", help="A target, a schema, or target:schema.")],
    key: Annotated[
        str | None, typer.Option(help="Primary key column(s), comma-separated (default: the model's unique test).")
    ] = None,
    ignore: Annotated[
        str | None, typer.Option(help="Columns to leave out of the row comparison, comma-separated (_dlt_load_id).")
    ] = None,
    sample: Annotated[int, typer.Option(help="Changed rows to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """Schema and row differences of one model between two targets or schemas, rows matched by primary key."""
    from orchestration.analysis.table_diff import DiffError, Side, diff_tables, model_relation, primary_key
    from orchestration.dbt import executor
    from orchestration.warehouse.targets import target_names

    project = _project(project_dir, dbt_project, profiles_dir)
    default = _target(project, target)
    try:
        with console.status("parsing the dbt project"):
            manifest = executor.parse(project, default)
        unique_id, schema, table = model_relation(manifest, model, project_translator(project))
        columns = tuple(c.strip() for c in key.split(",") if c.strip()) if key else primary_key(manifest, unique_id)
        if not columns:
            raise DiffError(f"{model} has no unique test to match rows by: name its key with --key col[,col]")
    except (executor.DbtInvocationError, DiffError) as exc:
        raise _fail(str(exc)) from None

    known = set(target_names(project))

    def side(text: str) -> Side:
        name, _, side_schema = text.partition(":") if ":" in text else (text, "", "")
        if name in known:
            return Side(text, _target(project, name), side_schema or schema, table)
        return Side(text, default, text, table)  # a schema on the default target

    try:
        with console.status(f"comparing {schema}.{table}: {from_} -> {to}"):
            skip = tuple(c.strip() for c in (ignore or "").split(",") if c.strip())
            result = diff_tables(side(from_), side(to), columns, sample=sample, skip_columns=skip)
    except DiffError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _print_diff(result, f"{schema}.{table}")


def _print_diff(result: Any, relation: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{relation}[/]: {result.source} -> {result.target}, rows matched on {', '.join(result.key)}")
    if result.columns_added or result.columns_removed or result.types_changed:
        schema_table = Table(title="schema")
        for column in ("column", "change"):
            schema_table.add_column(column)
        for column in result.columns_added:
            schema_table.add_row(column, f"[green]added in {escape(result.target)}[/]")
        for column in result.columns_removed:
            schema_table.add_row(column, f"[red]missing in {escape(result.target)}[/]")
        for column, (before, after) in result.types_changed.items():
            schema_table.add_row(column, f"[yellow]type {before} -> {after}[/]")
        console.print(schema_table)
    else:
        console.print("schema: same columns and types")
    rows = result.rows
    console.print(
        f"rows: {rows['source']:,} -> {rows['target']:,}; matched {rows['matched']:,}, "
        f"changed {rows['changed']:,}, only in {escape(result.source)} {rows['only_in_source']:,}, "
        f"only in {escape(result.target)} {rows['only_in_target']:,}"
    )
    if result.column_mismatches:
        console.print(
            "changed values per column: " + ", ".join(f"{c} {n:,}" for c, n in sorted(result.column_mismatches.items()))
        )
    if result.sample:
        sample_table = Table(title="changed rows (sample)")
        for column in result.sample[0]:
            sample_table.add_column(column, overflow="fold")
        for record in result.sample:
            sample_table.add_row(*(escape(str(v)) for v in record.values()))
        console.print(sample_table)
    console.print("[green]identical[/]" if result.identical else "[yellow]differences found[/]")


@app.command()
def catalog(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8090,
    host: Annotated[str, typer.Option(help="Interface to bind (default: this machine only).")] = "127.0.0.1",
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """Serve the asset catalog: the graph, each asset's last run, rows, checks, freshness, staleness, dbt docs."""
    import uvicorn

    from orchestration.analysis.lineage import key_map
    from orchestration.cli.common import _graph
    from orchestration.warehouse.run_log import RunLog
    from orchestration.web.catalog import RunState, count_rows, create_app, docs_routes
    from orchestration.web.docs import docs_dir as docs_folder

    project = _project(project_dir, dbt_project, profiles_dir)
    resolved = _target(project, target)
    graph = _graph(project, resolved)
    manifest = json.loads((project.dbt_target_path / "manifest.json").read_text())
    run_log = RunLog.for_target(project, resolved)

    def read_state(keys: list[str]) -> RunState:
        latest, successful = run_log.latest()
        if resolved.type == "duckdb":  # never open the file a run may need to write: the rows its last run counted
            counted = run_log.latest_rows()
            rows = {k: counted[k][0] for k in keys if k in counted}
            when = {k: f"at the end of run {counted[k][2][:8]}" for k in keys if k in counted}
            return RunState(latest, successful, run_log.latest_checks(), rows, when)
        return RunState(latest, successful, run_log.latest_checks(), count_rows(resolved, keys))

    docs_dir = docs_folder(project)
    app_ = create_app(
        graph,
        read_state,
        target=resolved.name,
        docs_dir=docs_dir,
        docs=docs_routes(manifest, key_map(manifest, project_translator(project))),
    )
    console.print(f"asset catalog of {resolved.name}: http://{host}:{port}/  (JSON: /api/assets, Ctrl+C to stop)")
    if not (docs_dir / "index.html").exists():
        console.print("[dim]no dbt docs yet: run `headwater docs` to link each asset to its page[/]")
    gc_policy.thaw()  # serves until stopped
    uvicorn.run(app_, host=host, port=port, log_level="warning")
