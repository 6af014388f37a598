"""Prefect internals Headwater relies on, in one place; ``tests/test_compat.py`` fails when Prefect moves them.

The task-run mirror records work that runs outside Prefect's task engine (dbt nodes, dlt tables) by emitting the
same state-change events the engine emits, through ``prefect.utilities.engine.emit_task_run_state_change_event``
(not part of Prefect's documented API), for client-side ``TaskRun`` objects it builds itself.
"""

from __future__ import annotations

from prefect.utilities.engine import emit_task_run_state_change_event

EMIT_PARAMETERS = ("task_run", "initial_state", "validated_state", "follows")
"""The keyword arguments the mirror passes to ``emit_task_run_state_change_event``."""

__all__ = ["EMIT_PARAMETERS", "emit_task_run_state_change_event"]
