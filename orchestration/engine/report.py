"""What a materialize run reports: per-asset results, check results, alerts, and their run-log records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from assets import AssetGraph, AssetKey, AssetSpec
from assets.checks import CheckOutcome
from assets.run_log import CheckRecord, Materialization
from orchestration.engine.dbt_segment import FAILED, NodeOutcome
from orchestration.notify.alerts import Alert

if TYPE_CHECKING:
    from ingestion import LoadResult


@dataclass(frozen=True)
class AssetResult:
    key: str
    kind: str
    status: str  # success | unchanged | no-op | failed | skipped | interrupted | fresh (kept: not stale)
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    rows: int | None = None
    message: str = ""
    node_id: str = ""


@dataclass
class MaterializeReport:
    run_id: str
    target: str
    selection: str | None
    exclude: str | None = None
    ingested: list[LoadResult] = field(default_factory=list)
    assets: dict[str, AssetResult] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    """Assets skipped because a blocking check upstream failed, with the check's id."""
    data_docs: str | None = None
    sources_regenerated: list[str] = field(default_factory=list)
    rounds: int = 0
    alerts_sent: list[tuple[str, str]] = field(default_factory=list)
    alert_errors: list[str] = field(default_factory=list)
    disabled_notifiers: list[str] = field(default_factory=list)
    mirror_errors: list[str] = field(default_factory=list)
    warehouse_error: str | None = None
    """Set when the warehouse stopped answering during the run (what failed, where, the driver's words)."""
    task_runs: int = 0
    flow_run_id: str | None = None
    run_url: str | None = None
    """The flow run's page in Prefect's UI, when the server has one (``PREFECT_UI_URL``, derived from the API URL)."""
    dbt_statuses: dict[str, str] = field(default_factory=dict)
    """The final dbt status of every node dbt reported (hooks included), by unique id: dbt's own counts."""
    vars: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """What the run worked around on its way (a DuckDB file another process held, unreadable GX files)."""
    interrupted: str | None = None
    """Set when a signal stopped the run: which, and in what phase (``SIGTERM during dbt build``)."""
    exit_code: int = 0
    state_aware: bool = False
    """The run built only what was stale (``stale`` says why each; fresh assets are results with status
    ``fresh``); False when it built everything selected (``--all``, ``--full-refresh``, or a ``state_note``)."""
    stale: dict[str, str] = field(default_factory=dict)
    state_note: str | None = None
    """Why a state-aware run built everything selected instead (a run log it could not read, ...)."""
    observed: list[Materialization] = field(default_factory=list)
    """Sources Headwater does not load whose data version this run saw move (recorded in the run log)."""
    due_checks: dict[str, str] = field(default_factory=dict)
    """Checks (unique id) a stale-only run ran although their asset was kept (new, changed, cut off), with why."""
    data_versions: dict[str, str] = field(default_factory=dict)
    """Data version of each relation the run built, read when it ended (``orchestration.warehouse.versions``)."""

    @property
    def fresh(self) -> list[AssetResult]:
        """Assets a state-aware run kept: not stale, not built, their last results standing."""
        return [r for r in self.assets.values() if r.status == "fresh"]

    def verdict(self) -> str:
        """``success``, ``failed`` or ``interrupted (<how>)``: the run in a word, as the summary and logs say it."""
        return f"interrupted ({self.interrupted})" if self.interrupted else "success" if self.ok else "failed"

    def status_counts(self) -> dict[str, int]:
        """Assets per status (``success``, ``fresh``, ``failed``, ...)."""
        counts: dict[str, int] = {}
        for result in self.assets.values():
            counts[result.status] = counts.get(result.status, 0) + 1
        return counts

    @property
    def failed(self) -> list[AssetResult]:
        return [r for r in self.assets.values() if r.status == "failed"]

    @property
    def skipped(self) -> list[AssetResult]:
        """Assets the run did not build because something upstream failed (a skipped exposure does not count,
        as in dbt: it is documentation)."""
        return [r for r in self.assets.values() if r.status == "skipped" and r.kind != "exposure"]

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        """Checks that fail the run: every failed dbt test and unit test, and failed error-severity checks."""
        return [c for c in self.checks if c.blocking]

    @property
    def ok(self) -> bool:
        """Nothing failed, nothing was skipped, no check failed, and dbt reported no node failing (the last is a
        backstop: every dbt result is already an asset, check or hook result)."""
        dbt_failed = any(status in FAILED for status in self.dbt_statuses.values())
        clean = not self.failed and not self.skipped and not self.failed_checks
        return clean and not dbt_failed and not self.interrupted

    @property
    def unfinished(self) -> list[AssetResult]:
        """Assets an interruption left unbuilt."""
        return [r for r in self.assets.values() if r.status == "interrupted"]

    @property
    def unchecked(self) -> list[str]:
        """Assets this run built (or loaded) whose blocking checks a signal cut off: unfinished until those checks
        run (``headwater retry`` runs exactly them; a stale-only run does too)."""
        cut = {
            c.check.subject
            for c in self.checks
            if c.status == "interrupted" and (c.check.severity.value == "error" or c.check.kind.in_dbt)
        }
        landed = ("success", "unchanged", "observed")
        return sorted(k for k in cut if (r := self.assets.get(k)) is not None and r.status in landed)

    def dbt_counts(self) -> dict[str, int]:
        """dbt's end-of-run counts over the final status of every node it reported (``PASS=.. ERROR=..``)."""
        counts = {"pass": 0, "warn": 0, "error": 0, "skip": 0, "no-op": 0}
        for status in self.dbt_statuses.values():
            if status in FAILED:
                counts["error"] += 1
            elif status == "skipped":
                counts["skip"] += 1
            elif status == "warn":
                counts["warn"] += 1
            elif status == "no-op":
                counts["no-op"] += 1
            else:
                counts["pass"] += 1
        return {**counts, "total": len(self.dbt_statuses)}

    @property
    def quarantined(self) -> dict[str, int]:
        """Rows rejected by data contracts in this run, per raw table."""
        return {f"{load.dataset}.{table}": n for load in self.ingested for table, n in load.quarantined.items()}


