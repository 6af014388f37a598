"""Asset specs for the raw tables that ingestion loads: key ``<dataset>.<table>``, kind ``dlt``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from assets import AssetKey, AssetKind, AssetSpec, CheckSpec, Severity
from assets.specs import CheckKind
from ingestion.docs import TABLE_DOCS
from ingestion.registry import SOURCES, SourceDefinition


def table_code_version(definition: SourceDefinition, schema: Any, table: str) -> str | None:
    """A raw table's code version: a hash of its columns in dlt's stored schema (name, type, nullability, keys) and
    of its data contract; None when the table has never been loaded (no schema to hash)."""
    try:
        columns = schema.get_table_columns(table) if schema is not None else None
    except Exception:  # dlt raises its own errors for a table the schema does not hold
        columns = None
    if not columns:
        return None
    hinted = {
        name: {k: column.get(k) for k in ("data_type", "nullable", "primary_key", "merge_key", "precision", "scale")}
        for name, column in sorted(columns.items())
    }
    contract = definition.contracts.get(table)
    text = json.dumps({"columns": hinted, "contract": repr(contract)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def specs_for_source(definition: SourceDefinition, schema: Any = None) -> list[AssetSpec]:
    """One spec per table of ``definition``; with dlt's stored ``schema`` of the source, each table's code version
    (:func:`table_code_version`)."""
    specs = []
    for table in definition.tables:
        key = AssetKey.of(definition.dataset, table)
        specs.append(
            AssetSpec(
                key=key,
                kind=AssetKind.DLT,
                layer="raw",
                tags=frozenset({"dlt", f"source:{definition.name}"}),
                description=TABLE_DOCS.get(str(key), {}).get("", ""),
                code_version=(version := table_code_version(definition, schema, table)),
                unknown_code="" if version else "no stored dlt schema holds its columns yet (it has never loaded)",
                unique_id=f"dlt.{definition.name}.{table}",
                name=table,
                source_name=definition.dataset,
                meta={"dlt_source": definition.name},
            )
        )
    return specs


def ingestion_specs(
    definitions: Iterable[SourceDefinition] | None = None, schemas: Mapping[str, Any] | None = None
) -> list[AssetSpec]:
    """Specs for every table of every known source; ``schemas`` (source name -> dlt's stored schema on the target,
    :func:`ingestion.pipeline.stored_schemas`) give the tables their code versions."""
    schemas = schemas or {}
    return [spec for d in (definitions or SOURCES.values()) for spec in specs_for_source(d, schemas.get(d.name))]


def quarantine_checks(definitions: Iterable[SourceDefinition] | None = None) -> list[CheckSpec]:
    """A ``quarantine`` check per contracted table: it fails when a run rejected any of the table's rows."""
    checks = []
    for definition in definitions or SOURCES.values():
        for table, contract in sorted(definition.contracts.items()):
            key = AssetKey.of(definition.dataset, table)
            checks.append(
                CheckSpec(
                    asset_key=key,
                    name="quarantine",
                    severity=Severity(contract.severity),
                    unique_id=f"quarantine.{key}",
                    kind=CheckKind.QUARANTINE,
                    description=f"no row of {key} broke its data contract "
                    f"(rejected rows: {definition.dataset}._headwater_quarantine)",
                    path=f"ingestion/{definition.name}/source.py",
                )
            )
    return checks


def reconcile_checks(definitions: Iterable[SourceDefinition] | None = None) -> list[CheckSpec]:
    """A ``reconcile`` check per table of every source whose rows can be read back: it warns when the warehouse and
    the source disagree in a way an incremental load cannot see (hard deletes, rows behind the cursor, changes
    without a newer cursor)."""
    checks = []
    for definition in definitions or SOURCES.values():
        if definition.reader is None:
            continue
        for table in definition.tables:
            key = AssetKey.of(definition.dataset, table)
            checks.append(
                CheckSpec(
                    asset_key=key,
                    name="reconcile",
                    severity=Severity.WARN,
                    unique_id=f"reconcile.{key}",
                    kind=CheckKind.RECONCILE,
                    description=f"{key} holds what the {definition.name} source holds: keys, cursors, a sample of rows",
                    config={"source": definition.name},
                    path=f"ingestion/{definition.name}/source.py",
                )
            )
    return checks
