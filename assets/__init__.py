"""The asset model: keys, specs, the graph, selection. Imports no orchestration, dlt, dbt or GX."""

from __future__ import annotations

from assets.dag import DAG, CycleError
from assets.dbt_manifest import DbtTranslator, ManifestError, load_manifest, specs_from_manifest
from assets.graph import AssetGraph, DuplicateAssetError, build_asset_graph
from assets.keys import AssetKey
from assets.selection import SelectionError, select
from assets.specs import AssetKind, AssetSpec, CheckKind, CheckSpec, RunPolicy, Severity

__all__ = [
    "DAG",
    "AssetGraph",
    "AssetKey",
    "AssetKind",
    "AssetSpec",
    "CheckKind",
    "CheckSpec",
    "CycleError",
    "DbtTranslator",
    "DuplicateAssetError",
    "ManifestError",
    "RunPolicy",
    "SelectionError",
    "Severity",
    "build_asset_graph",
    "load_manifest",
    "select",
    "specs_from_manifest",
]
