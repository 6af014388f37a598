"""Loading the project's Python assets and running them as tasks of the flow, after their upstream assets."""

from __future__ import annotations

import importlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from assets import AssetKind
from assets.errors import UserError
from assets.python import AssetContext, PythonAsset, collect
from orchestration.core.errors import log_failure
from orchestration.engine.outcomes import Outcome
from orchestration.engine.plan import RunPlan
from orchestration.engine.report import AssetResult, MaterializeReport
from orchestration.settings import Settings
from orchestration.warehouse.targets import Target

if TYPE_CHECKING:
    from orchestration.engine.outcomes import TaskRecorder

ENV = "HEADWATER_PYTHON_ASSETS"


class PythonAssetError(UserError, ImportError):
    """A configured Python asset module cannot be imported; names the module and where it was configured."""


def configured_modules(project_root: Path) -> tuple[list[str], str]:
    """Module names from ``HEADWATER_PYTHON_ASSETS`` (comma-separated), else ``python_assets:`` in headwater.yml."""
    if os.environ.get(ENV):
        return [m.strip() for m in os.environ[ENV].split(",") if m.strip()], f"${ENV}"
    settings = Settings.load(project_root)
    if settings.path.exists():
        return list(settings.python_assets), str(settings.path)
    return [], ""


def load_python_assets(project_root: Path) -> list[PythonAsset]:
    """Every :class:`PythonAsset` defined in the configured modules.

    Raises:
        PythonAssetError: a module does not import; lists all such modules at once.
    """
    modules, origin = configured_modules(project_root)
    found: list[PythonAsset] = []
    problems = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # the user's module: any import error is reported with its name
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        found.extend(collect(vars(module)))
    if problems:
        raise PythonAssetError(f"Python asset modules configured in {origin} failed to import: " + "; ".join(problems))
    return found


def run_python_assets(
    plan: RunPlan,
    python_assets: list[PythonAsset],
    mirror: TaskRecorder,
    report: MaterializeReport,
    target: Target,
) -> None:
    """Run the selected Python assets in topological order; one whose upstream failed or was skipped is
    skipped, one that raises is retried within its budget, then fails (its descendants are skipped)."""

    by_key = {a.spec.key: a for a in python_assets}
    for key in plan.graph.toposorted():
        if key not in plan.selected or key not in by_key:
            continue
        python_asset = by_key[key]
        spec = python_asset.spec
        blocked = [
            str(d)
            for d in spec.deps
            if report.assets.get(str(d)) and report.assets[str(d)].status in ("failed", "skipped")
        ]
        reason = report.blocked.get(str(key)) or (
            f"upstream {', '.join(blocked)} did not materialize" if blocked else ""
        )
        if reason:
            mirror.finish(spec.unique_id, Outcome.SKIPPED, reason)
            report.assets[str(key)] = AssetResult(
                str(key), AssetKind.PYTHON.value, "skipped", 0, None, None, message=reason, node_id=spec.unique_id
            )
            continue
        context = AssetContext(
            key=key,
            run_id=report.run_id,
            target_name=target.name,
            target_type=target.type,
            target_config=dict(target.config),
        )
        started = datetime.now(UTC)
        attempts, rows, error = 0, None, ""
        while True:
            attempts += 1
            mirror.open(spec.unique_id)
            try:
                rows = python_asset(context)
                error = ""
            except Exception as exc:  # the user's code: its failure is this asset's failure, nothing more
                error = f"{type(exc).__name__}: {exc}"
                log_failure(f"python asset {spec.key} (attempt {attempts})", exc)
            if not error:
                mirror.finish(spec.unique_id, Outcome.SUCCESS)
                break
            if attempts <= spec.policy.retries:
                mirror.finish(spec.unique_id, Outcome.AWAITING_RETRY, error)
                continue
            mirror.finish(spec.unique_id, Outcome.FAILED, error)
            break
        report.assets[str(key)] = AssetResult(
            str(key),
            AssetKind.PYTHON.value,
            "failed" if error else "success",
            attempts,
            started,
            datetime.now(UTC),
            rows=rows if isinstance(rows, int) else None,
            message=error,
            node_id=spec.unique_id,
        )
