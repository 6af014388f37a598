"""What a run plan becomes for the engine: one mirrored Prefect task per dlt table, dbt node, Python asset and check
(with the graph's edges), and the retry policy of every dbt node."""

from __future__ import annotations

from assets import AssetKind
from assets.specs import CheckKind
from orchestration.engine.dbt_segment import DbtNodePolicy
from orchestration.engine.outcomes import MirroredTask
from orchestration.engine.plan import RunPlan


def run_nodes(plan: RunPlan) -> list[str]:
    """Every node id the run may run: selected dlt tables, dbt nodes and Python assets."""
    graph = plan.graph
    others = [
        graph.specs[k].unique_id
        for k in sorted(plan.selected)
        if graph.specs[k].kind in (AssetKind.DLT, AssetKind.PYTHON) and graph.specs[k].unique_id
    ]
    return [*others, *plan.dbt_nodes]


def mirrored_tasks(plan: RunPlan) -> list[MirroredTask]:
    """One task per node the run may run and per check that runs outside dbt, named by asset key or check id
    (``marts.orders``, ``marts.orders:unique_orders_order_id``), with the graph's edges."""
    graph = plan.graph
    planned = set(run_nodes(plan))
    checks = graph.checks_by_id()
    by_id = graph.by_unique_id()
    tasks = []
    for uid in sorted(planned):
        node = graph.nodes.get(uid)
        upstream = tuple(sorted(d for d in (node.depends_on if node else ()) if d in planned))
        if uid in checks:
            check = checks[uid]
            tags: tuple[str, ...] = ("check", f"check:{check.kind}", f"severity:{check.severity.value}")
            tasks.append(MirroredTask(uid, check.id, tags, check.policy.retries, upstream))
            continue
        spec = graph.specs[by_id[uid]]
        tags = tuple(sorted({spec.kind.value, f"layer:{spec.layer}", *spec.tags}))
        tasks.append(MirroredTask(uid, str(spec.key), tags, spec.policy.retries, upstream))
    for uid, node in sorted(graph.nodes.items()):
        if node.resource_type == "operation" and plan.dbt_nodes:  # hooks run with every dbt invocation
            tasks.append(MirroredTask(uid, node.label, ("dbt_hook", *sorted(node.tags or ()))))
    freshness = set(plan.freshness_keys)
    for check in graph.checks:
        if check.kind.in_dbt or check.asset_key is None:
            continue
        if check.asset_key in plan.selected or (check.kind == CheckKind.FRESHNESS and check.asset_key in freshness):
            asset_id = graph.specs[check.asset_key].unique_id
            tasks.append(
                MirroredTask(
                    node_id=check.unique_id,
                    name=check.id,
                    tags=("check", f"check:{check.kind}", f"severity:{check.severity.value}"),
                    upstream=(asset_id,) if asset_id in planned else (),
                )
            )
    return tasks


def node_policies(plan: RunPlan, retries: int | None, retry_delay: float | None = None) -> dict[str, DbtNodePolicy]:
    """Retry budget per dbt node: meta.headwater, then dbt_project.yml defaults, with ``retries`` (and
    ``retry_delay``, seconds) overriding both for models, seeds and snapshots. Tests keep 0 unless their own
    meta says otherwise."""
    policies: dict[str, DbtNodePolicy] = {}
    for spec in plan.graph.specs.values():
        if spec.kind.is_dbt:
            budget = spec.policy.retries if retries is None else retries
            delay = spec.policy.retry_delay_seconds if retry_delay is None else retry_delay
            policies[spec.unique_id] = DbtNodePolicy(budget, delay)
    for check in plan.graph.checks:
        if check.kind.in_dbt:
            policies[check.unique_id] = DbtNodePolicy(check.policy.retries, check.policy.retry_delay_seconds)
    return policies
