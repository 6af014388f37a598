"""dbt's selector methods, one predicate per method over a node of the asset graph (``fqn``, ``tag``, ``group``,
``access``, ``source``, ``path``, ``file``, ``package``, ``config.<key>``, ``test_type``, ``version``,
``resource_type``, ...), ported from dbt-core's ``dbt/graph/selector_methods.py``; ``assets.selection`` combines
them with dbt's grammar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fnmatch import fnmatch
from pathlib import PurePosixPath

from assets.errors import UserError
from assets.graph import AssetGraph
from assets.nodes import NodeSpec
from assets.specs import AssetSpec

HEADWATER_TYPES = frozenset({"python"})
NODE_TYPES = frozenset(
    {
        "model", "analysis", "test", "snapshot", "operation", "seed", "rpc", "sql_operation", "doc", "source",
        "macro", "exposure", "metric", "group", "saved_query", "semantic_model", "unit_test", "fixture", "function",
    }
)  # fmt: skip
"""dbt's NodeType values: ``resource_type:`` accepts these (and Headwater's ``python``)."""

_PARSED_NODES = frozenset({"model", "seed", "snapshot", "test", "operation"})
"""Types in dbt's ``manifest.nodes`` (analyses are not in Headwater's graph)."""


class SelectionError(UserError, ValueError):
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


def config_matcher(arguments: list[str]) -> Matcher:
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


def selector_methods(graph: AssetGraph) -> dict[str, Matcher]:
    """Every selector method: a predicate over a node and the method's value."""
    project = graph.project_name

    def spec_of(node: NodeSpec) -> AssetSpec | None:
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
