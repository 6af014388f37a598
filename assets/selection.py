"""dbt's node selection, evaluated in Python on the asset graph's nodes: the same nodes ``dbt ls --select`` lists.

A port of dbt-core's selector (``dbt/graph/selector*.py``, ``cli.py``, checked against dbt 1.11 by
``tests/assets/test_selection_vs_dbt.py``): unions (space or several ``--select`` values), intersections (comma),
``+``/``N+``/``@`` graph operators, indirect selection of tests (``eager``, ``cautious``, ``buildable``,
``empty``), and every method dbt documents: ``fqn`` (the default), ``tag``, ``group``, ``access``, ``source``,
``path``, ``file``, ``package``, ``config.<key>``, ``test_name``, ``test_type``, ``resource_type``, ``exposure``,
``metric``, ``version``, ``semantic_model``, ``saved_query``, ``unit_test``. ``state:``, ``result:`` and
``source_status:`` need dbt's ``--state`` artifacts and are refused with a clear error. Headwater adds ``kind:``,
``key:`` and ``layer:`` (its own layers: raw, staging, marts, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatch
from pathlib import PurePosixPath

from assets.graph import AssetGraph
from assets.keys import AssetKey
from assets.nodes import LIST_TYPES, NodeSpec

INDIRECT_SELECTION = ("eager", "cautious", "buildable", "empty")
DEFAULT_INCLUDES = ("fqn:*", "source:*", "exposure:*", "metric:*", "semantic_model:*")
HEADWATER_TYPES = frozenset({"python"})
NODE_TYPES = frozenset(
    {
        "model", "analysis", "test", "snapshot", "operation", "seed", "rpc", "sql_operation", "doc", "source",
        "macro", "exposure", "metric", "group", "saved_query", "semantic_model", "unit_test", "fixture", "function",
    }
)  # fmt: skip
"""dbt's NodeType values: ``resource_type:`` accepts these (and Headwater's ``python``)."""

_PATTERN = re.compile(
    r"\A(?P<at>@)?(?:(?P<up_depth>\d*)(?P<up>\+))?(?:(?P<method>[\w.]+):)?(?P<value>.*?)"
    r"(?:(?P<down>\+)(?P<down_depth>\d*))?\Z"
)
_PARSED_NODES = frozenset({"model", "seed", "snapshot", "test", "operation"})
"""Types in dbt's ``manifest.nodes`` (analyses are not in Headwater's graph)."""


class SelectionError(ValueError):
    """A selection expression that cannot be parsed or names an unknown method; the message says the fix."""


Matcher = Callable[[NodeSpec, str], bool]


def _is_selected_node(fqn: Sequence[str], selector: str, versioned: bool) -> bool:
    """dbt's ``is_selected_node``: the fqn's leaf, or a dotted prefix of the fqn, with wildcards slurping the rest."""
    if not fqn:
        return False
    if versioned and len(fqn) > 1:
        flat_selector = selector.split(".")
        if fqn[-2] == selector or "_".join(fqn[-2:]) == "_".join(flat_selector[-2:]):
            return True
    elif fqn[-1] == selector:
        return True
    flat_fqn = [item for segment in fqn for item in segment.split(".")]
    parts = selector.split(".")
    if len(flat_fqn) < len(parts):
        return False
    slurp = None
    for i, part in enumerate(parts):
        if any(w in part for w in ("*", "?", "[", "]")):
            slurp = i
            break
        if flat_fqn[i] != part:
            return False
    if slurp is None:
        return True
    if fnmatch(".".join(flat_fqn[slurp:]), ".".join(parts[slurp:])):
        return True
    if "." not in selector:
        return fnmatch(fqn[-2] if versioned and len(fqn) > 1 else fqn[-1], selector)
    return False


def _fqn(node: NodeSpec, value: str) -> bool:
    if node.resource_type == "source":
        return False
    return _is_selected_node(node.fqn, value, node.is_versioned) or _is_selected_node(
        node.fqn[1:], value, node.is_versioned
    )


def _named(types: frozenset[str], label: str) -> Matcher:
    """``exposure:``, ``metric:``, ``semantic_model:``, ``saved_query:``, ``unit_test:``: ``[package.]name``."""

    def match(node: NodeSpec, value: str) -> bool:
        parts = value.split(".")
        if len(parts) > 2:
            raise SelectionError(f"invalid {label} selector {value!r}: write <name> or <package>.<name>")
        package, name = parts if len(parts) == 2 else ("*", parts[0])
        return node.resource_type in types and fnmatch(node.package, package) and fnmatch(node.name, name)

    return match


def _source(node: NodeSpec, value: str) -> bool:
    parts = value.split(".")
    if len(parts) == 1:
        package, source, table = "*", parts[0], "*"
    elif len(parts) == 2:
        package, source, table = "*", parts[0], parts[1]
    elif len(parts) == 3:
        package, source, table = parts
    else:
        raise SelectionError(
            f"invalid source selector {value!r}: write <source>, <source>.<table> or <package>.<source>.<table>"
        )
    return (
        node.resource_type == "source"
        and fnmatch(node.package, package)
        and fnmatch(node.source_name, source)
        and fnmatch(node.name, table)
    )


def _glob_match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """pathlib's glob over path segments: ``*`` within a segment, ``**`` for any number of folders."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_glob_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch(parts[0], pattern[0]) and _glob_match(pattern[1:], parts[1:])


