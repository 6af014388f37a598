"""Each asset written to the run log the moment it succeeds, so a run killed later still shows what it finished
(``headwater retry`` then skips it). ``RunLog.finish_run`` replaces the checkpoints with the run's full record.

dbt reports node results on its own threads; like the task-run mirror, those threads only put on a queue and one
writer thread talks to the run log, so a slow run log (PostgreSQL over a network) never slows dbt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from assets.keys import AssetKey
from assets.run_log import Materialization
from orchestration.engine.worker import QueueWorker
from orchestration.warehouse.run_log import RunLog


class Checkpoints:
    def __init__(self, run_log: RunLog, run_id: str, target: str, graph: Any) -> None:
        self.run_log, self.run_id, self.target, self.graph = run_log, run_id, target, graph
        self.errors: list[str] = []
        self._worker: QueueWorker[Materialization] = QueueWorker("headwater-checkpoints", self._write, batch=True)

    def success(self, key: AssetKey, started: datetime | None, ended: datetime | None, rows: int | None = None) -> None:
        """Queue ``key``'s success (any thread); unknown keys are ignored."""
        spec = self.graph.specs.get(key)
        if spec is None:
            return
        self._worker.put(
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

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued (at most ``timeout`` seconds) and stop the writer; what was not written in time is
        named in ``errors`` (``finish_run`` records the whole run anyway)."""
        self._worker.close(timeout)
        self.errors.extend(self._worker.errors)

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, records: list[Materialization]) -> None:
        """Every checkpoint waiting, in one transaction (a commit per node cost SQLite an fsync each)."""
        try:
            self.run_log.checkpoint(*records)
        except sa.exc.SQLAlchemyError as exc:  # the run goes on; finish_run records everything at the end
            first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
            keys = ", ".join(r.asset_key for r in records[:3]) + (
                f" and {len(records) - 3} more" if len(records) > 3 else ""
            )
            self.errors.append(f"run-log checkpoint of {keys}: {type(exc).__name__}: {first}")
