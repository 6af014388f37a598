"""Change plans: the working dbt project against the deployed state, each change categorised by SQLMesh.

Analysis only. Both sides are dbt-compiled manifests (dbt renders the Jinja, so the project stays exactly as
dbt reads it); every changed model's SQL becomes a SQLMesh model and SQLMesh's own categoriser decides
breaking or non-breaking. SQLMesh gets no connection and keeps no state: nothing is written to any
warehouse. The deployed state is the compiled manifest ``headwater deploy`` (or ``plan --save``) saved.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import sqlglot
from sqlglot import exp

from assets.dbt_manifest import DbtTranslator
from assets.lineage import dialect_of
from orchestration.analysis.lineage import compile_dir, key_map, lineage_of_manifest
from orchestration.dbt.state import state_path

BREAKING, NON_BREAKING, ADDED, REMOVED, CONFIG = "breaking", "non-breaking", "added", "removed", "config"
_CONFIG_KEYS = ("materialized", "unique_key", "incremental_strategy", "strategy", "on_schema_change")


class StateError(ValueError):
    """The deployed state is missing, unreadable, or from another kind of warehouse; the message says the fix."""


@dataclass(frozen=True)
class Change:
    """One model that differs from the deployed state, with what it affects downstream."""

    key: str
    category: str
    detail: str
    columns_added: tuple[str, ...] = ()
    columns_removed: tuple[str, ...] = ()
    downstream: tuple[str, ...] = ()
    tests: int = 0


@dataclass(frozen=True)
class ChangePlan:
    changes: tuple[Change, ...]
    indirect: dict[str, str] = field(default_factory=dict)
    """Downstream assets of the changes: ``breaking`` when any breaking change reaches them, else ``non-breaking``."""

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.category in (BREAKING, REMOVED)]

    def to_dict(self) -> dict[str, Any]:
        return {"changes": [asdict(c) for c in self.changes], "indirect": dict(sorted(self.indirect.items()))}


def save_state(compiled_manifest_path: Path, destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(compiled_manifest_path, destination)
    return destination


def load_state(path: Path, dialect: str) -> dict[str, Any]:
    """The saved deployed manifest.

    Raises:
        StateError: no state, not a compiled manifest, or compiled for another warehouse kind than ``dialect``.
    """
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise StateError(
            f"no deployed state at {path}: `headwater deploy` saves it; to plan against the current project "
            "instead, run `headwater plan --save` on the deployed commit first"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateError(f"{path}: not valid JSON ({exc}); save the state again (`headwater plan --save`)") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("nodes"), dict):
        raise StateError(f"{path}: not a dbt manifest; save the state again (`headwater plan --save`)")
    if dialect_of(manifest) != dialect:
        raise StateError(
            f"{path} was compiled for {dialect_of(manifest)}, the working project for {dialect}: "
            f"plan with the deployed target (--target) so both sides render the same SQL"
        )
    return manifest


def _queries(
    manifest: Mapping[str, Any], keys: Mapping[str, str]
) -> dict[str, tuple[exp.Query | None, dict[str, Any], str]]:
    """key -> (compiled query with relations written as asset keys, config that changes data, unique id)."""
    dialect = dialect_of(manifest)
    nodes = {**(manifest.get("sources") or {}), **(manifest.get("nodes") or {})}
    by_relation = {}
    for unique_id, node in nodes.items():
        if unique_id in keys and node.get("relation_name"):
            table = exp.to_table(node["relation_name"], dialect=dialect)
            by_relation[(table.db.lower(), table.name.lower())] = keys[unique_id]

    def as_key(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and (node.db.lower(), node.name.lower()) in by_relation:
            schema, _, name = by_relation[(node.db.lower(), node.name.lower())].partition(".")
            node = node.copy()
            node.set("catalog", None)
            node.set("db", exp.to_identifier(schema))
            node.set("this", exp.to_identifier(name))
        return node

    result: dict[str, tuple[exp.Query | None, dict[str, Any], str]] = {}
    for unique_id, node in (manifest.get("nodes") or {}).items():
        if node.get("resource_type") not in ("model", "snapshot") or unique_id not in keys:
            continue
        config = {k: (node.get("config") or {}).get(k) for k in _CONFIG_KEYS}
        query: exp.Query | None = None
        if node.get("compiled_code"):
            try:
                parsed = sqlglot.parse_one(node["compiled_code"], dialect=dialect)
                query = cast(exp.Query, parsed.transform(as_key)) if isinstance(parsed, exp.Query) else None
            except sqlglot.errors.SqlglotError:
                query = None
        result[keys[unique_id]] = (query, config, unique_id)
    return result


def _models(manifest: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """key -> (compiled SQL as written, config that changes data) of every model and snapshot."""
    return {
        keys[unique_id]: (node.get("compiled_code") or "", {k: (node.get("config") or {}).get(k) for k in _CONFIG_KEYS})
        for unique_id, node in (manifest.get("nodes") or {}).items()
        if node.get("resource_type") in ("model", "snapshot") and unique_id in keys
    }


def _categorise(key: str, new: exp.Query, old: exp.Query, dialect: str) -> tuple[str, str]:
    """SQLMesh's categorisation of one directly modified model."""
    from orchestration.analysis._compat import only_projections_added

    if only_projections_added(key, new, old, dialect):
        return NON_BREAKING, "SQLMesh: only projections added; existing columns and rows unchanged"
    return (
        BREAKING,
        "SQLMesh: more than added columns (a column changed or went, or a filter, join or grouping): downstream must rebuild",
    )


