"""The dbt segment of a run: one in-process ``dbt build`` of exactly the planned nodes, then retry rounds.

Every model, seed, snapshot, test, unit test, saved query and exposure gets its own Prefect task run through
:class:`TaskRecorder`; dbt's callbacks only enqueue. After the build, every failed node that still has retry
budget is rebuilt, together with its skipped descendants, in **one** more invocation; that repeats while budget
remains, and never reruns a node that a final failure (a node out of budget, a failed test) holds back.
dbt's own run results are authoritative: every node they report is accounted for, planned or not (hooks).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from assets import AssetGraph, AssetKey
from assets.checks import CheckOutcome, blocked_by
from orchestration.dbt import executor
from orchestration.engine.outcomes import Outcome
from orchestration.project import Project
from orchestration.warehouse.targets import Target

FAILED = ("error", "fail", "runtime error", "partial success")
PASSED = ("success", "pass", "warn", "no-op")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(message: str) -> str:
    """dbt's message without terminal colour codes (a unit test's diff comes coloured)."""
    return _ANSI.sub("", message or "")


if TYPE_CHECKING:
    from orchestration.engine.outcomes import TaskRecorder


class WarehouseLost(RuntimeError):
    """dbt could not even start an invocation: the warehouse stopped answering, and kept not answering for the
    whole retry budget."""


@dataclass
class NodeOutcome:
    """The final word on one dbt node after all attempts; ``planned`` is False for what dbt ran on its own
    (hooks) or selected beyond Headwater's plan."""

    unique_id: str
    status: str = "pending"
    attempts: int = 0
    message: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    rows: int | None = None
    failures: int | None = None
    planned: bool = True

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


NO_RETRY = DbtNodePolicy(0, 0)


