"""Orchestration: the Prefect flow built from the asset graph, the dbt executor, targets and the CLI."""
