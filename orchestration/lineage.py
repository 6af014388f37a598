"""Column lineage of a project: ``dbt compile`` for the SQL, the seeds' CSV headers, then assets.lineage."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from assets.dbt_manifest import DbtTranslator
from assets.lineage import ColumnLineage, build_column_lineage, dialect_of, relations_from_manifest
from orchestration import dbt_executor
from orchestration.project import Project
from orchestration.targets import Target


def compile_dir(project: Project) -> Path:
    """Where analysis compiles go (lineage, plan): apart from the build target a run uses."""
    return project.data_dir / "dbt_compile"


def compile_manifest(project: Project, target: Target, target_path: Path) -> dict[str, Any]:
    """``dbt compile`` of the whole project into ``target_path``; the manifest with every model's compiled SQL.

    Raises:
        DbtInvocationError: the project does not compile; the message carries dbt's error.
    """
    return dbt_executor.artifacts(project, target, ["compile"], target_path)


def seed_columns(manifest: dict[str, Any], dbt_project_dir: Path) -> dict[str, list[str]]:
    """Each seed's columns from its CSV header."""
    columns = {}
    for unique_id, node in (manifest.get("nodes") or {}).items():
        if node.get("resource_type") != "seed":
            continue
        path = dbt_project_dir / node.get("original_file_path", "")
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as handle:
                columns[unique_id] = next(csv.reader(handle), [])
    return columns


def key_map(manifest: dict[str, Any]) -> dict[str, str]:
    """unique id -> asset key (the same keys the asset graph uses)."""
    translator = DbtTranslator()
    nodes = {**(manifest.get("sources") or {}), **(manifest.get("nodes") or {})}
    return {
        unique_id: str(translator.get_asset_key(node))
        for unique_id, node in nodes.items()
        if node.get("resource_type") in ("source", "seed", "model", "snapshot")
    }


def lineage_of_manifest(manifest: dict[str, Any], dbt_project_dir: Path) -> ColumnLineage:
    """Column lineage of a compiled manifest."""
    relations = relations_from_manifest(manifest, key_map(manifest), seed_columns(manifest, dbt_project_dir))
    return build_column_lineage(relations, dialect_of(manifest))


def project_lineage(project: Project, target: Target) -> ColumnLineage:
    """Compile the project on ``target`` and analyse its column lineage."""
    manifest = compile_manifest(project, target, compile_dir(project))
    return lineage_of_manifest(manifest, project.dbt_project_dir)
