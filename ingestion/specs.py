"""Asset specs for the raw tables that ingestion loads: key ``<dataset>.<table>``, kind ``dlt``."""

from __future__ import annotations

from collections.abc import Iterable

from assets import AssetKey, AssetKind, AssetSpec, CheckSpec, Severity
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
                layer="raw",
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
                    kind="quarantine",
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
                    kind="reconcile",
                    description=f"{key} holds what the {definition.name} source holds: keys, cursors, a sample of rows",
                    config={"source": definition.name},
                    path=f"ingestion/{definition.name}/source.py",
                )
            )
    return checks
