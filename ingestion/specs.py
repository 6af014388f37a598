"""Asset specs for the raw tables that ingestion loads: key ``<dataset>.<table>``, kind ``dlt``."""

from __future__ import annotations

from collections.abc import Iterable

from assets import AssetKey, AssetKind, AssetSpec

from ingestion.docs import TABLE_DOCS
from ingestion.registry import SOURCES, SourceDefinition


def specs_for_source(definition: SourceDefinition, schema_hash: str | None = None) -> list[AssetSpec]:
    """One spec per table of ``definition``; ``schema_hash`` (dlt's) is the code version when known."""
    specs = []
    for table in definition.tables:
        key = AssetKey.of(definition.dataset, table)
        specs.append(
            AssetSpec(
                key=key,
                kind=AssetKind.DLT,
                group="raw",
                tags=frozenset({"dlt", f"source:{definition.name}"}),
                description=TABLE_DOCS.get(str(key), {}).get("", ""),
                code_version=schema_hash,
                unique_id=f"dlt.{definition.name}.{table}",
                name=table,
                source_name=definition.dataset,
                meta={"dlt_source": definition.name},
            )
        )
    return specs


def ingestion_specs(definitions: Iterable[SourceDefinition] | None = None) -> list[AssetSpec]:
    """Specs for every table of every known source."""
    return [spec for d in (definitions or SOURCES.values()) for spec in specs_for_source(d)]
