"""Prefect: the materialize flow, the task-run mirror, deployments, the local Prefect API and reading records back."""
