"""Checks on assets: dbt tests and Great Expectations suites (issue 4)."""
