"""Running dbt in process (``dbtRunner``): parse for the manifest, build for a selection of nodes.

dbt refuses concurrent invocations in one process and DuckDB refuses a second writer, so a build is
one invocation with dbt's own threads; callbacks only record events and never slow dbt down.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.project import Project
from orchestration.targets import Target

_DBT_LOCK = threading.Lock()
_PARSED: dict[tuple[str, str, str], Any] = {}
"""The last parsed Manifest object per (project, profiles, target): builds reuse it instead of re-parsing."""


class DbtInvocationError(RuntimeError):
    """dbt could not run at all (bad project, profile or arguments), as opposed to a node failing."""


@dataclass(frozen=True)
class NodeEvent:
    """A node starting or finishing, as reported by dbt's event callbacks."""

    kind: str  # "start" | "finish"
    unique_id: str
    status: str = ""
    message: str = ""


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
    success: bool
    results: list[NodeResult] = field(default_factory=list)
    error: str | None = None


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
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
) -> Any:
    """Run ``dbt <command>`` in this process with the target's environment; returns the dbtRunnerResult.

    ``manifest`` (a parsed dbt Manifest) skips dbt's own parse step; ``target_path`` puts dbt's artifacts
    somewhere other than the project's build target.
    """
    from dbt.cli.main import dbtRunner

    project.data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        # node failures reach the run summary and the run log; the console gets nothing (the file log keeps all)
        *(["--log-level", "none"] if quiet else []),
        "--no-send-anonymous-usage-stats",
        # dbt's debug-level file log costs ~15% of a build on DuckDB (a lock every node thread fights for).
        "--log-level-file",
        os.environ.get("HEADWATER_DBT_LOG_LEVEL_FILE", "info"),
        "--log-path",
        str(project.data_dir / "dbt_logs"),
        *command,
        *_common_args(project, target, target_path),
    ]
    with _DBT_LOCK, _environment({**target.env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}):
        return dbtRunner(manifest=manifest, callbacks=list(callbacks)).invoke(args)


def parse(project: Project, target: Target) -> dict[str, Any]:
    """``dbt parse`` (partial parsing keeps reruns fast); returns the manifest as plain JSON.

    Raises:
        DbtInvocationError: the project does not parse; the message carries dbt's error.
    """
    result = invoke(project, target, ["parse"])
    if not result.success:
        raise DbtInvocationError(f"dbt parse failed for {project.dbt_project_dir}: {result.exception}")
    _PARSED[_cache_key(project, target)] = result.result
    return json.loads((project.dbt_target_path / "manifest.json").read_text())


def artifacts(project: Project, target: Target, command: Sequence[str], target_path: Path) -> dict[str, Any]:
    """``dbt <command>`` writing its artifacts to ``target_path`` (never the build target a run uses); returns
    the manifest it wrote. DuckDB is released afterwards so checks and other readers can connect.

    Raises:
        DbtInvocationError: the command failed; the message carries dbt's error or the first failing node.
    """
    result = invoke(project, target, command, target_path=target_path)
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


def _cache_key(project: Project, target: Target) -> tuple[str, str, str]:
    return (str(project.dbt_project_dir), str(project.profiles_dir), target.name)


def _event_listener(on_event: Callable[[NodeEvent], None]) -> Callable[[Any], None]:
    def listener(event: Any) -> None:
        name = event.info.name
        if name not in ("NodeStart", "NodeFinished"):
            return
        node = event.data.node_info
        if name == "NodeStart":
            on_event(NodeEvent("start", node.unique_id))
        else:
            on_event(NodeEvent("finish", node.unique_id, status=node.node_status))

    return listener


def build(
    project: Project,
    target: Target,
    selectors: Sequence[str] | None = None,
    *,
    extra: Sequence[str] = (),
    on_event: Callable[[NodeEvent], None] | None = None,
) -> BuildResult:
    """``dbt build`` of ``selectors`` (None: the whole project) in one invocation.

    Node failures are in the result; only a run that could not start raises.

    Raises:
        DbtInvocationError: dbt did not run (bad project, profile, or a missing credential).
    """
    command = ["build", *extra]
    if selectors is not None:
        command += ["--select", *selectors]
    callbacks = [_event_listener(on_event)] if on_event else []
    result = invoke(project, target, command, callbacks=callbacks, manifest=_PARSED.get(_cache_key(project, target)))
    if target.type == "duckdb":
        release_duckdb()
    if result.exception is not None and result.result is None:
        raise DbtInvocationError(f"dbt build could not run: {result.exception}")
    nodes = []
    for node_result in getattr(result.result, "results", None) or []:
        adapter = node_result.adapter_response or {}
        nodes.append(
            NodeResult(
                unique_id=node_result.node.unique_id,
                status=str(node_result.status),
                message=node_result.message or "",
                execution_time=float(node_result.execution_time or 0.0),
                rows_affected=adapter.get("rows_affected") if isinstance(adapter, dict) else None,
                failures=node_result.failures,
            )
        )
    return BuildResult(success=bool(result.success), results=nodes)


def release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after an invocation.

    DuckDB refuses a second in-process connection to a file with a different configuration, and the checks
    that run between dbt invocations (GX through duckdb_engine, freshness) connect with their own; dbt-duckdb
    reopens the file on its next invocation.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if env is not None:
        env.close()


def project_defaults(project: Project) -> dict[str, Any]:
    """``vars: headwater:`` of the dbt project (Headwater's retry defaults), or empty."""
    import yaml

    path = project.dbt_project_dir / "dbt_project.yml"
    document = yaml.safe_load(path.read_text()) or {}
    value = (document.get("vars") or {}).get("headwater") or {}
    return value if isinstance(value, dict) else {}