def dbt_check_outcomes(graph: AssetGraph, outcomes: Mapping[str, NodeOutcome]) -> list[CheckOutcome]:
    """dbt test outcomes as checks ``(asset key, check name)`` with their severity."""
    results = []
    for check in graph.checks:
        outcome = outcomes.get(check.unique_id)
        if outcome is None:
            continue
        message = outcome.message if outcome.failed or outcome.status in ("warn", "skipped") else ""
        results.append(CheckOutcome(check, outcome.status, outcome.failures, message, outcome.attempts))
    return results


class MaterializeInterrupted(Exception):
    """A run a signal stopped; ``report`` (None when it stopped before the run was recorded) says what did not
    finish, ``exit_code`` is 128 + the signal's number."""

    def __init__(self, report: MaterializeReport | None, interruption: BaseException) -> None:
        self.report = report
        self.exit_code = getattr(interruption, "exit_code", 130)
        name = getattr(interruption, "name", "a signal")
        if report is None:
            message = f"interrupted by {name} before the run was recorded; nothing changed"
        else:
            left, unchecked = len(report.unfinished), len(report.unchecked)
            cut = sum(1 for c in report.checks if c.status == "interrupted")
            message = f"interrupted by {report.interrupted}: {left} asset(s)"
            message += f" and {cut} check(s) did not finish" if cut else " did not finish"
            if unchecked:
                message += f"; {unchecked} asset(s) built wait for their blocking checks"
            message += f" (run {report.run_id}); `headwater retry` runs them"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled with its report (Prefect persists state data)
        return (_rebuild_interrupted, (self.report, self.exit_code, str(self)))


def _rebuild_interrupted(report: MaterializeReport | None, exit_code: int, message: str) -> MaterializeInterrupted:
    stopped = MaterializeInterrupted.__new__(MaterializeInterrupted)
    Exception.__init__(stopped, message)
    stopped.report, stopped.exit_code = report, exit_code
    return stopped


