"""What a run plan becomes for the engine: one mirrored Prefect task per dlt table, dbt node and check (with the
manifest's edges), and the retry policy of every dbt node."""

from __future__ import annotations

from typing import Any

from assets import RunPolicy
from orchestration.engine import DbtNodePolicy
from orchestration.plan import RunPlan
from orchestration.task_mirror import MirroredTask


def mirrored_tasks(plan: RunPlan, manifest: dict[str, Any]) -> list[MirroredTask]:
    """One task per selected dlt table and dbt node, and per test on them, with the manifest's edges."""
    graph = plan.graph
    selected_ids = {graph.specs[k].unique_id: k for k in plan.selected if graph.specs[k].kind.is_materializable}
    tasks = []
    nodes = manifest.get("nodes") or {}
    for unique_id, key in selected_ids.items():
        spec = graph.specs[key]
        deps = (nodes.get(unique_id) or {}).get("depends_on", {}).get("nodes")
        if deps is None:  # not a dbt node: the graph's own edges
            deps = [graph.specs[d].unique_id for d in spec.deps if d in graph.specs]
        tasks.append(
            MirroredTask(
                node_id=unique_id,
                name=str(key),
                tags=tuple(sorted({spec.kind.value, f"group:{spec.group}", *spec.tags})),
                retries=spec.policy.retries,
                upstream=tuple(sorted(d for d in deps if d in selected_ids)),
            )
        )
    freshness = set(plan.freshness_keys)
    for check in graph.checks:
        if check.kind != "dbt_test":
            runs = check.asset_key in plan.selected or (check.kind == "freshness" and check.asset_key in freshness)
            if runs:
                asset_id = graph.specs[check.asset_key].unique_id
                tasks.append(
                    MirroredTask(
                        node_id=check.unique_id,
                        name=check.id,
                        tags=("check", f"check:{check.kind}", f"severity:{check.severity.value}"),
                        upstream=(asset_id,) if asset_id in selected_ids else (),
                    )
                )
            continue
        node = nodes.get(check.unique_id) or {}
        deps = node.get("depends_on", {}).get("nodes") or []
        if any(d in selected_ids for d in deps):
            tasks.append(
                MirroredTask(
                    node_id=check.unique_id,
                    name=check.id,
                    tags=("check", f"severity:{check.severity.value}"),
                    retries=int(_headwater_meta(node).get("retries", 0)),
                    upstream=tuple(sorted(d for d in deps if d in selected_ids)),
                )
            )
    return tasks


def node_policies(
    plan: RunPlan, manifest: dict[str, Any], retries: int | None, retry_delay: float | None = None
) -> dict[str, DbtNodePolicy]:
    """Retry budget per dbt node: meta.headwater, then dbt_project.yml defaults, with ``retries`` (and
    ``retry_delay``, seconds) overriding both for models, seeds and snapshots. Tests keep 0 unless their own
    meta says otherwise."""
    policies: dict[str, DbtNodePolicy] = {}
    for spec in plan.graph.specs.values():
        if spec.kind.is_dbt:
            policy: RunPolicy = spec.policy
            budget = policy.retries if retries is None else retries
            delay = policy.retry_delay_seconds if retry_delay is None else retry_delay
            policies[spec.unique_id] = DbtNodePolicy(budget, delay)
    for check in plan.graph.checks:
        if check.kind != "dbt_test":
            continue
        hw = _headwater_meta((manifest.get("nodes") or {}).get(check.unique_id) or {})
        policies[check.unique_id] = DbtNodePolicy(int(hw.get("retries", 0)), float(hw.get("retry_delay_seconds", 0)))
    return policies


def _headwater_meta(node: dict[str, Any]) -> dict[str, Any]:
    """A manifest node's ``meta.headwater`` (a dbt test's own retry settings), empty when absent."""
    return ((node.get("config") or {}).get("meta") or {}).get("headwater") or {}
