"""Prefect internals Headwater relies on, in one place; ``tests/test_compat.py`` fails when Prefect moves them.

The task-run mirror records work that runs outside Prefect's task engine (dbt nodes, dlt tables) by emitting the
same state-change events the engine emits, through ``prefect.utilities.engine.emit_task_run_state_change_event``
(not part of Prefect's documented API), for client-side ``TaskRun`` objects it builds itself.

Before the CLI's process ends it drains Prefect's event and log queues: ``EventsWorker.drain_all`` and
``APILogWorker.drain_all`` (class methods of Prefect's queue services, undocumented), bounded by a timeout.
"""

from __future__ import annotations

from prefect.utilities.engine import emit_task_run_state_change_event

EMIT_PARAMETERS = ("task_run", "initial_state", "validated_state", "follows")
"""The keyword arguments the mirror passes to ``emit_task_run_state_change_event``."""


def drain_event_and_log_queues(timeout: float) -> None:
    """Send what Prefect's event and log workers still hold, waiting at most ``timeout`` seconds for each."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    EventsWorker.drain_all(timeout=timeout)
    APILogWorker.drain_all(timeout=timeout)


__all__ = ["EMIT_PARAMETERS", "drain_event_and_log_queues", "emit_task_run_state_change_event"]
