"""The ``headwater`` commands about change and lineage: ``lineage``, ``plan``, ``diff`` and ``catalog``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from orchestration._cli_common import (
    DbtProject,
    ProfilesDir,
    ProjectDir,
    TargetOpt,
    _fail,
    _project,
    _target,
    app,
    console,
)


@app.command()
def lineage(
    column: Annotated[str, typer.Argument(help="<asset key>.<column>, e.g. marts.orders.order_amount")],
    downstream: Annotated[bool, typer.Option("--downstream", help="Columns computed from it instead.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tree as JSON.")] = False,
    target: TargetOpt = None,
    project_dir: ProjectDir = None,
    dbt_project: DbtProject = None,
    profiles_dir: ProfilesDir = None,
) -> None:
    """Column-level lineage from the compiled SQL: upstream down to the raw dlt columns (or --downstream)."""
    from assets.lineage import LineageError
    from orchestration.dbt_executor import DbtInvocationError
    from orchestration.lineage import project_lineage

    project = _project(project_dir, dbt_project, profiles_dir)
    resolved = _target(project, target)
    try:
        with console.status("compiling the dbt project"):
            graph = project_lineage(project, resolved)
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
