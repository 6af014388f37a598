"""Running a source into a destination with dlt, and reading back what it loaded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dlt
from dlt.common.destination import Destination
from dlt.common.schema import Schema

from ingestion.registry import SourceDefinition, SourcePaths


@dataclass(frozen=True)
class LoadResult:
    """What one source run loaded: new rows per table (0 when nothing changed upstream)."""

    source: str
    dataset: str
    load_ids: tuple[str, ...]
    rows: dict[str, int] = field(default_factory=dict)
    recovered_packages: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def pipeline_for(definition: SourceDefinition, destination: Destination, *, target: str, pipelines_dir: Path):
    """The dlt pipeline of ``definition`` for ``target`` (its incremental state is per target)."""
    return dlt.pipeline(
        pipeline_name=f"headwater_{definition.name}_{target}",
        destination=destination,
        dataset_name=definition.dataset,
        pipelines_dir=str(pipelines_dir),
    )


def run_source(
    definition: SourceDefinition,
    paths: SourcePaths,
    destination: Destination,
    *,
    target: str,
    pipelines_dir: Path,
    tables: Sequence[str] | None = None,
) -> LoadResult:
    """Extract, normalize and load ``definition`` (or only its ``tables``) as Arrow/parquet into ``destination``.

    Load packages left pending by an interrupted earlier run are finished first and separately:
    ``pipeline.run`` would otherwise load only them and silently drop the new data passed to it.
    """
    # Arrow rows carry no _dlt_load_id by default; dbt needs it for freshness and incremental models.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    pipeline = pipeline_for(definition, destination, target=target, pipelines_dir=pipelines_dir)
    recovered = 0
    if pipeline.has_pending_data:
        recovered = len(pipeline.list_normalized_load_packages()) + len(pipeline.list_extracted_load_packages())
        pipeline.normalize()
        pipeline.load()
    source = definition.build(paths)
    if tables is not None:
        source = source.with_resources(*tables)
    info = pipeline.run(source, loader_file_format="parquet")
    normalize = pipeline.last_trace.last_normalize_info
    counts = normalize.row_counts if normalize else {}
    rows = {table: count for table, count in sorted(counts.items()) if not table.startswith("_dlt")}
    return LoadResult(
        source=definition.name,
        dataset=definition.dataset,
        load_ids=tuple(info.loads_ids),
        rows=rows,
        recovered_packages=recovered,
    )


def stored_schema(definition: SourceDefinition, *, target: str, pipelines_dir: Path) -> Schema:
    """The dlt schema of the source's last run on ``target``.

    Raises:
        LookupError: the source has never been loaded to that target (run ``headwater ingest``).
    """
    name = f"headwater_{definition.name}_{target}"
    try:
        pipeline = dlt.attach(pipeline_name=name, pipelines_dir=str(pipelines_dir))
        schema = pipeline.default_schema
    except Exception as exc:  # dlt raises several types here; all mean "no usable local state"
        raise LookupError(
            f"no dlt schema for source {definition.name!r} on target {target!r} in {pipelines_dir}; "
            "run `headwater ingest` first"
        ) from exc
    return schema
