"""From a selection to a run plan: which sources to ingest, which dbt nodes to build."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets import (
    AssetGraph,
    AssetKey,
    AssetKind,
    AssetSpec,
    CheckSpec,
    DbtTranslator,
    RunPolicy,
    SelectionError,
    build_asset_graph,
    select,
)
from quality.suites import load_suites


@dataclass(frozen=True)
class RunPlan:
    """What one materialize run does, in order: ingest ``ingest`` tables, then build ``dbt_keys``."""

    graph: AssetGraph
    selected: frozenset[AssetKey]
    ingest: dict[str, tuple[str, ...]]  # source name -> tables
    dbt_keys: tuple[AssetKey, ...]

    @property
    def dbt_selectors(self) -> list[str]:
        """dbt ``--select`` arguments: each node by full fqn, each selected raw table as ``source:`` (for its tests)."""
        nodes = [".".join(self.graph.specs[k].fqn) for k in self.dbt_keys]
        sources = sorted(
            f"source:{spec.source_name}.{spec.name}"
            for spec in (self.graph.specs[k] for k in self.selected)
            if spec.unique_id.startswith("source.")
        )
        return nodes + sources

    @property
    def freshness_keys(self) -> tuple[AssetKey, ...]:
        """Sources whose freshness this run checks: selected raw tables and those a selected dbt node reads."""
        keys = {k for k in self.selected if not self.graph.specs[k].kind.is_dbt}
        for key in self.dbt_keys:
            keys.update(self.graph.specs[key].deps)
        fresh = {c.asset_key for c in self.graph.checks if c.kind == "freshness"}
        return tuple(sorted(keys & fresh))

    @property
    def dbt_check_count(self) -> int:
        keys = set(self.dbt_keys) | {k for k in self.selected if self.graph.specs[k].kind is AssetKind.DLT}
        return sum(1 for c in self.graph.checks if c.asset_key in keys and c.kind == "dbt_test")


def asset_graph(
    manifest: dict[str, Any] | None,
    defaults: dict[str, Any] | None = None,
    with_ingestion: bool = True,
    python_assets: list[AssetSpec] | None = None,
    suites_dir: Path | None = None,
) -> AssetGraph:
    """The project's asset graph: dbt manifest + dlt tables (Headwater's own project only) + their checks:
    dbt tests and source freshness, contract quarantines, and the GX suites in ``suites_dir``.

    Raises:
        SuiteError: a suite file is invalid or names an asset the graph does not have.
    """
    defaults = defaults or {}
    translator = DbtTranslator(
        RunPolicy(
            retries=int(defaults.get("retries", 0)),
            retry_delay_seconds=float(defaults.get("retry_delay_seconds", 0)),
        )
    )
    ingestion: list[AssetSpec] = []
    checks: list[CheckSpec] = []
    if with_ingestion:
        from ingestion import ingestion_specs, quarantine_checks  # dlt is a 1.3 s import: only projects that ingest

        ingestion = ingestion_specs()
        checks = quarantine_checks()
    graph = build_asset_graph(
        manifest=manifest, ingestion=ingestion, python_assets=python_assets or [], checks=checks, translator=translator
    )
    if suites_dir is not None:
        suite_checks = [c for suite in load_suites(suites_dir, graph.specs) for c in suite.checks]
        graph = AssetGraph.from_specs(graph.specs.values(), [*graph.checks, *suite_checks])
    return graph


def plan_run(graph: AssetGraph, selection: str | None = None, exclude: str | None = None) -> RunPlan:
    """The plan for ``selection`` minus ``exclude`` (dbt grammar plus ``kind:``/``group:``).

    Raises:
        SelectionError: the selection is malformed, or matches no asset (a typo must not pass as a no-op run).
    """
    selected = select(graph, selection, exclude)
    if not selected and (selection or exclude):
        raise SelectionError(
            f"selection {selection or '(everything)'!r}{f' minus {exclude!r}' if exclude else ''} matches no asset; "
            "`headwater assets` lists them"
        )
    ingest: dict[str, list[str]] = defaultdict(list)
    dbt_keys = []
    for key in graph.toposorted():
        if key not in selected:
            continue
        spec = graph.specs[key]
        if spec.kind is AssetKind.DLT:
            ingest[spec.meta["dlt_source"]].append(spec.name)
        elif spec.kind.is_dbt:
            dbt_keys.append(key)
    return RunPlan(
        graph=graph,
        selected=frozenset(selected),
        ingest={name: tuple(sorted(tables)) for name, tables in sorted(ingest.items())},
        dbt_keys=tuple(dbt_keys),
    )
