"""Running dbt in process (``dbtRunner``): parse for the manifest, build for a selection of nodes.

dbt refuses concurrent invocations in one process and DuckDB refuses a second writer, so a build is
one invocation with dbt's own threads; callbacks only record events and never slow dbt down.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.errors import UserError
from orchestration.core import interrupts
from orchestration.dbt import inputs_cache
from orchestration.dbt.errors import (
    DbtInvocationError,
    WarehouseConnectionError,
    busy_line,
    connection_failure,
    duckdb_busy,
    lost_connection,
)
from orchestration.dbt.large_seeds import hash_large_seeds
from orchestration.project import Project
from orchestration.warehouse.targets import Target

__all__ = ["DbtInvocationError", "DbtOptions", "DbtVarsError", "WarehouseConnectionError", "lost_connection"]

_DBT_LOCK = threading.Lock()
_PARSED: dict[tuple[str, ...], Any] = {}
"""The last parsed Manifest object per (project, profiles, target, vars): builds reuse it instead of re-parsing."""


class DbtVarsError(UserError, ValueError):
    """``--vars`` is not a YAML (or JSON) mapping; the message shows what was given and an example."""


@dataclass(frozen=True)
class DbtOptions:
    """The dbt flags of a run, with dbt's meaning: ``--vars`` (parse and build: vars can enable nodes),
    ``--full-refresh`` and ``--threads`` (build)."""

    vars: Mapping[str, Any] = field(default_factory=dict)
    full_refresh: bool = False
    threads: int | None = None

    @classmethod
    def parse_vars(cls, text: str | None) -> dict[str, Any]:
        """``--vars`` text (YAML or JSON, as dbt accepts) as a mapping.

        Raises:
            DbtVarsError: not a mapping.
        """
        if not text or not text.strip():
            return {}
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            first = str(exc).strip().splitlines()[0]
            raise DbtVarsError(f"--vars {text!r} is not YAML ({first}); e.g. --vars '{{key: value}}'") from None
        if not isinstance(value, dict):
            raise DbtVarsError(f"--vars {text!r} is not a mapping; e.g. --vars '{{key: value, other: 2}}'")
        return value

    @property
    def vars_text(self) -> str:
        return json.dumps(dict(self.vars), sort_keys=True, default=str) if self.vars else ""

    def parse_args(self) -> list[str]:
        return ["--vars", self.vars_text] if self.vars else []

    def build_args(self) -> list[str]:
        args = self.parse_args()
        if self.full_refresh:
            args.append("--full-refresh")
        if self.threads:
            args += ["--threads", str(self.threads)]
        return args

    def recorded(self) -> dict[str, Any]:
        """What the run log keeps of these flags."""
        return {"full_refresh": self.full_refresh, "threads": self.threads}


NO_OPTIONS = DbtOptions()


@dataclass(frozen=True)
class NodeEvent:
    """A node starting or finishing, as reported by dbt's event callbacks."""

    kind: str  # "start" | "finish"
    unique_id: str
    status: str = ""
    message: str = ""
    rows: int | None = None
    """Rows the adapter reports for the node (``adapter_response.rows_affected``), when it reports any."""


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    status: str  # success | error | fail | warn | pass | skipped
    message: str
    execution_time: float
    rows_affected: int | None = None
    failures: int | None = None


@dataclass
class BuildResult:
    """What one ``dbt build`` invocation did: dbt's verdict and every node result it reported."""

    success: bool
    results: list[NodeResult] = field(default_factory=list)
    waited: float = 0.0
    """Seconds the build waited for another process to release the DuckDB file before dbt could open it."""


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in the process environment for one dbt invocation only, restored after (callers hold
    ``_DBT_LOCK``): dbt renders ``env_var()`` from ``os.environ`` alone and ``dbtRunner`` takes no environment."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _common_args(project: Project, target: Target, target_path: Path | None = None) -> list[str]:
    return [
        "--project-dir",
        str(project.dbt_project_dir),
        "--profiles-dir",
        str(project.profiles_dir),
        "--target",
        target.name,
        "--target-path",
        str(target_path or project.dbt_target_path),
    ]


def invoke(
    project: Project,
    target: Target,
    command: Sequence[str],
    *,
    callbacks: Sequence[Callable[[Any], None]] = (),
    quiet: bool = True,
    manifest: Any = None,
    target_path: Path | None = None,
    options: DbtOptions = NO_OPTIONS,
) -> Any:
    """Run ``dbt <command>`` in this process with the target's environment; returns the dbtRunnerResult.

    ``manifest`` (a parsed dbt Manifest) skips dbt's own parse step; ``target_path`` puts dbt's artifacts
    somewhere other than the project's build target; ``options`` adds the run's ``--vars`` to every command.
    """
    from dbt.cli.main import dbtRunner

    args = [
        # node failures reach the run summary and the run log; the console gets nothing (the file log keeps all)
        *(["--log-level", "none"] if quiet else []),
        "--no-send-anonymous-usage-stats",
        # dbt's debug-level file log costs ~15% of a build on DuckDB (a lock every node thread fights for).
        "--log-level-file",
        os.environ.get("HEADWATER_DBT_LOG_LEVEL_FILE", "info"),
        "--log-path",
        str(project.dbt_log_path),
        *command,
        *(options.parse_args() if "--vars" not in command else []),
        *_common_args(project, target, target_path),
    ]
    with _DBT_LOCK, _environment({**target.env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}):
        return dbtRunner(manifest=manifest, callbacks=list(callbacks)).invoke(args)


