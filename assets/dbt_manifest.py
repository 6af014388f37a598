"""Translating a dbt manifest (plain JSON, no dbt import) into asset and check specs.

Users customise keys, groups and policies by subclassing :class:`DbtTranslator`; nothing else in
Headwater reads dbt's raw node dicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assets.checks import period
from assets.keys import AssetKey
from assets.specs import AssetKind, AssetSpec, CheckSpec, RunPolicy, Severity

Node = Mapping[str, Any]

_KINDS = {"model": AssetKind.DBT_MODEL, "seed": AssetKind.DBT_SEED, "snapshot": AssetKind.DBT_SNAPSHOT}
_GROUPS = {"seed": "seeds", "snapshot": "snapshots", "source": "raw", "exposure": "exposures"}


class ManifestError(ValueError):
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


def default_asset_key(node: Node) -> AssetKey:
    """``schema.alias`` for models, seeds and snapshots, ``schema.identifier`` for sources."""
    if node.get("resource_type") == "source":
        return AssetKey.of(node["schema"], node.get("identifier") or node["name"])
    if node.get("resource_type") == "exposure":
        return AssetKey.of("exposures", node["name"])
    return AssetKey.of(node["schema"], node.get("alias") or node["name"])


def default_group_name(node: Node) -> str:
    """The first folder under ``models/`` (staging, intermediate, marts) or the resource type's group."""
    kind = node.get("resource_type", "")
    if kind in _GROUPS:
        return _GROUPS[kind]
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

    def get_asset_key(self, node: Node) -> AssetKey:
        return default_asset_key(node)

    def get_group_name(self, node: Node) -> str:
        return default_group_name(node)

    def get_owners(self, node: Node) -> tuple[str, ...]:
        return default_owners(node)

    def get_tags(self, node: Node) -> frozenset[str]:
        return frozenset(node.get("tags") or [])

    def get_description(self, node: Node) -> str:
        return node.get("description") or ""

    def get_code_version(self, node: Node) -> str | None:
        return (node.get("checksum") or {}).get("checksum")

    def get_policy(self, node: Node) -> RunPolicy:
        hw = _headwater_meta(node)
        timeout = hw.get("timeout_seconds", self.defaults.timeout_seconds)
        return RunPolicy(
            retries=int(hw.get("retries", self.defaults.retries)),
            retry_delay_seconds=float(hw.get("retry_delay_seconds", self.defaults.retry_delay_seconds)),
            timeout_seconds=float(timeout) if timeout is not None else None,
        )

    def get_check_severity(self, node: Node) -> Severity:
        severity = str((node.get("config") or {}).get("severity") or "error").lower()
        return Severity.WARN if severity == "warn" else Severity.ERROR


def _spec_for(unique_id: str, node: Node, kind: AssetKind, translator: DbtTranslator) -> AssetSpec:
    config = dict(node.get("config") or {})
    return AssetSpec(
        key=translator.get_asset_key(node),
        kind=kind,
        group=translator.get_group_name(node),
        tags=translator.get_tags(node),
        owners=translator.get_owners(node),
        description=translator.get_description(node),
        code_version=translator.get_code_version(node),
        unique_id=unique_id,
        name=node.get("name", ""),
        fqn=tuple(node.get("fqn") or ()),
        path=node.get("original_file_path") or "",
        package=node.get("package_name") or "",
        source_name=node.get("source_name") or "",
        config={"materialized": config.get("materialized")} if config.get("materialized") else {},
        policy=translator.get_policy(node) if kind.is_dbt else RunPolicy(),
        meta=_headwater_meta(node),
    )


