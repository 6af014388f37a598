"""Column lineage of a project: ``dbt compile`` for the SQL, the seeds' CSV headers, then assets.lineage."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assets.dbt_manifest import DbtTranslator
from assets.lineage import ColumnLineage, build_column_lineage, dialect_of, relations_from_manifest
from orchestration.dbt import executor
from orchestration.project import Project
from orchestration.settings import project_translator
from orchestration.warehouse.targets import Target


def compile_dir(project: Project) -> Path:
    """Where analysis compiles go (lineage, plan): apart from the build target a run uses."""
    return project.data_dir / "dbt_compile"


def compile_manifest(
    project: Project, target: Target, target_path: Path, options: executor.DbtOptions = executor.NO_OPTIONS
) -> dict[str, Any]:
    """``dbt compile`` of the whole project into ``target_path``; the manifest with every model's compiled SQL.

    Raises:
        DbtInvocationError: the project does not compile; the message carries dbt's error.
    """
    return executor.artifacts(project, target, ["compile"], target_path, options)


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


def key_map(manifest: Mapping[str, Any], translator: DbtTranslator) -> dict[str, str]:
    """unique id -> asset key, by the project's translator (the one the asset graph was built with)."""
    nodes = {**(manifest.get("sources") or {}), **(manifest.get("nodes") or {})}
    return {
        unique_id: str(translator.get_asset_key(node))
        for unique_id, node in nodes.items()
        if node.get("resource_type") in ("source", "seed", "model", "snapshot")
    }


def source_columns(
    manifest: dict[str, Any], target: Target | None = None, catalog: dict[str, Any] | None = None
) -> dict[str, list[str]]:
    """The columns of every source whose YAML declares none, from dbt's ``catalog.json`` when there is one, else
    read from the warehouse's information schema (read-only); a source that cannot be read keeps no columns."""
    missing = {
        uid: node
        for uid, node in (manifest.get("sources") or {}).items()
        if not node.get("columns") and node.get("name")
    }
    if not missing:
        return {}
    found: dict[str, list[str]] = {}
    for uid in missing:
        entry = ((catalog or {}).get("sources") or {}).get(uid) or {}
        columns = sorted((entry.get("columns") or {}).values(), key=lambda c: c.get("index") or 0)
        if columns:
            found[uid] = [c["name"] for c in columns]
    rest = {uid: node for uid, node in missing.items() if uid not in found}
    if rest and target is not None:
        found.update(_warehouse_columns(rest, target))
    return found


def _warehouse_columns(sources: dict[str, Any], target: Target) -> dict[str, list[str]]:
    import sqlalchemy as sa

    connect = {"read_only": True} if target.type == "duckdb" else {}
    try:
        engine = target.engine(connect_args=connect)
    except Exception:  # an adapter SQLAlchemy cannot reach: lineage simply has no columns for these sources
        return {}
    found: dict[str, list[str]] = {}
    try:
        inspector = sa.inspect(engine)
        for uid, node in sources.items():
            try:
                columns = inspector.get_columns(node.get("identifier") or node["name"], schema=node.get("schema"))
            except sa.exc.SQLAlchemyError:
                continue  # not in the warehouse (yet): no columns, as when the YAML declares none
            found[uid] = [c["name"] for c in columns]
    except sa.exc.SQLAlchemyError:
        return found
    finally:
        engine.dispose()
    return found


def lineage_of_manifest(
    manifest: dict[str, Any],
    dbt_project_dir: Path,
    translator: DbtTranslator,
    target: Target | None = None,
    catalog: dict[str, Any] | None = None,
) -> ColumnLineage:
    """Column lineage of a compiled manifest, keyed by ``translator``; sources that declare no columns get theirs
    from ``catalog`` or the ``target`` warehouse."""
    relations = relations_from_manifest(
        manifest,
        key_map(manifest, translator),
        seed_columns(manifest, dbt_project_dir),
        source_columns(manifest, target, catalog),
    )
    return build_column_lineage(relations, dialect_of(manifest))


def project_lineage(
    project: Project, target: Target, options: executor.DbtOptions = executor.NO_OPTIONS
) -> ColumnLineage:
    """Compile the project on ``target`` (with the run's ``--vars``; the last compile when still valid:
    ``orchestration.analysis.compile_cache``) and analyse its column lineage."""
    from orchestration.analysis.compile_cache import compiled_manifest, keep_result, kept_result

    folder = compile_dir(project)
    manifest, key = compiled_manifest(project, target, folder, options)
    if key is not None and (kept := kept_result(folder, "lineage", key)) is not None:
        return kept
    lineage = lineage_of_manifest(manifest, project.dbt_project_dir, project_translator(project), target)
    if key is not None:
        keep_result(folder, "lineage", key, lineage)
    return lineage