def mark_unfinished(plan: Any, report: MaterializeReport, mirror: Any, message: str, planned_checks: Any = ()) -> None:
    """Every asset the run selected and did not finish is recorded ``interrupted`` (so ``retry`` runs exactly those)
    and its task run ends Interrupted; so is every check it set out to run (its dbt tests, ``planned_checks``: the GX
    checks it started) that has no result: an asset whose blocking checks were cut off is unfinished, and the next
    stale-only run or ``retry`` runs those checks. What finished, failed or was skipped stays as it is."""
    from orchestration.engine.outcomes import Outcome

    graph = plan.graph
    checks = graph.checks_by_id()
    done = {c.check.unique_id for c in report.checks}
    wanted = [uid for uid in plan.dbt_nodes if uid in checks] + sorted(set(planned_checks))
    for uid in dict.fromkeys(wanted):
        if uid not in done:
            report.checks.append(CheckOutcome(checks[uid], "interrupted", None, message, attempts=0))
            mirror.finish(uid, Outcome.INTERRUPTED, message)
    ended = ("success", "unchanged", "observed", "no-op", "failed", "skipped", "fresh")
    for key in sorted(plan.selected):
        spec = graph.specs[key]
        result = report.assets.get(str(key))
        if not spec.builds or (result is not None and result.status in ended):
            continue
        report.assets[str(key)] = AssetResult(
            str(key), spec.kind.value, "interrupted", 0, None, None, message=message, node_id=spec.unique_id
        )
        mirror.finish(spec.unique_id, Outcome.INTERRUPTED, message)


def _spec(graph: AssetGraph, key: str) -> AssetSpec | None:
    """The spec of a result's key; None for what is no asset (a hook, a check's package)."""
    try:
        return graph.specs.get(AssetKey.parse(key))
    except ValueError:
        return None


def alerts_for(graph: AssetGraph, report: MaterializeReport, run_url: str | None) -> list[Alert]:
    """One alert per asset whose last attempt failed and per check that failed or warned with failing rows."""

    def alert(key: str, kind: str, error: str, attempts: int) -> Alert:
        spec = _spec(graph, key)
        return Alert(
            asset_key=key,
            kind=kind,
            error=error,
            attempts=attempts,
            run_id=report.run_id,
            run_url=run_url,
            owners=spec.owners if spec else (),
            tags=tuple(sorted(spec.tags)) if spec else (),
            target=report.target,
        )

    alerts = [
        alert(r.key, r.kind, r.message or "failed", r.attempts) for r in sorted(report.failed, key=lambda r: r.key)
    ]
    if report.interrupted:  # one alert for the run, not one per asset it did not reach
        left = sorted(r.key for r in report.unfinished)
        shown = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        error = f"the run was interrupted by {report.interrupted}; {len(left)} asset(s) did not finish: {shown}"
        alerts.append(alert(f"run {report.run_id}", "run interrupted", error, 1))
    for check in sorted(report.checks, key=lambda c: c.check.id):
        if check.alerting:
            error = check.message or f"{check.failures} failing rows"
            severity = check.check.severity.value
            alerts.append(alert(check.check.subject, f"check:{check.check.name} ({severity})", error, check.attempts))
    return alerts


def records(graph: AssetGraph, report: MaterializeReport) -> tuple[list[Materialization], list[CheckRecord]]:
    """The run-log rows for this run: each asset with the data version its relation had when the run ended (built
    ones), each check with the definition it ran with."""
    materializations = []
    for result in sorted(report.assets.values(), key=lambda r: r.key):
        spec = _spec(graph, result.key)
        materializations.append(
            Materialization(
                asset_key=result.key,
                run_id=report.run_id,
                status=result.status,
                attempts=result.attempts,
                started_at=result.started_at,
                ended_at=result.ended_at,
                rows=result.rows,
                code_version=spec.code_version if spec else None,
                kind=result.kind,
                message=result.message[:2000],
                target=report.target,
                data_version=_data_version(spec, result, report),
            )
        )
    materializations.extend(report.observed)
    latest = {(c.check.subject, c.check.name): c for c in report.checks}  # one row per check, whatever happened
    checks = [
        CheckRecord(
            asset_key=c.check.subject,
            check_name=c.check.name,
            run_id=report.run_id,
            severity=c.check.severity.value,
            status=c.status,
            failures=c.failures,
            message=c.message[:2000],
            code_version=c.check.code_version,
        )
        for c in latest.values()
    ]
    return materializations, checks


