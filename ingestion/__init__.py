"""Ingestion: dlt sources and pipelines that load raw tables, and their asset specs and dbt sources."""

from __future__ import annotations

from ingestion.dbt_sources import render_sources_yml, write_sources_yml
from ingestion.pipeline import LoadResult, run_source, stored_schema
from ingestion.registry import SOURCES, SourceDefinition, SourcePaths, get_source
from ingestion.specs import ingestion_specs, specs_for_source

__all__ = [
    "SOURCES",
    "LoadResult",
    "SourceDefinition",
    "SourcePaths",
    "get_source",
    "ingestion_specs",
    "render_sources_yml",
    "run_source",
    "specs_for_source",
    "stored_schema",
    "write_sources_yml",
]