def _path(node: NodeSpec, value: str) -> bool:
    """dbt globs ``value`` under the project root, then matches a node's file, its YAML patch or a folder of its file."""
    pattern = PurePosixPath(value)
    if pattern.is_absolute():
        raise SelectionError(f"path:{value}: write a path relative to the dbt project, e.g. path:models/staging")
    wanted = tuple(p for p in pattern.parts if p != ".")
    if not wanted:
        return False
    own = PurePosixPath(node.path) if node.path else None
    candidates = [own] if own else []
    if node.patch_path:
        candidates.append(PurePosixPath(node.patch_path))
    if own:
        candidates.extend(p for p in own.parents if p.parts)
    return any(_glob_match(wanted, tuple(x for x in c.parts if x != ".")) for c in candidates)


def _file(node: NodeSpec, value: str) -> bool:
    if not node.path:
        return False
    path = PurePosixPath(node.path)
    return fnmatch(path.name, value) or fnmatch(path.stem, value)


def _config(arguments: list[str]) -> Matcher:
    """``config.<key>[.<key>...]:value`` on models, seeds, snapshots, tests, hooks and sources, as dbt compares."""

    def match(node: NodeSpec, selector: str) -> bool:
        if node.resource_type not in _PARSED_NODES | {"source"}:
            return False
        value: object = node.config
        for part in arguments:
            if not isinstance(value, dict) or part not in value:
                return False
            value = value[part]
        if arguments == ["severity"]:
            return isinstance(value, str) and value.upper() == selector.upper()
        truth = selector.upper()
        if isinstance(value, list):
            return selector in value or (truth == "TRUE" and True in value) or (truth == "FALSE" and False in value)
        return selector == value or (truth == "TRUE" and value is True) or (truth == "FALSE" and value is False)

    return match


def _test_type(node: NodeSpec, value: str) -> bool:
    # dbt tests `value in ("data")`, a substring test on a string; kept, so that the same words select the same
    if value in ("generic", "schema"):
        return node.resource_type == "test" and node.generic_test
    if value in "data":
        return node.resource_type == "test"
    if value in "singular":
        return node.resource_type == "test" and not node.generic_test
    if value in "unit":
        return node.resource_type == "unit_test"
    raise SelectionError(f'invalid test_type selector {value!r}: expected "generic", "singular", "unit" or "data"')


def _older(a: str, b: str) -> bool:
    try:
        return float(a) < float(b)
    except ValueError:
        return a < b


def _version(node: NodeSpec, value: str) -> bool:
    if value not in ("latest", "prerelease", "old", "none"):
        raise SelectionError(f'invalid version selector {value!r}: expected "latest", "prerelease", "old" or "none"')
    if node.resource_type != "model":
        return False
    version, latest = node.version, node.latest_version
    if value == "none":
        return version is None
    if value == "latest":
        return version is not None and version == latest
    if not version or not latest:
        return False
    return _older(latest, version) if value == "prerelease" else _older(version, latest)


def _resource_type(node: NodeSpec, value: str) -> bool:
    if value not in NODE_TYPES | HEADWATER_TYPES:
        raise SelectionError(f"invalid resource_type selector {value!r}; types: {', '.join(sorted(NODE_TYPES))}")
    return node.resource_type == value


