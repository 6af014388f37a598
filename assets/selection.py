"""dbt's node selection, evaluated in Python on the asset graph's nodes: the same nodes ``dbt ls --select`` lists.

A port of dbt-core's selector (``dbt/graph/selector*.py``, ``cli.py``, checked against dbt 1.11 by
``tests/assets/test_selection_vs_dbt.py``): unions (space or several ``--select`` values), intersections (comma),
``+``/``N+``/``@`` graph operators, indirect selection of tests (``eager``, ``cautious``, ``buildable``,
``empty``), and every method dbt documents: ``fqn`` (the default), ``tag``, ``group``, ``access``, ``source``,
``path``, ``file``, ``package``, ``config.<key>``, ``test_name``, ``test_type``, ``resource_type``, ``exposure``,
``metric``, ``version``, ``semantic_model``, ``saved_query``, ``unit_test``. ``state:``, ``result:`` and
``source_status:`` compare with dbt's ``--state`` artifacts: the caller passes a :data:`StateLookup` that answers them
(``orchestration.dbt.state`` asks dbt itself), and without one they are a clear error. Headwater adds ``kind:``,
``key:`` and ``layer:`` (its own layers: raw, staging, marts, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from assets.graph import AssetGraph
from assets.keys import AssetKey
from assets.nodes import LIST_TYPES
from assets.selection_methods import HEADWATER_TYPES, SelectionError, config_matcher, selector_methods

INDIRECT_SELECTION = ("eager", "cautious", "buildable", "empty")
DEFAULT_INCLUDES = ("fqn:*", "source:*", "exposure:*", "metric:*", "semantic_model:*")
_PATTERN = re.compile(
    r"\A(?P<at>@)?(?:(?P<up_depth>\d*)(?P<up>\+))?(?:(?P<method>[\w.]+):)?(?P<value>.*?)"
    r"(?:(?P<down>\+)(?P<down_depth>\d*))?\Z"
)


STATE_METHODS = ("state", "result", "source_status")

StateLookup = Callable[[str, str], "set[str] | None"]
"""Answers ``state:``, ``result:`` and ``source_status:`` criteria: ``(method, value)`` to the unique ids that match,
or None when the comparison artifacts cannot be trusted (then every node matches: never skip on doubt)."""


def _search(graph: AssetGraph, method: str, value: str, state: StateLookup | None = None) -> set[str]:
    name, *arguments = method.split(".")
    if name in STATE_METHODS:
        if not value or arguments:
            raise SelectionError(f"{method}:{value}: expected e.g. state:modified, result:error, source_status:fresher")
        if state is None:
            raise SelectionError(
                f"{method}:{value}: needs dbt's --state artifacts: pass --state DIR (a folder with dbt's manifest.json"
                "; sources.json for source_status:, run_results.json for result:), or save the deployed state with "
                "`headwater plan --save`"
            )
        matched = state(name, value)
        return set(graph.nodes) if matched is None else {uid for uid in matched if uid in graph.nodes}
    if name == "config":
        if not arguments:
            raise SelectionError(f"config:{value}: name the setting, e.g. config.materialized:{value or 'table'}")
        match = config_matcher(arguments)
    else:
        methods = selector_methods(graph)
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


def _criterion(
    graph: AssetGraph, text: str, indirect: str, state: StateLookup | None = None
) -> tuple[set[str], set[str]]:
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
    collected = _search(graph, method, value, state)
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


def _union(
    graph: AssetGraph, components: Iterable[str], indirect: str, state: StateLookup | None = None
) -> tuple[set[str], set[str]]:
    bundles = []
    for raw in components:
        for token in raw.split():
            parts = token.split(",")
            if any(not p for p in parts):
                raise SelectionError(f"empty criterion in {token!r} (stray comma?)")
            bundles.append(
                _combine(graph, [_criterion(graph, p, indirect, state) for p in parts], indirect, union=False)
            )
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
    state: StateLookup | None = None,
) -> set[str]:
    """The unique ids ``selection`` minus ``exclude`` picks, as ``dbt ls --select ... --exclude ...`` lists them.

    ``selection`` and ``exclude`` are one expression or several (a union, like repeated ``--select`` values);
    none selects everything. ``resource_types`` defaults to what ``dbt ls`` lists (plus Python assets). ``state``
    answers the ``state:``, ``result:`` and ``source_status:`` methods.

    Raises:
        SelectionError: an unparsable criterion, an unknown method or an invalid value.
    """
    if indirect not in INDIRECT_SELECTION:
        raise SelectionError(f"indirect selection {indirect!r}: expected one of {', '.join(INDIRECT_SELECTION)}")
    chosen = _components(selection)
    included = _union(graph, chosen or DEFAULT_INCLUDES, indirect, state)
    excluded = _union(graph, _components(exclude), indirect, state)
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
    state: StateLookup | None = None,
) -> set[AssetKey]:
    """The asset keys of the nodes :func:`select_nodes` picks (a dbt source selects the asset it reads).

    Raises:
        SelectionError: an unparsable criterion, an unknown method or an invalid value.
    """
    if not _components(selection) and not _components(exclude):
        return set(graph.specs)
    ids = select_nodes(graph, selection, exclude, indirect=indirect, state=state)
    return {key for uid in ids if (key := graph.nodes[uid].asset_key) is not None and key in graph.specs}