def _downstream(manifest: Mapping[str, Any], keys: Mapping[str, str], unique_id: str) -> tuple[list[str], int]:
    """Asset keys (models, snapshots, exposures) downstream of a node, and how many tests run on it or them."""
    children = manifest.get("child_map") or {}
    exposures = manifest.get("exposures") or {}
    seen, stack, assets, tests = {unique_id}, [unique_id], set(), 0
    while stack:
        for child in children.get(stack.pop(), ()):
            if child in seen:
                continue
            seen.add(child)
            if child.startswith("test."):
                tests += 1
                continue
            if child in keys:
                assets.add(keys[child])
            elif child in exposures:
                assets.add(f"exposures.{exposures[child]['name']}")
            stack.append(child)
    return sorted(assets), tests


def _projections_sorted(query: exp.Query) -> exp.Query:
    """``query`` with the projections of every SELECT outside a set operation sorted by output name: two queries
    equal after this differ only in the order of their columns."""
    copy = query.copy()
    for select in copy.find_all(exp.Select):
        if select.find_ancestor(exp.SetOperation) is not None:
            continue  # UNION matches columns by position: their order is meaning there
        select.set("expressions", sorted(select.expressions, key=lambda e: (e.alias_or_name.lower(), e.sql())))
    return copy


def _same_code(deployed: Mapping[str, Any], working: Mapping[str, Any], old_id: str, new_id: str) -> bool:
    """The node's own code is the same on both sides: its file, the config that changes data, the SQL of every
    macro it calls (``assets.code_versions``, without vars and env vars, which the saved state does not record)."""
    from assets.code_versions import code_version_of

    old_node = (deployed.get("nodes") or {}).get(old_id) or {}
    new_node = (working.get("nodes") or {}).get(new_id) or {}
    if not all((node.get("checksum") or {}).get("checksum") for node in (old_node, new_node)):
        return False  # without dbt's hash of the file nothing says it is the same
    before = code_version_of(old_node, deployed.get("macros") or {})
    return before is not None and before == code_version_of(new_node, working.get("macros") or {})