def _data_version(spec: Any, result: AssetResult, report: MaterializeReport) -> str | None:
    """The data version of a relation this run wrote (built, or loaded by dlt), read when the run ended."""
    if spec is None or result.status not in ("success", "unchanged", "observed"):
        return None
    return report.data_versions.get(spec.relation_name.lower())


_ROWS = 50
"""Rows per table in the run's summary artifact: the rest is counted, never silently dropped."""


def summary_markdown(report: MaterializeReport) -> str:
    """The run summary as Markdown, for the flow run's artifact in Prefect's UI: the verdict, counts, what failed,
    was skipped or did not finish (with the first line of why), the failed and warned checks, and quarantined rows."""

    def cell(text: Any) -> str:
        first = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
        return first.replace("|", "\\|")[:200]

    verdict, counts = report.verdict(), report.status_counts()
    dbt = report.dbt_counts()
    lines = [
        f"# Headwater run on `{report.target}`: {verdict}",
        "",
        f"Run `{report.run_id}`; assets: "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        + f"; dbt: PASS={dbt['pass']} WARN={dbt['warn']} ERROR={dbt['error']} SKIP={dbt['skip']} TOTAL={dbt['total']}",
    ]
    troubled = sorted(
        (r for r in report.assets.values() if r.status in ("failed", "skipped", "interrupted")),
        key=lambda r: (r.status, r.key),
    )
    if troubled:
        lines += ["", "| asset | status | attempts | why |", "|---|---|---|---|"]
        lines += [f"| `{r.key}` | {r.status} | {r.attempts} | {cell(r.message)} |" for r in troubled[:_ROWS]]
        if len(troubled) > _ROWS:
            lines.append(f"| ... | {len(troubled) - _ROWS} more | | |")
    noted = sorted((c for c in report.checks if c.status in ("fail", "error", "warn")), key=lambda c: c.check.id)
    if noted:
        lines += ["", "| check | severity | status | failures | detail |", "|---|---|---|---|---|"]
        lines += [
            f"| `{c.check.id}` | {c.check.severity.value} | {c.status} | {'' if c.failures is None else c.failures} "
            f"| {cell(c.message)} |"
            for c in noted[:_ROWS]
        ]
        if len(noted) > _ROWS:
            lines.append(f"| ... | | {len(noted) - _ROWS} more | | |")
    if report.quarantined:
        shown = ", ".join(f"`{key}` {n:,}" for key, n in sorted(report.quarantined.items()))
        lines += ["", f"Quarantined rows (kept with their reason in `<dataset>._headwater_quarantine`): {shown}"]
    if report.state_aware:
        state = [(k, "built", why) for k, why in sorted(report.stale.items())]
        labels = {c.check.unique_id: c.check.id for c in report.checks}
        state += [(labels.get(uid, uid), "checked", why) for uid, why in sorted(report.due_checks.items())]
        state += [(r.key, "fresh", r.message) for r in sorted(report.fresh, key=lambda r: r.key)]
        lines += ["", "## Stale-only run: why each asset was built or kept", ""]
        lines += ["| asset | | why |", "|---|---|---|"]
        lines += [f"| `{key}` | {what} | {cell(why)} |" for key, what, why in state[:_ROWS]]
        if len(state) > _ROWS:
            lines.append(f"| ... | {len(state) - _ROWS} more | |")
    elif report.state_note:
        lines += ["", f"Not state-aware: {cell(report.state_note)}"]
    return "\n".join(lines) + "\n"
