"""``dbt compile`` of the whole project kept between the analysis commands (``lineage``, ``plan``): when nothing it
depends on changed, they read the manifest of the last compile instead of importing dbt and compiling again.

A compile depends on more than a parse does, so its key is the asset graph's inputs key
(``orchestration.dbt.inputs_cache.inputs_key``: files, variables, vars, target, versions) plus a digest of the
warehouse's relations and columns (``is_incremental()`` and the adapter's relation cache read them). A compile that
queried the warehouse for a node (``run_query``, ``dbt_utils.get_column_values``: its SQL depends on data) is never
kept. A warehouse that cannot be read is a miss. The entry (``headwater_compile.json`` beside the manifest) records
the key and the manifest's SHA-256, so a manifest another compile overwrote is never taken for this one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

from orchestration.dbt import executor
from orchestration.dbt.inputs_cache import code_unchanged, inputs_key, loaded_code
from orchestration.project import Project
from orchestration.warehouse.targets import Target

ENTRY = "headwater_compile.json"
COMPILE = ["compile", "--full-refresh"]
"""Every model compiled as a full build (``is_incremental()`` false): what a model is, not what its next run on this
warehouse would do. A deployed state saved before an incremental model's first run then compares equal to the
working project after it (before, ``plan`` saw its incremental filter appear and called that a breaking change)."""


def compiled_manifest(
    project: Project,
    target: Target,
    target_path: Path,
    options: executor.DbtOptions = executor.NO_OPTIONS,
    *,
    fresh: bool = False,
) -> tuple[dict[str, Any], str | None]:
    """The manifest of ``dbt compile`` into ``target_path``: the kept one when still valid (unless ``fresh``), else
    compiled now; with its key when it is kept (what is computed from it alone may be kept under that key).

    Raises:
        DbtInvocationError: the project does not compile; the message carries dbt's error.
    """
    target_path.mkdir(parents=True, exist_ok=True)
    with executor.folder_lock(target_path):
        key = compile_key(project, target, options)
        kept = _kept(target_path, key) if key and not fresh else None
        if kept is not None:
            return kept, key
        (target_path / ENTRY).unlink(missing_ok=True)
        introspective: list[str] = []

        def watch(event: Any) -> None:
            if event.info.name == "SQLQuery" and event.data.node_info.unique_id:
                introspective.append(event.data.node_info.unique_id)

        manifest = executor.artifacts(project, target, COMPILE, target_path, options, callbacks=[watch])
        if key and not introspective and compile_key(project, target, options) == key:
            digest = hashlib.sha256((target_path / "manifest.json").read_bytes()).hexdigest()
            (target_path / ENTRY).write_text(json.dumps({"key": key, "manifest_sha256": digest}))
            return manifest, key
        return manifest, None


def kept_result(target_path: Path, name: str, key: str) -> Any:
    """What :func:`keep_result` kept as ``name`` under ``key``, when the code that computed it is unchanged; else
    None (a missing or broken file is a miss)."""
    try:
        with (target_path / f"headwater_{name}.pickle").open("rb") as handle:
            entry = pickle.load(handle)
        if entry["key"] != key or not code_unchanged(entry["code"]):
            return None
        return entry["value"]
    except Exception:  # missing, partial or from another version: computed again
        return None


def keep_result(target_path: Path, name: str, key: str, value: Any) -> None:
    """Keep ``value`` (computed from the kept compile of ``key`` alone) with the code loaded now."""
    path = target_path / f"headwater_{name}.pickle"
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        with scratch.open("wb") as handle:
            pickle.dump({"key": key, "code": loaded_code(), "value": value}, handle, pickle.HIGHEST_PROTOCOL)
        os.replace(scratch, path)
    except OSError:
        scratch.unlink(missing_ok=True)


def compile_key(project: Project, target: Target, options: executor.DbtOptions) -> str | None:
    """The graph's inputs key plus the warehouse's relations and columns; None when the warehouse cannot be read."""
    relations = warehouse_digest(target)
    if relations is None:
        return None
    return hashlib.sha256(f"{inputs_key(project, target, options.vars)} {relations} {COMPILE}".encode()).hexdigest()


def warehouse_digest(target: Target) -> str | None:
    """SHA-256 of every relation (schema, name, type) and column (name, type, position) in the warehouse's
    information schema, read-only; None when it cannot be read."""
    import sqlalchemy as sa

    connect = {"read_only": True} if target.type == "duckdb" else {}
    try:
        engine = target.engine(connect_args=connect)
    except Exception:  # an adapter SQLAlchemy cannot reach: no digest, so the compile is not kept
        return None
    digest = hashlib.sha256()
    try:
        with engine.connect() as conn:
            for query in (
                "select table_schema, table_name, table_type from information_schema.tables order by 1, 2",
                "select table_schema, table_name, column_name, data_type, ordinal_position "
                "from information_schema.columns order by 1, 2, 5",
            ):
                for row in conn.execute(sa.text(query)):
                    digest.update(repr(tuple(row)).encode())
    except Exception:  # not there yet, locked by a writer, no information schema: the compile is not kept
        return None
    finally:
        engine.dispose()
    return digest.hexdigest()


def _kept(target_path: Path, key: str) -> dict[str, Any] | None:
    try:
        entry = json.loads((target_path / ENTRY).read_text())
        content = (target_path / "manifest.json").read_bytes()
    except (OSError, ValueError):
        return None
    if entry.get("key") != key or hashlib.sha256(content).hexdigest() != entry.get("manifest_sha256"):
        return None
    return json.loads(content)
