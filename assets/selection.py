"""dbt's node selection grammar, evaluated in Python on the asset graph (no ``dbt ls`` subprocess).

Supported: plain names and dotted fqn paths with ``*`` wildcards, ``+x``, ``x+``, ``N+x``, ``x+N``, ``@x``,
methods ``tag:``, ``path:``, ``source:``, ``exposure:``, ``resource_type:``, ``config.materialized:``, ``fqn:``,
``package:``, and Headwater's ``kind:``, ``group:``, ``key:``. Space separates a union, comma an
intersection; ``exclude`` removes what it selects.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable

from assets.graph import AssetGraph
from assets.keys import AssetKey
from assets.specs import AssetKind, AssetSpec

_RESOURCE_TYPES = {
    AssetKind.DBT_MODEL: "model",
    AssetKind.DBT_SEED: "seed",
    AssetKind.DBT_SNAPSHOT: "snapshot",
    AssetKind.SOURCE: "source",
    AssetKind.DLT: "source",
    AssetKind.EXPOSURE: "exposure",
    AssetKind.PYTHON: "python",
}

_CRITERION = re.compile(
    r"^(?P<at>@)?(?:(?P<up_depth>\d*)(?P<up>\+))?(?P<body>[^+@]+?)(?:(?P<down>\+)(?P<down_depth>\d*))?$"
)


class SelectionError(ValueError):
    """A selection expression that cannot be parsed or names an unknown method."""


def _wild(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def _prefix(parts: list[str], fqn: tuple[str, ...]) -> bool:
    return len(parts) <= len(fqn) and all(_wild(p, f) for p, f in zip(parts, fqn, strict=False))


def _match_fqn(spec: AssetSpec, value: str) -> bool:
    """dbt's default method: the node's name, or a dotted prefix of its fqn with or without the package.

    As in dbt, sources are not matched this way (use ``source:``); Headwater adds the full asset key
    (``marts.orders``, ``raw_shop.orders``) for every kind.
    """
    if _wild(value, str(spec.key)):
        return True
    if spec.unique_id.startswith("source.") or spec.kind in (AssetKind.SOURCE, AssetKind.DLT):
        return False
    if (spec.fqn and _wild(value, spec.fqn[-1])) or _wild(value, spec.name):
        return True
    parts = value.split(".")
    return bool(spec.fqn) and (_prefix(parts, spec.fqn) or _prefix(parts, spec.fqn[1:]))


def _match_path(spec: AssetSpec, value: str) -> bool:
    if not spec.path:
        return False
    value = value.rstrip("/")
    return spec.path == value or spec.path.startswith(value + "/") or _wild(value, spec.path)


def _match_source(spec: AssetSpec, value: str) -> bool:
    if not spec.unique_id.startswith("source."):
        return False
    parts = value.split(".")
    source, table = spec.source_name, spec.name
    if len(parts) == 1:
        return _wild(parts[0], source)
    if len(parts) == 2:
        return _wild(parts[0], source) and _wild(parts[1], table)
    return _wild(parts[0], spec.package) and _wild(parts[1], source) and _wild(parts[2], table)


_METHODS: dict[str, Callable[[AssetSpec, str], bool]] = {
    "fqn": _match_fqn,
    "path": _match_path,
    "file": lambda s, v: bool(s.path) and _wild(v, s.path.rsplit("/", 1)[-1]),
    "tag": lambda s, v: any(_wild(v, t) for t in s.tags),
    "source": _match_source,
    "resource_type": lambda s, v: _RESOURCE_TYPES.get(s.kind) == v,
    "config.materialized": lambda s, v: s.config.get("materialized") == v,
    "package": lambda s, v: _wild(v, s.package),
    "exposure": lambda s, v: s.kind is AssetKind.EXPOSURE and _wild(v, s.name),
    "kind": lambda s, v: s.kind.value == v or (v == "dbt" and s.kind.is_dbt),
    "group": lambda s, v: _wild(v, s.group),
    "key": lambda s, v: _wild(v, str(s.key)),
}


def _base(graph: AssetGraph, body: str) -> set[AssetKey]:
    method, sep, value = body.partition(":")
    if not sep:
        method, value = ("path" if "/" in body or body.endswith(".sql") else "fqn"), body
    if method not in _METHODS:
        raise SelectionError(f"unknown selection method {method!r} in {body!r}; methods: {', '.join(sorted(_METHODS))}")
    if not value:
        raise SelectionError(f"selection method {method!r} needs a value, e.g. {method}:something")
    match = _METHODS[method]
    return {key for key, spec in graph.specs.items() if match(spec, value)}


def _criterion(graph: AssetGraph, text: str) -> set[AssetKey]:
    m = _CRITERION.match(text)
    if not m:
        raise SelectionError(
            f"cannot parse selection criterion {text!r}; expected e.g. 'orders', '+orders', '2+tag:x+'"
        )
    if m["at"] and (m["up"] or m["down"]):
        raise SelectionError(f"{text!r}: '@' cannot be combined with '+'")
    base = _base(graph, m["body"])
    result = set(base)
    if m["at"]:
        down = base | graph.downstream(base)
        return down | graph.upstream(down)
    if m["up"]:
        result |= graph.upstream(base, int(m["up_depth"]) if m["up_depth"] else None)
    if m["down"]:
        result |= graph.downstream(base, int(m["down_depth"]) if m["down_depth"] else None)
    return result


def _expression(graph: AssetGraph, expression: str) -> set[AssetKey]:
    selected: set[AssetKey] = set()
    for token in expression.split():
        parts = [p for p in token.split(",")]
        if any(not p for p in parts):
            raise SelectionError(f"empty criterion in {token!r} (stray comma?)")
        inter = _criterion(graph, parts[0])
        for part in parts[1:]:
            inter &= _criterion(graph, part)
        selected |= inter
    return selected


def select(graph: AssetGraph, selection: str | None = None, exclude: str | None = None) -> set[AssetKey]:
    """The keys that ``selection`` (default: everything) minus ``exclude`` picks.

    Raises:
        SelectionError: unparsable criterion or unknown method.
    """
    chosen = set(graph.specs) if not selection or not selection.strip() else _expression(graph, selection)
    if exclude and exclude.strip():
        chosen -= _expression(graph, exclude)
    return chosen
