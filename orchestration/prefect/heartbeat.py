"""Flow-run heartbeats that stop the moment the run's work ends.

Prefect's engine sends a flow run's heartbeats (``prefect.flow-run.heartbeat``, what its crashed-run detection
watches) from a thread that sleeps in one-second steps, and joins that thread when the run ends: every CLI run waited
up to a second after its last node (measured: ~1 s of a 200-model `materialize --all`'s tail, 3-6% of its time). The CLI
turns Prefect's off for its own runs (``cli_heartbeats``, the interval the user configured is kept) and the flow
sends the same event, with the same resource and related resources, from a thread that wakes on an event
(``flow_heartbeats``). Runs Prefect starts (deployments, ``serve``) keep Prefect's own heartbeats.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_interval: contextvars.ContextVar[int | None] = contextvars.ContextVar("headwater_heartbeat_seconds", default=None)


@contextmanager
def cli_heartbeats() -> Iterator[None]:
    """Around a flow call: Prefect's heartbeat thread off, the configured interval (if any) handed to the flow."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

    seconds = get_current_settings().flows.heartbeat_frequency
    if seconds is None:  # the user turned heartbeats off: none from either side
        yield
        return
    token = _interval.set(seconds)
    try:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield
    finally:
        _interval.reset(token)


def heartbeat_event(flow_run: Any, flow_name: str) -> dict[str, Any]:
    """``emit_event``'s arguments for one heartbeat of ``flow_run``: what Prefect's engine sends."""
    import prefect

    related = []
    if flow_run.flow_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.flow.{flow_run.flow_id}",
                "prefect.resource.role": "flow",
                "prefect.resource.name": flow_name,
            }
        )
    if flow_run.deployment_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}",
                "prefect.resource.role": "deployment",
            }
        )
    related += [
        {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
        for tag in sorted(flow_run.tags or [])
    ]
    return {
        "event": "prefect.flow-run.heartbeat",
        "resource": {
            "prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
            "prefect.resource.name": flow_run.name or "",
            "prefect.version": prefect.__version__,
        },
        "related": related,
    }


@contextmanager
def flow_heartbeats() -> Iterator[None]:
    """Inside the flow: when ``cli_heartbeats`` took them over, ``heartbeats`` for the current flow run."""
    seconds = _interval.get()
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if seconds is None or context is None or context.flow_run is None:
        yield
        return
    from prefect.events import emit_event

    event = heartbeat_event(context.flow_run, context.flow.name if context.flow else "")
    with heartbeats(event, seconds, emit_event):
        yield


@contextmanager
def heartbeats(event: dict[str, Any], seconds: float, emit: Callable[..., Any]) -> Iterator[threading.Thread]:
    """``emit(**event)`` now and every ``seconds`` from a thread that has ended when the block has."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                emit(**event)
            except Exception:  # a missed heartbeat is the server's to notice, never the run's failure
                pass
            if stop.wait(seconds):
                return

    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(beat,), name="headwater-heartbeat", daemon=True
    )
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        # at once, unless a send hangs: then the daemon thread ends after it and the run does not wait
        thread.join(timeout=5)
