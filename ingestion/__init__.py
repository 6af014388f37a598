"""Ingestion: dlt sources and pipelines that load raw tables, and their asset specs and dbt sources."""

from __future__ import annotations

from ingestion.contracts import QUARANTINE_TABLE, ColumnRule, TableContract
from ingestion.dbt_sources import render_sources_yml, write_sources_yml
from ingestion.pipeline import ContractViolation, LoadResult, SourceFailed, run_source, stored_schema, stored_schemas
from ingestion.registry import SOURCES, SourceDefinition, SourcePaths, get_source
from ingestion.specs import ingestion_specs, quarantine_checks, reconcile_checks, specs_for_source

__all__ = [
    "QUARANTINE_TABLE",
    "SOURCES",
    "ColumnRule",
    "ContractViolation",
    "SourceFailed",
    "TableContract",
    "LoadResult",
    "SourceDefinition",
    "SourcePaths",
    "get_source",
    "ingestion_specs",
    "quarantine_checks",
    "reconcile_checks",
    "render_sources_yml",
    "run_source",
    "specs_for_source",
    "stored_schema",
    "stored_schemas",
    "write_sources_yml",
]
