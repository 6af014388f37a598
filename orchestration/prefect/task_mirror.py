"""Recording work that runs outside Prefect's task engine (dbt nodes, dlt tables) as Prefect task runs.

Prefect 3 records task runs from the events its task engine emits (``prefect.task-run.<State>``); this
module emits the same events for each asset, from **one** background thread. Callers only enqueue
(``open``/``finish`` are a queue put), so dbt's threads never wait on Prefect, and Prefect's settings are
built once for that thread instead of once per node thread.

One event per node where it can be: a node's Running state is emitted only once it has run for
:data:`RUNNING_AFTER` seconds (so a long model shows as Running in Prefect's UI while it runs); a node that ends
sooner is recorded by its final state alone, which carries its start time, end time and run time. The Prefect
server's cost is per event (~11 ms of CPU here), and most dbt nodes end within a second.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect.client.schemas.objects import TaskRun, TaskRunPolicy, TaskRunResult
from prefect.events import Event
from prefect.states import AwaitingRetry, Cancelled, Completed, Failed, Pending, Retrying, Running, State

from orchestration.engine.outcomes import MirroredTask, Outcome, headline
from orchestration.engine.worker import QueueWorker
from orchestration.prefect._compat import emit_task_run_state_change_event

__all__ = ["MirroredTask", "Outcome", "TaskRunMirror"]

logger = logging.getLogger(__name__)

_TASK_LOG = logging.getLogger("headwater.runs")
"""The run's and each task run's own lines, sent to Prefect's logs API only (the terminal has Headwater's summary)."""


def _task_log() -> logging.Logger:
    if not _TASK_LOG.handlers:
        from prefect.logging.handlers import APILogHandler

        _TASK_LOG.addHandler(APILogHandler())
        _TASK_LOG.propagate = False
        _TASK_LOG.setLevel(logging.INFO)
    return _TASK_LOG


def api_log(
    flow_run_id: uuid.UUID, level: int, text: str, at: datetime | None = None, task_run_id: uuid.UUID | None = None
) -> None:
    """One line in a flow run's (or one of its task runs') logs in Prefect's UI, through Prefect's logs API (batched
    by Prefect's log worker; the CLI drains it before it exits). Not printed: the terminal has the summary."""
    extra = {"flow_run_id": str(flow_run_id), "task_run_id": str(task_run_id) if task_run_id else None}
    task_log = _task_log()
    record = task_log.makeRecord(task_log.name, level, __file__, 0, "%s", (text,), None, extra=extra)
    record.created = (at or datetime.now(UTC)).timestamp()
    task_log.handle(record)


RUNNING_AFTER = 1.0
"""Seconds a node runs before its Running state is recorded (a node that ends sooner gets one event, not two)."""

_LOG_LEVEL = {
    Outcome.FAILED: logging.ERROR,
    Outcome.AWAITING_RETRY: logging.WARNING,
    Outcome.SKIPPED: logging.WARNING,
    Outcome.INTERRUPTED: logging.WARNING,
}


class TaskRunMirror:
    """Task runs for planned nodes, created lazily and updated from one thread.

    Task run ids are assigned up front so that a node's upstream edges (``wait_for``) can point at task
    runs that have not started yet.
    """

    def __init__(self, flow_run_id: uuid.UUID | None, tasks: Iterable[MirroredTask]) -> None:
        self.flow_run_id = flow_run_id
        self.tasks: dict[str, MirroredTask] = {t.node_id: t for t in tasks}
        self.ids: dict[str, uuid.UUID] = {node: uuid.uuid4() for node in sorted(self.tasks)}
        self._runs: dict[str, TaskRun] = {}
        self._last_event: dict[str, Event | None] = {}
        self._started: dict[str, State] = {}  # attempts begun whose Running (Retrying) state is not emitted yet
        self.errors: list[str] = []
        self.events_sent = 0
        self._worker: QueueWorker[tuple[str, str, datetime, str, Any]] = QueueWorker(
            "headwater-mirror", self._record, contextvars.copy_context(), idle=self._announce_long, idle_every=0.25
        )

    # -- producer side: called from dbt's threads, must stay cheap ------------------------------------
    def open(self, node_id: str, at: datetime | None = None) -> None:
        """The node started (an attempt begins)."""
        self._worker.put(("open", node_id, at or datetime.now(UTC), "", None))

    def finish(self, node_id: str, outcome: str, message: str = "", at: datetime | None = None) -> None:
        """The node's attempt ended with ``outcome`` (an :class:`Outcome` value)."""
        self._worker.put(("finish", node_id, at or datetime.now(UTC), message, outcome))

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Emit ``events`` (``emit_event`` keyword arguments: the run's asset events) from the mirror thread, after
        every task-run state queued before them."""
        if events:
            self._worker.put(("events", "", datetime.now(UTC), "", events))

    def close(self, timeout: float = 60.0) -> None:
        """Record what is queued (at most ``timeout`` seconds) and stop the thread; what was not recorded in time is
        named in ``errors``. An attempt that never ended is recorded as Running."""
        self._worker.put(("announce", "", datetime.now(UTC), "", None))
        self._worker.close(timeout)
        self.errors.extend(self._worker.errors)

    def __enter__(self) -> TaskRunMirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- consumer side: the mirror thread --------------------------------------------------------------
    def _record(self, item: tuple[str, str, datetime, str, Any]) -> None:
        kind, node_id, at, message, outcome = item
        try:
            if kind == "announce":
                self._announce_long(everything=True)
            elif kind == "events":
                self._emit_events(outcome)
            elif kind == "open":
                self._on_open(node_id, at)
            else:
                self._on_finish(node_id, at, outcome or Outcome.FAILED, message)
        except Exception as exc:  # recording must never break the run; the failure is reported at the end
            self.errors.append(f"{node_id}: {type(exc).__name__}: {exc}")
            logger.warning("could not record task run for %s: %s", node_id, exc)
        if self._started and kind != "announce":
            self._announce_long()  # a busy queue never idles: long attempts are announced between items too

    def _announce_long(self, everything: bool = False) -> None:
        """Emit the Running state of every attempt begun :data:`RUNNING_AFTER` seconds ago or more (``everything``:
        of every attempt begun), with its real start time."""
        horizon = datetime.now(UTC) - timedelta(seconds=RUNNING_AFTER)
        for node_id, state in list(self._started.items()):
            if everything or state.timestamp <= horizon:
                try:
                    self._announce(node_id)
                except Exception as exc:  # recording must never break the run; reported at the end
                    self.errors.append(f"{node_id}: {type(exc).__name__}: {exc}")
                    logger.warning("could not record task run for %s: %s", node_id, exc)

    def _announce(self, node_id: str) -> None:
        state = self._started.pop(node_id)
        run = self._runs[node_id]
        self._emit(node_id, run.state, state)
        self._log(node_id, logging.INFO, f"{node_id}: started (attempt {run.run_count})", state.timestamp)

    def _task_run(self, node_id: str, at: datetime, *, announce: bool = True) -> TaskRun:
        """The node's task run, created on first use; ``announce`` emits its Pending state (skipped when the
        very next event is Running, which creates the record just as well with one event fewer)."""
        run = self._runs.get(node_id)
        if run is not None:
            return run
        spec = self.tasks.get(node_id) or MirroredTask(node_id=node_id, name=node_id)  # a node dbt added itself
        self.ids.setdefault(node_id, uuid.uuid4())
        pending: State = Pending(timestamp=at)
        run = TaskRun(
            id=self.ids[node_id],
            name=spec.name,
            flow_run_id=self.flow_run_id,
            task_key=f"headwater::{node_id}",
            dynamic_key="0",
            empirical_policy=TaskRunPolicy(retries=spec.retries),
            tags=list(spec.tags),
            task_inputs={"wait_for": [TaskRunResult(id=self.ids[u]) for u in spec.upstream if u in self.ids]},
            expected_start_time=at,  # type: ignore[arg-type]  # Prefect's DateTime is a datetime at run time
            state=pending,
            state_id=pending.id,
            state_type=pending.type,
            state_name=pending.name,
            run_count=0,
        )
        self._runs[node_id] = run
        if announce:
            self._emit(node_id, None, pending)
        else:
            run.state = None  # the first emitted event has no initial state
        return run

    def _emit(self, node_id: str, previous: State | None, state: State) -> None:
        run = self._runs[node_id]
        state.state_details.task_run_id = run.id
        state.state_details.flow_run_id = self.flow_run_id
        if previous is not None and state.timestamp <= previous.timestamp:
            state.timestamp = previous.timestamp + timedelta(microseconds=1)
        run.state, run.state_id, run.state_type, run.state_name = state, state.id, state.type, state.name
        self._last_event[node_id] = emit_task_run_state_change_event(
            task_run=run,
            initial_state=previous,
            validated_state=state,
            follows=self._last_event.get(node_id),
        )

    def _emit_events(self, events: list[dict[str, Any]]) -> None:
        from prefect.events import emit_event

        for event in events:
            if emit_event(**event) is not None:
                self.events_sent += 1

    def _log(self, node_id: str, level: int, text: str, at: datetime) -> None:
        """One line in the node's task run logs."""
        if self.flow_run_id is not None:
            api_log(self.flow_run_id, level, text, at, task_run_id=self._runs[node_id].id)

    def _on_open(self, node_id: str, at: datetime) -> None:
        """The attempt begins; its Running (Retrying) state waits for :meth:`_announce_long` or the final state."""
        run = self._task_run(node_id, at, announce=False)
        self._started.pop(node_id, None)  # an attempt that began again without ending: the new one counts
        run.run_count += 1
        if run.start_time is None:
            run.start_time = at  # type: ignore[assignment]  # Prefect's DateTime is a datetime at run time
        run.end_time = None
        self._started[node_id] = Retrying(timestamp=at) if run.run_count > 1 else Running(timestamp=at)

    def _on_finish(self, node_id: str, at: datetime, outcome: str, message: str) -> None:
        # a node that never started (Cached, Skipped) is created by its final state: one event, not two (the
        # server's cost is per event: ~1,000 fresh assets of an idle rerun are 1,000 events)
        run = self._task_run(node_id, at, announce=False)
        begun = self._started.get(node_id)
        if begun is not None and at - begun.timestamp >= timedelta(seconds=RUNNING_AFTER):
            self._announce(node_id)  # it ran long enough to be seen running, even if the queue was behind
        unannounced = self._started.pop(node_id, None)  # ended within RUNNING_AFTER: one event, the final state
        previous = run.state
        began = unannounced or (previous if previous is not None and previous.is_running() else None)
        if began is not None:
            run.total_run_time += at - began.timestamp
        state: State
        if outcome == Outcome.SUCCESS:
            state = Completed(timestamp=at, message=message or None)
        elif outcome == Outcome.CACHED:
            state = Completed(timestamp=at, name="Cached", message=message or None)
        elif outcome == Outcome.AWAITING_RETRY:
            state = AwaitingRetry(scheduled_time=at, message=message or None)
            state.timestamp = at
        elif outcome == Outcome.SKIPPED:
            state = Cancelled(timestamp=at, name="Skipped", message=message or "an upstream asset failed")
        elif outcome == Outcome.INTERRUPTED:
            state = Cancelled(timestamp=at, name="Interrupted", message=message or "the run was interrupted")
        else:  # the state says what went wrong in one line; the logs keep the whole error
            state = Failed(timestamp=at, message=headline(message) or None)
        if (
            previous is not None
            and previous.is_final()
            and (previous.name, previous.message)
            == (
                state.name,
                state.message,
            )
        ):
            return  # the same final word again (a descendant skipped in each retry round): nothing new to record
        if state.is_final():
            run.end_time = at  # type: ignore[assignment]
        self._emit(node_id, previous, state)
        took = f" after {(at - began.timestamp).total_seconds():.2f} s" if began is not None else ""
        took += f" (attempt {run.run_count})" if unannounced is not None else ""
        line = f"{node_id}: {(state.name or '').lower()}{took}" + (f"\n{message.strip()}" if message.strip() else "")
        if outcome != Outcome.CACHED:  # a fresh asset's state message says why it was kept: no line per asset
            self._log(node_id, _LOG_LEVEL.get(outcome, logging.INFO), line, at)

    def summary(self) -> Mapping[str, int]:
        """Attempts per node as recorded (for the run report)."""
        return {node: run.run_count for node, run in self._runs.items()}
