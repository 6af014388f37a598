"""What a run leaves in Prefect's UI beside its task runs: the flow run's link and the run summary artifact."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from assets.checks import CheckOutcome
from orchestration.engine.report import MaterializeReport, summary_markdown


def run_url(flow_run_id: Any) -> str | None:
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base}/runs/flow-run/{flow_run_id}" if base and flow_run_id else None


def publish_summary(report: MaterializeReport, task_run_ids: Mapping[str, UUID] | None = None) -> None:
    """The run summary as a markdown artifact on the flow run (Prefect's UI shows it on the run's Artifacts tab), and
    each failed or warned check's detail (its sample of failing values) as an artifact on the check's task run; a
    server that refuses them costs the run nothing but a line in its report."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.runtime import flow_run

    try:
        current = flow_run.get_id()
        if current:
            log_summary(report, UUID(current))
        create_markdown_artifact(
            markdown=summary_markdown(report), key="headwater-run-summary", description="Headwater run summary"
        )
        ids = task_run_ids or {}
        noted = [c for c in report.checks if c.status in ("fail", "error", "warn") and c.check.unique_id in ids]
        if noted:  # the client's public call: create_markdown_artifact cannot name another task run
            with get_client(sync_client=True) as client:
                for outcome in sorted(noted, key=lambda c: c.check.id)[:_CHECK_ARTIFACTS]:
                    client.create_artifact(
                        ArtifactCreate(
                            type="markdown",
                            data=check_markdown(outcome),
                            description=f"failing rows of {outcome.check.id}",
                            flow_run_id=UUID(current) if current else None,
                            task_run_id=ids[outcome.check.unique_id],
                        )
                    )
    except Exception as exc:  # the artifacts are a view of the report: the run's record matters more
        report.mirror_errors.append(f"run artifacts: {type(exc).__name__}: {exc}")


def log_summary(report: MaterializeReport, flow_run_id: UUID) -> None:
    """The run's own lines in its flow run's logs: the verdict and counts, then every final failure on its own line
    (asset or check, with what went wrong), as the terminal shows them."""
    import logging

    from orchestration.engine.outcomes import headline
    from orchestration.prefect.task_mirror import api_log

    shown = ", ".join(f"{n} {status}" for status, n in sorted(report.status_counts().items()))
    api_log(flow_run_id, logging.INFO, f"run {report.run_id} on {report.target}: {report.verdict()}; assets: {shown}")
    if report.state_note:
        api_log(flow_run_id, logging.WARNING, f"not state-aware: {report.state_note}")
    for result in sorted(report.failed, key=lambda r: r.key):
        api_log(flow_run_id, logging.ERROR, f"failed {result.key}: {headline(result.message or '') or 'failed'}")
    for check in sorted(report.failed_checks, key=lambda c: c.check.id):
        api_log(flow_run_id, logging.ERROR, f"check {check.status} {check.check.id}: {headline(check.message or '')}")


_CHECK_ARTIFACTS = 50
"""Check artifacts a run publishes at most (the summary counts every failed check)."""


def check_markdown(outcome: CheckOutcome) -> str:
    """One failed or warned check for its task run: what it checks, its verdict, how many rows, and the sample."""
    check = outcome.check
    failures = "" if outcome.failures is None else f", {outcome.failures:,} failing row(s)"
    lines = [
        f"# `{check.id}`: {outcome.status}",
        "",
        f"Severity {check.severity.value}{failures}. {check.description}".strip(),
        "",
        "```",
        (outcome.message or "(no detail)")[:4000],
        "```",
    ]
    return "\n".join(lines) + "\n"