def _methods(graph: AssetGraph) -> dict[str, Matcher]:
    project = graph.project_name

    def spec_of(node: NodeSpec):
        return graph.specs.get(node.asset_key) if node.asset_key is not None else None

    def kind(node: NodeSpec, value: str) -> bool:
        spec = spec_of(node)
        return spec is not None and (spec.kind.value == value or (value == "dbt" and spec.kind.is_dbt))

    def layer(node: NodeSpec, value: str) -> bool:
        spec = spec_of(node)
        return spec is not None and fnmatch(spec.layer, value)

    return {
        "fqn": _fqn,
        "tag": lambda n, v: n.tags is not None and any(fnmatch(t, v) for t in n.tags),
        "group": lambda n, v: (
            n.resource_type in _PARSED_NODES | {"metric"} and fnmatch(n.group or "", v) and bool(n.group)
        ),
        "access": lambda n, v: n.resource_type == "model" and n.access == v,
        "source": _source,
        "path": _path,
        "file": _file,
        "package": lambda n, v: fnmatch(n.package, project if v == "this" and project else v),
        "test_name": lambda n, v: n.is_test and n.test_name is not None and fnmatch(n.test_name, v),
        "test_type": _test_type,
        "resource_type": _resource_type,
        "exposure": _named(frozenset({"exposure"}), "exposure"),
        "metric": _named(frozenset({"metric"}), "metric"),
        "semantic_model": _named(frozenset({"semantic_model"}), "semantic model"),
        "saved_query": _named(frozenset({"saved_query"}), "saved query"),
        "unit_test": _named(frozenset({"unit_test"}), "unit test"),
        "version": _version,
        "kind": kind,
        "layer": layer,
        "key": lambda n, v: n.asset_key is not None and fnmatch(str(n.asset_key), v),
    }


_STATE_METHODS = ("state", "result", "source_status")


def _search(graph: AssetGraph, method: str, value: str) -> set[str]:
    name, *arguments = method.split(".")
    if name in _STATE_METHODS:
        raise SelectionError(
            f"{method}:{value}: needs dbt's --state artifacts, which Headwater does not read; Headwater decides what "
            "is stale from its run log (`headwater assets` and `headwater status` show it)"
        )
    if name == "config":
        if not arguments:
            raise SelectionError(f"config:{value}: name the setting, e.g. config.materialized:{value or 'table'}")
        match = _config(arguments)
    else:
        methods = _methods(graph)
        if name not in methods or arguments:
            raise SelectionError(
                f"unknown selection method {method!r}; methods: {', '.join(sorted([*methods, 'config.<key>']))}"
            )
        match = methods[name]
    if not value:
        raise SelectionError(f"selection method {method!r} needs a value, e.g. {method}:something")
    return {uid for uid, node in graph.nodes.items() if match(node, value)}


def _default_method(value: str) -> str:
    if "/" in value or "\\" in value:
        return "path"
    if value.lower().endswith((".sql", ".py", ".csv")):
        return "file"
    return "fqn"


def _criterion(graph: AssetGraph, text: str, indirect: str) -> tuple[set[str], set[str]]:
    """One criterion: the nodes it names, their ``+``/``@`` relatives, and the tests that selection adds."""
    m = _PATTERN.match(text)
    if not m or (m["at"] and m["down"]):
        raise SelectionError(
            f"cannot parse selection criterion {text!r}: '@' and a trailing '+' cannot be combined; "
            "write e.g. 'orders', '+orders', '2+tag:x+' or '@orders'"
        )
    value = m["value"]
    if not value and not m["method"]:
        raise SelectionError(f"cannot parse selection criterion {text!r}: no name or method:value, e.g. '+orders'")
    method = m["method"] or _default_method(value)
    collected = _search(graph, method, value)
    dag = graph.node_dag
    selected = set(collected)
    if m["at"]:
        down = dag.downstream(collected) | collected
        selected |= dag.upstream(down) | down
    if m["up"]:
        selected |= dag.upstream(collected, int(m["up_depth"]) if m["up_depth"] else None)
    if m["down"]:
        selected |= dag.downstream(collected, int(m["down_depth"]) if m["down_depth"] else None)
    if indirect == "empty":
        return selected, set()
    return _expand(graph, selected, indirect)


