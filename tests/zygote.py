"""A pre-imported ``headwater`` for the test suite: each CLI run is a fork of one process that has already imported
dbt, Prefect, dlt and Great Expectations (~8 s of CPU per run on this machine otherwise).

The child of each fork is still a process of its own, as ``python -m orchestration.cli`` would be: its own session
(``setsid``), the caller's environment and working folder, stdout and stderr in files, its exit code (or signal)
from ``waitpid``; it ends with ``os._exit`` after the interpreter's exit hooks, as a process that returns does. What
differs from a fresh interpreter is only what was computed while importing, and that is redone in the child:
Prefect's settings (``refresh_global_settings_context``), Headwater's environment defaults and the CLI's console
(which reads ``COLUMNS`` when it is made).

Protocol (one JSON object per line): the caller writes ``{"args", "env", "cwd", "stdout", "stderr"}``; the zygote
answers ``{"pid": N}`` as the child starts and ``{"rc": N}`` when it ended (``-N`` for a signal, as
``subprocess`` says it). One request at a time. Used by ``tests.conftest.run_cli``; ``HEADWATER_TEST_FORK=0`` runs
every command in a fresh interpreter instead.
"""

from __future__ import annotations

import gc
import json
import os
import sys

PRELOAD = (
    "orchestration.cli.app",
    "orchestration.cli.cmd_inspect",
    "orchestration.cli.cmd_lineage",
    "orchestration.prefect.flow",
    "orchestration.engine.checks",
    "quality.gx_runner",
    "great_expectations",
    "dlt",
    "dbt.cli.main",
    "dbt.adapters.duckdb",
    "dbt.adapters.postgres",
)


def run_exit_hooks() -> None:
    """What the interpreter's exit runs (``atexit``: a local Prefect server's stop, Prefect's and dbt's own hooks)
    before the child ends with ``os._exit``, as a process that returns would. ``atexit._run_exitfuncs`` is private
    and the only such name here: ``tests/test_compat.py`` fails when Python moves it."""
    import atexit

    atexit._run_exitfuncs()  # type: ignore[attr-defined]


def _child(request: dict, protocol: tuple[int, int]) -> None:  # pragma: no cover - runs in the fork
    code = 1
    try:
        os.setsid()
        for fd in protocol:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["headwater", *request["args"]]

        from prefect.context import refresh_global_settings_context

        from orchestration.cli._env import apply_defaults
        from orchestration.cli.console import console

        apply_defaults()
        refresh_global_settings_context()
        console.__init__()  # type: ignore[misc]  # re-reads COLUMNS, TERM and NO_COLOR, as a new process would

        from orchestration.cli.app import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
    try:
        run_exit_hooks()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def serve() -> None:
    """Read requests on stdin, fork a child for each, answer on what was stdout (now a private descriptor)."""
    import importlib

    requests_fd, answers_fd = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # what an import prints goes to the log, never into the protocol
    for name in PRELOAD:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()  # the children share the imported modules' pages instead of copying them as gc touches them
    requests = os.fdopen(requests_fd, "r")
    answers = os.fdopen(answers_fd, "w")

    def answer(message: dict) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    answer({"ready": True})
    for line in requests:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, (requests_fd, answers_fd))
        answer({"pid": pid})
        _, status = os.waitpid(pid, 0)
        answer({"rc": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve()
