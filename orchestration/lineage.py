"""Column lineage of a project: ``dbt compile`` for the SQL, the seeds' CSV headers, then assets.lineage."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from assets.dbt_manifest import DbtTranslator
from assets.lineage import ColumnLineage, build_column_lineage, dialect_of, relations_from_manifest
from orchestration import dbt_executor
from orchestration.project import Project
from orchestration.targets import Target


def compile_manifest(project: Project, target: Target, target_path: Path | None = None) -> dict[str, Any]:
    """``dbt compile`` of the whole project; returns the manifest with every model's compiled SQL.

    ``target_path`` writes dbt's artifacts there instead of the project's build target (so a compile for
    analysis never replaces the manifest a run is using).

    Raises:
        DbtInvocationError: the project does not compile; the message carries dbt's error.
    """
    result = dbt_executor.invoke(project, target, ["compile"], target_path=target_path)
    if target.type == "duckdb":
        dbt_executor.release_duckdb()
    if not result.success:
        raise dbt_executor.DbtInvocationError(
            f"dbt compile failed for {project.dbt_project_dir}: {result.exception or _first_error(result)}"
        )
    path = (target_path or project.dbt_target_path) / "manifest.json"
    return json.loads(path.read_text())


def _first_error(result: Any) -> str:
    for node_result in getattr(result.result, "results", None) or []:
        if str(node_result.status) in ("error", "fail"):
            return f"{node_result.node.unique_id}: {node_result.message}"
    return "see data/dbt_logs/dbt.log"


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
    manifest = compile_manifest(project, target, project.data_dir / "dbt_compile")
    return lineage_of_manifest(manifest, project.dbt_project_dir)
