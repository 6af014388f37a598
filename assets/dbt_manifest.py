"""Translating a dbt manifest (plain JSON, no dbt import) into asset and check specs.

Users customise keys, groups and policies by subclassing :class:`DbtTranslator`; nothing else in
Headwater reads dbt's raw node dicts.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

from assets.code_versions import node_code_version, unit_test_code_version
from assets.errors import UserError
from assets.keys import AssetKey
from assets.nodes import NodeSpec, node_spec_of
from assets.specs import AssetKind, AssetSpec, CheckKind, CheckSpec, RunPolicy, Severity, period

Node = Mapping[str, Any]

_KINDS = {
    "model": AssetKind.DBT_MODEL,
    "seed": AssetKind.DBT_SEED,
    "snapshot": AssetKind.DBT_SNAPSHOT,
    "function": AssetKind.DBT_FUNCTION,
    "source": AssetKind.SOURCE,
    "exposure": AssetKind.EXPOSURE,
    "semantic_model": AssetKind.SEMANTIC_MODEL,
    "metric": AssetKind.METRIC,
    "saved_query": AssetKind.SAVED_QUERY,
}
_NAMESPACES = {
    "exposure": "exposures",
    "semantic_model": "semantic_models",
    "metric": "metrics",
    "saved_query": "saved_queries",
    "function": "functions",
}
"""Nodes that are no warehouse relation get a key of their own namespace: ``exposures.revenue_dashboard``."""
_LAYERS = {
    "seed": "seeds",
    "snapshot": "snapshots",
    "source": "raw",
    "exposure": "exposures",
    "semantic_model": "semantic",
    "metric": "semantic",
    "saved_query": "semantic",
    "function": "functions",
}
_SECTIONS = ("nodes", "sources", "exposures", "metrics", "semantic_models", "saved_queries", "unit_tests", "functions")
"""dbt node types whose blank SQL makes them "empty" (never selected); seeds never are."""


class ManifestError(UserError, ValueError):
    """The manifest is unreadable or malformed; the message names the file and the offending entries."""


_SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)
"""What a field of the wrong shape raises while a node is read (a list where a mapping belongs, ...)."""


def load_manifest(path: Path) -> dict[str, Any]:
    """Read a dbt ``manifest.json``; the only function here that touches the file system.

    Raises:
        ManifestError: missing file, invalid JSON, or not a dbt manifest.
    """
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest; run `dbt parse` (headwater does so on materialize)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc}); delete it and run `dbt parse` again") from None
    if not isinstance(document, dict) or not isinstance(document.get("nodes"), dict):
        raise ManifestError(f"{path}: not a dbt manifest (no 'nodes' mapping); run `dbt parse` again")
    return document


def disabled(node: Node) -> bool:
    """``config.enabled`` false: dbt's selector skips such a node even in ``nodes`` (a partial parse may leave one
    there), so Headwater never plans or mirrors it either."""
    value = (node.get("config") or {}).get("enabled", True)
    return value is False or (isinstance(value, str) and value.strip().lower() in ("false", "no", "off", "0"))


def default_asset_key(node: Node) -> AssetKey:
    """``schema.alias`` for models, seeds and snapshots, ``schema.identifier`` for sources, and
    ``<namespace>.<name>`` for what is no relation (``exposures.x``, ``semantic_models.x``, ``metrics.x``,
    ``saved_queries.x``, ``functions.x``)."""
    kind = node.get("resource_type")
    if kind == "source":
        return AssetKey.safe(node["schema"], node.get("identifier") or node["name"])
    if kind in _NAMESPACES:
        return AssetKey.safe(_NAMESPACES[kind], node["name"])
    return AssetKey.safe(node["schema"], node.get("alias") or node["name"])


def default_layer(node: Node) -> str:
    """Headwater's layer: the first folder under ``models/`` (staging, intermediate, marts) or the resource type's
    layer (seeds, snapshots, raw, exposures, semantic). dbt's own ``group`` is a separate thing (``group:``)."""
    kind = node.get("resource_type", "")
    if kind in _LAYERS:
        return _LAYERS[kind]
    fqn = node.get("fqn") or []
    return fqn[1] if len(fqn) > 2 else "default"


def _headwater_meta(node: Node) -> dict[str, Any]:
    meta = dict(node.get("meta") or {})
    meta.update((node.get("config") or {}).get("meta") or {})
    value = meta.get("headwater") or {}
    return value if isinstance(value, dict) else {}


