"""What check results mean for a run: which assets a failed check blocks, how freshness is judged, and how
a selection is cut into stages so that a blocking check can run between an asset and its downstream.

Pure functions over the graph; evaluating checks (dbt, Great Expectations, SQL) lives elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from assets.keys import AssetKey
from assets.specs import CheckKind, CheckSpec, Severity

if TYPE_CHECKING:
    from assets.graph import AssetGraph


@dataclass(frozen=True)
class CheckOutcome:
    """One evaluation of one check: ``status`` is pass, warn, fail, error (could not run) or skipped."""

    check: CheckSpec
    status: str
    failures: int | None = None
    message: str = ""
    attempts: int = 1

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error")

    @property
    def blocking(self) -> bool:
        """A failure that stops what is built on the checked asset in this run: an error-severity check that
        failed, or any dbt test or unit test that failed or errored (dbt skips their dependents either way)."""
        return self.failed and (self.check.severity is Severity.ERROR or self.check.kind.in_dbt)

    @property
    def alerting(self) -> bool:
        """Worth an alert: any failure, and a warn-severity check that found failing rows."""
        return self.failed or (self.status == "warn" and bool(self.failures))


def blocked_by(
    graph: AssetGraph, outcomes: Iterable[CheckOutcome] = (), failed: Mapping[AssetKey, str] | None = None
) -> dict[AssetKey, str]:
    """The assets a run must not build, each with why: what is downstream of an asset that ``failed`` (or was
    skipped: the mapping says which, e.g. ``{orders: "failed"}``), and what a blocking check gates.

    As dbt's build does: a failed or skipped asset stops everything downstream of it; a blocking check stops
    the assets (dlt, dbt, Python) downstream of *every* asset it reads, and their downstream (a relationships
    test on ``orders`` and ``customers`` holds back what reads both, not what reads only one); a failed unit test
    also stops the model it tests. The checked asset itself stays, and unrelated branches are untouched.
    """
    blocked: dict[AssetKey, str] = {}
    for key, how in sorted((failed or {}).items()):
        if key in graph:
            for down in sorted(graph.downstream([key])):
                blocked.setdefault(down, f"upstream {key} {how}")
    for outcome in sorted(outcomes, key=lambda o: o.check.id):
        check = outcome.check
        assets = [a for a in check.assets if a in graph]
        if not outcome.blocking or not assets:
            continue
        if check.kind == CheckKind.UNIT_TEST and check.asset_key is not None and check.asset_key in graph:
            gated = {check.asset_key}
        else:
            common = set.intersection(*(graph.downstream([a]) for a in assets))
            gated = {k for k in common if graph.specs[k].kind.is_materializable}
        for key in sorted(gated | graph.downstream(gated)):
            blocked.setdefault(key, f"blocking check {check.id} failed")
    return blocked


def gate_stages(graph: AssetGraph, keys: Iterable[AssetKey], gates: Iterable[AssetKey]) -> list[list[AssetKey]]:
    """Cut ``keys`` into stages so that every asset in ``gates`` finishes a stage before its downstream starts.

    An asset's stage is the largest number of gates on any path to it (the gate itself not counted), so a
    plan without gated assets is one stage. Each stage is sorted.
    """
    wanted = set(keys)
    gate_set = set(gates)
    stage: dict[AssetKey, int] = {}
    for key in graph.toposorted():
        if key not in wanted:
            continue
        level = 0
        for dep in graph.specs[key].deps:
            if dep in stage:
                level = max(level, stage[dep] + (1 if dep in gate_set else 0))
            elif dep in graph:
                # an unselected asset between two selected ones still carries the gates above it
                level = max(level, _level_through(graph, dep, stage, gate_set))
        stage[key] = level
    stages: list[list[AssetKey]] = [[] for _ in range(max(stage.values(), default=-1) + 1)]
    for key, level in stage.items():
        stages[level].append(key)
    return [sorted(s) for s in stages if s]


def _level_through(graph: AssetGraph, key: AssetKey, stage: Mapping[AssetKey, int], gates: set[AssetKey]) -> int:
    return max(
        (stage[a] + (1 if a in gates else 0) for a in graph.upstream([key]) if a in stage),
        default=0,
    )


def freshness_outcome(check: CheckSpec, loaded_at: datetime | None, now: datetime) -> CheckOutcome:
    """Judge an asset's data age against ``check.config``'s ``warn_after`` / ``error_after`` (timedeltas).

    No data at all is as stale as can be: it fails when either threshold is set.
    """
    warn_after: timedelta | None = check.config.get("warn_after")
    error_after: timedelta | None = check.config.get("error_after")
    if loaded_at is None:
        status = "fail" if error_after and check.severity is Severity.ERROR else "warn"
        return CheckOutcome(check, status, 1, f"{check.asset_key} has no rows, so no load time to judge")
    age = now - loaded_at
    shown = _age(age)
    if error_after is not None and age > error_after:
        status = "fail" if check.severity is Severity.ERROR else "warn"  # a warn-severity check never fails
        return CheckOutcome(check, status, 1, f"last load {shown} ago, older than error_after {_age(error_after)}")
    if warn_after is not None and age > warn_after:
        return CheckOutcome(check, "warn", 1, f"last load {shown} ago, older than warn_after {_age(warn_after)}")
    return CheckOutcome(check, "pass", 0, f"last load {shown} ago")


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
