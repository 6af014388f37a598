"""Python internals the CLI relies on, in one place; ``tests/test_compat.py`` fails when Python moves them.

The CLI ends a finished run with ``os._exit`` (the interpreter's teardown of dbt, Prefect and pyarrow costs ~2 s),
after doing what teardown does that matters: ``multiprocessing.util._exit_function`` runs multiprocessing's exit
hooks (dbt's semaphores are released and the resource tracker does not report them as leaked).
"""

from __future__ import annotations

import multiprocessing.util


def run_multiprocessing_exit_hooks() -> None:
    """What ``atexit`` would run for multiprocessing before the interpreter exits."""
    multiprocessing.util._exit_function()  # type: ignore[attr-defined]  # private, present since Python 3.0