def specs_from_manifest(
    manifest: Mapping[str, Any], translator: DbtTranslator | None = None
) -> tuple[list[AssetSpec], list[CheckSpec]]:
    """Asset specs for models, seeds, snapshots, sources and exposures; check specs for tests.

    Raises:
        ManifestError: entries without the fields Headwater needs, all listed at once.
    """
    translator = translator or DbtTranslator()
    problems: list[str] = []
    by_id: dict[str, AssetSpec] = {}
    deps_by_id: dict[str, list[str]] = {}
    tests: list[Node] = []
    for section in ("nodes", "sources", "exposures"):
        for unique_id, node in sorted((manifest.get(section) or {}).items()):
            if not isinstance(node, Mapping):
                problems.append(f"{section}.{unique_id}: not an object")
                continue
            resource_type = node.get("resource_type")
            try:
                if resource_type == "test":
                    tests.append(node)
                    continue
                if resource_type in _KINDS:
                    kind = _KINDS[resource_type]
                elif resource_type == "source":
                    kind = AssetKind.SOURCE
                elif resource_type == "exposure":
                    kind = AssetKind.EXPOSURE
                else:
                    continue  # analyses, operations, macros: not assets
                spec = _spec_for(unique_id, node, kind, translator)
                deps = list((node.get("depends_on") or {}).get("nodes") or [])
                if not all(isinstance(d, str) for d in deps):
                    raise TypeError("depends_on.nodes must list unique ids")
                by_id[unique_id], deps_by_id[unique_id] = spec, deps
            except _SHAPE_ERRORS as exc:
                problems.append(f"{unique_id} ({node.get('original_file_path', '?')}): {type(exc).__name__}: {exc}")
    specs = []
    for unique_id, spec in by_id.items():
        deps = tuple(by_id[d].key for d in deps_by_id[unique_id] if d in by_id)
        specs.append(spec.with_deps(deps))
    checks = []
    for unique_id, spec in by_id.items():
        try:
            freshness = _freshness_check(manifest, unique_id, spec)
        except _SHAPE_ERRORS as exc:
            problems.append(f"{unique_id} ({spec.path or '?'}): freshness: {exc}")
            continue
        if freshness is not None:
            checks.append(freshness)
    for node in tests:
        try:
            check = _check_for(node, by_id, translator)
        except _SHAPE_ERRORS as exc:
            problems.append(f"{node.get('unique_id', '?')}: {type(exc).__name__}: {exc}")
            continue
        if check is not None:
            checks.append(check)
    if problems:
        raise ManifestError(
            "malformed manifest entries (run `dbt parse` again to rewrite the manifest):\n  "
            + "\n  ".join(sorted(problems, key=str))
        )
    return specs, checks


def _freshness_check(manifest: Mapping[str, Any], unique_id: str, spec: AssetSpec) -> CheckSpec | None:
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
        severity=Severity.ERROR if error_after else Severity.WARN,
        unique_id=f"freshness.{spec.key}",
        kind="freshness",
        description=f"data loaded within {error_after or warn_after} (dbt source freshness)",
        config={"loaded_at_field": loaded_at, "warn_after": warn_after, "error_after": error_after},
        path=node.get("original_file_path") or "",
    )


def _check_for(node: Node, by_id: Mapping[str, AssetSpec], translator: DbtTranslator) -> CheckSpec | None:
    deps = [d for d in (node.get("depends_on") or {}).get("nodes") or [] if d in by_id]
    attached = node.get("attached_node") or (deps[0] if deps else None)
    if attached is None and node.get("sources"):
        attached = next((d for d in deps if d.startswith("source.")), None)
    if attached is None or attached not in by_id:
        return None  # a singular test on nothing Headwater tracks
    if not isinstance(node.get("name"), str) or not isinstance(node.get("unique_id"), str):
        raise ValueError("a test needs a text 'name' and 'unique_id'")
    return CheckSpec(
        asset_key=by_id[attached].key,
        name=node["name"],
        severity=translator.get_check_severity(node),
        unique_id=node["unique_id"],
        kind="dbt_test",
        description=node.get("description") or "",
        extra_assets=tuple(sorted({by_id[d].key for d in deps if d != attached})),
        tags=frozenset(node.get("tags") or []),
    )
