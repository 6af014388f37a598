"""From a selection to a run plan: which sources to ingest, which dbt nodes to build, in which stages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets import (
    AssetGraph,
    AssetKey,
    AssetKind,
    AssetSpec,
    CheckSpec,
    DbtTranslator,
    RunPolicy,
    SelectionError,
    Severity,
    build_asset_graph,
)
from assets.checks import gate_stages
from assets.nodes import BUILD_TYPES
from assets.run_log import reads_through
from assets.selection import StateLookup, select_nodes
from assets.specs import CheckKind
from quality.suites import load_suites

if TYPE_CHECKING:
    from orchestration.project import Project
    from orchestration.warehouse.targets import Target

RUN_TYPES = BUILD_TYPES | {"source", "python"}
"""What a run can select: everything ``dbt build`` runs, dlt tables (as their dbt sources) and Python assets."""


@dataclass(frozen=True)
class RunPlan:
    """What one materialize run does, in order: ingest ``ingest`` tables, build ``dbt_nodes``, run Python assets.

    ``nodes`` are the selected node ids (dbt's own selection); ``selected`` the assets they stand for;
    ``dbt_nodes`` what dbt runs (models, seeds, snapshots, tests, unit tests, saved queries, exposures), in
    dependency order; ``dbt_keys`` the assets those nodes build. ``whole_project`` is set when nothing narrows the
    selection, so dbt may select everything itself.
    """

    graph: AssetGraph
    selected: frozenset[AssetKey]
    ingest: dict[str, tuple[str, ...]]  # source name -> tables
    dbt_keys: tuple[AssetKey, ...]
    nodes: frozenset[str] = frozenset()
    dbt_nodes: tuple[str, ...] = ()
    whole_project: bool = False

    @property
    def freshness_keys(self) -> tuple[AssetKey, ...]:
        """Sources whose freshness this run checks: selected raw tables and those a selected dbt node reads."""
        keys = {k for k in self.selected if not self.graph.specs[k].kind.is_dbt}
        for key in self.dbt_keys:
            keys.update(self.graph.specs[key].deps)
        fresh = {c.asset_key for c in self.graph.checks if c.kind == CheckKind.FRESHNESS}
        return tuple(sorted(keys & fresh))

    def lock_sets(self) -> tuple[set[str], set[str]]:
        """The assets this run may write (selected, built by it) and those outside them it reads: what it locks on a
        shared warehouse (``orchestration.warehouse.lock.asset_locks``)."""
        specs = self.graph.specs
        writes = {k for k in self.selected if specs[k].builds}
        reads = {
            dep
            for key in writes
            for dep in reads_through(self.graph, specs[key])
            if dep not in writes and dep in specs and specs[dep].builds
        }
        return {str(k) for k in writes}, {str(k) for k in reads}

    @property
    def dbt_check_count(self) -> int:
        checks = self.graph.checks_by_id()
        return sum(1 for uid in self.dbt_nodes if uid in checks)

    def stages(self) -> list[list[str]]:
        """The dbt nodes cut into stages, so that what must be checked or loaded before its readers run is:

        - a model whose GX suite has ``error`` expectations finishes a stage before its selected downstream;
        - a relation that a seed or model produces and dbt sources declare again (a seed that *is* the raw data)
          finishes a stage before the models that read it through ``source()``: dbt sees no edge between them.

        A test runs in the stage of the latest of its assets; a plan without such gates is one stage.
        """
        graph = self.graph
        keys = set(self.dbt_keys)
        gates = {
            key
            for key in keys
            if graph.downstream([key]) & keys
            and (
                any(c.kind == CheckKind.GX and c.severity is Severity.ERROR for c in graph.checks_for(key))
                or _read_through_source(graph, key, keys)
            )
        }
        stage_of = {k: i for i, stage in enumerate(gate_stages(graph, self.dbt_keys, gates)) for k in stage}
        checks = graph.checks_by_id()
        by_id = graph.by_unique_id()
        stages: dict[int, list[str]] = defaultdict(list)
        for uid in self.dbt_nodes:
            if uid in checks:
                owners = [stage_of[a] for a in checks[uid].assets if a in stage_of]
            else:  # a saved query or exposure waits for everything it reads
                key = by_id.get(uid)
                reads = {key} | graph.upstream([key]) if key is not None and key in graph.specs else set()
                owners = [stage_of[k] for k in reads if k in stage_of]
            stages[max(owners, default=0)].append(uid)
        return [stages[i] for i in sorted(stages)]


def _read_through_source(graph: AssetGraph, key: AssetKey, keys: set[AssetKey]) -> bool:
    """``key`` is produced by a dbt node and read by a selected dbt node through a dbt source on its relation."""
    spec = graph.specs[key]
    sources = {uid for uid in spec.node_ids if uid.startswith("source.")}
    if not spec.kind.is_dbt or not sources:
        return False
    return any(
        sources & set(graph.nodes[uid].depends_on)
        for k in keys
        for uid in graph.specs[k].node_ids
        if uid in graph.nodes
    )


def project_graph(
    project: Project,
    target: Target,
    manifest: dict[str, Any],
    translator: DbtTranslator,
    python_specs: list[AssetSpec],
    *,
    schemas: Mapping[str, Any] | None = None,
) -> AssetGraph:
    """The one way the flow and every command build a project's asset graph: the parsed ``manifest`` through the
    run's ``translator`` (``dbt.rendering.run_translator``: the project's, with the vars dbt renders), the project's
    run defaults, its dlt tables with their stored schemas on ``target`` (Headwater's own project; ``schemas``, when
    the caller has them, are not read again), its Python assets (``engine.python_assets.load_python_assets``) and its
    GX suites.

    Raises:
        SuiteError: a suite file is invalid or names an asset the graph does not have.
    """
    from orchestration.settings import project_defaults

    return asset_graph(
        manifest,
        project_defaults(project),
        project.is_headwater_dbt_project,
        python_specs,
        project.suites_dir,
        translator,
        project.dlt_schemas(target.name) if schemas is None else schemas,
    )


def asset_graph(
    manifest: dict[str, Any] | None,
    defaults: dict[str, Any] | None = None,
    with_ingestion: bool = True,
    python_assets: list[AssetSpec] | None = None,
    suites_dir: Path | None = None,
    translator: DbtTranslator | None = None,
    ingestion_schemas: Mapping[str, Any] | None = None,
) -> AssetGraph:
    """The project's asset graph: dbt manifest + dlt tables (Headwater's own project only) + their checks:
    dbt tests and source freshness, contract quarantines, and the GX suites in ``suites_dir``.

    ``ingestion_schemas`` (dlt's stored schema per source, ``ingestion.stored_schemas``) give raw tables their code
    versions. ``translator`` is the project's (``orchestration.settings.Settings.translator``); without one, Headwater's own
    with ``defaults`` as its run policy.

    Raises:
        SuiteError: a suite file is invalid or names an asset the graph does not have.
    """
    defaults = defaults or {}
    translator = translator or DbtTranslator(
        RunPolicy(
            retries=int(defaults.get("retries", 0)),
            retry_delay_seconds=float(defaults.get("retry_delay_seconds", 0)),
        )
    )
    ingestion: list[AssetSpec] = []
    checks: list[CheckSpec] = []
    if with_ingestion:
        from ingestion import ingestion_specs, quarantine_checks, reconcile_checks  # dlt: only projects that ingest

        ingestion = ingestion_specs(schemas=ingestion_schemas)
        checks = [*quarantine_checks(), *reconcile_checks()]
    graph = build_asset_graph(
        manifest=manifest, ingestion=ingestion, python_assets=python_assets or [], checks=checks, translator=translator
    )
    if suites_dir is not None:
        suite_checks = [c for suite in load_suites(suites_dir, graph.specs) for c in suite.checks]
        graph = AssetGraph.from_specs(
            graph.specs.values(), [*graph.checks, *suite_checks], graph.nodes.values(), graph.project_name
        )
    return graph


def plan_run(
    graph: AssetGraph,
    selection: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    *,
    indirect: str = "eager",
    state: StateLookup | None = None,
) -> RunPlan:
    """The plan for ``selection`` minus ``exclude``: dbt's selection grammar (with ``kind:``, ``key:``, ``layer:``).

    Raises:
        SelectionError: the selection is malformed, or matches nothing to run (a typo must not pass as a no-op).
    """
    chosen = select_nodes(graph, selection, exclude, indirect=indirect, resource_types=RUN_TYPES, state=state)
    nodes = _runnable(graph, chosen)
    narrowed = bool(_texts(selection) or _texts(exclude))
    if not nodes and narrowed:
        units = any(graph.nodes[uid].resource_type == "unit_test" for uid in chosen)
        raise SelectionError(_nothing_selected(graph, selection, exclude, units))
    selected = {k for uid in nodes if (k := graph.nodes[uid].asset_key) is not None and k in graph.specs}
    ingest: dict[str, list[str]] = defaultdict(list)
    for key in sorted(selected):
        spec = graph.specs[key]
        if spec.kind is AssetKind.DLT:
            ingest[spec.meta["dlt_source"]].append(spec.name)
    order = {uid: i for i, uid in enumerate(graph.node_dag.toposorted())}
    dbt_nodes = sorted(
        (uid for uid in nodes if graph.nodes[uid].resource_type in BUILD_TYPES), key=lambda u: (order[u], u)
    )
    by_id = graph.by_unique_id()
    built = {by_id[uid] for uid in dbt_nodes if uid in by_id}
    return RunPlan(
        graph=graph,
        selected=frozenset(selected),
        ingest={name: tuple(sorted(tables)) for name, tables in sorted(ingest.items())},
        dbt_keys=tuple(k for k in graph.toposorted() if k in built and graph.specs[k].kind.is_dbt),
        nodes=frozenset(nodes),
        dbt_nodes=tuple(dbt_nodes),
        whole_project=not narrowed,
    )


def _runnable(graph: AssetGraph, nodes: set[str]) -> set[str]:
    """What a run can do with the selected nodes, as ``dbt build`` would: ephemeral models are compiled into their
    readers and never run; a unit test runs only together with its model; a dbt source is something to run only
    when Headwater loads it (a dlt table)."""
    kept = set()
    for uid in nodes:
        node = graph.nodes[uid]
        spec = graph.specs.get(node.asset_key) if node.asset_key is not None else None
        if node.resource_type == "model" and spec is not None and spec.ephemeral:
            continue
        if node.resource_type == "unit_test" and not set(node.depends_on) <= nodes:
            continue
        if node.resource_type == "source" and (spec is None or spec.kind is not AssetKind.DLT):
            continue
        kept.add(uid)
    return kept


def _texts(value: str | Sequence[str] | None) -> list[str]:
    items = [value] if isinstance(value, str) else list(value or ())
    return [v for v in items if v and v.strip()]


def _nothing_selected(graph: AssetGraph, selection: Any, exclude: Any, units: bool) -> str:
    shown = " ".join(_texts(selection)) or "(everything)"
    minus = " ".join(_texts(exclude))
    message = f"selection {shown!r}" + (f" minus {minus!r}" if minus else "") + " matches no asset or node to run"
    keys = [t for t in " ".join(_texts(selection)).replace(",", " ").split() if ":" not in t.lstrip("+@")]
    known = [t.strip("+@") for t in keys if t.strip("+@") in {str(k) for k in graph.specs}]
    if known:
        message += f"; {', '.join(known)} is an asset key: select it with key:{known[0]}"
    if units:
        message += "; unit tests run only together with the model they test (as in `dbt build`): select the model"
    return message + "; `headwater assets` lists what there is"