def parse(project: Project, target: Target, options: DbtOptions = NO_OPTIONS) -> dict[str, Any]:
    """``dbt parse`` (partial parsing keeps reruns fast) with the run's ``--vars``; returns the manifest as JSON.

    Raises:
        DbtInvocationError: the project does not parse; the message carries dbt's error.
    """
    ahead = inputs_cache.parsed_ahead(parse_key(project, target, options), project, target, options.vars)
    if ahead is not None:
        return ahead  # the CLI parsed while its local Prefect server started, and no input changed since
    with folder_lock(project.dbt_target_path):
        result = invoke(project, target, ["parse"], options=options)
        interrupts.check()
        if not result.success:
            raise DbtInvocationError(f"dbt parse failed for {project.dbt_project_dir}: {result.exception}")
        _PARSED[parse_key(project, target, options)] = result.result
        return hash_large_seeds(json.loads((project.dbt_target_path / "manifest.json").read_text()))


def parse_ahead(project: Project, target: Target, options: DbtOptions) -> None:
    """``dbt parse`` now (while the CLI's local Prefect server boots), kept for the run's own :func:`parse` under
    the inputs key taken before: that parse gets it only if no input changed since, else dbt parses again."""
    inputs = inputs_cache.inputs_key(project, target, options.vars)
    inputs_cache.keep_ahead(parse_key(project, target, options), inputs, parse(project, target, options))


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """One dbt invocation at a time per dbt target folder, across processes (the parse; the analysis compile): runs of
    one worker may overlap, and a parse reading manifest.json while another writes it reads half a file."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".headwater-parse.lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def parsed_manifest(project: Project, target: Target, options: DbtOptions = NO_OPTIONS) -> Any:
    """The Manifest object of the last :func:`parse` with these options (parsing now if there was none)."""
    key = parse_key(project, target, options)
    if key not in _PARSED:
        parse(project, target, options)
    return _PARSED[key]


def artifacts(
    project: Project,
    target: Target,
    command: Sequence[str],
    target_path: Path,
    options: DbtOptions = NO_OPTIONS,
    callbacks: Sequence[Callable[[Any], None]] = (),
) -> dict[str, Any]:
    """``dbt <command>`` writing its artifacts to ``target_path`` (never the build target a run uses); returns
    the manifest it wrote. DuckDB is released afterwards so checks and other readers can connect.

    Raises:
        DbtInvocationError: the command failed; the message carries dbt's error or the first failing node.
    """
    result = invoke(project, target, command, target_path=target_path, options=options, callbacks=callbacks)
    if target.type == "duckdb":
        release_duckdb()
    if not result.success:
        raise DbtInvocationError(
            f"dbt {' '.join(command)} failed for {project.dbt_project_dir}: {result.exception or _first_error(result)}"
        )
    return json.loads((target_path / "manifest.json").read_text())


def _first_error(result: Any) -> str:
    for node_result in getattr(result.result, "results", None) or []:
        if str(node_result.status) in ("error", "fail"):
            return f"{node_result.node.unique_id}: {node_result.message}"
    return "see data/dbt_logs/dbt.log"


def parse_key(project: Project, target: Target, options: DbtOptions) -> tuple[str, ...]:
    return (str(project.dbt_project_dir), str(project.profiles_dir), target.name, options.vars_text)


_FAILED_STATUSES = ("error", "fail", "runtime error")
"""Node statuses whose message is an error worth showing (a success's message is dbt's row summary)."""


def _rows_affected(response: Any) -> int | None:
    """``rows_affected`` of an adapter response (a protobuf Struct in dbt's events: numbers are floats); None when the
    adapter reports none (DuckDB says -1)."""
    try:
        if response is None or "rows_affected" not in response:
            return None
        value = int(response["rows_affected"])
    except (TypeError, ValueError, KeyError):
        return None
    return value if value >= 0 else None


def _event_listener(on_event: Callable[[NodeEvent], None]) -> Callable[[Any], None]:
    def listener(event: Any) -> None:
        name = event.info.name
        if name not in ("NodeStart", "NodeFinished"):
            return
        node = event.data.node_info
        if name == "NodeStart":
            on_event(NodeEvent("start", node.unique_id))
        else:
            result = getattr(event.data, "run_result", None)  # NodeFinished carries the node's result and its error
            message = str(getattr(result, "message", "") or "")[:2000] if node.node_status in _FAILED_STATUSES else ""
            rows = _rows_affected(getattr(result, "adapter_response", None))
            on_event(NodeEvent("finish", node.unique_id, status=node.node_status, message=message, rows=rows))

    return listener


def _selection_state(folder: Path, nodes: Iterable[str]) -> None:
    """A ``run_results.json`` in ``folder`` that lists exactly ``nodes``, for ``--select result:success --state``.

    dbt's ``result:`` method selects the nodes a state's run results list with a status: one criterion that
    dbt evaluates once over the graph, where one ``--select`` value per node costs dbt a scan of the graph each
    (measured: 20 s to select 2,000 nodes that way, against 1 s for this file). The file uses dbt's own
    run-results schema version, so dbt reads it as it reads its own.
    """
    from dbt.artifacts.schemas.run import RunResultsArtifact

    results: list[dict[str, Any]] = [
        {
            "unique_id": unique_id,
            "status": "success",
            "timing": [],
            "thread_id": "headwater",
            "execution_time": 0.0,
            "adapter_response": {},
            "message": None,
            "failures": None,
            "compiled": None,
            "compiled_code": None,
            "relation_name": None,
        }
        for unique_id in sorted(nodes)
    ]
    document = {
        "metadata": {
            "dbt_schema_version": str(RunResultsArtifact.dbt_schema_version),
            "generated_at": "2000-01-01T00:00:00Z",
            "invocation_id": "headwater-selection",
            "env": {},
        },
        "results": results,
        "elapsed_time": 0.0,
        "args": {},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run_results.json").write_text(json.dumps(document))


def build(
    project: Project,
    target: Target,
    nodes: Iterable[str] | None = None,
    *,
    extra: Sequence[str] = (),
    options: DbtOptions = NO_OPTIONS,
    on_event: Callable[[NodeEvent], None] | None = None,
) -> BuildResult:
    """``dbt build`` of exactly the node ids ``nodes`` (None: the whole project) in one invocation.

    The nodes are handed to dbt as ``--select result:success --state <folder>`` with ``--indirect-selection
    empty``: Headwater has already chosen every test, so dbt adds none. Node failures are in the result; only a
    run that could not start raises.

    Raises:
        DbtInvocationError: dbt did not run (bad project, profile, or a missing credential).
    """
    command = ["build", *extra, *options.build_args()]
    state: Path | None = None
    if nodes is not None:
        project.data_dir.mkdir(parents=True, exist_ok=True)
        state = Path(tempfile.mkdtemp(prefix="dbt_selection_", dir=project.data_dir))
        _selection_state(state, nodes)
        command += ["--select", "result:success", "--state", str(state), "--indirect-selection", "empty"]
    callbacks = [_event_listener(on_event)] if on_event else []
    waited = 0.0
    try:
        while True:
            result = invoke(
                project,
                target,
                command,
                callbacks=callbacks,
                manifest=_PARSED.get(parse_key(project, target, options)),
            )
            # another process reads the DuckDB file (a `duckdb` shell, a notebook): dbt could not even open it;
            # wait for it briefly instead of failing the run (nothing ran: dbt stops before its first node)
            if result.result is not None or not duckdb_busy(result.exception) or waited >= DUCKDB_BUSY_WAIT:
                break
            if not waited:  # say why the run is idle now, not at the end
                print(
                    f"waiting up to {DUCKDB_BUSY_WAIT:.0f} s for another process to release the DuckDB file: "
                    f"{busy_line(result.exception)}",
                    file=sys.stderr,
                    flush=True,
                )
            interrupts.check()
            time.sleep(1.0)
            waited += 1.0
    finally:
        if state is not None:
            shutil.rmtree(state, ignore_errors=True)
    if target.type == "duckdb":
        release_duckdb()
    # a signal stopped dbt (it cancelled its queries); whatever dbt made of it (it may report the connection it
    # closed on the way out as the error), the run was interrupted
    interrupts.check()
    if result.exception is not None and result.result is None:
        if duckdb_busy(result.exception):
            raise DbtInvocationError(
                f"dbt build could not open the DuckDB file for {waited:.0f} s: another process holds it "
                f"({busy_line(result.exception)}); close it (a `duckdb` shell, a notebook) and run again"
            )
        reason = connection_failure(result.exception)
        if reason is not None:
            raise WarehouseConnectionError(f"dbt build could not run: {result.exception}", reason)
        raise DbtInvocationError(f"dbt build could not run: {result.exception}")
    nodes_out = []
    for node_result in getattr(result.result, "results", None) or []:
        adapter = node_result.adapter_response or {}
        nodes_out.append(
            NodeResult(
                unique_id=node_result.node.unique_id,
                status=str(node_result.status),
                message=node_result.message or "",
                execution_time=float(node_result.execution_time or 0.0),
                rows_affected=adapter.get("rows_affected") if isinstance(adapter, dict) else None,
                failures=node_result.failures,
            )
        )
    return BuildResult(success=bool(result.success), results=nodes_out, waited=waited)


DUCKDB_BUSY_WAIT = 30.0
"""Seconds a build waits for another process to let go of the DuckDB file before it fails."""


def release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after an invocation.

    DuckDB refuses a second in-process connection to a file with a different configuration, and the checks
    that run between dbt invocations (GX through duckdb_engine, freshness) connect with their own; dbt-duckdb
    reopens the file on its next invocation.
    """
    from orchestration.dbt._compat import close_duckdb_environment

    close_duckdb_environment()