def _expand(graph: AssetGraph, selected: set[str], indirect: str) -> tuple[set[str], set[str]]:
    """dbt's ``expand_selection``: tests (and unit tests) whose parents are selected."""
    direct, pending = set(selected), set[str]()
    dag = graph.node_dag
    parents: set[str] | None = None
    for uid in {c for s in selected for c in dag.children(s)}:
        node = graph.nodes[uid]
        if not node.is_test:
            continue
        deps = set(node.depends_on)
        if indirect == "eager" or deps <= selected:
            direct.add(uid)
        elif indirect == "buildable":
            if parents is None:
                sources = {u for u, n in graph.nodes.items() if n.resource_type == "source"}
                parents = selected | dag.upstream(selected) | sources
            (direct if deps <= parents else pending).add(uid)
        else:
            pending.add(uid)
    return direct, pending


def _incorporate(graph: AssetGraph, direct: set[str], pending: set[str], indirect: str) -> set[str]:
    """dbt's ``incorporate_indirect_nodes``: tests held back until all their parents are selected."""
    if direct == pending or indirect not in ("cautious", "buildable"):
        return direct
    selected = set(direct)
    allowed = selected if indirect == "cautious" else selected | graph.node_dag.upstream(selected)
    for uid in pending:
        node = graph.nodes[uid]
        if node.resource_type == "test" and set(node.depends_on) <= allowed:
            selected.add(uid)
    return selected


def _combine(
    graph: AssetGraph, bundles: list[tuple[set[str], set[str]]], indirect: str, union: bool
) -> tuple[set[str], set[str]]:
    if not bundles:
        return set(), set()
    directs = [d for d, _ in bundles]
    pendings = [d | p for d, p in bundles]
    op = set.union if union else set.intersection
    first_direct, first_pending = op(*directs), op(*pendings)
    return _incorporate(graph, first_direct, first_pending, indirect), first_pending


def _union(graph: AssetGraph, components: Iterable[str], indirect: str) -> tuple[set[str], set[str]]:
    bundles = []
    for raw in components:
        for token in raw.split():
            parts = token.split(",")
            if any(not p for p in parts):
                raise SelectionError(f"empty criterion in {token!r} (stray comma?)")
            bundles.append(_combine(graph, [_criterion(graph, p, indirect) for p in parts], indirect, union=False))
    return _combine(graph, bundles, indirect, union=True)


def _components(expression: str | Sequence[str] | None) -> list[str]:
    if expression is None:
        return []
    items = [expression] if isinstance(expression, str) else list(expression)
    return [item for item in items if item and item.strip()]


def select_nodes(
    graph: AssetGraph,
    selection: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    *,
    indirect: str = "eager",
    resource_types: Iterable[str] | None = None,
) -> set[str]:
    """The unique ids ``selection`` minus ``exclude`` picks, as ``dbt ls --select ... --exclude ...`` lists them.

    ``selection`` and ``exclude`` are one expression or several (a union, like repeated ``--select`` values);
    none selects everything. ``resource_types`` defaults to what ``dbt ls`` lists (plus Python assets).

    Raises:
        SelectionError: an unparsable criterion, an unknown method or an invalid value.
    """
    if indirect not in INDIRECT_SELECTION:
        raise SelectionError(f"indirect selection {indirect!r}: expected one of {', '.join(INDIRECT_SELECTION)}")
    chosen = _components(selection)
    included = _union(graph, chosen or DEFAULT_INCLUDES, indirect)
    excluded = _union(graph, _components(exclude), indirect)
    direct = included[0] - excluded[0]
    pending = included[1] - excluded[1]
    direct = _incorporate(graph, direct, pending, indirect)
    types = frozenset(resource_types) if resource_types is not None else LIST_TYPES | HEADWATER_TYPES
    return {
        uid
        for uid in direct
        if (node := graph.nodes[uid]).selectable and not node.empty and node.resource_type in types
    }


def select(
    graph: AssetGraph,
    selection: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    *,
    indirect: str = "eager",
) -> set[AssetKey]:
    """The asset keys of the nodes :func:`select_nodes` picks (a dbt source selects the asset it reads).

    Raises:
        SelectionError: an unparsable criterion, an unknown method or an invalid value.
    """
    if not _components(selection) and not _components(exclude):
        return set(graph.specs)
    ids = select_nodes(graph, selection, exclude, indirect=indirect)
    return {key for uid in ids if (key := graph.nodes[uid].asset_key) is not None and key in graph.specs}
