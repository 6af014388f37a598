"""Each asset written to the run log the moment it succeeds, so a run killed later still shows what it finished
(``headwater retry`` then skips it). ``RunLog.finish_run`` replaces the checkpoints with the run's full record.

dbt reports node results on its own threads; like the task-run mirror, those threads only put on a queue and one
writer thread talks to the run log, so a slow run log (PostgreSQL over a network) never slows dbt.
"""

from __future__ import annotations

import queue
import threading
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from assets.keys import AssetKey
from assets.run_log import Materialization
from orchestration.warehouse.run_log import RunLog


class Checkpoints:
    def __init__(self, run_log: RunLog, run_id: str, target: str, graph: Any) -> None:
        self.run_log, self.run_id, self.target, self.graph = run_log, run_id, target, graph
        self.errors: list[str] = []
        self._queue: queue.Queue[Materialization | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write, name="headwater-checkpoints", daemon=True)
        self._writer.start()

    def success(self, key: AssetKey, started: datetime | None, ended: datetime | None, rows: int | None = None) -> None:
        """Queue ``key``'s success (any thread); unknown keys are ignored."""
        spec = self.graph.specs.get(key)
        if spec is None:
            return
        self._queue.put(
            Materialization(
                str(key),
                self.run_id,
                "success",
                1,
                started,
                ended,
                rows,
                spec.code_version,
                spec.kind.value,
                "",
                self.target,
            )
        )

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        self._queue.put(None)
        self._writer.join()

    def _write(self) -> None:
        while (record := self._queue.get()) is not None:
            try:
                self.run_log.checkpoint(record)
            except sa.exc.SQLAlchemyError as exc:  # the run goes on; finish_run records everything at the end
                first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
                self.errors.append(f"run-log checkpoint of {record.asset_key}: {type(exc).__name__}: {first}")