def default_owners(node: Node) -> tuple[str, ...]:
    hw = _headwater_meta(node)
    owner = (
        hw.get("owner")
        or (node.get("config") or {}).get("meta", {}).get("owner")
        or (node.get("meta") or {}).get("owner")
    )
    if node.get("resource_type") == "exposure" and not owner:
        owner = (node.get("owner") or {}).get("email")
    if not owner:
        return ()
    return tuple(owner) if isinstance(owner, list) else (str(owner),)


class DbtTranslator:
    """Hooks that turn dbt nodes into specs; subclass and override any ``get_*`` to customise.

    ``defaults`` is the project-level policy (``vars.headwater`` in ``dbt_project.yml``).
    """

    def __init__(self, defaults: RunPolicy | None = None) -> None:
        self.defaults = defaults or RunPolicy()
        self.macros: Mapping[str, Any] = {}
        """The manifest's macros, bound by :func:`read_manifest` (on a copy) before any node is translated."""
        self.vars: Mapping[str, Any] = {}
        """The run's dbt vars (dbt_project.yml's, then ``--vars``): part of the code version of a node that reads
        ``var()``."""
        self.env: Mapping[str, str] = {}
        """The environment dbt renders with: an ``env_var('NAME')`` a node reads is part of its code version (bound by
        whoever runs dbt, :meth:`bound`; the asset model reads no environment itself)."""

    def bound(
        self,
        *,
        macros: Mapping[str, Any] | None = None,
        vars: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Self:
        """A copy of this translator with the manifest's ``macros``, the run's ``vars`` or the ``env`` dbt renders
        with (each when given): a translator is never changed once made, so one project translator serves every
        reader and run."""
        bound = copy.copy(self)
        if macros is not None:
            bound.macros = dict(macros)
        if vars is not None:
            bound.vars = dict(vars)
        if env is not None:
            bound.env = dict(env)
        return bound

    def get_asset_key(self, node: Node) -> AssetKey:
        return default_asset_key(node)

    def get_layer(self, node: Node) -> str:
        return default_layer(node)

    def get_owners(self, node: Node) -> tuple[str, ...]:
        return default_owners(node)

    def get_tags(self, node: Node) -> frozenset[str]:
        return frozenset(node.get("tags") or [])

    def get_description(self, node: Node) -> str:
        return node.get("description") or ""

    def get_code_version(self, node: Node) -> str | None:
        """What the node's data is made from: its file (dbt's checksum: SQL, a seed's CSV, a snapshot), the config
        that changes data, and every macro it calls, transitively. None when dbt gives no checksum."""
        checksum = (node.get("checksum") or {}).get("checksum")
        if not checksum:
            return None
        return node_code_version(node, self.macros, self.vars, self.env).value

    def get_code_version_note(self, node: Node) -> str:
        """Why :meth:`get_code_version` gave None (said by ``status`` and the run): empty when it gave a version."""
        if not (node.get("checksum") or {}).get("checksum"):
            return "dbt gives no checksum for it"
        return node_code_version(node, self.macros, self.vars, self.env).unknown

    def get_check_code_version(self, node: Node) -> str | None:
        """A dbt test's definition (SQL, arguments, config, macros, vars, env vars) or a unit test's: a change makes it due."""
        if node.get("resource_type") == "unit_test":
            return unit_test_code_version(node)
        return node_code_version(node, self.macros, self.vars, self.env).value

    def get_policy(self, node: Node) -> RunPolicy:
        hw = _headwater_meta(node)
        timeout = hw.get("timeout_seconds", self.defaults.timeout_seconds)
        return RunPolicy(
            retries=int(hw.get("retries", self.defaults.retries)),
            retry_delay_seconds=float(hw.get("retry_delay_seconds", self.defaults.retry_delay_seconds)),
            timeout_seconds=float(timeout) if timeout is not None else None,
        )

    def get_check_policy(self, node: Node) -> RunPolicy:
        """A test's retries: only its own ``meta.headwater`` (tests are not retried by default)."""
        hw = _headwater_meta(node)
        return RunPolicy(retries=int(hw.get("retries", 0)), retry_delay_seconds=float(hw.get("retry_delay_seconds", 0)))

    def get_freshness_severity(self, node: Node) -> Severity:
        """A source's freshness past ``error_after``: ``error`` (it blocks the models that read the source) for a
        source dlt loads (``loader: dlt``, as Headwater generates them) or one whose ``meta.headwater.freshness`` is
        ``error``; else ``warn``: ``dbt build`` never gates on freshness, so a dbt project keeps dbt's meaning."""
        setting = str(_headwater_meta(node).get("freshness") or "").lower()
        if setting in ("error", "warn"):
            return Severity(setting)
        return Severity.ERROR if str(node.get("loader") or "").lower() == "dlt" else Severity.WARN

    def get_check_severity(self, node: Node) -> Severity:
        severity = str((node.get("config") or {}).get("severity") or "error").lower()
        return Severity.WARN if severity == "warn" else Severity.ERROR


def _spec_for(unique_id: str, node: Node, kind: AssetKind, translator: DbtTranslator) -> AssetSpec:
    config = dict(node.get("config") or {})
    return AssetSpec(
        key=translator.get_asset_key(node),
        kind=kind,
        layer=translator.get_layer(node),
        tags=translator.get_tags(node),
        owners=translator.get_owners(node),
        description=translator.get_description(node),
        code_version=(version := translator.get_code_version(node)),
        unknown_code="" if version is not None else translator.get_code_version_note(node),
        unique_id=unique_id,
        name=node.get("name", ""),
        fqn=tuple(node.get("fqn") or ()),
        path=node.get("original_file_path") or "",
        package=node.get("package_name") or "",
        source_name=node.get("source_name") or "",
        config=_spec_config(node, config),
        policy=translator.get_policy(node) if kind.is_dbt else RunPolicy(),
        meta=_headwater_meta(node),
        node_ids=(unique_id,),
        relation=_relation(node),
    )


def _spec_config(node: Node, config: Mapping[str, Any]) -> dict[str, Any]:
    """What the asset model keeps of a node's config: how it materializes, and a source's ``loaded_at_field`` (how a
    state-aware run sees that a source Headwater does not load has new data)."""
    kept: dict[str, Any] = {}
    if config.get("materialized"):
        kept["materialized"] = config["materialized"]
    loaded_at = node.get("loaded_at_field") or config.get("loaded_at_field")
    if loaded_at:
        kept["loaded_at_field"] = str(loaded_at)
    return kept


def _relation(node: Node) -> str:
    """``schema.identifier`` of the warehouse object a node builds or reads (a source's ``identifier``, a model's
    ``alias``); empty when the node names none."""
    name = node.get("identifier") or node.get("alias") or node.get("name")
    schema = node.get("schema")
    return f"{schema}.{name}" if schema and name else ""


@dataclass(frozen=True)
class ManifestSpecs:
    """What the translator reads from one manifest: every selectable node, the assets and the checks."""

    nodes: tuple[NodeSpec, ...]
    assets: tuple[AssetSpec, ...]
    checks: tuple[CheckSpec, ...]
    project_name: str = ""


def read_manifest(manifest: Mapping[str, Any], translator: DbtTranslator | None = None) -> ManifestSpecs:
    """Nodes, asset specs (models, seeds, snapshots, sources, exposures, semantic models, metrics, saved queries,
    functions) and check specs (data tests, unit tests, source freshness) of a parsed manifest.

    Raises:
        ManifestError: entries without the fields Headwater needs, all listed at once.
    """
    translator = (translator or DbtTranslator()).bound(macros=manifest.get("macros") or {})
    problems: list[str] = []
    by_id: dict[str, AssetSpec] = {}
    nodes: dict[str, NodeSpec] = {}
    tests: list[tuple[str, Node]] = []
    for section in _SECTIONS:
        for unique_id, node in sorted((manifest.get(section) or {}).items()):
            if not isinstance(node, Mapping):
                problems.append(f"{section}.{unique_id}: not an object")
                continue
            resource_type = node.get("resource_type")
            if resource_type == "analysis":
                continue  # never built, never listed: not part of Headwater's graph
            try:
                if disabled(node):
                    continue  # dbt neither selects, lists nor runs it (its graph membership test): nor does Headwater
                node_spec = node_spec_of(unique_id, node, section)
                spec = (
                    _spec_for(unique_id, node, _KINDS[resource_type], translator) if resource_type in _KINDS else None
                )
            except _SHAPE_ERRORS as exc:
                problems.append(f"{unique_id} ({node.get('original_file_path', '?')}): {type(exc).__name__}: {exc}")
                continue
            nodes[unique_id] = node_spec
            if spec is not None:
                by_id[unique_id] = spec
            elif resource_type in ("test", "unit_test"):
                tests.append((unique_id, node))
    _package_clashing_names(by_id)
    specs = []
    for unique_id, spec in by_id.items():
        nodes[unique_id] = replace(nodes[unique_id], asset_key=spec.key)
        deps = tuple(by_id[d].key for d in nodes[unique_id].depends_on if d in by_id and by_id[d].key != spec.key)
        specs.append(spec.with_deps(deps))
    checks = []
    for unique_id, spec in by_id.items():
        try:
            freshness = _freshness_check(manifest, unique_id, spec, translator)
        except _SHAPE_ERRORS as exc:
            problems.append(f"{unique_id} ({spec.path or '?'}): freshness: {exc}")
            continue
        if freshness is not None:
            checks.append(freshness)
    for unique_id, node in tests:
        try:
            checks.append(_check_for(unique_id, node, nodes[unique_id], by_id, translator))
        except _SHAPE_ERRORS as exc:
            problems.append(f"{unique_id} ({node.get('original_file_path', '?')}): {type(exc).__name__}: {exc}")
    if problems:
        raise ManifestError(
            "malformed manifest entries (run `dbt parse` again to rewrite the manifest):\n  "
            + "\n  ".join(sorted(problems, key=str))
        )
    project = str((manifest.get("metadata") or {}).get("project_name") or "")
    return ManifestSpecs(tuple(nodes.values()), tuple(specs), tuple(checks), project)


def _package_clashing_names(by_id: dict[str, AssetSpec]) -> None:
    """Nodes that are no relation (exposures, semantic models, metrics, saved queries, functions) of two packages
    with one name get the package in their key: ``metrics.<package>.<name>``."""
    seen: dict[AssetKey, list[str]] = {}
    for unique_id, spec in by_id.items():
        if spec.kind in _NAMESPACED:
            seen.setdefault(spec.key, []).append(unique_id)
    for key, ids in seen.items():
        for unique_id in ids if len(ids) > 1 else ():
            spec = by_id[unique_id]
            by_id[unique_id] = spec.merged(key=AssetKey((key.parts[0], spec.package or "project", key.parts[-1])))


_NAMESPACED = {_KINDS[kind] for kind in _NAMESPACES}


def specs_from_manifest(
    manifest: Mapping[str, Any], translator: DbtTranslator | None = None
) -> tuple[list[AssetSpec], list[CheckSpec]]:
    """The asset and check specs of :func:`read_manifest`.

    Raises:
        ManifestError: entries without the fields Headwater needs, all listed at once.
    """
    read = read_manifest(manifest, translator)
    return list(read.assets), list(read.checks)


def _freshness_check(
    manifest: Mapping[str, Any], unique_id: str, spec: AssetSpec, translator: DbtTranslator
) -> CheckSpec | None:
    """A ``freshness`` check for a source with dbt freshness thresholds and a ``loaded_at_field``."""
    if not unique_id.startswith("source."):
        return None
    node = manifest["sources"][unique_id]
    config = node.get("config") or {}
    freshness = node.get("freshness") or config.get("freshness") or {}
    loaded_at = node.get("loaded_at_field") or config.get("loaded_at_field")
    warn_after, error_after = period(freshness.get("warn_after")), period(freshness.get("error_after"))
    if not loaded_at or not (warn_after or error_after):
        return None
    return CheckSpec(
        asset_key=spec.key,
        name="freshness",
        severity=translator.get_freshness_severity(node) if error_after else Severity.WARN,
        unique_id=f"freshness.{spec.key}",
        kind=CheckKind.FRESHNESS,
        description=f"data loaded within {error_after or warn_after} (dbt source freshness)",
        config={"loaded_at_field": loaded_at, "warn_after": warn_after, "error_after": error_after},
        path=node.get("original_file_path") or "",
    )


def _check_for(
    unique_id: str, node: Node, spec: NodeSpec, by_id: Mapping[str, AssetSpec], translator: DbtTranslator
) -> CheckSpec:
    """A data test as a check of the asset it tests (``attached_node``, else its first parent), a unit test as a
    check of its model; a test that reads no node at all is a check on no asset (it still runs and counts)."""
    if not spec.name:
        raise ValueError("a test needs a text 'name'")
    deps = [d for d in spec.depends_on if d in by_id]
    attached = node.get("attached_node") if node.get("attached_node") in by_id else (deps[0] if deps else None)
    key = by_id[attached].key if attached else None
    return CheckSpec(
        asset_key=key,
        name=spec.name,
        severity=translator.get_check_severity(node),
        unique_id=unique_id,
        kind=CheckKind.UNIT_TEST if spec.resource_type == "unit_test" else CheckKind.DBT_TEST,
        description=node.get("description") or "",
        extra_assets=tuple(sorted({by_id[d].key for d in deps if d != attached and by_id[d].key != key})),
        tags=frozenset(node.get("tags") or []),
        path=spec.path,
        package=spec.package,
        policy=translator.get_check_policy(node),
        code_version=translator.get_check_code_version(node),
    )
