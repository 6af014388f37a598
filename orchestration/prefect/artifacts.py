"""What a run leaves in Prefect's UI beside its task runs: the flow run's link and the run summary artifact."""

from __future__ import annotations

from typing import Any

from orchestration.engine.report import MaterializeReport, summary_markdown


def run_url(flow_run_id: Any) -> str | None:
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base}/runs/flow-run/{flow_run_id}" if base and flow_run_id else None


def publish_summary(report: MaterializeReport) -> None:
    """The run summary as a markdown artifact on the flow run (Prefect's UI shows it on the run's Artifacts tab);
    a server that refuses it costs the run nothing but a line in its report."""
    from prefect.artifacts import create_markdown_artifact

    try:
        create_markdown_artifact(
            markdown=summary_markdown(report), key="headwater-run-summary", description="Headwater run summary"
        )
    except Exception as exc:  # the artifact is a view of the report: the run's record matters more
        report.mirror_errors.append(f"run summary artifact: {type(exc).__name__}: {exc}")
