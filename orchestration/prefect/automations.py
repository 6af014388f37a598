"""Automation policies compiled into Prefect: triggers and schedules of one ``reactive`` deployment.

Each :class:`assets.automation.Automation` becomes, on the deployment ``headwater-materialize/reactive``:

- ``on_upstream_update``: a deployment trigger on ``prefect.asset.materialization.succeeded`` events of its upstream
  assets (``require: all``: a compound trigger, one child per upstream asset, all within the window). The match also
  asks for ``headwater.pending`` to name the automation, so a run that built these assets itself starts nothing.
  The trigger is reactive with the window as its ``within``: the first event starts a run, the rest of the burst
  (every table of one load) is absorbed by Prefect's bucket;
- ``on_cron``: a schedule of the deployment, with the automation's selection as its parameters;
- ``max_age``: a proactive trigger per asset: no materialization of it for ``max_age`` starts a run that rebuilds
  the set (``build_all``);
- ``on_missing``: a run of the set right after the deployment is registered (state-aware: it builds what is
  missing or stale, nothing else).

Every run the deployment starts gets the automation's selection and is state-aware: it builds the stale assets of
the set and keeps the rest. Prefect's server evaluates all of it; Headwater runs no daemon of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assets import AssetGraph
from assets.automation import Automation, duration_text
from orchestration.prefect.asset_events import SUCCEEDED, asset_uri
from orchestration.warehouse.targets import Target

REACTIVE = "reactive"
"""The deployment the automations start runs of (``headwater-materialize/reactive``)."""


@dataclass
class Compiled:
    """One automation as Prefect objects, with the lines ``headwater automations`` prints."""

    automation: Automation
    parameters: dict[str, Any]
    triggers: list[Any] = field(default_factory=list)
    schedules: list[Any] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def parameters_for(automation: Automation, target: Target, **extra: Any) -> dict[str, Any]:
    """The flow parameters of a run the automation starts."""
    parameters: dict[str, Any] = {"selection": automation.selection, "target": target.name, **extra}
    if automation.exclude:
        parameters["exclude"] = automation.exclude
    return parameters


def compile_automation(automation: Automation, graph: AssetGraph, target: Target) -> Compiled:
    """The triggers and schedules of one automation on ``target``."""
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.deployment_triggers import DeploymentCompoundTrigger, DeploymentEventTrigger
    from prefect.schedules import Cron

    policy, name = automation.policy, automation.name
    parameters = parameters_for(automation, target)
    compiled = Compiled(automation, parameters)
    pending = f"*,{name},*"
    upstream = [asset_uri(target, graph, key) for key in automation.upstream]
    if policy.on_upstream_update and upstream:
        description = f"headwater automation {name}: its upstream assets were materialized ({automation.origin})"
        if policy.require == "all" and len(upstream) > 1:
            children: list[Any] = [
                EventTrigger(
                    expect={SUCCEEDED},
                    match={"prefect.resource.id": uri, "headwater.pending": pending},
                    posture=Posture.Reactive,
                    threshold=1,
                )
                for uri in upstream
            ]
            compiled.triggers.append(
                DeploymentCompoundTrigger(
                    name=f"headwater: {name} (all upstream updated)",
                    description=description,
                    require="all",
                    within=policy.within,
                    triggers=children,
                    parameters=parameters,
                )
            )
        else:
            compiled.triggers.append(
                DeploymentEventTrigger(
                    name=f"headwater: {name} (upstream updated)",
                    description=description,
                    expect={SUCCEEDED},
                    match={"prefect.resource.id": upstream, "headwater.pending": pending},
                    posture=Posture.Reactive,
                    threshold=1,
                    within=policy.within,
                    parameters=parameters,
                )
            )
        shown = ", ".join(str(k) for k in automation.upstream[:4]) + (" ..." if len(upstream) > 4 else "")
        compiled.lines.append(
            f"trigger: {policy.require} of {len(upstream)} upstream asset(s) materialized ({shown}); "
            f"one run per {duration_text(policy.within)}"
        )
    elif policy.on_upstream_update:
        compiled.lines.append("on_upstream_update: nothing outside the set feeds it (no trigger)")
    if policy.on_cron:
        compiled.schedules.append(Cron(policy.on_cron, timezone="UTC", parameters=parameters, slug=f"hw-{name}"))
        compiled.lines.append(f"schedule: {policy.on_cron} UTC")
    if policy.max_age is not None:
        compiled.triggers.append(
            DeploymentEventTrigger(
                name=f"headwater: {name} (older than {policy.max_age_text})",
                description=f"headwater automation {name}: an asset was not materialized for {policy.max_age_text}",
                expect={SUCCEEDED},
                match={"prefect.resource.id": [asset_uri(target, graph, k) for k in automation.assets]},
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=policy.max_age,
                parameters=parameters_for(automation, target, build_all=True),
            )
        )
        compiled.lines.append(f"trigger: an asset not materialized for {policy.max_age_text} (rebuilds the set)")
    if policy.on_missing:
        compiled.lines.append("on deploy: one run builds what is missing")
    return compiled


def compile_all(automations: Sequence[Automation], graph: AssetGraph, target: Target) -> list[Compiled]:
    return [compile_automation(a, graph, target) for a in automations]


def register_reactive(
    project: Any, compiled: Sequence[Compiled], target: Target, work_pool: str, *, paused: bool = False
) -> tuple[str, list[str]]:
    """Create or update ``headwater-materialize/reactive`` with every trigger and schedule (its earlier triggers are
    replaced), then start the on_missing runs. Returns the deployment id and the ids of the runs started."""
    from prefect.client.orchestration import get_client

    from orchestration.prefect.deploy import ENTRYPOINT
    from orchestration.prefect.flow import materialize_flow

    flow: Any = materialize_flow.from_source(source=str(project.root), entrypoint=ENTRYPOINT)
    deployment: Any = flow.to_deployment(
        name=REACTIVE,
        work_pool_name=work_pool,
        parameters={"target": target.name},
        tags=["headwater", "automation"],
        description="Runs Headwater's automations start (triggers on asset events, schedules); each run builds the "
        "stale assets of its automation's selection. Registered by `headwater deploy`.",
        schedules=[s for c in compiled for s in c.schedules],
        triggers=[t for c in compiled for t in c.triggers],
        job_variables={"working_dir": str(project.root)},
        paused=paused,
    )
    deployment_id = deployment.apply()
    started = []
    with get_client(sync_client=True) as client:
        for item in compiled:
            if item.automation.policy.on_missing and not paused:
                run = client.create_flow_run_from_deployment(deployment_id, parameters=item.parameters)
                started.append(str(run.id))
    return str(deployment_id), started