def build_change_plan(
    deployed: Mapping[str, Any],
    working: Mapping[str, Any],
    dbt_project_dir: Path,
    translator: DbtTranslator,
    target: Any = None,
) -> ChangePlan:
    """Compare two compiled manifests of the same warehouse kind; changes sorted by key (both sides keyed by the
    project's ``translator``).

    ``target`` (the warehouse both were compiled for) supplies the columns of sources that declare none.
    """
    dialect = dialect_of(working)
    old_keys, new_keys = key_map(deployed, translator), key_map(working, translator)
    if _models(deployed, old_keys) == _models(working, new_keys):
        return ChangePlan(())  # the same compiled SQL and configuration for every key: nothing to categorise
    old, new = _queries(deployed, old_keys), _queries(working, new_keys)
    old_lineage = lineage_of_manifest(dict(deployed), dbt_project_dir, translator, target)
    new_lineage = lineage_of_manifest(dict(working), dbt_project_dir, translator, target)
    old_columns, new_columns = old_lineage.columns, new_lineage.columns
    changes: list[Change] = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            downstream, tests = _downstream(deployed, old_keys, old[key][2])
            changes.append(Change(key, REMOVED, "no longer in the project", downstream=tuple(downstream), tests=tests))
            continue
        (query, config, unique_id), previous = new[key], old.get(key)
        downstream, tests = _downstream(working, new_keys, unique_id)
        known = key in new_columns and (previous is None or key in old_columns)
        added = tuple(c for c in new_columns.get(key, ()) if c not in old_columns.get(key, ())) if known else ()
        removed = tuple(c for c in old_columns.get(key, ()) if c not in new_columns.get(key, ())) if known else ()
        unresolved = key in new_lineage.problems and key not in old_lineage.problems
        if previous is None:
            category, detail = ADDED, "new in the project"
        elif query is None or previous[0] is None:
            if query is not None or previous[0] is not None:
                category, detail = BREAKING, "compiled SQL could not be read on one side: treated as breaking"
                if unresolved:
                    category, detail = BREAKING, f"does not resolve: {new_lineage.problems[key]}"
            else:
                continue
        elif query.sql(dialect=dialect) != previous[0].sql(dialect=dialect):
            if unresolved:
                category, detail = BREAKING, f"does not resolve: {new_lineage.problems[key]}"
            elif _projections_sorted(query).sql(dialect=dialect) == _projections_sorted(previous[0]).sql(
                dialect=dialect
            ):
                if _same_code(deployed, working, previous[2], unique_id):
                    continue  # unchanged code whose Jinja emits its columns in no fixed order (a set): no change
                category, detail = NON_BREAKING, "only the order of its columns changed: same columns, same rows"
            else:
                category, detail = _categorise(key, query, previous[0], dialect)
        elif config != previous[1]:
            changed = ", ".join(
                f"{k}: {previous[1][k]} -> {config[k]}" for k in _CONFIG_KEYS if config[k] != previous[1][k]
            )
            category, detail = CONFIG, f"same SQL, configuration changed ({changed}): rebuilt, data unchanged"
        else:
            continue
        changes.append(Change(key, category, detail, added, removed, tuple(downstream), tests))
    indirect: dict[str, str] = {}
    changed_keys = {c.key for c in changes}
    for change in changes:
        severity = BREAKING if change.category in (BREAKING, REMOVED) else NON_BREAKING
        for key in change.downstream:
            if key not in changed_keys and indirect.get(key) != BREAKING:
                indirect[key] = severity
    return ChangePlan(tuple(changes), indirect)


def compile_working(
    project: Any, target: Any, options: Any = None, *, cached: bool = False
) -> tuple[dict[str, Any], Path]:
    """Compile the working project on ``target`` into its own folder; returns the manifest and its path.
    ``cached``: the last compile when still valid (``orchestration.analysis.compile_cache``); a state being saved
    is always compiled now."""
    from orchestration.analysis.compile_cache import compiled_manifest

    options = [options] if options is not None else []
    manifest, _ = compiled_manifest(project, target, compile_dir(project), *options, fresh=not cached)
    return manifest, compile_dir(project) / "manifest.json"


def save_deployed_state(project: Any, target: Any) -> Path:
    """Compile the project as it is now and keep that manifest as ``target``'s deployed state."""
    _, path = compile_working(project, target)
    return save_state(path, state_path(project.data_dir, target.name))
