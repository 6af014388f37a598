"""What the task-run mirror is told, with no Prefect import: a planned task, and how a node's attempt ended.

Kept apart from ``task_mirror`` (which imports Prefect) so the engine, the report and the read-only commands that
import them do not pay for Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass


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
