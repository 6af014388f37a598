"""Deployments and automations as code, registered on the configured Prefect server by ``headwater deploy``.

``prefect.yaml`` (Prefect's own format, so ``prefect deploy --all`` reads it too) declares the deployments of
the materialize flow: schedule, parameters, tags, work pool, concurrency limit. ``headwater.yml``'s
``automations:`` says which notifiers hear about failed or crashed flow runs; they become Prefect
notification blocks and one automation, evaluated by the server itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from orchestration.core.errors import read_yaml
from orchestration.notify.alerts import Notifier, load_router
from orchestration.project import Project
from orchestration.settings import settings_document

ENTRYPOINT = "orchestration/prefect/flow.py:materialize_flow"
DEFAULT_POOL = "headwater-process"
AUTOMATION = "headwater: flow run failed"


class DeployConfigError(ValueError):
    """prefect.yaml or headwater.yml cannot be turned into deployments; the message names the file and entry."""


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of the materialize flow, as prefect.yaml declares it."""

    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    timezone: str = "UTC"
    work_pool: str = DEFAULT_POOL
    concurrency_limit: int | None = 1
    collision_strategy: str = "ENQUEUE"


def load_deployments(path: Path) -> list[DeploymentSpec]:
    """The materialize-flow deployments of a prefect.yaml.

    Raises:
        DeployConfigError: missing file, an entry without a name, a foreign entrypoint, an unknown parameter.
    """
    if not path.exists():
        raise DeployConfigError(f"{path}: no prefect.yaml; `headwater deploy` registers the deployments it declares")
    document = read_yaml(path, "fix the file (it declares the deployments)") or {}
    known = {
        "selection", "exclude", "target", "retries", "retry_delay", "full_refresh", "vars", "threads", "indirect_selection", "build_all",
    }  # fmt: skip
    problems: list[str] = []
    specs = []
    for index, entry in enumerate(document.get("deployments") or [], start=1):
        name = entry.get("name")
        where = f"{path}: deployments[{index}]" + (f" ({name})" if name else "")
        if not name:
            problems.append(f"{where}: needs a name")
            continue
        if entry.get("entrypoint") != ENTRYPOINT:
            problems.append(f"{where}: entrypoint must be {ENTRYPOINT}")
            continue
        parameters = dict(entry.get("parameters") or {})
        unknown = sorted(set(parameters) - known)
        if unknown:
            problems.append(f"{where}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
            continue
        schedules = entry.get("schedules") or []
        limit = entry.get("concurrency_limit")
        if isinstance(limit, dict):
            limit_value, strategy = limit.get("limit"), str(limit.get("collision_strategy", "ENQUEUE"))
        else:
            limit_value, strategy = limit, "ENQUEUE"
        specs.append(
            DeploymentSpec(
                name=str(name),
                description=str(entry.get("description") or ""),
                tags=tuple(entry.get("tags") or ()),
                parameters=parameters,
                cron=schedules[0].get("cron") if schedules else None,
                timezone=str(schedules[0].get("timezone", "UTC")) if schedules else "UTC",
                work_pool=str((entry.get("work_pool") or {}).get("name") or DEFAULT_POOL),
                concurrency_limit=int(limit_value) if limit_value else None,
                collision_strategy=strategy,
            )
        )
    if problems:
        raise DeployConfigError("\n".join(problems))
    if not specs:
        raise DeployConfigError(f"{path}: declares no deployment of {ENTRYPOINT}")
    return specs


def automation_notifiers(project: Project, path: Path) -> list[Notifier]:
    """The enabled notifiers that ``automations: flow-run-failed: notify:`` in headwater.yml names.

    Raises:
        DeployConfigError: a named notifier does not exist.
    """
    if not path.exists():
        return []
    document = settings_document(path, "fix the file (its automations: section)")
    names = ((document.get("automations") or {}).get("flow-run-failed") or {}).get("notify") or []
    router = load_router(path)
    unknown = [n for n in names if n not in router.notifiers]
    if unknown:
        raise DeployConfigError(f"{path}: automations.flow-run-failed names unknown notifier(s) {', '.join(unknown)}")
    return [router.notifiers[n] for n in names if router.notifiers[n].enabled]


@dataclass
class DeployResult:
    deployments: list[tuple[str, str]] = field(default_factory=list)  # (name, id)
    work_pools: list[str] = field(default_factory=list)
    target_locks: list[str] = field(default_factory=list)
    automation: str | None = None
    notifiers: list[str] = field(default_factory=list)


def register(
    project: Project,
    specs: Sequence[DeploymentSpec],
    *,
    target: str | None = None,
    work_pool: str | None = None,
    notifiers: Sequence[Notifier] = (),
    paused: bool = False,
) -> DeployResult:
    """Create or update the work pools, deployments and the failure automation on the configured server.

    ``target`` and ``work_pool`` override what prefect.yaml says (say, to deploy the same file to a test server);
    ``paused`` registers the schedules paused (runs start only when triggered).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.exceptions import ObjectAlreadyExists

    from orchestration.prefect.flow import materialize_flow, target_lock_name

    result = DeployResult()
    pools = sorted({work_pool or s.work_pool for s in specs})
    targets = sorted({str(target or s.parameters.get("target") or "dev") for s in specs})
    with get_client(sync_client=True) as client:
        for pool in pools:
            try:
                client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            except ObjectAlreadyExists:
                pass
            result.work_pools.append(pool)
        for name in targets:  # one run at a time per target, whichever deployment starts it
            client.upsert_global_concurrency_limit_by_name(target_lock_name(name), 1)
            result.target_locks.append(target_lock_name(name))
    flow = materialize_flow.from_source(source=str(project.root), entrypoint=ENTRYPOINT)
    for spec in specs:
        parameters = dict(spec.parameters)
        if target:
            parameters["target"] = target
        limit = None
        if spec.concurrency_limit:
            limit = ConcurrencyLimitConfig(
                limit=spec.concurrency_limit, collision_strategy=ConcurrencyLimitStrategy(spec.collision_strategy)
            )
        # flow.deploy() first lists the pool's online workers, a request Prefect 3.8's server rejects (422: its
        # client sends limit=None); to_deployment().apply() registers the same deployment without that call.
        # Prefect's sync-or-async methods are typed as possibly coroutines; called from sync code they return values
        deployment: Any = cast(Any, flow).to_deployment(
            name=spec.name,
            work_pool_name=work_pool or spec.work_pool,
            cron=spec.cron,
            parameters=parameters,
            tags=list(spec.tags),
            description=spec.description,
            concurrency_limit=limit,
            job_variables={"working_dir": str(project.root)},
            paused=paused,
        )
        deployment_id = deployment.apply()
        result.deployments.append((spec.name, str(deployment_id)))
    if notifiers:
        result.automation = _register_automation([i for _, i in result.deployments], notifiers, result.notifiers)
    return result


def _register_automation(deployment_ids: Sequence[str], notifiers: Sequence[Notifier], result_names: list[str]) -> str:
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    actions: list[Any] = []
    for notifier in notifiers:
        block = CustomWebhookNotificationBlock(  # type: ignore[call-arg]  # headers and cookies have defaults
            name=f"headwater-{notifier.name}",
            url=notifier.url or "",
            json_data=_automation_payload(notifier),
            timeout=10,
        )
        block_id: Any = block.save(f"headwater-{notifier.name}", overwrite=True)
        actions.append(
            SendNotification(
                block_document_id=block_id,
                subject="Headwater flow run {{ flow_run.name }} {{ flow_run.state.name }}",
                body=(
                    "Deployment {{ deployment.name }}: flow run {{ flow_run.name }} ended {{ flow_run.state.name }}"
                    " ({{ flow_run.state.message }}). Parameters: {{ flow_run.parameters }}. {{ flow_run|ui_url }}"
                ),
            )
        )
        result_names.append(notifier.name)
    try:
        existing: Any = Automation.read(name=AUTOMATION)
        existing.delete()
    except ValueError:
        pass  # Automation.read raises ValueError when none has that name
    automation: Any = Automation(
        name=AUTOMATION,
        description="A Headwater deployment's flow run failed or crashed (registered by `headwater deploy`).",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match_related={"prefect.resource.id": [f"prefect.deployment.{i}" for i in deployment_ids]},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=actions,
    ).create()
    return str(automation.id)


def _automation_payload(notifier: Notifier) -> dict[str, Any]:
    if notifier.type == "slack":
        return {"text": ":red_circle: {{subject}}\n{{body}}"}
    if notifier.type == "pagerduty":
        return {
            "routing_key": notifier.routing_key,
            "event_action": "trigger",
            "payload": {"summary": "{{subject}}", "source": "headwater/prefect", "severity": "error"},
            "custom_details": {"body": "{{body}}"},
        }
    return {"source": "headwater", "kind": "flow_run_failed", "subject": "{{subject}}", "body": "{{body}}"}


def prefect_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
