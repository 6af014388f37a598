"""Run the Headwater CLI and kill -9 its own process at one point of a dlt step (a test driver, not a library).

    python -m tests.reliability.kill_during STEP [headwater arguments...]

STEP is where the process sends itself SIGKILL, so that the kill lands at the same point every time:

- ``extract``: everything has been extracted into dlt's working folder, nothing is committed yet;
- ``normalize``: the load package's files are written, the package is not committed yet;
- ``load``: the first table's merge has been committed in the warehouse, the other tables' have not,
  and the load is not recorded in ``_dlt_loads``.

Only this process is patched; the code under test is Headwater's and dlt's as they ship.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(step: str) -> None:
    if step == "extract":
        from dlt.extract.extract import Extract

        Extract.commit_packages = lambda self: _die()  # type: ignore[method-assign]
    elif step == "normalize":
        from dlt.common.storages.load_storage import LoadStorage

        LoadStorage.commit_new_load_package = lambda self, *a, **k: _die()  # type: ignore[method-assign]
    elif step == "load":
        from dlt.load.load import Load

        complete_jobs = Load.complete_jobs

        def complete_then_die(self: Load, load_id: str, jobs: Any, schema: Any) -> Any:
            remaining, finalized, exc = complete_jobs(self, load_id, jobs, schema)
            if any(job.job_file_info().file_format == "sql" and job.state() == "completed" for job in finalized):
                _die()
            return remaining, finalized, exc

        Load.complete_jobs = complete_then_die  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown step {step!r}: extract, normalize or load")


if __name__ == "__main__":
    _arm(sys.argv[1])
    from orchestration.cli.app import main

    sys.argv = ["headwater", *sys.argv[2:]]
    main()
