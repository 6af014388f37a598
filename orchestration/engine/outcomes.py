"""What the engine tells whoever records its work, with no Prefect import: a planned task, how a node's attempt
ended, and the :class:`TaskRecorder` the engine is handed (Prefect's task-run mirror in a flow, anything with the
same two methods in a test).

Kept apart from ``orchestration.prefect.task_mirror`` (which imports Prefect) so the engine, the report and the
read-only commands that import them do not pay for Prefect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class MirroredTask:
    """What a mirrored task run is: its node id, display name, tags, retry budget and upstream nodes."""

    node_id: str
    name: str
    tags: tuple[str, ...] = ()
    retries: int = 0
    upstream: tuple[str, ...] = ()


class Outcome:
    """Final or intermediate outcomes a node can report."""

    SUCCESS = "success"
    FAILED = "failed"  # final failure
    AWAITING_RETRY = "awaiting_retry"  # failed, will run again in the next retry round
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"  # a signal stopped the run before the node finished
    CACHED = "cached"  # fresh: not run, its last result stands (Prefect's Cached, a Completed state)


class TaskRecorder(Protocol):
    """Records each planned node's attempts (``orchestration.prefect.task_mirror.TaskRunMirror`` in a flow). Both
    calls only enqueue: the engine's threads never wait on the recorder."""

    def open(self, node_id: str, at: datetime | None = None) -> None:
        """The node started."""

    def finish(self, node_id: str, outcome: str, message: str = "", at: datetime | None = None) -> None:
        """The node's attempt ended with ``outcome`` (an :class:`Outcome` value)."""


_DBT_WRAPPER = re.compile(r"^[\w ]*Error in \w+ \S+ \(.*\)$")
"""dbt's first line of a node's error, ``Runtime Error in model orders (models/orders.sql)``: where, not what."""


def headline(message: str) -> str:
    """The line of a node's error that says what went wrong: the first, or the one after dbt's "X Error in model m
    (path)" line (``Invalid Input Error: ...``); at most 500 characters."""
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    if len(lines) > 1 and _DBT_WRAPPER.match(lines[0]):
        return lines[1][:500]
    return lines[0][:500] if lines else ""