class DbtSegment:
    """Runs the dbt part of a plan: the build, the retry rounds, the per-node outcomes."""

    def __init__(
        self,
        project: Project,
        target: Target,
        graph: AssetGraph,
        mirror: TaskRecorder,
        policies: Mapping[str, DbtNodePolicy],
        *,
        options: executor.DbtOptions = executor.NO_OPTIONS,
        on_progress: Callable[[str, str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        runner: Callable[..., executor.BuildResult] | None = None,
    ) -> None:
        self.project = project
        self.runner = runner or executor.build
        """Runs ``dbt build`` (``executor.build``'s signature); a test hands in one that replays recorded results."""
        self.target = target
        self.graph = graph
        self.mirror = mirror
        self.policies = policies
        self.options = options
        self.outcomes: dict[str, NodeOutcome] = {}
        self.on_progress = on_progress
        self.sleep = sleep
        self.rounds = 0
        self.extra: tuple[str, ...] = ()
        """Extra ``dbt build`` arguments for every invocation."""
        self._keys = graph.by_unique_id()
        self._checks = graph.checks_by_id()
        self._running: frozenset[str] = frozenset()
        self._doomed: set[str] = set()
        self._opened: set[str] = set()
        self._started: dict[str, datetime] = {}
        self._final: set[str] = set()
        self.notes: list[str] = []

    def _policy(self, unique_id: str) -> DbtNodePolicy:
        return self.policies.get(unique_id, NO_RETRY)

    # -- dbt callbacks (dbt's threads: record and enqueue only) ----------------------------------------
    def _on_event(self, event: executor.NodeEvent) -> None:
        if event.unique_id not in self._running:
            return  # dbt compiles ephemeral models (and may start nodes it will not report): results decide
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
            self.mirror.finish(event.unique_id, Outcome.SKIPPED, "an upstream node failed", now)
            return
        if event.unique_id not in self._opened:
            outcome.attempts += 1
            self._opened.add(event.unique_id)
            self.mirror.open(event.unique_id, self._started.get(event.unique_id, now))
        outcome.status = status
        outcome.started_at = outcome.started_at or self._started.get(event.unique_id, now)
        outcome.ended_at = now
        if status in FAILED:
            self._doomed |= self.graph.node_dag.downstream([event.unique_id])
            kind = (
                Outcome.AWAITING_RETRY if outcome.attempts <= self._policy(event.unique_id).retries else Outcome.FAILED
            )
            self.mirror.finish(event.unique_id, kind, plain(event.message) or status, now)
        else:
            said = "" if status in ("success", "pass") else status
            if status == "success" and event.rows is not None and self._writes_rows(event.unique_id):
                said = f"{event.rows} rows"  # the task run's state message and its log line say what it wrote
            self.mirror.finish(event.unique_id, Outcome.SUCCESS, said, now)
        if self.on_progress:
            self.on_progress(event.unique_id, status)

    def _writes_rows(self, unique_id: str) -> bool:
        """Whether the adapter's row count means rows written: not for a view (Snowflake answers 1 for the statement
        that creates it)."""
        key = self._keys.get(unique_id)
        return key is None or self.graph.get(key).config.get("materialized") not in ("view", "ephemeral")

    # -- rounds --------------------------------------------------------------------------------------
    def _invoke(self, nodes: frozenset[str], whole_project: bool) -> executor.BuildResult:
        self._doomed, self._opened, self._running = set(), set(), nodes
        self.rounds += 1
        result = self.runner(
            self.project,
            self.target,
            None if whole_project else nodes,
            extra=self.extra,
            options=self.options,
            on_event=self._on_event,
        )
        if result.waited:
            self.notes.append(f"dbt waited {result.waited:.0f} s for another process to release the DuckDB file")
        now = datetime.now(UTC)
        reported = set()
        for node in result.results:  # results are authoritative: fill in what callbacks could not say
            reported.add(node.unique_id)
            planned = node.unique_id in nodes
            outcome = self.outcomes.setdefault(node.unique_id, NodeOutcome(node.unique_id, planned=planned))
            outcome.planned = outcome.planned and planned
            outcome.status = node.status
            outcome.message = plain(node.message)
            outcome.ended_at = outcome.ended_at or now
            if node.rows_affected is not None and node.rows_affected >= 0 and self._writes_rows(node.unique_id):
                outcome.rows = node.rows_affected
            outcome.failures = node.failures
            if node.unique_id not in self._opened:  # no node events (hooks): the result opens and closes it
                self._mirror_result(outcome, now)
        for unique_id in sorted(nodes - reported):
            outcome = self.outcomes.setdefault(unique_id, NodeOutcome(unique_id))
            outcome.status, outcome.attempts = "error", max(outcome.attempts, 1)
            outcome.message = "dbt did not run this node although Headwater selected it (no result reported)"
            self.mirror.finish(unique_id, Outcome.FAILED, outcome.message, now)
        return result

    def _mirror_result(self, outcome: NodeOutcome, now: datetime) -> None:
        if outcome.status == "skipped":
            self.mirror.finish(outcome.unique_id, Outcome.SKIPPED, "an upstream node failed", now)
            return
        # no node events for it: a planned node's every result is one attempt; a hook runs once per invocation
        outcome.attempts = outcome.attempts + 1 if outcome.planned else 1
        outcome.started_at = outcome.started_at or now
        self.mirror.open(outcome.unique_id, outcome.started_at)
        final = Outcome.FAILED if outcome.failed else Outcome.SUCCESS
        self.mirror.finish(outcome.unique_id, final, outcome.message if outcome.failed else "", now)

    def retryable(self) -> list[str]:
        return sorted(
            uid
            for uid, o in self.outcomes.items()
            if o.failed and o.planned and uid not in self._final and o.attempts <= self._policy(uid).retries
        )

    def held_back(self) -> set[str]:
        """Nodes that final failures (no budget left) stop, the way :func:`assets.checks.blocked_by` decides."""
        failed: dict[AssetKey, str] = {}
        checks: list[CheckOutcome] = []
        for uid, o in self.outcomes.items():
            if not o.failed or (uid not in self._final and o.attempts <= self._policy(uid).retries):
                continue
            if uid in self._checks:
                checks.append(CheckOutcome(self._checks[uid], o.status))
            elif uid in self._keys:
                failed[self._keys[uid]] = "failed"
        blocked = set(blocked_by(self.graph, checks, failed))
        return {uid for uid in self.outcomes if self._touches(uid, blocked)}

    def _touches(self, unique_id: str, blocked: set[AssetKey]) -> bool:
        if unique_id in self._keys:
            return self._keys[unique_id] in blocked
        check = self._checks.get(unique_id)
        return check is not None and any(a in blocked for a in check.assets)

    def _invoke_retrying(self, nodes: frozenset[str], whole_project: bool) -> None:
        """``_invoke``, again after the retry delay while dbt cannot start because the warehouse is unreachable
        (at most the largest retry budget of the run's nodes)."""
        budget = max((p.retries for p in self.policies.values()), default=0)
        delay = max((p.retry_delay_seconds for p in self.policies.values()), default=0)
        for attempt in range(budget + 1):
            try:
                self._invoke(nodes, whole_project)
                return
            except executor.WarehouseConnectionError as exc:
                if attempt == budget:
                    raise WarehouseLost(exc.reason) from None
            if delay > 0:
                self.sleep(delay)

    def run(self, nodes: Iterable[str], *, whole_project: bool = False) -> dict[str, NodeOutcome]:
        """Build ``nodes``, then retry failed nodes with budget (and their skipped descendants) until none is
        left. ``whole_project`` lets dbt select everything itself (the plan is the whole project)."""
        self._invoke_retrying(frozenset(nodes), whole_project)
        while True:
            retry = self.retryable()
            if not retry:
                break
            skipped = {uid for uid, o in self.outcomes.items() if o.status == "skipped" and o.planned}
            rerun = (set(retry) | (self.graph.node_dag.downstream(retry) & skipped)) - self.held_back()
            if not rerun:
                break
            delay = max(self._policy(uid).retry_delay_seconds for uid in retry)
            if delay > 0:
                self.sleep(delay)
            self._invoke_retrying(frozenset(rerun), False)
        for uid in self.retryable():  # budget left, but a final failure holds it back: its last attempt stands
            self._final.add(uid)
            self.mirror.finish(uid, Outcome.FAILED, self.outcomes[uid].message or self.outcomes[uid].status)
        return self.outcomes
