"""The dbt segment of a run: one in-process ``dbt build``, then retry rounds for failed nodes with budget.

Every model, seed, snapshot and test gets its own Prefect task run through :class:`TaskRunMirror`; dbt's
callbacks only enqueue. After the main build, every failed node that still has retry budget is rebuilt,
together with its skipped descendants, in **one** more invocation; that repeats while budget remains.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestration import dbt_executor
from orchestration.project import Project
from orchestration.targets import Target
from orchestration.task_mirror import Outcome, TaskRunMirror

FAILED = ("error", "fail", "runtime error")
_LOST = (
    "connection to server",
    "server closed the connection",
    "connection refused",
    "could not connect",
    "terminating connection",
    "connection already closed",
    "connection reset",
    "ssl connection has been closed",
    "no connection to the server",
)


def lost_connection(message: str) -> str | None:
    """The line of a dbt/driver error ``message`` that says the warehouse connection failed, else None."""
    for line in message.splitlines():
        if any(marker in line.lower() for marker in _LOST):
            return line.strip()
    return None


class WarehouseLost(RuntimeError):
    """dbt could not even start an invocation: the warehouse stopped answering, and kept not answering for the
    whole retry budget."""


PASSED = ("success", "pass", "warn", "no-op")


@dataclass
class NodeOutcome:
    """The final word on one dbt node after all attempts."""

    unique_id: str
    status: str = "pending"
    attempts: int = 0
    message: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    rows: int | None = None
    failures: int | None = None
    history: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    @property
    def succeeded(self) -> bool:
        return self.status in PASSED


@dataclass(frozen=True)
class DbtNodePolicy:
    retries: int
    retry_delay_seconds: float


def descendants(child_map: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        for child in child_map.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


class DbtSegment:
    """Runs the dbt part of a plan: the build, the retry rounds, the per-node outcomes."""

    def __init__(
        self,
        project: Project,
        target: Target,
        manifest: Mapping[str, Any],
        mirror: TaskRunMirror,
        policies: Mapping[str, DbtNodePolicy],
        *,
        on_progress: Callable[[str, str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.project = project
        self.target = target
        self.manifest = manifest
        self.mirror = mirror
        self.policies = policies
        self.child_map: Mapping[str, list[str]] = manifest.get("child_map") or {}
        self.outcomes: dict[str, NodeOutcome] = {}
        self.on_progress = on_progress
        self.sleep = sleep
        self.rounds = 0
        self._doomed: set[str] = set()
        self._opened: set[str] = set()
        self._started: dict[str, datetime] = {}
        self.extra: tuple[str, ...] = ()
        """Extra ``dbt build`` arguments for every invocation (say, ``--indirect-selection buildable``)."""

    # -- dbt callbacks (dbt's threads: record and enqueue only) ----------------------------------------
    def _on_event(self, event: dbt_executor.NodeEvent) -> None:
        if event.unique_id.startswith("exposure."):
            return  # exposures are documentation: nothing runs, nothing to track
        now = datetime.now(UTC)
        outcome = self.outcomes.setdefault(event.unique_id, NodeOutcome(event.unique_id))
        if event.kind == "start":
            self._started[event.unique_id] = now
            if event.unique_id not in self._doomed:
                outcome.attempts += 1
                self._opened.add(event.unique_id)
                self.mirror.open(event.unique_id, now)
            return
        status = event.status
        if status == "skipped":
            if event.unique_id in self._opened:
                outcome.attempts -= 1  # dbt "started" it only to skip it
            outcome.status = "skipped"
            outcome.history.append("skipped")
            self.mirror.finish(event.unique_id, Outcome.SKIPPED, "an upstream node failed", now)
            return
        if event.unique_id not in self._opened:
            outcome.attempts += 1
            self.mirror.open(event.unique_id, self._started.get(event.unique_id, now))
        outcome.status = status
        outcome.history.append(status)
        outcome.started_at = outcome.started_at or self._started.get(event.unique_id, now)
        outcome.ended_at = now
        if status in FAILED:
            self._doomed |= descendants(self.child_map, [event.unique_id])
            budget = self.policies.get(event.unique_id, DbtNodePolicy(0, 0)).retries
            kind = Outcome.AWAITING_RETRY if outcome.attempts <= budget else Outcome.FAILED
            self.mirror.finish(event.unique_id, kind, event.message or status, now)
        else:
            self.mirror.finish(event.unique_id, Outcome.SUCCESS, "" if status in ("success", "pass") else status, now)
        if self.on_progress:
            self.on_progress(event.unique_id, status)

    # -- rounds --------------------------------------------------------------------------------------
    def _invoke(self, selectors: list[str] | None) -> dbt_executor.BuildResult:
        self._doomed = set()
        self._opened = set()
        self.rounds += 1
        result = dbt_executor.build(self.project, self.target, selectors, extra=self.extra, on_event=self._on_event)
        for node in result.results:  # results are authoritative: fill in what callbacks could not say
            if node.unique_id.startswith("exposure."):
                continue
            outcome = self.outcomes.setdefault(node.unique_id, NodeOutcome(node.unique_id))
            outcome.status = node.status
            outcome.message = node.message
            if node.rows_affected is not None and node.rows_affected >= 0:
                outcome.rows = node.rows_affected
            outcome.failures = node.failures
        return result

    def retryable(self) -> list[str]:
        return sorted(
            uid
            for uid, o in self.outcomes.items()
            if o.failed and o.attempts <= self.policies.get(uid, DbtNodePolicy(0, 0)).retries
        )

    def _invoke_retrying(self, selectors: list[str] | None) -> None:
        """``_invoke``, again after the retry delay while dbt cannot start because the warehouse is unreachable
        (at most the largest retry budget of the run's nodes)."""
        budget = max((p.retries for p in self.policies.values()), default=0)
        delay = max((p.retry_delay_seconds for p in self.policies.values()), default=0)
        for attempt in range(budget + 1):
            try:
                self._invoke(selectors)
                return
            except dbt_executor.DbtInvocationError as exc:
                reason = lost_connection(str(exc))
                if reason is None:
                    raise
                if attempt == budget:
                    raise WarehouseLost(reason) from None
            if delay > 0:
                self.sleep(delay)

    def run(self, selectors: list[str] | None) -> dict[str, NodeOutcome]:
        """Build, then retry failed nodes with budget (and their skipped descendants) until none is left."""
        self._invoke_retrying(selectors)
        while True:
            retry = self.retryable()
            if not retry:
                break
            skipped = {uid for uid, o in self.outcomes.items() if o.status == "skipped"}
            rerun = set(retry) | (descendants(self.child_map, retry) & skipped)
            delay = max(self.policies.get(uid, DbtNodePolicy(0, 0)).retry_delay_seconds for uid in retry)
            if delay > 0:
                self.sleep(delay)
            self._invoke_retrying(sorted(self._selector(uid) for uid in rerun))
        return self.outcomes

    def _selector(self, unique_id: str) -> str:
        node = (self.manifest.get("nodes") or {}).get(unique_id) or {}
        return ".".join(node.get("fqn") or [unique_id.split(".")[-1]])
